// The axds command-line tool (see cli/axds_cli.cpp; `axds jobs` is cli/cmd_jobs.cpp).

#include "cli/axds_cli.hpp"
#include "cli/cmd_jobs.hpp"

#include <csignal>
#include <string_view>

int main(int argc, char** argv) {
    // A write past the file size limit (`ulimit -f`) fails with EFBIG, which every writer reports by file name and
    // cleans up after (temporary files, partial copies), instead of ending the process where it stands.
    std::signal(SIGXFSZ, SIG_IGN);
    if (argc > 1 && std::string_view(argv[1]) == "jobs") {
        return axds::cli::run_jobs(argc - 1, argv + 1);
    }
    return axds::cli::run(argc, argv);
}
