// axds checksum DIR: the directory checksum of the Python library, saved as ax_checksum.txt unless --no-save.

#include "cli/command.hpp"
#include "cli/json_writer.hpp"

#include <axds/fs/checksum.hpp>

#include <fmt/format.h>

#include <memory>
#include <set>

namespace axds::cli {

namespace {

struct checksum_settings {
    std::string directory;
    int workers = 0;
    bool no_save = false;
    std::vector<std::string> excludes;
    bool json = false;
};

int run_checksum(const checksum_settings& settings, const context& ctx) {
    require_existing(settings.directory, "directory", true);
    axds::checksum_options options{.workers = settings.workers, .save_checksum = !settings.no_save};
    if (!settings.excludes.empty()) {
        options.excluded_files = std::set<std::string>(settings.excludes.begin(), settings.excludes.end());
    }
    progress_bar bar(ctx.show_progress, "hashing", "files");
    axds::checksum_progress last;
    options.progress = [&](const axds::checksum_progress& p) {
        last = p;
        bar.update(p.files_done, p.files_total, p.bytes_done);
    };
    const std::string digest =
        run_interruptible(axds::async_calculate_directory_checksum(settings.directory, std::move(options)));
    if (!settings.json) {
        fmt::print("{}\n", digest);
        return 0;
    }
    json_writer json;
    json.begin_object()
        .field("directory", settings.directory)
        .field("checksum", digest)
        .field("files", last.files_done)
        .field("bytes", last.bytes_done)
        .field("saved", !settings.no_save)
        .key("seconds")
        .fixed(ctx.seconds(), 3)
        .end_object();
    fmt::print("{}\n", json.str());
    return 0;
}

}  // namespace

void add_checksum(CLI::App& app, command_list& commands) {
    auto settings = std::make_shared<checksum_settings>();
    auto* sub = app.add_subcommand("checksum", "Print the directory checksum (same as the Python library)");
    sub->add_option("DIR", settings->directory, "Directory")->required();
    sub->add_option("--workers", settings->workers, "Files hashed at once (0 = cores - 2)")->check(worker_count());
    sub->add_flag("--no-save", settings->no_save, "Do not write ax_checksum.txt");
    sub->add_option("--exclude", settings->excludes, "File names to leave out (replaces the default ax_checksum.txt)");
    add_json_flag(*sub, settings->json);
    commands.push_back({sub, [settings](const context& ctx) {
                            return run_checksum(*settings, ctx);
                        }});
}

}  // namespace axds::cli
