// The axds command-line tool (see cli/axds_cli.cpp).

#include "cli/axds_cli.hpp"

int main(int argc, char** argv) {
    return axds::cli::run(argc, argv);
}
