// axds delete DIR: a directory tree removed (protected directories only with --force-root).

#include "cli/command.hpp"
#include "cli/json_writer.hpp"
#include "sys/io.hpp"

#include <axds/error.hpp>
#include <axds/fs/delete.hpp>

#include <fmt/format.h>

#include <memory>

#include <sys/stat.h>

namespace axds::cli {

namespace {

struct delete_settings {
    std::string directory;
    bool force_root = false;
    bool json = false;
};

int run_delete(const delete_settings& settings, const context& ctx) {
    require_existing(settings.directory, "directory to delete", true);

    // What the path named before the delete: afterwards the same path may name something else (a link re-pointed
    // meanwhile), which is not a directory this delete left behind.
    struct stat before {};

    const bool had = ::lstat(settings.directory.c_str(), &before) == 0;
    try {
        run_interruptible(axds::async_delete_directory(settings.directory, {.force_root = settings.force_root}));
    } catch (const axds::protected_directory_error& e) {
        // The library's text names its C++ option; a CLI user is told the flag.
        throw axds::value_error(fmt::format(
            "Unable to delete {}: {}. Nothing was deleted. Deleting it is refused unless forced: add --force-root to "
            "the command if you really mean to delete it.",
            settings.directory, e.reason()));
    }
    if (struct stat left{}; ::lstat(settings.directory.c_str(), &left) == 0 && had && sys::same_file(left, before)) {
        throw axds::os_error(
            std::make_error_code(std::errc::directory_not_empty),
            fmt::format("'{}' was not removed entirely (see the warnings above).", settings.directory));
    }
    if (settings.json) {
        json_writer json;
        json.begin_object().field("deleted", settings.directory).key("seconds").fixed(ctx.seconds(), 3).end_object();
        fmt::print("{}\n", json.str());
    }
    return 0;
}

}  // namespace

void add_delete(CLI::App& app, command_list& commands) {
    auto settings = std::make_shared<delete_settings>();
    auto* sub = app.add_subcommand("delete", "Delete a directory tree");
    sub->add_option("DIR", settings->directory, "Directory")->required();
    sub->add_flag(
        "--force-root", settings->force_root,
        "Also delete a protected directory: /, the current directory or its ancestors, $HOME or its ancestors, a mount "
        "point");
    add_json_flag(*sub, settings->json);
    commands.push_back({sub, [settings](const context& ctx) {
                            return run_delete(*settings, ctx);
                        }});
}

}  // namespace axds::cli
