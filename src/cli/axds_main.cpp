// The axds command-line tool (see cli/axds_cli.cpp; `axds jobs` is cli/cmd_jobs.cpp).

#include "cli/axds_cli.hpp"
#include "cli/cmd_jobs.hpp"

#include <string_view>

int main(int argc, char** argv) {
    if (argc > 1 && std::string_view(argv[1]) == "jobs") {
        return axds::cli::run_jobs(argc - 1, argv + 1);
    }
    return axds::cli::run(argc, argv);
}
