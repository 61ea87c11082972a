// The axds command-line tool: the library's directory, archive and tracker operations for shells and scripts.
// Exit codes: 0 success, 1 the operation failed (message on stderr), 2 usage error.

#include <axds/core/runtime.hpp>
#include <axds/error.hpp>
#include <axds/fs/checksum.hpp>
#include <axds/fs/delete.hpp>
#include <axds/fs/transfer.hpp>
#include <axds/jobs/processing_tracker.hpp>
#include <axds/log/log_archive.hpp>
#include <axds/log/log_archive_reader.hpp>
#include <axds/log/log_package.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;

namespace {

std::string json_string(std::string_view text) {
    std::string out = "\"";
    for (const char c : text) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\t': out += "\\t"; break;
            case '\r': out += "\\r"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
                } else {
                    out += c;
                }
        }
    }
    return out + "\"";
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

/// A one-line progress report on stderr when it is a terminal and not --quiet.
struct progress_line {
    bool enabled = false;

    void show(std::string_view what, std::size_t done, std::size_t total) const {
        if (enabled) {
            std::fprintf(stderr, "\r%.*s: %zu/%zu", static_cast<int>(what.size()), what.data(), done, total);
            if (done == total) {
                std::fputc('\n', stderr);
            }
        }
    }
};

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

int main(int argc, char** argv) {
    CLI::App app{
        "axds: directory checksums, transfers, log archives and processing trackers "
        "(file-compatible with ataraxis-data-structures)"};
    app.require_subcommand(1);
    bool quiet = false;
    app.add_flag("--quiet,-q", quiet, "No progress output");

    auto* checksum = app.add_subcommand("checksum", "Print the directory checksum (same as the Python library)");
    std::string checksum_dir;
    int checksum_workers = 0;
    bool no_save = false;
    std::vector<std::string> excludes;
    checksum->add_option("DIR", checksum_dir, "Directory")->required();
    checksum->add_option("--workers", checksum_workers, "Files hashed at once (0 = cores - 2)")
        ->check(CLI::NonNegativeNumber);
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
    remove->add_option("DIR", delete_dir, "Directory")->required();

    auto* assemble = app.add_subcommand("assemble", "Pack a logger directory's entries into per-source .npz archives");
    std::string log_dir;
    int assemble_workers = 0;
    bool keep_sources = false;
    bool assemble_verify = false;
    assemble->add_option("LOGDIR", log_dir, "Logger output directory")->required();
    assemble->add_option("--workers", assemble_workers, "Sources assembled at once");
    assemble->add_flag("--keep-sources", keep_sources, "Keep the .npy entries");
    assemble->add_flag("--verify", assemble_verify, "Verify every archive before removing entries");

    auto* archive = app.add_subcommand("archive", "Inspect a log archive");
    archive->require_subcommand(1);
    auto* info = archive->add_subcommand("info", "Onset, message count, time span and payload sizes");
    std::string archive_path;
    bool info_json = false;
    info->add_option("ARCHIVE", archive_path, "Archive (.npz)")->required();
    info->add_flag("--json", info_json, "Machine-readable output");

    auto* dump = archive->add_subcommand("dump", "Timestamp, size and hex payload of each message");
    std::vector<std::string> dump_keys;
    std::size_t dump_limit = 0;
    bool dump_json = false;
    dump->add_option("ARCHIVE", archive_path, "Archive (.npz)")->required();
    dump->add_option("--keys", dump_keys, "Only these message keys (e.g. 001_00000000000000000042)");
    dump->add_option("--limit", dump_limit, "At most this many messages (0 = all)");
    dump->add_flag("--json", dump_json, "One JSON object per line");

    auto* tracker = app.add_subcommand("tracker", "Inspect or reset a processing tracker");
    tracker->require_subcommand(1);
    std::string tracker_file;
    bool tracker_json = false;
    auto* show = tracker->add_subcommand("show", "Every job and the summary");
    auto* summary = tracker->add_subcommand("summary", "Counts and status");
    auto* reset = tracker->add_subcommand("reset", "Remove every job");
    auto* retry = tracker->add_subcommand("retry", "Reschedule failed jobs");
    for (auto* sub : {show, summary, reset, retry}) {
        sub->add_option("FILE", tracker_file, "Tracker YAML file")->required();
    }
    show->add_flag("--json", tracker_json, "Machine-readable output");
    summary->add_flag("--json", tracker_json, "Machine-readable output");

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        (void)app.exit(e);
        return 2;
    }
    const progress_line progress{.enabled = !quiet && ::isatty(STDERR_FILENO) != 0};
    try {
        if (*checksum) {
            axds::checksum_options options{.max_workers = checksum_workers, .save_checksum = !no_save};
            if (!excludes.empty()) {
                options.excluded_files = std::set<std::string>(excludes.begin(), excludes.end());
            }
            options.progress = [&](const axds::checksum_progress& p) {
                progress.show("hashing", p.files_done, p.files_total);
            };
            fmt::print("{}\n", axds::block_on(axds::async_calculate_directory_checksum(checksum_dir, options)));
        } else if (*transfer) {
            axds::transfer_options options{.num_threads = threads,
                                           .verify_integrity = verify,
                                           .remove_source = remove_source,
                                           .reset_dirty_destination = reset_dirty};
            options.progress = [&](const axds::transfer_progress& p) {
                progress.show("copying", p.files_done, p.files_total);
            };
            axds::block_on(axds::async_transfer_directory(source, destination, options));
        } else if (*remove) {
            axds::block_on(axds::async_delete_directory(delete_dir));
        } else if (*assemble) {
            axds::assemble_options options{
                .max_workers = assemble_workers, .remove_sources = !keep_sources, .verify_integrity = assemble_verify};
            options.progress = [&](const axds::assemble_progress& p) {
                progress.show("assembling", p.entries_done, p.entries_total);
            };
            const auto report = axds::block_on(axds::async_assemble_log_archives(log_dir, options));
            fmt::print("{} entries ({} bytes) into {} archives; {} entry files removed\n", report.entries, report.bytes,
                       report.archives.size(), report.removed);
        } else if (*info) {
            const axds::log_archive_reader reader(archive_path);
            std::uint64_t first = 0;
            std::uint64_t last = 0;
            std::size_t min_size = 0;
            std::size_t max_size = 0;
            std::uint64_t total = 0;
            std::size_t n = 0;
            for (const auto message : reader.messages()) {
                if (n == 0) {
                    first = message.timestamp_us;
                    min_size = message.payload.size();
                }
                last = message.timestamp_us;
                min_size = std::min(min_size, message.payload.size());
                max_size = std::max(max_size, message.payload.size());
                total += message.payload.size();
                ++n;
            }
            const double mean = n == 0 ? 0.0 : static_cast<double>(total) / static_cast<double>(n);
            if (info_json) {
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
                if (dump_json) {
                    fmt::print("{{\"timestamp_us\": {}, \"size\": {}, \"payload_hex\": \"{}\"}}\n",
                               message.timestamp_us, message.payload.size(), hex);
                } else {
                    fmt::print("{}  {:>8} B  {}\n", message.timestamp_us, message.payload.size(), hex);
                }
                ++shown;
            }
        } else if (*tracker) {
            axds::processing_tracker registry(tracker_file);
            if (*show || *summary) {
                if (!fs::exists(tracker_file)) {
                    throw axds::file_not_found_error(std::make_error_code(std::errc::no_such_file_or_directory),
                                                     fmt::format("No processing tracker at '{}'.", tracker_file));
                }
                auto result = registry.summarize();
                if (*summary) {
                    result.jobs.clear();
                }
                print_tracker(result, tracker_json);
            } else if (*reset) {
                registry.reset();
            } else {
                const auto ids = registry.retry_failed_jobs();
                fmt::print("{} failed jobs rescheduled\n", ids.size());
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "axds: %s\n", e.what());
        return 1;
    }
    return 0;
}
