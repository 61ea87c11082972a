// axds transfer SRC DST: a directory tree copied, optionally verified with the directory checksum, optionally moved.

#include "cli/command.hpp"
#include "cli/json_writer.hpp"

#include <axds/fs/transfer.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <vector>

namespace axds::cli {

namespace {

namespace fs = std::filesystem;

struct transfer_settings {
    std::string source;
    std::string destination;
    int threads = 1;
    bool verify = false;
    bool remove_source = false;
    bool reset_dirty = false;
    bool json = false;
};

/// `names` one per line, indented, the first 20 only ("... and N more (--json lists them all)" after them).
std::string indented_lines(const std::vector<std::string>& names) {
    constexpr std::size_t shown = 20;
    std::string lines;
    for (std::size_t i = 0; i < std::min(shown, names.size()); ++i) {
        lines += fmt::format("  {}\n", names[i]);
    }
    if (names.size() > shown) {
        lines += fmt::format("  ... and {} more (--json lists them all)\n", names.size() - shown);
    }
    return lines;
}

void print_transfer(const transfer_settings& settings, const axds::transfer_report& report,
                    const std::vector<fs::path>& kept, double elapsed) {
    if (report.resumed_move) {
        const std::string again =
            report.files_copied == 0
                ? std::string()
                : fmt::format(
                      "copied {} files ({} bytes) again, as they grew in the source since their copy or "
                      "were new, then ",
                      report.files_copied, report.bytes_copied);
        fmt::print("resumed an interrupted move from {} to {}{}: {}removed {} source files{}\n", settings.source,
                   settings.destination, report.verified ? " (destination verified)" : "", again,
                   report.source_files_removed, kept.empty() ? ", source removed" : "");
        return;
    }
    if (!report.strays_removed.empty()) {  // what --reset-dirty-destination deleted, by name
        fmt::print("deleted {} destination files the source lacks (--reset-dirty-destination):\n{}",
                   report.strays_removed.size(), indented_lines(report.strays_removed));
    }
    fmt::print("copied {} files ({} bytes) from {} to {} in {:.2f} s{}{}\n", report.files_copied, report.bytes_copied,
               settings.source, settings.destination, elapsed, report.verified ? ", checksum verified" : "",
               !settings.remove_source ? ""
               : kept.empty()          ? ", source removed"
                                       : fmt::format(", {} copied source files removed, {} kept (they appeared or "
                                                              "changed during the transfer, or were still being written)",
                                                     report.source_files_removed, kept.size()));
}

int run_transfer(const transfer_settings& settings, const context& ctx) {
    axds::transfer_options options{.workers = settings.threads,
                                   .verify_integrity = settings.verify,
                                   .remove_source = settings.remove_source,
                                   .reset_dirty_destination = settings.reset_dirty};
    progress_bar bar(ctx.show_progress, "copying", "files");
    options.progress = [&](const axds::transfer_progress& p) {
        bar.update(p.files_done, p.files_total, p.bytes_done);
    };
    try {
        require_existing(settings.source, "source directory", true);
    } catch (const axds::file_not_found_error& e) {
        // The same move run again after it finished lands here: say where the data may already be.
        std::error_code ec;
        if (!fs::is_directory(fs::path(settings.destination), ec)) {
            throw;
        }
        throw axds::file_not_found_error(
            e.code(), fmt::format("{} The destination '{}' exists: if a move (--remove-source) of this source into it "
                                  "finished earlier, the data is there and nothing is left to do.",
                                  e.what(), settings.destination));
    }
    const auto report =
        run_interruptible(axds::async_transfer_directory(settings.source, settings.destination, std::move(options)));
    const double elapsed = ctx.seconds();
    const std::vector<fs::path> kept(report.source_files_kept.begin(), report.source_files_kept.end());
    if (settings.json) {
        json_writer json;
        json.begin_object()
            .field("source", settings.source)
            .field("destination", settings.destination)
            .field("files", report.files_copied)
            .field("bytes", report.bytes_copied)
            .field("verified", report.verified)
            .field("source_removed", settings.remove_source && kept.empty())
            .field("source_files_removed", report.source_files_removed)
            .field("resumed_move", report.resumed_move)
            .key("source_files_kept")
            .paths(kept)
            .key("strays_removed")
            .paths(std::vector<fs::path>(report.strays_removed.begin(), report.strays_removed.end()))
            .key("seconds")
            .fixed(elapsed, 3)
            .end_object();
        fmt::print("{}\n", json.str());
    } else if (!ctx.quiet) {
        print_transfer(settings, report, kept, elapsed);
    }
    if (!kept.empty()) {  // the source is not gone: a script must not take this move for complete
        fmt::print(stderr,
                   "axds: the move from {} to {} is not complete: {} source files were kept in the source (the "
                   "warnings above say why: they appeared or changed while it ran, another program still had them "
                   "open for writing, or their copy was replaced):\n{}"
                   "axds: once nothing writes to them, run the same command again: it finishes the move (it "
                   "copies again the files that grew since their copy or appeared, then removes them)\n",
                   settings.source, settings.destination, kept.size(), indented_lines(report.source_files_kept));
        return 1;
    }
    return 0;
}

}  // namespace

void add_transfer(CLI::App& app, command_list& commands) {
    auto settings = std::make_shared<transfer_settings>();
    auto* sub = app.add_subcommand("transfer", "Copy a directory tree, optionally verified");
    sub->add_option("SRC", settings->source, "Source directory")->required();
    sub->add_option("DST", settings->destination, "Destination directory")->required();
    sub->add_option("--workers,--threads", settings->threads, "Parallel copies (0 = cores - 2)")->check(worker_count());
    sub->add_flag("--verify", settings->verify, "Verify with the directory checksum");
    sub->add_flag("--remove-source", settings->remove_source, "Delete the source after a successful transfer");
    sub->add_flag("--reset-dirty-destination", settings->reset_dirty, "Delete destination files the source lacks");
    add_json_flag(*sub, settings->json);
    commands.push_back({sub, [settings](const context& ctx) {
                            return run_transfer(*settings, ctx);
                        }});
}

}  // namespace axds::cli
