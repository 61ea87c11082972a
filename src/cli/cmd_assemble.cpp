// axds assemble LOGDIR: a logger directory's .npy entries packed into per-source .npz archives.

#include "cli/command.hpp"
#include "cli/json_writer.hpp"

#include <axds/log/log_archive.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <memory>

namespace axds::cli {

namespace {

namespace fs = std::filesystem;

struct assemble_settings {
    std::string directory;
    int workers = 0;
    bool keep_sources = false;
    bool verify = false;
    bool json = false;
};

/// The unfinished streaming archives (working files) the assembly recovered first.
void print_recovered(const axds::assemble_report& report) {
    for (const auto& r : report.recovered) {
        fmt::print("recovered {} members of the unfinished streaming archive {} into {} ({} torn bytes cut)\n",
                   r.members, r.working_file.string(), r.archive.empty() ? std::string("nothing") : r.archive.string(),
                   r.bytes_cut);
        for (const auto& d : r.damaged) {
            fmt::print("  damaged bytes {} to {} ({}) saved to {}\n", d.offset, d.offset + d.length, d.reason,
                       d.saved_to.string());
        }
    }
}

void recovered_json(json_writer& json, const axds::assemble_report& report) {
    json.key("recovered").begin_array();
    for (const auto& r : report.recovered) {
        json.begin_object()
            .field("working_file", r.working_file)
            .field("archive", r.archive)
            .field("members", r.members)
            .field("bytes_cut", r.bytes_cut);
        damaged_json(json, r.damaged);
        json.end_object();
    }
    json.end_array();
}

void print_assembled(const assemble_settings& settings, const axds::assemble_report& report, const context& ctx) {
    if (!settings.json) {
        print_recovered(report);  // a crash's recovery is reported even with --quiet
        if (ctx.quiet) {
            return;
        }
        fmt::print(
            "{} entries ({} bytes) into {} archives ({} members kept from existing archives); {} entry files "
            "removed\n",
            report.entries, report.bytes, report.archives.size(), report.merged, report.removed);
        return;
    }
    std::vector<fs::path> skipped;
    for (const auto& issue : report.skipped) {
        skipped.push_back(issue.path);
    }
    json_writer json;
    json.begin_object()
        .key("archives")
        .paths(report.archives)
        .field("entries", report.entries)
        .field("bytes", report.bytes)
        .field("removed", report.removed)
        .field("merged", report.merged)
        .field("duplicates", report.duplicates)
        .key("skipped")
        .paths(skipped)
        .field("verified", settings.verify);
    recovered_json(json, report);
    json.key("seconds").fixed(ctx.seconds(), 3).end_object();
    fmt::print("{}\n", json.str());
}

int run_assemble(const assemble_settings& settings, const context& ctx) {
    axds::assemble_options options{
        .workers = settings.workers, .remove_sources = !settings.keep_sources, .verify_integrity = settings.verify};
    progress_bar bar(ctx.show_progress, "assembling", "entries");
    options.progress = [&](const axds::assemble_progress& p) {
        bar.update(p.entries_done, p.entries_total, p.bytes_done);
    };
    require_existing(settings.directory, "log directory", true);
    const auto report = run_interruptible(axds::async_assemble_log_archives(settings.directory, std::move(options)));
    print_assembled(settings, report, ctx);
    if (!report.skipped.empty()) {
        std::fprintf(stderr,
                     "axds: %zu .npy file(s) in %s were not archived and are left on disk (named in the warnings "
                     "above)\n",
                     report.skipped.size(), settings.directory.c_str());
    }
    if (report.found_damage()) {
        std::fprintf(stderr,
                     "axds: unfinished streaming archives in %s held damaged bytes: every member recognised as intact "
                     "was archived and the damaged bytes were saved to the *.damaged-at-* files named above; check "
                     "them\n",
                     settings.directory.c_str());
    }
    return report.clean() ? 0 : 1;
}

}  // namespace

void damaged_json(json_writer& json, const std::vector<axds::damaged_bytes>& damaged) {
    json.key("damaged").begin_array();
    for (const auto& d : damaged) {
        json.begin_object().field("offset", d.offset).field("length", d.length).field("reason", d.reason);
        if (!d.saved_to.empty()) {
            json.field("saved_to", d.saved_to);
        }
        json.end_object();
    }
    json.end_array();
}

void add_assemble(CLI::App& app, command_list& commands) {
    auto settings = std::make_shared<assemble_settings>();
    auto* sub = app.add_subcommand("assemble", "Pack a logger directory's entries into per-source .npz archives");
    sub->add_option("LOGDIR", settings->directory, "Logger output directory")->required();
    sub->add_option("--workers", settings->workers, "Sources assembled at once (0 = cores - 2)")->check(worker_count());
    sub->add_flag("--keep-sources", settings->keep_sources, "Keep the .npy entries");
    sub->add_flag("--verify", settings->verify, "Verify every archive before removing entries");
    add_json_flag(*sub, settings->json);
    commands.push_back({sub, [settings](const context& ctx) {
                            return run_assemble(*settings, ctx);
                        }});
}

}  // namespace axds::cli
