#pragma once
// `axds jobs run|submit|status|reclaim`: running a processing tracker's jobs locally or on SLURM (cmd_jobs.cpp).

#include "cli/axds_cli.hpp"

namespace axds::cli {

/// Runs `axds jobs argv[1..]` (argv[0] is "jobs"); returns the exit code (0 success, 1 failure, 2 usage error,
/// 130 interrupted).
int run_jobs(int argc, char** argv, const run_options& options = {});

}  // namespace axds::cli
