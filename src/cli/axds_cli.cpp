// The axds command-line tool: the library's directory, archive and tracker operations for shells and scripts.
// Exit codes: 0 success, 1 the operation failed (message on stderr), 2 usage error. Each subcommand lives in its
// cmd_*.cpp; this file builds the parser from them, parses, and runs the one selected.

#include "cli/axds_cli.hpp"

#include "cli/cmd_jobs.hpp"
#include "cli/command.hpp"
#include "cli/json_writer.hpp"

#include <asio/error.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <unistd.h>

namespace axds::cli {

namespace {

/// `axds jobs ...` is parsed by run_jobs (its CMD takes any arguments), to which main() hands it before CLI11 sees
/// it. Registered here too, so that `axds --help` and the "not a subcommand" message list it, and so that a global
/// option before it (`axds -q jobs run ...`) still reaches run_jobs, with -q after the jobs subcommand's name.
void add_jobs(CLI::App& app, command_list& commands) {
    auto* jobs = app.add_subcommand("jobs", "Run a tracker's jobs here or as a SLURM array (axds jobs --help)");
    jobs->prefix_command();
    jobs->allow_extras();
    jobs->fallthrough(false);  // its words are its own: none goes back to the top level
    jobs->set_help_flag();
    commands.push_back({jobs, [jobs](const context& ctx) {
                            std::vector<std::string> words{"jobs"};
                            for (const auto& word : jobs->remaining()) {
                                words.push_back(word);
                                if (ctx.quiet && words.size() == 2) {
                                    words.emplace_back("--quiet");  // after run|submit|status|reclaim
                                }
                            }
                            std::vector<char*> argv;
                            argv.reserve(words.size());
                            for (auto& word : words) {
                                argv.push_back(word.data());
                            }
                            return run_jobs(static_cast<int>(argv.size()), argv.data());
                        }});
}

/// CLI11 names an option by its first long name in its messages ("--workers: 'abc' is not ..."), also when the user
/// typed another name of it ("--threads abc"). Returns the message of `e` naming what the user typed instead, or
/// nullopt when it needs no change.
std::optional<std::string> with_typed_option_name(const CLI::App& app, const CLI::ParseError& e, int argc,
                                                  char** argv) {
    const std::string message = e.what();
    const auto colon = message.find(": ");
    if (!message.starts_with("--") || colon == std::string::npos) {
        return std::nullopt;
    }
    const std::string named = message.substr(0, colon);
    const CLI::App* selected = &app;  // the innermost subcommand on the command line: its options
    while (!selected->get_subcommands().empty()) {
        selected = selected->get_subcommands().back();
    }
    const CLI::Option* option = selected->get_option_no_throw(named);
    if (option == nullptr) {
        return std::nullopt;
    }
    std::vector<std::string> typed;
    for (int i = 1; i < argc && std::string_view(argv[i]) != "--"; ++i) {
        const std::string_view word = argv[i];
        for (const auto& name : option->get_lnames()) {
            const std::string flag = "--" + name;
            if ((word == flag || word.starts_with(flag + "=")) &&
                std::find(typed.begin(), typed.end(), flag) == typed.end()) {
                typed.push_back(flag);
            }
        }
    }
    if (typed.empty() || typed == std::vector<std::string>{named}) {
        return std::nullopt;
    }
    return fmt::format("{}{}", fmt::join(typed, " / "), message.substr(colon));
}

/// Parses `argv`: nullopt when the arguments are valid, else the exit code (help printed: 0; usage error: 2).
std::optional<int> parse(CLI::App& app, int argc, char** argv, const run_options& run) {
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
        if (const auto renamed = with_typed_option_name(app, e, argc, argv)) {
            (void)app.exit(CLI::ParseError(*renamed, e.get_exit_code()), *run.out, *run.err);
        } else {
            (void)app.exit(e, *run.out, *run.err);
        }
        return 2;
    }
    return std::nullopt;
}

/// Runs the selected subcommand; an exception it ends with is reported on stderr (exit 1).
/// Whether the command line asks for --json (before any `--`, after which words are operands).
bool wants_json(int argc, char** argv) {
    for (int i = 1; i < argc && std::string_view(argv[i]) != "--"; ++i) {
        if (std::string_view(argv[i]) == "--json") {
            return true;
        }
    }
    return false;
}

/// A failure as stderr says it, and with --json also on stdout as one object, `{"error": message, "cancelled":
/// bool}`: a script reading the result gets JSON either way (it got an empty stdout before).
int report_failure(const std::string& message, bool cancelled, bool json) {
    std::fprintf(stderr, "axds: %s\n", message.c_str());
    if (json) {
        json_writer out;
        out.begin_object().field("error", message).field("cancelled", cancelled).end_object();
        fmt::print("{}\n", out.str());
    }
    return 1;
}

int execute(const command_list& commands, const context& ctx, int argc, char** argv) {
    const bool json = wants_json(argc, argv);
    try {
        for (const auto& command : commands) {
            if (*command.selected_by) {
                return command.run(ctx);
            }
        }
    } catch (const std::bad_alloc&) {
        // Name what ran out of memory: "axds: std::bad_alloc" alone told the user nothing.
        std::vector<std::string> words(argv + 1, argv + argc);
        return report_failure(fmt::format("out of memory running 'axds {}' (a memory limit such as ulimit -v, or an "
                                          "input that needs more memory than this machine has)",
                                          fmt::join(words, " ")),
                              false, json);
    } catch (const std::system_error& e) {
        // A cancellation (Ctrl-C) is an os_error of asio's operation_aborted.
        return report_failure(e.what(), e.code() == asio::error::operation_aborted, json);
    } catch (const std::exception& e) {
        return report_failure(e.what(), false, json);
    }
    return 0;
}

}  // namespace

int run(int argc, char** argv, const run_options& run) {
    CLI::App app{
        "axds: directory checksums, transfers, log archives and processing trackers "
        "(file-compatible with ataraxis-data-structures)"};
    app.require_subcommand(1);
    app.fallthrough();  // --quiet may also follow the subcommand
    bool quiet = false;
    app.add_flag("--quiet,-q", quiet, "No progress output");

    // The subcommands, in the order of `axds --help`.
    command_list commands;
    add_checksum(app, commands);
    add_transfer(app, commands);
    add_delete(app, commands);
    add_assemble(app, commands);
    add_archive(app, commands);
    add_tracker(app, commands);
    add_log(app, commands);
    add_jobs(app, commands);

    if (const auto code = parse(app, argc, argv, run)) {
        return *code;
    }
    if (run.parse_only) {
        return 0;
    }
    const context ctx{.quiet = quiet,
                      .show_progress = !quiet && ::isatty(STDERR_FILENO) != 0,
                      .started = std::chrono::steady_clock::now()};
    return execute(commands, ctx, argc, argv);
}

}  // namespace axds::cli
