#pragma once
// Running a short helper command (squeue, sacct, sbatch) to completion and capturing what it prints. Private to src/
// (the job runner and the CLI's `jobs` commands).

#include <string>
#include <vector>

namespace axds::detail {

struct captured_output {
    bool ran = false;    ///< false when the program could not be started (not on PATH)
    int status = 0;      ///< the wait status
    std::string output;  ///< stdout and stderr together (both when `merge_stderr`), else stdout only
};

/// posix_spawnp(argv) with stdin /dev/null; reads its output to EOF and reaps it. Safe in threaded processes.
[[nodiscard]] captured_output run_capture(const std::vector<std::string>& argv, bool merge_stderr = true);

/// "exited with status N" / "was killed by signal N (name)".
[[nodiscard]] std::string describe_wait_status(int status);

}  // namespace axds::detail
