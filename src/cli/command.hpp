#pragma once
// What the subcommands of the axds tool share: the list they register into, the context they run with, progress
// bars, the interruptible run and the checks of paths the user typed. Each subcommand lives in its own cmd_*.cpp
// (docs/ARCHITECTURE.md, "CLI").

#include <axds/core/runtime.hpp>
#include <axds/jobs/processing_tracker.hpp>
#include <axds/log/log_archive.hpp>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace axds::cli {

/// What every subcommand may read when it runs (set once the arguments are parsed).
struct context {
    bool quiet = false;          ///< --quiet
    bool show_progress = false;  ///< a progress bar on stderr: not --quiet, and stderr is a terminal
    std::chrono::steady_clock::time_point started;

    /// Seconds since `started` (the "seconds" of a --json result).
    [[nodiscard]] double seconds() const;
};

/// A subcommand as registered: the CLI11 app whose selection runs it, and what runs it (returns the exit code:
/// 0 success, 1 the operation failed; exceptions are reported by axds::cli::run).
struct command {
    const CLI::App* selected_by = nullptr;
    std::function<int(const context&)> run;
};

using command_list = std::vector<command>;

// One registration function per subcommand, each in its cmd_*.cpp: it adds the subcommand and its options to `app`
// (the order of the calls is the order of `axds --help`) and appends what runs it to `commands`.
class json_writer;

/// `"damaged": [...]`: the damaged ranges of a streaming working file (`axds assemble`, `axds archive info`); each
/// with offset, length, reason and, once saved, saved_to. Defined in cmd_assemble.cpp.
void damaged_json(json_writer& json, const std::vector<axds::damaged_bytes>& damaged);

void add_checksum(CLI::App& app, command_list& commands);
void add_transfer(CLI::App& app, command_list& commands);
void add_delete(CLI::App& app, command_list& commands);
void add_assemble(CLI::App& app, command_list& commands);
void add_archive(CLI::App& app, command_list& commands);
void add_tracker(CLI::App& app, command_list& commands);
void add_log(CLI::App& app, command_list& commands);

/// Adds `--json` (last option of a subcommand, as in its help) bound to `json`.
void add_json_flag(CLI::App& sub, bool& json, const std::string& description = "Machine-readable result on stdout");

/// --workers: 0 (automatic) or a positive count, with a message that says so (CLI11's range check prints the
/// limits of a double).
[[nodiscard]] CLI::Validator worker_count();

/// The CLI is stricter than the library: a path the user typed that does not exist is an error (exit 1) for every
/// subcommand, never an operation on nothing (the library keeps the Python library's "missing = nothing to do").
void require_existing(const std::filesystem::path& path, std::string_view what, bool directory);

/// The processing tracker file `path` checked before anything opens it: true when it is a regular file (through
/// links); false when nothing is at the path, not even a symbolic link (the caller creates or refuses). A dangling
/// link (a share not mounted yet?) is an os_error naming the file unless `create` (the tracker is then made at the
/// link's target; `offers_create`: the message says --create would); a directory, FIFO or device is a value_error
/// naming the file. Both say the file was left untouched.
bool check_tracker_file(const std::filesystem::path& path, bool create, bool offers_create);

/// `text` safe to print on a terminal: control characters (C0, DEL, and the C1 range encoded as UTF-8), which a
/// terminal would act on (escape sequences clear the screen, set the title, hide text), and the bidirectional
/// formatting characters (U+202A..U+202E, U+2066..U+2069, which reorder the text after them) are shown escaped:
/// `\n` `\r` `\t` by name, the others as `\xNN` or `\uNNNN`. Everything else is kept byte for byte. For
/// strings read from files (a tracker's job names, specifiers and error messages); --json gives them exactly.
[[nodiscard]] std::string printable(std::string_view text);

/// A tracker's counts and status as `tracker show` and `jobs status` print them: `"summary": {...}, "status": ...`
/// into an open JSON object, or the human line (no newline). Defined in cmd_tracker.cpp.
void tracker_counts_json(json_writer& json, const axds::tracker_summary& summary);
[[nodiscard]] std::string tracker_counts_line(const axds::tracker_summary& summary);

/// Said when the first SIGINT/SIGTERM came too late to stop an operation (it had reached a step that is always
/// finished, such as a move's removal of its copied source) and the operation completed. Defined in command.cpp.
void say_completed_after_interrupt();

/// Said on stderr when a second SIGINT/SIGTERM ends the process at once (status 130). Defined in command.cpp.
void say_quitting();

/// Runs a library operation with block_on_interruptible: the first SIGINT/SIGTERM says so on stderr and cancels it
/// (the operation stops at its next safe point and reports how far it got; a source is never half removed, an
/// archive never left under its final name unfinished; if it completes all the same, that is said too); a second
/// one ends the process at once with status 130, saying what that may leave behind (say_quitting).
template <typename T>
T run_interruptible(asio::awaitable<T> op) {
    bool interrupted = false;
    auto on_interrupt = [&interrupted] {
        interrupted = true;
        std::fputs("\naxds: interrupted; cancelling (press Ctrl-C again to quit at once)\n", stderr);
    };
    if constexpr (std::is_void_v<T>) {
        axds::block_on_interruptible(std::move(op), on_interrupt, say_quitting);
        if (interrupted) {
            say_completed_after_interrupt();
        }
    } else {
        T result = axds::block_on_interruptible(std::move(op), on_interrupt, say_quitting);
        if (interrupted) {
            say_completed_after_interrupt();
        }
        return result;
    }
}

/// block_on_interruptible for a command whose normal end is the interruption (`axds log serve`): `notice` on stderr
/// at the first SIGINT/SIGTERM; a second one says `quit_notice` and ends the process at once with status 130.
template <typename T>
T run_until_interrupted(asio::awaitable<T> op, const char* notice, const char* quit_notice) {
    return axds::block_on_interruptible(
        std::move(op), [notice] { std::fputs(notice, stderr); }, [quit_notice] { std::fputs(quit_notice, stderr); });
}

/// A progress bar on stderr (when enabled: a terminal and not --quiet): percentage, counts, byte rate and ETA,
/// redrawn at most 10 times a second. The ETA extrapolates the fraction of items done.
class progress_bar {
public:
    progress_bar(bool enabled, std::string label, std::string unit);
    void update(std::size_t done, std::size_t total, std::uint64_t bytes);
    void finish();

    ~progress_bar() { finish(); }

    progress_bar(const progress_bar&) = delete;
    progress_bar& operator=(const progress_bar&) = delete;

private:
    using clock = std::chrono::steady_clock;
    void draw(std::size_t done, std::size_t total, std::uint64_t bytes, clock::time_point now);

    bool enabled_;
    bool drawn_ = false;
    std::string label_;
    std::string unit_;
    clock::time_point start_;
    clock::time_point last_draw_{};
};

}  // namespace axds::cli
