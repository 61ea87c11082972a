#pragma once
// Real child processes for multi-process tests: started with posix_spawn, stdout captured through a pipe.

#include <cerrno>
#include <csignal>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;  // NOLINT

namespace axds::test {

class child_process {
public:
    /// Starts `argv[0]` with these arguments; stdout goes to a pipe readable with read_line().
    explicit child_process(const std::vector<std::string>& argv) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            throw std::runtime_error("child_process: pipe failed");
        }
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
        std::vector<char*> args;
        for (const auto& a : argv) {
            args.push_back(const_cast<char*>(a.c_str()));  // NOLINT(cppcoreguidelines-pro-type-const-cast)
        }
        args.push_back(nullptr);
        const int rc = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        ::close(fds[1]);
        read_fd_ = fds[0];
        if (rc != 0) {
            ::close(read_fd_);
            throw std::runtime_error("child_process: cannot start " + argv[0]);
        }
    }

    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    child_process(child_process&& other) noexcept
        : pid_(other.pid_), exit_code_(other.exit_code_), read_fd_(other.read_fd_) {
        other.pid_ = -1;
        other.read_fd_ = -1;
    }

    ~child_process() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            (void)wait();
        }
        if (read_fd_ >= 0) {
            ::close(read_fd_);
        }
    }

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }

    /// The next line of the child's stdout (without '\n'); empty at end of stream.
    std::string read_line() {
        std::string line;
        char c = 0;
        while (::read(read_fd_, &c, 1) == 1 && c != '\n') {
            line += c;
        }
        return line;
    }

    void kill9() { ::kill(pid_, SIGKILL); }

    /// Waits for the child; its exit code, or 128 + signal when killed.
    int wait() {
        if (pid_ > 0) {
            int status = 0;
            while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
            }
            pid_ = -1;
            exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        return exit_code_;
    }

    /// True while the child runs (reaps it when it has ended).
    bool running() {
        if (pid_ <= 0) {
            return false;
        }
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == 0) {
            return true;
        }
        pid_ = -1;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return false;
    }

private:
    pid_t pid_ = -1;
    int exit_code_ = -1;
    int read_fd_ = -1;
};

}  // namespace axds::test
