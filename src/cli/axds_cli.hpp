#pragma once
// The axds command line as a function: the tool's main() calls it, and the fuzz harness drives its argument parser
// with parse_only (nothing runs, nothing is touched on disk).

#include <iostream>
#include <ostream>

namespace axds::cli {

struct run_options {
    /// Stop after parsing and validating the arguments: 0 when they are valid, else what the command would exit with.
    bool parse_only = false;
    /// Where help and usage errors go (the operations themselves print to stdout and stderr).
    std::ostream* out = &std::cout;
    std::ostream* err = &std::cerr;
};

/// Runs `axds argv[1..]`; returns the exit code (0 success, 1 the operation failed, 2 usage error).
int run(int argc, char** argv, const run_options& options = {});

}  // namespace axds::cli
