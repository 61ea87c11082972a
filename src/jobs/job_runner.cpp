#include <axds/jobs/job_runner.hpp>

#include <axds/core/workers.hpp>
#include <axds/error.hpp>

#include "detail/utf8.hpp"
#include "jobs/subprocess.hpp"
#include "sys/error.hpp"
#include "sys/io.hpp"
#include "sys/unique_fd.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace fs = std::filesystem;

namespace axds {

namespace {

/// A NUL-terminated char* array over owned strings (for execve).
struct c_strings {
    std::vector<std::string> items;
    std::vector<char*> pointers;

    char** get() {
        pointers.clear();
        for (auto& item : items) {
            pointers.push_back(item.data());
        }
        pointers.push_back(nullptr);
        return pointers.data();
    }
};

}  // namespace

namespace detail {

/// How a child ended, in words ("exited with status 3", "was killed by signal 9").
std::string describe_wait_status(int status) {
    if (WIFEXITED(status)) {
        return fmt::format("exited with status {}", WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
        return fmt::format("was killed by signal {} ({})", WTERMSIG(status), ::strsignal(WTERMSIG(status)));
    }
    return fmt::format("ended with wait status {}", status);
}

captured_output run_capture(const std::vector<std::string>& argv, bool merge_stderr) {
    captured_output result;
    std::array<int, 2> pipe_fds{};
    if (::pipe2(pipe_fds.data(), O_CLOEXEC) != 0) {
        return result;
    }
    const sys::unique_fd read_end(pipe_fds[0]);
    sys::unique_fd write_end(pipe_fds[1]);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    ::posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
    if (merge_stderr) {
        ::posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
    }
    c_strings args;
    args.items = argv;
    pid_t pid = -1;
    const int error = ::posix_spawnp(&pid, argv.at(0).c_str(), &actions, nullptr, args.get(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    write_end.reset();  // the child's copy alone keeps the pipe open: end of file when it exits
    if (error == 0) {
        std::array<char, 4096> buffer{};
        sys::io_result read{.bytes = buffer.size()};
        while (!read.error && read.bytes == buffer.size()) {  // a short read is the end of the output
            read = sys::read_full(read_end.get(), buffer.data(), buffer.size());
            result.output.append(buffer.data(), read.bytes);
        }
        (void)sys::retry_eintr([&] { return ::waitpid(pid, &result.status, 0); });
        result.ran = true;
    }
    return result;
}

}  // namespace detail

namespace {

std::string local_host() {
    std::array<char, 256> name{};
    if (::gethostname(name.data(), name.size() - 1) != 0) {
        return "localhost";
    }
    return name.data();
}

// ---------------------------------------------------------------------------------------------------------------
// Child processes.

/// An executable file (exec refuses a directory, even one with its x bits set).
bool is_program(const std::string& path) {
    struct stat st {};

    return ::access(path.c_str(), X_OK) == 0 && ::stat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode);
}

/// argv[0] as a path: itself when it holds a '/', else the first executable match on PATH.
std::string find_program(const std::string& name) {
    if (name.find('/') != std::string::npos) {
        return name;
    }
    const char* path_env = std::getenv("PATH");  // NOLINT(concurrency-mt-unsafe)
    std::stringstream dirs(path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        const std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
        if (is_program(candidate)) {
            return candidate;
        }
    }
    throw child_process_error(fmt::format("The command '{}' was not found on PATH.", name));
}

/// A program named by a path must be there and executable (find_program's PATH search only returns such).
void check_program(const std::string& path) {
    if (::access(path.c_str(), X_OK) != 0) {
        const int error = errno;
        throw child_process_error(
            fmt::format("Unable to execute the command '{}': {}.", path, sys::errno_message(error)));
    }

    struct stat st {};

    // Checked before any job is claimed: each would fail with "Permission denied".
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        throw child_process_error(fmt::format("Unable to execute the command '{}': it is a directory.", path));
    }
}

c_strings job_environment(const job_context& job) {
    c_strings env;
    for (char** entry = environ; *entry != nullptr; ++entry) {
        const std::string_view text(*entry);
        if (!text.starts_with("AXDS_JOB_ID=") && !text.starts_with("AXDS_JOB_NAME=") &&
            !text.starts_with("AXDS_JOB_SPECIFIER=") && !text.starts_with("AXDS_TRACKER=") &&
            !text.starts_with("AXDS_EXECUTOR_ID=")) {
            env.items.emplace_back(text);
        }
    }
    env.items.push_back("AXDS_JOB_ID=" + job.job_id);
    env.items.push_back("AXDS_JOB_NAME=" + job.job_name);
    env.items.push_back("AXDS_JOB_SPECIFIER=" + job.specifier);
    env.items.push_back("AXDS_TRACKER=" + job.tracker_path.string());
    env.items.push_back("AXDS_EXECUTOR_ID=" + job.executor_id);
    return env;
}

/// A started command: its pid, a pidfd that becomes readable when it exits, the read end of its stderr pipe.
/// Destroying it before it was reaped kills and reaps the child.
struct child_process {
    pid_t pid = -1;
    sys::unique_fd pidfd;
    sys::unique_fd stderr_fd;

    child_process() = default;
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    ~child_process() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    }

    /// The wait status if the command has already exited (reaped then), else nothing.
    std::optional<int> reap_if_exited() {
        int status = 0;
        if (pid > 0 && sys::retry_eintr([&] { return ::waitpid(pid, &status, WNOHANG); }) == pid) {
            pid = -1;
            return status;
        }
        return std::nullopt;
    }

    /// SIGTERM, up to 2 s to exit, then SIGKILL; reaps it.
    void terminate() {
        ::kill(pid, SIGTERM);
        for (int i = 0; i < 100; ++i) {
            if (::waitpid(pid, nullptr, WNOHANG) == pid) {
                pid = -1;
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
};

/// In the forked child: stdin /dev/null, stderr into the pipe, SIGKILL when the starting thread dies, then execve. Only
/// async-signal-safe calls (the process may have other threads). When execve fails its errno goes down `exec_error`
/// (close-on-exec: a successful exec closes it with nothing written) and the child exits 127.
[[noreturn]] void exec_in_child(const std::string& program, char** argv, char** envp, int stderr_fd, int exec_error,
                                pid_t parent) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
        ::_exit(127);
    }
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) {
        ::dup2(null_fd, STDIN_FILENO);
    }
    ::dup2(stderr_fd, STDERR_FILENO);
    ::execve(program.c_str(), argv, envp);
    const int error = errno;
    [[maybe_unused]] const auto written = ::write(exec_error, &error, sizeof(error));
    ::_exit(127);
}

/// Waits until the child has exec'd (its end of `exec_error` closed on exec) or failed to (it sends errno); on
/// failure reaps it and throws child_process_error naming the program and the reason.
void check_exec(child_process& child, const sys::unique_fd& exec_error, const std::string& program) {
    int error = 0;
    const auto got = sys::retry_eintr([&] { return ::read(exec_error.get(), &error, sizeof(error)); });
    if (got != static_cast<ssize_t>(sizeof(error))) {
        return;  // end of file: the exec succeeded
    }
    (void)sys::retry_eintr([&] { return ::waitpid(child.pid, nullptr, 0); });
    child.pid = -1;
    throw child_process_error(
        fmt::format("Unable to execute the command '{}': {}.", program, sys::errno_message(error)));
}

/// fork + execve (exec_in_child); the read end of the command's stderr pipe (non-blocking) and a pidfd go to
/// `child`. Throws child_process_error with errno's text when the program cannot be executed.
void start_child(child_process& child, const std::string& program, c_strings& args, c_strings& env) {
    std::array<int, 2> pipe_fds{};
    std::array<int, 2> exec_fds{};
    if (::pipe2(pipe_fds.data(), O_CLOEXEC) != 0) {
        throw_errno(errno, "Unable to create a pipe for a job's command.");
    }
    child.stderr_fd.reset(pipe_fds[0]);
    sys::unique_fd write_end(pipe_fds[1]);
    if (::pipe2(exec_fds.data(), O_CLOEXEC) != 0) {
        throw_errno(errno, "Unable to create a pipe for a job's command.");
    }
    const sys::unique_fd exec_read(exec_fds[0]);
    sys::unique_fd exec_write(exec_fds[1]);
    char** argv = args.get();
    char** envp = env.get();
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
        const int error = errno;
        throw_errno(error, fmt::format("Unable to start the command '{}'.", program));
    }
    if (pid == 0) {
        exec_in_child(program, argv, envp, pipe_fds[1], exec_fds[1], parent);
    }
    child.pid = pid;
    write_end.reset();
    exec_write.reset();
    check_exec(child, exec_read, program);
    ::fcntl(child.stderr_fd.get(), F_SETFL, ::fcntl(child.stderr_fd.get(), F_GETFL) | O_NONBLOCK);
    child.pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!child.pidfd) {
        throw_errno(errno,
                    fmt::format("pidfd_open failed for the command '{}' (Linux 5.3 or later is needed).", program));
    }
}

/// `text` as valid UTF-8 that a tracker file can hold: every byte that is not part of a well-formed sequence, and
/// every NUL, becomes U+FFFD. A command's stderr may hold anything, and its tail may start inside a character.
std::string valid_utf8(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    while (!text.empty()) {
        const std::size_t length = detail::utf8_sequence_length(text, 0);
        if (length == 0 || text.front() == '\0') {
            out += "\xEF\xBF\xBD";
            text.remove_prefix(1);
        } else {
            out.append(text.substr(0, length));
            text.remove_prefix(length);
        }
    }
    return out;
}

/// The last `limit` bytes of `text` as valid UTF-8 (see valid_utf8; a character cut at the start is dropped),
/// whitespace-trimmed, with "..." when cut.
std::string tail_of(const std::string& text, std::size_t limit) {
    std::string_view kept(text);
    const bool cut = kept.size() > limit;
    if (cut) {
        kept.remove_prefix(kept.size() - limit);
        for (int i = 0; i < 3 && !kept.empty() && (static_cast<unsigned char>(kept.front()) & 0xC0U) == 0x80U; ++i) {
            kept.remove_prefix(1);  // the rest of a character whose first bytes were cut off
        }
    }
    std::string out = (cut ? "..." : "") + valid_utf8(kept);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ' || out.back() == '\r')) {
        out.pop_back();
    }
    return out;
}

/// The wait was cancelled (or failed with `ec`): a command that had already exited successfully finished its work and
/// its status is returned (putting the job back would run it twice); otherwise it is terminated and `ec` thrown.
int stop_child(child_process& child, std::error_code ec) {
    const auto status = child.reap_if_exited();
    if (status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) {
        return *status;
    }
    if (!status) {
        child.terminate();
    }
    throw std::system_error(ec, "Waiting for a job's command");
}

/// Reads what the command's stderr holds now, at most about `limit` bytes: copied to this process's stderr
/// (options.forward_stderr) and appended to `tail` (trimmed to about the last stderr_tail_bytes). False once the pipe
/// is at end of file (every writer closed it) or broken; true when it is empty for now (the fd is non-blocking).
bool read_stderr(int fd, std::string& tail, const command_options& options, std::size_t limit) {
    std::array<char, 4096> buffer{};
    for (std::size_t total = 0; total < limit;) {
        const auto n = sys::retry_eintr([&] { return ::read(fd, buffer.data(), buffer.size()); });
        if (n <= 0) {
            return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
        }
        const auto bytes = static_cast<std::size_t>(n);
        if (options.forward_stderr) {
            [[maybe_unused]] const auto written = ::write(STDERR_FILENO, buffer.data(), bytes);
        }
        tail.append(buffer.data(), bytes);
        if (tail.size() > 2 * options.stderr_tail_bytes + 4096) {
            tail.erase(0, tail.size() - options.stderr_tail_bytes);
        }
        total += bytes;
    }
    return true;
}

/// An epoll descriptor (level-triggered) that is readable when the command has exited or its stderr has data or
/// reached end of file: one descriptor, so one wait at a time covers both.
sys::unique_fd child_poller(const child_process& child) {
    sys::unique_fd poller(::epoll_create1(EPOLL_CLOEXEC));
    if (!poller) {
        throw_errno(errno, "Unable to create an epoll descriptor for a job's command.");
    }
    for (const int fd : {child.pidfd.get(), child.stderr_fd.get()}) {
        epoll_event event{};
        event.events = EPOLLIN;
        event.data.fd = fd;
        if (::epoll_ctl(poller.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
            throw_errno(errno, "Unable to watch a job's command.");
        }
    }
    return poller;
}

/// Waits for the command's exit while reading its stderr (forwarding it and keeping the tail), so that a command
/// writing a lot to stderr never blocks on a full pipe. Once the command has exited, what its stderr pipe holds is
/// read without waiting for end of file (at most 1 MiB): a background process it left holding the pipe does not keep
/// the job. Returns the wait status. On cancellation a command that already exited 0 counts as finished (its status
/// is returned); any other is terminated and operation_aborted propagates.
asio::awaitable<int> await_child(child_process& child, std::string& tail, const command_options& options) {
    constexpr std::size_t per_wake = 256 * 1024;     // then the exit is looked at again
    constexpr std::size_t after_exit = 1024 * 1024;  // bounded: a background writer may never stop
    asio::posix::stream_descriptor ready(co_await asio::this_coro::executor, child_poller(child).release());
    bool stderr_open = true;
    std::error_code ec;
    for (;;) {
        co_await ready.async_wait(asio::posix::stream_descriptor::wait_read,
                                  asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            co_return stop_child(child, ec);
        }
        if (stderr_open && !read_stderr(child.stderr_fd.get(), tail, options, per_wake)) {
            stderr_open = false;  // end of file: stop watching it, else it stays readable
            ::epoll_ctl(ready.native_handle(), EPOLL_CTL_DEL, child.stderr_fd.get(), nullptr);
        }
        if (const auto status = child.reap_if_exited()) {
            if (stderr_open) {
                (void)read_stderr(child.stderr_fd.get(), tail, options, after_exit);
            }
            co_return *status;
        }
    }
}

asio::awaitable<void> run_command(std::shared_ptr<const std::vector<std::string>> argv,
                                  std::shared_ptr<const command_options> options, job_context job) {
    c_strings args;
    args.items = expand_job_placeholders(*argv, job);
    const std::string program = find_program(args.items.at(0));
    c_strings env = job_environment(job);
    child_process child;
    start_child(child, program, args, env);
    std::string tail;
    const int status = co_await await_child(child, tail, *options);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        co_return;
    }
    if (WIFSIGNALED(status) &&
        (WTERMSIG(status) == SIGTERM || WTERMSIG(status) == SIGINT || WTERMSIG(status) == SIGHUP)) {
        // Most likely the same stop signal (Ctrl-C, scancel, a time limit) reached this process too and its
        // cancellation is on its way: give it a moment, so that the job is put back instead of recorded FAILED.
        asio::steady_timer grace(co_await asio::this_coro::executor, std::chrono::milliseconds(300));
        std::error_code ignored;
        co_await grace.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
    const std::string last = tail_of(tail, options->stderr_tail_bytes);
    throw child_process_error(fmt::format("The command '{}' {}{}{}", args.items.at(0),
                                          detail::describe_wait_status(status),
                                          last.empty() ? "" : "; stderr: ", last.empty() ? "." : last));
}

// ---------------------------------------------------------------------------------------------------------------
// The worker loop.

struct runner_state {
    fs::path tracker_path;
    job_handler handler;
    job_runner_options options;
    std::size_t workers = 1;  ///< options.workers resolved
    std::string executor_id;
    job_runner_report report;
};

/// Puts an interrupted job back to SCHEDULED if it still holds this claim.
asio::awaitable<void> release_job(processing_tracker& tracker, std::string job_id, job_state claim) {
    std::function<void(job_registry&)> op = [job_id, claim](job_registry& jobs) {
        for (auto& [id, job] : jobs) {
            if (id == job_id && job.status == processing_status::running && job.executor_id == claim.executor_id &&
                job.started_at == claim.started_at) {
                job = job_state{.job_name = job.job_name, .specifier = job.specifier};
                job.error_message = fmt::format("interrupted: the runner {} was stopped", *claim.executor_id);
            }
        }
    };
    co_await tracker.async_update_jobs(std::move(op));
}

/// Records a finished job as SUCCEEDED or FAILED. A lock that stays busy past the timeout is waited for again: the
/// job has run, and giving up would leave it RUNNING under a live executor (never reclaimed, its result lost).
/// Cancellation between attempts ends the wait.
asio::awaitable<void> record_outcome(processing_tracker& tracker, const job_outcome& outcome) {
    for (;;) {
        bool timed_out = false;
        try {
            if (outcome.succeeded) {
                co_await tracker.async_complete_job(outcome.job_id);
            } else {
                co_await tracker.async_fail_job(outcome.job_id, outcome.error);
            }
        } catch (const timeout_error&) {
            timed_out = true;
        }
        if (!timed_out) {
            co_return;
        }
        const auto cancel = co_await asio::this_coro::cancellation_state;
        if (cancel.cancelled() != asio::cancellation_type::none) {
            throw std::system_error(asio::error::operation_aborted, "The job runner was cancelled");
        }
    }
}

asio::awaitable<void> run_worker(std::shared_ptr<runner_state> state) {
    processing_tracker tracker(state->tracker_path, {.lock_timeout = state->options.lock_timeout});
    for (;;) {
        auto claimed = co_await tracker.async_claim_next_job(state->executor_id);
        if (!claimed) {
            co_return;
        }
        const auto& [job_id, claim] = *claimed;
        job_context context{job_id, claim.job_name, claim.specifier, state->tracker_path, state->executor_id};
        job_outcome outcome{.job_id = job_id, .job_name = claim.job_name, .specifier = claim.specifier};
        try {
            co_await state->handler(context);
            outcome.succeeded = true;
        } catch (const std::exception& e) {
            outcome.error = e.what();
        } catch (...) {
            outcome.error = "The job's handler threw an exception that is not a std::exception.";
        }
        const auto cancel = co_await asio::this_coro::cancellation_state;
        const bool stopped = cancel.cancelled() != asio::cancellation_type::none;
        if (stopped) {
            // A job that finished anyway is recorded below (a rerun would repeat finished work), any other is put
            // back. The state is reset first, else every co_await below would throw operation_aborted.
            co_await asio::this_coro::reset_cancellation_state();
            if (!outcome.succeeded) {
                co_await release_job(tracker, job_id, claim);
                throw std::system_error(asio::error::operation_aborted, "The job runner was cancelled");
            }
        }
        co_await record_outcome(tracker, outcome);
        if (outcome.succeeded) {
            ++state->report.succeeded;
        } else {
            ++state->report.failed;
            state->report.failures.push_back(outcome);
        }
        if (state->options.on_job_done) {
            state->options.on_job_done(outcome);
        }
        if (stopped) {
            throw std::system_error(asio::error::operation_aborted, "The job runner was cancelled");
        }
    }
}

struct worker_group {
    explicit worker_group(const asio::any_io_executor& executor) : done(executor) {}

    asio::steady_timer done;
    std::size_t remaining = 0;
    std::exception_ptr first_error;
    std::vector<std::unique_ptr<asio::cancellation_signal>> signals;

    void cancel_all(asio::cancellation_type type) {
        for (auto& signal : signals) {
            signal->emit(type);
        }
    }
};

/// Runs `workers` worker loops on this coroutine's executor (a strand) and waits for all; the first error cancels the
/// others and is rethrown; cancelling this coroutine cancels them all.
asio::awaitable<void> run_group(std::shared_ptr<runner_state> state) {
    const auto executor = co_await asio::this_coro::executor;
    auto group = std::make_shared<worker_group>(executor);
    const std::size_t workers = state->workers;
    group->remaining = workers;
    for (std::size_t i = 0; i < workers; ++i) {
        group->signals.push_back(std::make_unique<asio::cancellation_signal>());
    }
    for (std::size_t i = 0; i < workers; ++i) {
        auto on_done = [group](std::exception_ptr error) {
            if (error && !group->first_error) {
                group->first_error = error;
                group->cancel_all(asio::cancellation_type::terminal);
            }
            if (--group->remaining == 0) {
                group->done.cancel();
            }
        };
        asio::co_spawn(executor, run_worker(state), asio::bind_cancellation_slot(group->signals[i]->slot(), on_done));
    }
    group->done.expires_at(asio::steady_timer::time_point::max());
    std::error_code ec;
    while (group->remaining > 0) {
        co_await group->done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        const auto cancel = co_await asio::this_coro::cancellation_state;
        if (group->remaining > 0 && cancel.cancelled() != asio::cancellation_type::none) {
            co_await asio::this_coro::reset_cancellation_state();
            group->cancel_all(asio::cancellation_type::terminal);
        }
    }
    if (group->first_error) {
        std::rethrow_exception(group->first_error);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Stale jobs.

bool all_digits(std::string_view text) {
    return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool final_slurm_state(std::string_view state) {
    constexpr std::array<std::string_view, 9> finals{"COMPLETED", "CANCELLED", "FAILED",   "TIMEOUT",      "NODE_FAIL",
                                                     "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY"};
    return std::find(finals.begin(), finals.end(), state) != finals.end();
}

/// The state of `job` in `<id> <state>` lines ("" when absent). sacct may append " by <uid>" to CANCELLED.
std::string state_in(const std::string& output, std::string_view job) {
    std::istringstream lines(output);
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream words(line);
        std::string id;
        std::string state;
        if (words >> id >> state && id == job) {
            return state;
        }
    }
    return {};
}

executor_verdict slurm_verdict(std::string_view executor, std::string_view job, const std::string& state,
                               std::string_view source) {
    if (final_slurm_state(state)) {
        return {executor_liveness::gone, fmt::format("{}: SLURM job {} is {} ({})", executor, job, state, source)};
    }
    return {executor_liveness::alive, fmt::format("{}: SLURM job {} is {} ({})", executor, job, state, source)};
}

executor_verdict probe_slurm(std::string_view executor, std::string_view job, const reclaim_options& options) {
    if (!all_digits(job)) {
        return {executor_liveness::unknown, fmt::format("{}: not a SLURM job ID", executor)};
    }
    const std::string id(job);
    const detail::captured_output queue =
        detail::run_capture({options.squeue, "-h", "-t", "all", "-j", id, "-o", "%A %T"});
    if (!queue.ran) {
        return {executor_liveness::unknown, fmt::format("{}: '{}' could not be run", executor, options.squeue)};
    }
    if (WIFEXITED(queue.status) && WEXITSTATUS(queue.status) == 0) {
        const std::string state = state_in(queue.output, id);
        if (!state.empty()) {
            return slurm_verdict(executor, id, state, "squeue");
        }
    } else if (queue.output.find("Invalid job id") == std::string::npos) {
        return {executor_liveness::unknown,
                fmt::format("{}: squeue failed ({}): {}", executor, detail::describe_wait_status(queue.status),
                            tail_of(queue.output, 300))};
    }
    // Unknown to slurmctld (finished and purged after MinJobAge): accounting may still know how it ended.
    const detail::captured_output accounting =
        detail::run_capture({options.sacct, "-n", "-X", "-P", "-j", id, "-o", "JobID,State", "--delimiter= "});
    if (accounting.ran && WIFEXITED(accounting.status) && WEXITSTATUS(accounting.status) == 0) {
        const std::string state = state_in(accounting.output, id);
        if (!state.empty()) {
            return slurm_verdict(executor, id, state, "sacct");
        }
    }
    return {executor_liveness::gone,
            fmt::format("{}: SLURM job {} is unknown to slurmctld (finished and purged) and has no accounting record",
                        executor, id)};
}

/// Process start time in µs since the epoch and its state letter, from /proc; nullopt when there is no such process.
std::optional<std::pair<std::uint64_t, char>> process_start(long pid) {
    std::ifstream stat_file(fmt::format("/proc/{}/stat", pid));
    std::string text;
    if (!stat_file || !std::getline(stat_file, text)) {
        return std::nullopt;
    }
    const auto close = text.rfind(')');
    if (close == std::string::npos) {
        return std::nullopt;
    }
    std::istringstream fields(text.substr(close + 2));
    char state = '?';
    std::string field;
    fields >> state;
    for (int i = 4; i < 22 && fields >> field; ++i) {  // field 22 is starttime (clock ticks since boot)
    }
    unsigned long long ticks = 0;
    fields >> ticks;
    std::ifstream boot_file("/proc/stat");
    std::string key;
    unsigned long long boot = 0;
    while (boot_file >> key) {
        if (key == "btime") {
            boot_file >> boot;
            break;
        }
    }
    const auto hz = static_cast<unsigned long long>(::sysconf(_SC_CLK_TCK));
    return std::pair{boot * 1'000'000ULL + ticks * 1'000'000ULL / (hz == 0 ? 100 : hz), state};
}

executor_verdict probe_pid(std::string_view executor, std::string_view rest, std::optional<std::uint64_t> started_at,
                           const reclaim_options& options) {
    const auto at = rest.find('@');
    const std::string_view number = rest.substr(0, at);
    if (!all_digits(number) || number.size() > 9) {
        return {executor_liveness::unknown, fmt::format("{}: not a process ID", executor)};
    }
    if (at == std::string_view::npos && !options.bare_pids_are_local) {
        return {
            executor_liveness::unknown,
            fmt::format("{}: no host recorded; reclaim with --local-pids if every worker ran on this host", executor)};
    }
    if (at != std::string_view::npos && rest.substr(at + 1) != local_host()) {
        return {executor_liveness::unknown,
                fmt::format("{}: a process on host '{}'; run the reclaim there", executor, rest.substr(at + 1))};
    }
    const long pid = std::stol(std::string(number));
    const auto process = process_start(pid);
    if (!process) {
        return {executor_liveness::gone, fmt::format("{}: process {} no longer exists", executor, pid)};
    }
    if (process->second == 'Z' || process->second == 'X') {
        return {executor_liveness::gone, fmt::format("{}: process {} has exited (zombie)", executor, pid)};
    }
    constexpr std::uint64_t tolerance_us = 2'000'000;  // /proc's boot time has whole seconds
    if (started_at && process->first > *started_at + tolerance_us) {
        return {executor_liveness::gone,
                fmt::format("{}: process {} started {:.1f} s after the job did (the pid was reused)", executor, pid,
                            static_cast<double>(process->first - *started_at) / 1e6)};
    }
    return {executor_liveness::alive, fmt::format("{}: process {} is running", executor, pid)};
}

}  // namespace

std::string runner_executor_id() {
    std::string id = processing_tracker::resolve_executor_id();
    if (id.starts_with("pid:")) {
        id += "@" + local_host();
    }
    return id;
}

namespace {

constexpr std::array<std::string_view, 5> placeholder_names{"job_id", "job_name", "specifier", "tracker",
                                                            "executor_id"};

[[noreturn]] void throw_template_error(std::string_view arg, std::string_view what) {
    constexpr std::size_t shown = 200;
    const std::string quoted = arg.size() > shown ? std::string(arg.substr(0, shown)) + "..." : std::string(arg);
    throw value_error(
        fmt::format("The command argument '{}' holds {}; the placeholders are {{job_id}}, {{job_name}}, "
                    "{{specifier}}, {{tracker}} and {{executor_id}}, and a literal brace is written "
                    "twice ('{{{{' for '{{', '}}}}' for '}}').",
                    quoted, what));
}

/// One template argument expanded: `{name}` becomes values[name's index] (or is only checked when `values` is
/// null), `{{` becomes `{` and `}}` becomes `}`; any other brace is an error. `placeholders` counts the `{name}`s.
std::string expand_argument(std::string_view arg, const std::array<std::string, 5>* values, std::size_t& placeholders) {
    std::string out;
    for (std::size_t i = 0; i < arg.size(); ++i) {
        const char c = arg[i];
        if ((c == '{' || c == '}') && i + 1 < arg.size() && arg[i + 1] == c) {
            out += c;  // a doubled brace is a literal one
            ++i;
        } else if (c == '}') {
            throw_template_error(arg, "a single '}' (no '{' opened it)");
        } else if (c == '{') {
            const auto close = arg.find('}', i);
            if (close == std::string_view::npos) {
                throw_template_error(arg, fmt::format("a '{{' with no closing '}}' ('{}')", arg.substr(i, 40)));
            }
            const std::string_view name = arg.substr(i + 1, close - i - 1);
            const auto known = std::find(placeholder_names.begin(), placeholder_names.end(), name);
            if (known == placeholder_names.end()) {
                throw_template_error(arg, fmt::format("the unknown placeholder '{{{}}}'", name));
            }
            if (values != nullptr) {
                out += (*values)[static_cast<std::size_t>(known - placeholder_names.begin())];
            }
            ++placeholders;
            i = close;
        } else {
            out += c;
        }
    }
    return out;
}

}  // namespace

void check_job_template(const std::vector<std::string>& args) {
    std::size_t placeholders = 0;
    for (const auto& arg : args) {
        (void)expand_argument(arg, nullptr, placeholders);
    }
}

std::vector<std::string> expand_job_placeholders(const std::vector<std::string>& args, const job_context& job) {
    const std::array<std::string, 5> values{job.job_id, job.job_name, job.specifier, job.tracker_path.string(),
                                            job.executor_id};
    std::vector<std::string> out;
    out.reserve(args.size());
    std::size_t placeholders = 0;
    for (const auto& arg : args) {
        out.push_back(expand_argument(arg, &values, placeholders));
    }
    return out;
}

job_handler command_job_handler(std::vector<std::string> argv, command_options options) {
    if (argv.empty() || argv.front().empty()) {
        throw value_error("A job command needs at least the program to run, but an empty command was given.");
    }
    check_job_template(argv);  // a misspelled placeholder fails here, before any job is claimed
    std::size_t placeholders = 0;
    const std::string program = expand_argument(argv.front(), nullptr, placeholders);
    if (placeholders == 0) {
        // A command that cannot run fails here, before any job is claimed.
        check_program(find_program(program));
    }
    auto shared_argv = std::make_shared<const std::vector<std::string>>(std::move(argv));
    auto shared_options = std::make_shared<const command_options>(options);
    return [shared_argv, shared_options](job_context job) {
        return run_command(shared_argv, shared_options, std::move(job));
    };
}

asio::awaitable<job_runner_report> async_run_tracker_jobs(fs::path tracker_path, job_handler handler,
                                                          job_runner_options options) {
    if (!handler) {
        throw value_error(fmt::format("Unable to run the jobs of '{}': no handler was given.", tracker_path.string()));
    }
    auto state = std::make_shared<runner_state>();
    state->workers = static_cast<std::size_t>(resolve_workers_option(options.workers, "job_runner_options::workers"));
    state->tracker_path = std::move(tracker_path);
    state->handler = std::move(handler);
    state->executor_id = options.executor_id ? *options.executor_id : runner_executor_id();
    state->options = std::move(options);
    // Workers, their completions and on_job_done all run on one strand, whatever threads run the caller's executor.
    auto strand = asio::make_strand(co_await asio::this_coro::executor);
    co_await asio::co_spawn(strand, run_group(state), asio::use_awaitable);
    co_return std::move(state->report);
}

executor_verdict probe_executor(std::string_view executor_id, std::optional<std::uint64_t> started_at,
                                const reclaim_options& options) {
    if (std::find(options.gone_executors.begin(), options.gone_executors.end(), executor_id) !=
        options.gone_executors.end()) {
        return {executor_liveness::gone, fmt::format("{}: declared gone by the user", executor_id)};
    }
    const auto colon = executor_id.find(':');
    const std::string_view scheme = executor_id.substr(0, colon);
    const std::string_view rest = colon == std::string_view::npos ? std::string_view{} : executor_id.substr(colon + 1);
    if (scheme == "slurm") {
        return probe_slurm(executor_id, rest, options);
    }
    if (scheme == "pid") {
        return probe_pid(executor_id, rest, started_at, options);
    }
    return {executor_liveness::unknown,
            fmt::format("{}: axds cannot check this executor; once you know it is gone, reclaim with --gone {}",
                        executor_id, executor_id)};
}

std::vector<stale_job> probe_running_jobs(processing_tracker& tracker, const reclaim_options& options) {
    std::vector<stale_job> probed;
    std::map<std::pair<std::string, std::optional<std::uint64_t>>, executor_verdict> cache;
    for (const auto& [id, job] : tracker.snapshot()) {
        if (job.status != processing_status::running) {
            continue;
        }
        const std::string executor = job.executor_id.value_or("");
        const auto key = std::pair{executor, executor.starts_with("pid:") ? job.started_at : std::nullopt};
        auto it = cache.find(key);
        if (it == cache.end()) {
            it = cache.emplace(key, probe_executor(executor, job.started_at, options)).first;
        }
        probed.push_back({id, executor, job.started_at, it->second});
    }
    return probed;
}

reclaim_report reclaim_stale_jobs(processing_tracker& tracker, const reclaim_options& options) {
    reclaim_report report;
    std::vector<stale_job> gone;
    for (auto& job : probe_running_jobs(tracker, options)) {
        (job.verdict.state == executor_liveness::gone ? gone : report.kept).push_back(std::move(job));
    }
    if (gone.empty()) {
        return report;
    }
    tracker.update_jobs([&](job_registry& jobs) {
        for (auto& [id, job] : jobs) {
            const auto match = std::find_if(gone.begin(), gone.end(), [&, &id = id, &job = job](const stale_job& g) {
                return g.job_id == id && job.status == processing_status::running &&
                       job.executor_id.value_or("") == g.executor_id && job.started_at == g.started_at;
            });
            if (match == gone.end()) {
                continue;  // finished, or claimed again, since the probe
            }
            job = job_state{.job_name = job.job_name, .specifier = job.specifier};
            job.error_message = "reclaimed: " + match->verdict.reason;
            report.reclaimed.push_back(*match);
        }
    });
    return report;
}

}  // namespace axds
