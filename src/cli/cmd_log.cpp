// axds log serve OUTPUT NAME: a data logger behind a log_socket_server until SIGINT/SIGTERM, then drained (and
// assembled).

#include "cli/command.hpp"
#include "cli/json_writer.hpp"

#include <axds/log/data_logger.hpp>
#include <axds/log/log_archive.hpp>
#include <axds/log/log_socket.hpp>

#include <asio/this_coro.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>

namespace axds::cli {

namespace {

namespace fs = std::filesystem;

struct serve_settings {
    fs::path output;
    std::string name;
    fs::path socket;
    int threads = 5;
    bool assemble = false;
    bool json = false;
    std::string layout = "entries";  // or "archives": streaming archives (data_logger_options::layout)
    std::uint64_t sync_every_bytes = 0;
    std::uint64_t sync_every_ms = 0;
};

struct serve_result {
    fs::path directory;
    axds::log_socket_report served;
    axds::data_logger_report written;
    std::optional<axds::assemble_report> assembled;
};

asio::awaitable<serve_result> serve_log(serve_settings settings) {
    const auto executor = co_await asio::this_coro::executor;
    axds::data_logger_options logger_options{.workers = settings.threads};
    logger_options.layout = settings.layout == "archives" ? axds::log_layout::archives : axds::log_layout::entry_files;
    logger_options.sync_every_bytes = settings.sync_every_bytes;
    logger_options.sync_every = std::chrono::milliseconds(settings.sync_every_ms);
    axds::data_logger logger(executor, settings.output, settings.name, logger_options);
    co_await logger.async_start();
    serve_result result;
    result.directory = logger.output_directory();
    {
        axds::log_socket_server server(executor, logger, settings.socket);
        // The ready line; with --json it goes to stderr, so that stdout holds only the JSON result.
        std::FILE* ready = settings.json ? stderr : stdout;
        fmt::print(ready, "serving {} -> {}\n", settings.socket.string(), result.directory.string());
        std::fflush(ready);
        // Until Ctrl-C or SIGTERM; connected producers then get the server's shutdown grace to finish.
        result.served = co_await server.async_run();
    }
    co_await asio::this_coro::reset_cancellation_state();  // the interruption ended serving, not the drain
    result.written = co_await logger.async_stop();
    if (settings.assemble && result.written.clean()) {
        axds::assemble_options options;
        options.verify_integrity = true;
        result.assembled = co_await axds::async_assemble_log_archives(result.directory, std::move(options));
    }
    co_return result;
}

void print_served(const serve_result& result, bool as_json, const context& ctx) {
    const auto& served = result.served;
    const auto& written = result.written;
    if (!as_json) {
        fmt::print("{} producers sent {} packages ({} dropped connections); {} entries written, {} failed{}\n",
                   served.connections, served.packages, served.dropped_connections, written.entries_written,
                   written.entries_failed,
                   result.assembled ? fmt::format("; {} verified archives", result.assembled->archives.size()) : "");
        return;
    }
    const std::vector<fs::path> failed(written.failed_entries.begin(), written.failed_entries.end());
    json_writer json;
    json.begin_object()
        .field("directory", result.directory)
        .field("connections", served.connections)
        .field("packages", served.packages)
        .field("dropped_connections", served.dropped_connections)
        .field("refused_connections", served.refused_connections)
        .field("entries_written", written.entries_written)
        .field("entries_failed", written.entries_failed)
        .key("failed_entries")
        .paths(failed)
        .key("archives")
        .paths(result.assembled ? result.assembled->archives : std::vector<fs::path>{})
        .key("seconds")
        .fixed(ctx.seconds(), 3)
        .end_object();
    fmt::print("{}\n", json.str());
}

int run_serve(serve_settings settings, const context& ctx) {
    require_existing(settings.output, "output directory", true);
    if (settings.socket.empty()) {
        settings.socket = settings.output / (settings.name + ".sock");
    }
    const serve_result result = run_interruptible(
        serve_log(settings),
        "\naxds: stopping; everything received is being written (press Ctrl-C again to quit at once and lose what is "
        "still queued)\n");
    print_served(result, settings.json, ctx);
    const auto& served = result.served;
    const auto& written = result.written;
    if (result.assembled && !result.assembled->clean()) {
        std::fprintf(stderr, "axds: %zu .npy file(s) were not archived and are left on disk (see above)\n",
                     result.assembled->skipped.size());
        return 1;
    }
    if (!written.clean() && !settings.json) {  // every entry that did not reach the disk, by name
        for (const auto& name : written.failed_entries) {
            std::fprintf(stderr, "axds: not written: %s\n", name.c_str());
        }
    }
    if (!served.clean() || !written.clean()) {
        std::fprintf(stderr, "axds: the log is incomplete: %s\n",
                     (!written.clean() ? written.first_error : served.first_error).c_str());
        return 1;
    }
    return 0;
}

}  // namespace

void add_log(CLI::App& app, command_list& commands) {
    auto* log = app.add_subcommand("log", "Run a data logger");
    log->require_subcommand(1);
    auto settings = std::make_shared<serve_settings>();
    auto* serve = log->add_subcommand(
        "serve", "Log what producer processes send to a Unix socket (any language: see log_socket.hpp) until Ctrl-C");
    serve->add_option("OUTPUT", settings->output, "Directory that receives NAME_data_log")->required();
    serve->add_option("NAME", settings->name, "Logger instance name")->required();
    serve->add_option("--socket", settings->socket, "Socket path (default: OUTPUT/NAME.sock)");
    serve
        ->add_option("--workers,--threads", settings->threads,
                     "Entry writes in flight (the Python thread_count; 0 = cores - 2)")
        ->check(worker_count());
    serve->add_flag("--assemble", settings->assemble, "Assemble verified archives after the drain");
    serve
        ->add_option(
            "--layout", settings->layout,
            "entries: one .npy file per package (default); archives: stream into NAME_data_log/{source}_log.npz "
            "(crash-recoverable with axds assemble)")
        ->check(CLI::IsMember({"entries", "archives"}));
    serve->add_option("--sync-every-bytes", settings->sync_every_bytes,
                      "archives layout: fdatasync a working file after this many appended bytes (0 = never)");
    serve->add_option("--sync-every-ms", settings->sync_every_ms,
                      "archives layout: fdatasync a working file whose unsynced data is this old (0 = never)");
    add_json_flag(*serve, settings->json);
    commands.push_back({serve, [settings](const context& ctx) {
                            return run_serve(*settings, ctx);
                        }});
}

}  // namespace axds::cli
