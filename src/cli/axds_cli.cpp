// The axds command-line tool: the library's directory, archive and tracker operations for shells and scripts.
// Exit codes: 0 success, 1 the operation failed (message on stderr), 2 usage error.

#include "cli/axds_cli.hpp"

#include <axds/config/yaml_value.hpp>
#include <axds/error.hpp>
#include <axds/fs/checksum.hpp>
#include <axds/fs/delete.hpp>
#include <axds/fs/transfer.hpp>
#include <axds/jobs/processing_tracker.hpp>
#include <axds/log/data_logger.hpp>
#include <axds/log/log_archive.hpp>
#include <axds/log/log_archive_reader.hpp>
#include <axds/log/log_package.hpp>
#include <axds/log/log_socket.hpp>

#include <CLI/CLI.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/this_coro.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

/// A JSON string. Text that is not valid UTF-8 (paths are bytes on Linux) is encoded as Python does with
/// `surrogateescape`: each byte that is not part of a valid sequence becomes the lone surrogate \udcXX, so
/// `os.fsencode(json.loads(out)["path"])` gives back the exact bytes of the path.
std::string json_string(std::string_view text) {
    std::string out = "\"";
    const auto byte = [&](std::size_t i) {
        return static_cast<unsigned char>(text[i]);
    };
    for (std::size_t i = 0; i < text.size();) {
        const unsigned char c = byte(i);
        if (c < 0x80) {
            switch (c) {
                case '"': out += "\\\""; break;
                case '\\': out += "\\\\"; break;
                case '\n': out += "\\n"; break;
                case '\t': out += "\\t"; break;
                case '\r': out += "\\r"; break;
                default:
                    if (c < 0x20) {
                        out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
                    } else {
                        out += static_cast<char>(c);
                    }
            }
            ++i;
            continue;
        }
        // Length and first-continuation range of a well-formed sequence (RFC 3629: no overlongs, no surrogates).
        std::size_t length = 0;
        unsigned char low = 0x80;
        unsigned char high = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            length = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            length = 3;
            low = c == 0xE0 ? 0xA0 : 0x80;
            high = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
            length = 4;
            low = c == 0xF0 ? 0x90 : 0x80;
            high = c == 0xF4 ? 0x8F : 0xBF;
        }
        bool valid = length != 0 && i + length <= text.size() && byte(i + 1) >= low && byte(i + 1) <= high;
        for (std::size_t k = 2; valid && k < length; ++k) {
            valid = byte(i + k) >= 0x80 && byte(i + k) <= 0xBF;
        }
        if (valid) {
            out.append(text.substr(i, length));
            i += length;
        } else {
            out += fmt::format("\\u{:04x}", 0xDC00U + c);
            ++i;
        }
    }
    return out + "\"";
}

/// The items of a JSON array of paths (without the brackets).
std::string json_paths(const std::vector<fs::path>& paths) {
    std::string out;
    for (const auto& path : paths) {
        out += (out.empty() ? "" : ", ") + json_string(path.string());
    }
    return out;
}

template <typename T>
std::string json_optional(const std::optional<T>& value) {
    if (!value) {
        return "null";
    }
    if constexpr (std::is_same_v<T, std::string>) {
        return json_string(*value);
    } else {
        return std::to_string(*value);
    }
}

/// A progress bar on stderr (when it is a terminal and not --quiet): percentage, counts, byte rate and ETA, redrawn
/// at most 10 times a second. The ETA extrapolates the fraction of items done.
class progress_bar {
public:
    progress_bar(bool enabled, std::string label, std::string unit)
        : enabled_(enabled), label_(std::move(label)), unit_(std::move(unit)), start_(clock::now()) {}

    void update(std::size_t done, std::size_t total, std::uint64_t bytes) {
        if (!enabled_) {
            return;
        }
        const auto now = clock::now();
        if (done < total && now - last_draw_ < std::chrono::milliseconds(100)) {
            return;
        }
        last_draw_ = now;
        const double elapsed = std::chrono::duration<double>(now - start_).count();
        const double fraction = total == 0 ? 1.0 : static_cast<double>(done) / static_cast<double>(total);
        constexpr int width = 24;
        const int filled = static_cast<int>(fraction * width);
        std::string bar(static_cast<std::size_t>(filled), '#');
        bar.append(static_cast<std::size_t>(width - filled), '-');
        std::string eta = "--:--";
        if (fraction > 0.0 && done < total) {
            const auto remaining = static_cast<long>(elapsed / fraction - elapsed);
            eta = fmt::format("{}:{:02}", remaining / 60, remaining % 60);
        } else if (done >= total) {
            eta = fmt::format("{:.1f} s", elapsed);
        }
        const double rate = elapsed > 0.0 ? static_cast<double>(bytes) / elapsed / 1e6 : 0.0;
        std::fprintf(stderr, "\r%s [%s] %3d%% %zu/%zu %s  %.1f MB/s  %s %s\x1b[K", label_.c_str(), bar.c_str(),
                     static_cast<int>(fraction * 100.0), done, total, unit_.c_str(), rate, done >= total ? "in" : "ETA",
                     eta.c_str());
        drawn_ = true;
        if (done >= total) {
            finish();
        }
    }

    void finish() {
        if (drawn_) {
            std::fputc('\n', stderr);
            drawn_ = false;
        }
    }

    ~progress_bar() { finish(); }

    progress_bar(const progress_bar&) = delete;
    progress_bar& operator=(const progress_bar&) = delete;

private:
    using clock = std::chrono::steady_clock;
    bool enabled_;
    bool drawn_ = false;
    std::string label_;
    std::string unit_;
    clock::time_point start_;
    clock::time_point last_draw_{};
};

/// Runs a library operation on an io_context of its own. The first SIGINT/SIGTERM cancels it (the operation stops at
/// its next safe point and reports how far it got; a source is never half removed, an archive never left under its
/// final name unfinished); a second one ends the process at once with status 130.
template <typename T>
T run_interruptible(asio::awaitable<T> op) {
    asio::io_context io;
    asio::signal_set signals(io, SIGINT, SIGTERM);
    asio::cancellation_signal cancel;
    std::exception_ptr error;
    std::optional<std::conditional_t<std::is_void_v<T>, bool, T>> result;
    bool done = false;
    std::function<void(const std::error_code&, int)> on_signal = [&](const std::error_code& ec, int) {
        if (ec || done) {
            return;
        }
        std::fputs("\naxds: interrupted; cancelling (press Ctrl-C again to quit at once)\n", stderr);
        cancel.emit(asio::cancellation_type::terminal);
        signals.async_wait([](const std::error_code& second, int) {
            if (!second) {
                std::_Exit(130);
            }
        });
    };
    signals.async_wait(on_signal);
    asio::co_spawn(io, std::move(op),
                   asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, auto... value) {
                       done = true;
                       error = std::move(e);
                       if constexpr (sizeof...(value) == 1) {
                           result.emplace(std::move(value)...);
                       }
                       signals.cancel();
                   }));
    io.run();
    if (error) {
        std::rethrow_exception(error);
    }
    if constexpr (!std::is_void_v<T>) {
        return std::move(*result);
    }
}

/// The CLI is stricter than the library: a path the user typed that does not exist is an error (exit 1) for every
/// subcommand, never an operation on nothing (the library keeps the Python library's "missing = nothing to do").
void require_existing(const fs::path& path, std::string_view what, bool directory) {
    struct stat st {};

    if (path.empty()) {
        throw axds::value_error(fmt::format("The {} is an empty path.", what));
    }
    if (::lstat(path.c_str(), &st) != 0) {
        throw axds::file_not_found_error(std::make_error_code(std::errc::no_such_file_or_directory),
                                         fmt::format("The {} '{}' does not exist.", what, path.string()));
    }
    if (directory && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) {
        throw axds::not_a_directory_error(std::make_error_code(std::errc::not_a_directory),
                                          fmt::format("The {} '{}' is not a directory.", what, path.string()));
    }
}

/// The CLI never treats a file that is not a processing tracker as one: `reset`/`retry` would replace it with an
/// empty tracker (the Python library, ignoring unknown keys, would). A tracker is a regular file holding a YAML
/// mapping with a `jobs` entry, or an empty file.
void require_tracker_file(const fs::path& path) {
    struct stat st {};

    if (::stat(path.c_str(), &st) != 0) {
        return;  // missing: require_existing decides
    }
    const auto refuse = [&](std::string_view why) {
        throw axds::value_error(
            fmt::format("The file '{}' is not a processing tracker: {}. It was left untouched.", path.string(), why));
    };
    if (!S_ISREG(st.st_mode)) {
        refuse("it is not a regular file");
    }
    std::ifstream in(path, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
        return;
    }
    const axds::yaml_value document = axds::parse_yaml(text, path.string());
    if (document.type() != axds::yaml_value::kind::mapping || document.find("jobs") == nullptr) {
        refuse("it holds no 'jobs' entry");
    }
}

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// `axds log serve`: a data logger behind a log_socket_server until SIGINT/SIGTERM, then drained (and assembled).
struct serve_settings {
    fs::path output;
    std::string name;
    fs::path socket;
    std::size_t threads = 5;
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
    axds::data_logger_options logger_options{.thread_count = settings.threads};
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

void print_tracker(const axds::tracker_summary& summary, bool json) {
    if (json) {
        std::string out = "{\"jobs\": [";
        bool first = true;
        for (const auto& [id, job] : summary.jobs) {
            out += fmt::format(
                "{}{{\"job_id\": {}, \"job_name\": {}, \"specifier\": {}, \"status\": {}, \"executor_id\": {}, "
                "\"started_at\": {}, \"completed_at\": {}, \"error_message\": {}}}",
                first ? "" : ", ", json_string(id), json_string(job.job_name), json_string(job.specifier),
                json_string(axds::processing_status_name(job.status)), json_optional(job.executor_id),
                json_optional(job.started_at), json_optional(job.completed_at), json_optional(job.error_message));
            first = false;
        }
        const auto& c = summary.summary;
        out += fmt::format(
            "], \"summary\": {{\"total\": {}, \"succeeded\": {}, \"failed\": {}, \"running\": {}, \"scheduled\": {}}}, "
            "\"status\": {}}}",
            c.total, c.succeeded, c.failed, c.running, c.scheduled,
            json_string(axds::tracker_status_value(summary.status)));
        fmt::print("{}\n", out);
        return;
    }
    for (const auto& [id, job] : summary.jobs) {
        fmt::print("{}  {:<9}  {}{}{}{}\n", id, axds::processing_status_name(job.status), job.job_name,
                   job.specifier.empty() ? "" : " (" + job.specifier + ")",
                   job.executor_id ? " on " + *job.executor_id : "",
                   job.error_message ? ": " + *job.error_message : "");
    }
    const auto& c = summary.summary;
    fmt::print("{} jobs: {} succeeded, {} failed, {} running, {} scheduled; status {}\n", c.total, c.succeeded,
               c.failed, c.running, c.scheduled, axds::tracker_status_value(summary.status));
}

}  // namespace

/// --workers: 0 (automatic) or a positive count, with a message that says so (CLI11's range check prints the
/// limits of a double).
const CLI::Validator worker_count(
    [](const std::string& text) -> std::string {
        int value = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec != std::errc() || end != text.data() + text.size() || value < 0) {
            return fmt::format("'{}' is not a worker count: use 0 (automatic) or a positive whole number", text);
        }
        return {};
    },
    "0 (automatic) or a positive number");

int axds::cli::run(int argc, char** argv, const run_options& run) {
    CLI::App app{
        "axds: directory checksums, transfers, log archives and processing trackers "
        "(file-compatible with ataraxis-data-structures)"};
    app.require_subcommand(1);
    app.fallthrough();  // --quiet may also follow the subcommand
    bool quiet = false;
    app.add_flag("--quiet,-q", quiet, "No progress output");

    auto* checksum = app.add_subcommand("checksum", "Print the directory checksum (same as the Python library)");
    std::string checksum_dir;
    int checksum_workers = 0;
    bool no_save = false;
    std::vector<std::string> excludes;
    checksum->add_option("DIR", checksum_dir, "Directory")->required();
    checksum->add_option("--workers", checksum_workers, "Files hashed at once (0 = cores - 2)")->check(worker_count);
    checksum->add_flag("--no-save", no_save, "Do not write ax_checksum.txt");
    checksum->add_option("--exclude", excludes, "File names to leave out (replaces the default ax_checksum.txt)");

    auto* transfer = app.add_subcommand("transfer", "Copy a directory tree, optionally verified");
    std::string source;
    std::string destination;
    int threads = 1;
    bool verify = false;
    bool remove_source = false;
    bool reset_dirty = false;
    transfer->add_option("SRC", source, "Source directory")->required();
    transfer->add_option("DST", destination, "Destination directory")->required();
    transfer->add_option("--threads", threads, "Parallel copies");
    transfer->add_flag("--verify", verify, "Verify with the directory checksum");
    transfer->add_flag("--remove-source", remove_source, "Delete the source after a successful transfer");
    transfer->add_flag("--reset-dirty-destination", reset_dirty, "Delete destination files the source lacks");

    auto* remove = app.add_subcommand("delete", "Delete a directory tree");
    std::string delete_dir;
    bool force_root = false;
    remove->add_option("DIR", delete_dir, "Directory")->required();
    remove->add_flag("--force-root", force_root,
                     "Also delete a protected directory: /, the current directory or its ancestors, $HOME, a mount "
                     "point");

    auto* assemble = app.add_subcommand("assemble", "Pack a logger directory's entries into per-source .npz archives");
    std::string log_dir;
    int assemble_workers = 0;
    bool keep_sources = false;
    bool assemble_verify = false;
    assemble->add_option("LOGDIR", log_dir, "Logger output directory")->required();
    auto* assemble_workers_option =
        assemble->add_option("--workers", assemble_workers, "Sources assembled at once (0 = cores - 2)");
    assemble->add_flag("--keep-sources", keep_sources, "Keep the .npy entries");
    assemble->add_flag("--verify", assemble_verify, "Verify every archive before removing entries");

    auto* archive = app.add_subcommand("archive", "Inspect a log archive");
    archive->require_subcommand(1);
    auto* info = archive->add_subcommand("info", "Onset, message count, time span and payload sizes");
    std::string archive_path;
    info->add_option("ARCHIVE", archive_path, "Archive (.npz)")->required();

    auto* dump = archive->add_subcommand("dump", "Timestamp, size and hex payload of each message");
    std::vector<std::string> dump_keys;
    std::size_t dump_limit = 0;
    dump->add_option("ARCHIVE", archive_path, "Archive (.npz)")->required();
    dump->add_option("--keys", dump_keys, "Only these message keys (e.g. 001_00000000000000000042)");
    dump->add_option("--limit", dump_limit, "At most this many messages (0 = all)");

    auto* tracker = app.add_subcommand("tracker", "Inspect or reset a processing tracker");
    tracker->require_subcommand(1);
    std::string tracker_file;
    auto* show = tracker->add_subcommand("show", "Every job and the summary");
    auto* summary = tracker->add_subcommand("summary", "Counts and status");
    auto* reset = tracker->add_subcommand("reset", "Remove every job");
    auto* retry = tracker->add_subcommand("retry", "Reschedule failed jobs");
    for (auto* sub : {show, summary, reset, retry}) {
        sub->add_option("FILE", tracker_file, "Tracker YAML file")->required();
    }
    bool create_tracker = false;
    for (auto* sub : {reset, retry}) {
        sub->add_flag("--create", create_tracker, "Create the tracker file (and its directory) if it does not exist");
    }

    auto* log = app.add_subcommand("log", "Run a data logger");
    log->require_subcommand(1);
    auto* serve = log->add_subcommand(
        "serve", "Log what producer processes send to a Unix socket (any language: see log_socket.hpp) until Ctrl-C");
    serve_settings serve_options;
    serve->add_option("OUTPUT", serve_options.output, "Directory that receives NAME_data_log")->required();
    serve->add_option("NAME", serve_options.name, "Logger instance name")->required();
    serve->add_option("--socket", serve_options.socket, "Socket path (default: OUTPUT/NAME.sock)");
    serve->add_option("--threads", serve_options.threads, "Entry writes in flight (the Python thread_count)");
    serve->add_flag("--assemble", serve_options.assemble, "Assemble verified archives after the drain");
    serve
        ->add_option(
            "--layout", serve_options.layout,
            "entries: one .npy file per package (default); archives: stream into NAME_data_log/{source}_log.npz "
            "(crash-recoverable with axds assemble)")
        ->check(CLI::IsMember({"entries", "archives"}));
    serve->add_option("--sync-every-bytes", serve_options.sync_every_bytes,
                      "archives layout: fdatasync a working file after this many appended bytes (0 = never)");
    serve->add_option("--sync-every-ms", serve_options.sync_every_ms,
                      "archives layout: fdatasync a working file whose unsynced data is this old (0 = never)");

    // One --json for every subcommand that has a result to print (only one subcommand runs).
    bool json = false;
    assemble_workers_option->check(worker_count);
    for (auto* sub : {checksum, transfer, remove, assemble, info, show, summary, serve}) {
        sub->add_flag("--json", json, "Machine-readable result on stdout");
    }
    dump->add_flag("--json", json, "One JSON object per line");

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e, *run.out, *run.err);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e, *run.out, *run.err);
    } catch (const CLI::ParseError& e) {
        // "axds bogus": CLI11 would say "A subcommand is required"; name the word that is not a subcommand instead.
        std::vector<std::string> names;
        for (const auto* sub : app.get_subcommands({})) {
            names.push_back(sub->get_name());
        }
        if (argc > 1 && argv[1][0] != '-' && std::find(names.begin(), names.end(), argv[1]) == names.end()) {
            *run.err << fmt::format("axds: '{}' is not a subcommand; expected one of: {}. Run axds --help for more.\n",
                                    argv[1], fmt::join(names, ", "));
            return 2;
        }
        (void)app.exit(e, *run.out, *run.err);
        return 2;
    }
    if (run.parse_only) {
        return 0;
    }
    const bool show_progress = !quiet && ::isatty(STDERR_FILENO) != 0;
    const auto started = std::chrono::steady_clock::now();
    try {
        if (*checksum) {
            require_existing(checksum_dir, "directory", true);
            axds::checksum_options options{.max_workers = checksum_workers, .save_checksum = !no_save};
            if (!excludes.empty()) {
                options.excluded_files = std::set<std::string>(excludes.begin(), excludes.end());
            }
            progress_bar bar(show_progress, "hashing", "files");
            axds::checksum_progress last;
            options.progress = [&](const axds::checksum_progress& p) {
                last = p;
                bar.update(p.files_done, p.files_total, p.bytes_done);
            };
            const std::string digest =
                run_interruptible(axds::async_calculate_directory_checksum(checksum_dir, std::move(options)));
            if (json) {
                fmt::print(
                    "{{\"directory\": {}, \"checksum\": {}, \"files\": {}, \"bytes\": {}, \"saved\": {}, "
                    "\"seconds\": {:.3f}}}\n",
                    json_string(checksum_dir), json_string(digest), last.files_done, last.bytes_done, !no_save,
                    seconds_since(started));
            } else {
                fmt::print("{}\n", digest);
            }
        } else if (*transfer) {
            axds::transfer_options options{.num_threads = threads,
                                           .verify_integrity = verify,
                                           .remove_source = remove_source,
                                           .reset_dirty_destination = reset_dirty};
            progress_bar bar(show_progress, "copying", "files");
            axds::transfer_progress last;
            options.progress = [&](const axds::transfer_progress& p) {
                last = p;
                bar.update(p.files_done, p.files_total, p.bytes_done);
            };
            require_existing(source, "source directory", true);
            const auto report =
                run_interruptible(axds::async_transfer_directory(source, destination, std::move(options)));
            const double elapsed = seconds_since(started);
            std::vector<fs::path> kept(report.source_files_kept.begin(), report.source_files_kept.end());
            if (json) {
                fmt::print(
                    "{{\"source\": {}, \"destination\": {}, \"files\": {}, \"bytes\": {}, \"verified\": {}, "
                    "\"source_removed\": {}, \"source_files_removed\": {}, \"source_files_kept\": [{}], "
                    "\"seconds\": {:.3f}}}\n",
                    json_string(source), json_string(destination), report.files_copied, report.bytes_copied,
                    report.verified, remove_source && kept.empty(), report.source_files_removed, json_paths(kept),
                    elapsed);
            } else if (!quiet) {
                fmt::print(
                    "copied {} files ({} bytes) from {} to {} in {:.2f} s{}{}\n", report.files_copied,
                    report.bytes_copied, source, destination, elapsed, report.verified ? ", checksum verified" : "",
                    !remove_source ? ""
                    : kept.empty() ? ", source removed"
                                   : fmt::format(", {} copied source files removed, {} kept (they appeared or changed "
                                                 "during the transfer)",
                                                 report.source_files_removed, kept.size()));
            }
        } else if (*remove) {
            require_existing(delete_dir, "directory to delete", true);
            run_interruptible(axds::async_delete_directory(delete_dir, {.force_root = force_root}));
            if (struct stat left{}; ::lstat(delete_dir.c_str(), &left) == 0) {
                throw axds::os_error(
                    std::make_error_code(std::errc::directory_not_empty),
                    fmt::format("'{}' was not removed entirely (see the warnings above).", delete_dir));
            }
            if (json) {
                fmt::print("{{\"deleted\": {}, \"seconds\": {:.3f}}}\n", json_string(delete_dir),
                           seconds_since(started));
            }
        } else if (*assemble) {
            axds::assemble_options options{
                .max_workers = assemble_workers, .remove_sources = !keep_sources, .verify_integrity = assemble_verify};
            progress_bar bar(show_progress, "assembling", "entries");
            options.progress = [&](const axds::assemble_progress& p) {
                bar.update(p.entries_done, p.entries_total, p.bytes_done);
            };
            require_existing(log_dir, "log directory", true);
            const auto report = run_interruptible(axds::async_assemble_log_archives(log_dir, std::move(options)));
            std::vector<fs::path> skipped;
            for (const auto& issue : report.skipped) {
                skipped.push_back(issue.path);
            }
            std::string recovered_json;
            for (const auto& r : report.recovered) {
                recovered_json += fmt::format(
                    "{}{{\"working_file\": {}, \"archive\": {}, \"members\": {}, "
                    "\"bytes_cut\": {}}}",
                    recovered_json.empty() ? "" : ", ", json_string(r.working_file.string()),
                    json_string(r.archive.string()), r.members, r.bytes_cut);
                if (!json) {
                    fmt::print(
                        "recovered {} members of the unfinished streaming archive {} into {} ({} torn bytes "
                        "cut)\n",
                        r.members, r.working_file.string(),
                        r.archive.empty() ? std::string("nothing") : r.archive.string(), r.bytes_cut);
                }
            }
            if (json) {
                const std::string archives = json_paths(report.archives);
                fmt::print(
                    "{{\"archives\": [{}], \"entries\": {}, \"bytes\": {}, \"removed\": {}, \"merged\": {}, "
                    "\"duplicates\": {}, \"skipped\": [{}], \"verified\": {}, \"recovered\": [{}], "
                    "\"seconds\": {:.3f}}}\n",
                    archives, report.entries, report.bytes, report.removed, report.merged, report.duplicates,
                    json_paths(skipped), assemble_verify, recovered_json, seconds_since(started));
            } else {
                fmt::print(
                    "{} entries ({} bytes) into {} archives ({} members kept from existing archives); {} entry "
                    "files removed\n",
                    report.entries, report.bytes, report.archives.size(), report.merged, report.removed);
            }
            if (!report.clean()) {
                std::fprintf(stderr,
                             "axds: %zu .npy file(s) in %s were not archived and are left on disk (named in the "
                             "warnings above)\n",
                             report.skipped.size(), log_dir.c_str());
                return 1;
            }
        } else if (*info && axds::is_working_archive_name(fs::path(archive_path).filename().string())) {
            require_existing(archive_path, "archive", false);
            const axds::working_archive_info w = axds::inspect_working_archive(archive_path);
            if (json) {
                fmt::print(
                    "{{\"archive\": {}, \"unfinished\": true, \"source\": {}, \"recoverable_members\": {}, "
                    "\"recoverable_bytes\": {}, \"file_size\": {}}}\n",
                    json_string(archive_path), w.source, w.recoverable_members, w.recoverable_bytes, w.file_size);
            } else {
                fmt::print(
                    "{}\n  unfinished streaming archive of source {} (its logger is running or was killed)\n"
                    "  {} members recoverable ({} of {} bytes){}\n  axds assemble on its directory finishes "
                    "it (once no logger writes there)\n",
                    archive_path, w.source, w.recoverable_members, w.recoverable_bytes, w.file_size,
                    w.stop_reason.empty() ? "" : "; the scan stopped " + w.stop_reason);
            }
        } else if (*info) {
            require_existing(archive_path, "archive", false);
            const axds::log_archive_reader reader(archive_path);
            std::uint64_t first = 0;
            std::uint64_t last = 0;
            std::size_t min_size = 0;
            std::size_t max_size = 0;
            std::uint64_t total = 0;
            std::size_t n = 0;
            for (const auto message : reader.messages()) {  // members need not be in time order
                if (n == 0) {
                    first = message.timestamp_us;
                    last = message.timestamp_us;
                    min_size = message.payload.size();
                }
                first = std::min(first, message.timestamp_us);
                last = std::max(last, message.timestamp_us);
                min_size = std::min(min_size, message.payload.size());
                max_size = std::max(max_size, message.payload.size());
                total += message.payload.size();
                ++n;
            }
            const double mean = n == 0 ? 0.0 : static_cast<double>(total) / static_cast<double>(n);
            if (json) {
                fmt::print(
                    "{{\"archive\": {}, \"onset_us\": {}, \"onset\": {}, \"message_count\": {}, \"first_us\": {}, "
                    "\"last_us\": {}, \"payload_bytes\": {}, \"payload_min\": {}, \"payload_max\": {}, "
                    "\"payload_mean\": {}}}\n",
                    json_string(archive_path), reader.onset_timestamp_us(),
                    json_string(axds::utc_iso8601(reader.onset_timestamp_us())), n, first, last, total, min_size,
                    max_size, mean);
            } else {
                fmt::print(
                    "{}\n  onset {} ({} us)\n  {} messages spanning {:.6f} s\n  payloads: {} bytes, min {}, "
                    "max {}, mean {:.1f}\n",
                    archive_path, axds::utc_iso8601(reader.onset_timestamp_us()), reader.onset_timestamp_us(), n,
                    static_cast<double>(last - first) / 1e6, total, min_size, max_size, mean);
            }
        } else if (*dump) {
            require_existing(archive_path, "archive", false);
            const axds::log_archive_reader reader(archive_path);
            const auto range = dump_keys.empty() ? reader.messages() : reader.messages(dump_keys);
            std::size_t shown = 0;
            for (const auto message : range) {
                if (dump_limit != 0 && shown == dump_limit) {
                    break;
                }
                std::string hex;
                hex.reserve(message.payload.size() * 2);
                for (const std::uint8_t byte : message.payload) {
                    hex += fmt::format("{:02x}", byte);
                }
                if (json) {
                    fmt::print("{{\"timestamp_us\": {}, \"size\": {}, \"payload_hex\": \"{}\"}}\n",
                               message.timestamp_us, message.payload.size(), hex);
                } else {
                    fmt::print("{}  {:>8} B  {}\n", message.timestamp_us, message.payload.size(), hex);
                }
                ++shown;
            }
        } else if (*serve) {
            require_existing(serve_options.output, "output directory", true);
            serve_options.json = json;
            if (serve_options.socket.empty()) {
                serve_options.socket = serve_options.output / (serve_options.name + ".sock");
            }
            const serve_result result = run_interruptible(serve_log(serve_options));
            const auto& served = result.served;
            const auto& written = result.written;
            if (json) {
                const std::string archives =
                    json_paths(result.assembled ? result.assembled->archives : std::vector<fs::path>{});
                const std::vector<fs::path> failed(written.failed_entries.begin(), written.failed_entries.end());
                fmt::print(
                    "{{\"directory\": {}, \"connections\": {}, \"packages\": {}, \"dropped_connections\": {}, "
                    "\"refused_connections\": {}, \"entries_written\": {}, \"entries_failed\": {}, "
                    "\"failed_entries\": [{}], \"archives\": [{}], \"seconds\": {:.3f}}}\n",
                    json_string(result.directory.string()), served.connections, served.packages,
                    served.dropped_connections, served.refused_connections, written.entries_written,
                    written.entries_failed, json_paths(failed), archives, seconds_since(started));
            } else {
                fmt::print(
                    "{} producers sent {} packages ({} dropped connections); {} entries written, {} failed{}\n",
                    served.connections, served.packages, served.dropped_connections, written.entries_written,
                    written.entries_failed,
                    result.assembled ? fmt::format("; {} verified archives", result.assembled->archives.size()) : "");
            }
            if (result.assembled && !result.assembled->clean()) {
                std::fprintf(stderr, "axds: %zu .npy file(s) were not archived and are left on disk (see above)\n",
                             result.assembled->skipped.size());
                return 1;
            }
            if (!written.clean() && !json) {  // every entry that did not reach the disk, by name
                for (const auto& name : written.failed_entries) {
                    std::fprintf(stderr, "axds: not written: %s\n", name.c_str());
                }
            }
            if (!served.clean() || !written.clean()) {
                std::fprintf(stderr, "axds: the log is incomplete: %s\n",
                             (!written.clean() ? written.first_error : served.first_error).c_str());
                return 1;
            }
        } else if (*tracker) {
            if (!create_tracker || *show || *summary) {
                require_existing(tracker_file, "processing tracker file", false);
            }
            require_tracker_file(tracker_file);
            axds::processing_tracker registry(tracker_file);
            if (*show || *summary) {
                auto result = registry.summarize();
                if (*summary) {
                    result.jobs.clear();
                }
                print_tracker(result, json);
            } else if (*reset) {
                registry.reset();
            } else {
                const auto ids = registry.retry_failed_jobs();
                fmt::print("{} failed jobs rescheduled\n", ids.size());
            }
        }
    } catch (const std::bad_alloc&) {
        // Name what ran out of memory: "axds: std::bad_alloc" alone told the user nothing.
        std::vector<std::string> words(argv + 1, argv + argc);
        std::fprintf(stderr,
                     "axds: out of memory running 'axds %s' (a memory limit such as ulimit -v, or an input "
                     "that needs more memory than this machine has)\n",
                     fmt::format("{}", fmt::join(words, " ")).c_str());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "axds: %s\n", e.what());
        return 1;
    }
    return 0;
}
