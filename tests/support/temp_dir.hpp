#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace axds::test {

/// A unique directory under $TMPDIR (or /tmp), removed recursively on destruction.
class temp_dir {
public:
    temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir();

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

private:
    std::filesystem::path path_;
};

/// Writes `content` to `path` (creating parent directories), binary.
void write_file(const std::filesystem::path& path, std::string_view content);

/// Reads the whole file, binary. Fails the test if it cannot be read.
[[nodiscard]] std::string read_file(const std::filesystem::path& path);

/// `size` pseudo-random bytes, the same for the same `seed` (std::mt19937_64, one byte per draw).
[[nodiscard]] std::string random_bytes(std::size_t size, std::uint64_t seed);

/// Every regular file under `root` (symlinks not followed): relative path → content.
[[nodiscard]] std::map<std::string, std::string> snapshot(const std::filesystem::path& root);

/// True when the tests run as root (permission tests skip then: root bypasses permission checks).
[[nodiscard]] bool running_as_root();

/// Result of a child process.
struct process_result {
    int exit_code = -1;
    std::string output;  ///< stdout and stderr, interleaved
};

/// Runs Debian's python3 (AXDS_PYTHON3) with `script` given on the command line and `args` after it.
[[nodiscard]] process_result run_python(const std::string& script, const std::vector<std::string>& args = {});

}  // namespace axds::test

/// Catch2 v2 has no SKIP(): warn, then leave the test case (it counts as passed).
#define AXDS_SKIP_IF(condition, why) \
    do {                             \
        if (condition) {             \
            WARN(why);               \
            return;                  \
        }                            \
    } while (false)
