// The axds command-line tool (see cli/axds_cli.cpp; `axds jobs` is cli/cmd_jobs.cpp).

#include "cli/axds_cli.hpp"
#include "cli/cmd_jobs.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string_view>

#include <sys/resource.h>

namespace {

/// The exit code once the result printed on stdout reached its destination: a digest or a JSON report written to a
/// full disk (`> /dev/full`), a closed pipe or a failing file was lost while the command said it succeeded.
int with_output_flushed(int code) {
    errno = 0;
    const bool flushed = std::fflush(stdout) == 0;
    const int error = errno;  // only fflush's: an earlier failed write left ferror set, not a reason we still know
    if (flushed && std::ferror(stdout) == 0) {
        return code;
    }
    std::fprintf(stderr, "axds: writing the result to the standard output failed: %s.\n",
                 !flushed && error != 0 ? std::strerror(error) : "an earlier write failed");
    return code == 0 ? 1 : code;
}

/// The fewest descriptors a command runs with: its event loop and signal handling take 5 or 6 beside the 3 standard
/// streams, before any file. Below that, asio's own setup failed with messages such as "signal_set_service pipe: Too
/// many open files", which name nothing the user did.
constexpr rlim_t descriptors_needed = 16;

/// False (after saying why on stderr) when the process may not open enough descriptors.
bool enough_descriptors() {
    struct rlimit limit {};

    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= descriptors_needed) {
        return true;
    }
    std::fprintf(stderr,
                 "axds: this process may have only %llu files open at once (ulimit -n), and axds needs at least %llu. "
                 "Raise the limit (for example `ulimit -n 1024`) and run the command again.\n",
                 static_cast<unsigned long long>(limit.rlim_cur), static_cast<unsigned long long>(descriptors_needed));
    return false;
}

}  // namespace

int main(int argc, char** argv) {
    if (!enough_descriptors()) {
        return 1;
    }
    // A write past the file size limit (`ulimit -f`) fails with EFBIG, which every writer reports by file name and
    // cleans up after (temporary files, partial copies), instead of ending the process where it stands.
    std::signal(SIGXFSZ, SIG_IGN);
    if (argc > 1 && std::string_view(argv[1]) == "jobs") {
        return with_output_flushed(axds::cli::run_jobs(argc - 1, argv + 1));
    }
    return with_output_flushed(axds::cli::run(argc, argv));
}
