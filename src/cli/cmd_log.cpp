// axds log serve OUTPUT NAME: a data logger behind a log_socket_server until SIGINT/SIGTERM, then drained (and
// assembled).

#include "cli/command.hpp"
#include "cli/json_writer.hpp"

#include <axds/error.hpp>
#include <axds/log/data_logger.hpp>
#include <axds/log/log_archive.hpp>
#include <axds/log/log_socket.hpp>

#include <asio/this_coro.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

namespace axds::cli {

namespace {

namespace fs = std::filesystem;

struct serve_settings {
    fs::path output;
    std::string name;
    fs::path socket;
    int threads = 5;
    bool assemble = false;
    bool append = false;  // add to an earlier run's files in NAME_data_log (refused without it)
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
    serve_result result;
    result.directory = logger.output_directory();
    {
        // Bound before the logger starts: a socket path that cannot be served fails before anything is written.
        axds::log_socket_server server(executor, logger, settings.socket);
        co_await logger.async_start();
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
        .field("syncs", written.syncs)
        .field("bytes_synced", written.bytes_synced)
        .field("syncs_failed", written.syncs_failed)
        .key("failed_entries")
        .paths(failed)
        .key("unfinished_archives")
        .paths(written.unfinished_archives)
        .key("archives")
        .paths(result.assembled ? result.assembled->archives : written.archives);  // --assemble or --layout archives
    damaged_json(json, written.damaged);
    json.key("seconds").fixed(ctx.seconds(), 3).end_object();
    fmt::print("{}\n", json.str());
}

/// The files of an earlier run in the log directory `directory`: entries (`.npy`), finished archives (`_log.npz`)
/// and the working files of a killed streaming run (`_log.npz.working`), sorted by name.
std::vector<std::string> earlier_run_files(const fs::path& directory) {
    std::vector<std::string> found;
    std::error_code ec;
    for (const auto& item : fs::directory_iterator(directory, ec)) {
        const std::string name = item.path().filename().string();
        if (name.ends_with(".npy") || name.ends_with(axds::log_archive_suffix) ||
            name.ends_with(std::string(axds::log_archive_suffix) + ".working")) {
            found.push_back(name);
        }
    }
    std::sort(found.begin(), found.end());
    return found;
}

/// A new run's onset entries (time 0 of each source) cannot share a log directory with an earlier run's: they would
/// clash with the archived onsets (the run's archives could not be finished) or fail as existing entry files, and its
/// messages would be read against the earlier onsets. So a directory holding an earlier run's files is refused before
/// anything is created, unless --append says the producers continue that run (and log no new onsets).
void refuse_earlier_run(const fs::path& directory) {
    const std::vector<std::string> files = earlier_run_files(directory);
    if (files.empty()) {
        return;
    }
    const std::size_t shown = std::min<std::size_t>(files.size(), 3);
    throw axds::file_exists_error(
        std::make_error_code(std::errc::file_exists),
        fmt::format("Unable to serve into {}: it already holds the log of an earlier run ({}{}). A new run's onsets "
                    "cannot share a log directory with an earlier run's, so nothing was started and nothing was "
                    "changed. Use another NAME or OUTPUT, move the earlier run's files out of that directory (a "
                    "killed run's .working files: `axds assemble {}` finishes them first), or pass --append if the "
                    "producers continue the earlier run and log no new onsets.",
                    directory.string(), fmt::join(files.begin(), files.begin() + static_cast<long>(shown), ", "),
                    files.size() > shown ? fmt::format(" and {} more", files.size() - shown) : "", directory.string()));
}

/// serve_log; if it fails, the log directory it created is removed again when it is still empty (a directory that
/// was there before is never removed).
serve_result serve_or_clean_up(const serve_settings& settings) {
    const fs::path directory = settings.output / (settings.name + axds::log_directory_suffix);

    struct stat st {};

    const bool existed = ::lstat(directory.c_str(), &st) == 0;
    try {
        return run_until_interrupted(
            serve_log(settings),
            "\naxds: stopping; everything received is being written (press Ctrl-C again to quit at once and lose what "
            "is still queued)\n",
            "axds: interrupted again; quitting at once: what was still queued is lost, what was written stays (an "
            "unfinished archive as after a kill -9: the next `axds assemble` recovers it)\n");
    } catch (...) {
        if (!existed) {
            (void)::rmdir(directory.c_str());  // only an empty directory goes
        }
        throw;
    }
}

int run_serve(serve_settings settings, const context& ctx) {
    require_existing(settings.output, "output directory", true);
    if (settings.socket.empty()) {
        settings.socket = settings.output / (settings.name + ".sock");
    }
    if (!settings.append) {
        refuse_earlier_run(settings.output / (settings.name + axds::log_directory_suffix));
    }
    const serve_result result = serve_or_clean_up(settings);
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
        for (const auto& working : written.unfinished_archives) {
            std::fprintf(stderr,
                         "axds: archive not finished: %s (every member it holds is on disk; axds assemble %s "
                         "finishes it once the cause below is removed)\n",
                         working.c_str(), result.directory.c_str());
        }
    }
    if (!served.clean() || !written.clean()) {
        std::fprintf(stderr, "axds: the log is incomplete: %s\n",
                     (!written.clean() ? written.first_error : served.first_error).c_str());
        return 1;
    }
    if (written.syncs_failed != 0) {  // every entry written, yet a sync made while the logger ran failed
        std::fprintf(stderr,
                     "axds: every entry was written, but %llu sync(s) failed, so for a while the sync setting's "
                     "promise did not hold (check the disk): %s\n",
                     static_cast<unsigned long long>(written.syncs_failed), written.first_error.c_str());
        return 1;
    }
    for (const auto& d : written.damaged) {  // in working files of an earlier run that this run carried on from
        std::fprintf(stderr, "axds: damaged bytes %llu to %llu of an earlier run's working file were saved to %s\n",
                     static_cast<unsigned long long>(d.offset), static_cast<unsigned long long>(d.offset + d.length),
                     d.saved_to.c_str());
    }
    return written.damaged.empty() ? 0 : 1;
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
    serve->add_flag("--append", settings->append,
                    "Add to the log an earlier run left in NAME_data_log (refused without it); the producers must "
                    "continue that run's time base and log no new onsets");
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
