#pragma once

#include <asio/awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string>

namespace axds {

/// Name of the file the checksum is saved to (spec §9.1 step 8), excluded from the digest by default.
inline constexpr const char* checksum_file_name = "ax_checksum.txt";

/// Progress of async_calculate_directory_checksum, reported on the caller's executor.
struct checksum_progress {
    std::size_t files_done = 0;
    std::size_t files_total = 0;
    std::uint64_t bytes_done = 0;
    std::uint64_t bytes_total = 0;  ///< bytes known so far (sizes are learned while reading; no extra stat per file)
};

/// Settings for async_calculate_directory_checksum (spec §9.1). An aggregate: set only what you need.
struct checksum_options {
    /// Files hashed at once (the Python `num_processes`; None there is 0 here): 0 = automatic (all cores but two),
    /// a positive count is capped at the cores, negative is refused before the walk (resolve_workers_option).
    int workers = 0;
    bool save_checksum = true;  ///< write the digest to `{directory}/ax_checksum.txt` (32 bytes, no newline)
    /// File basenames left out at any depth; nullopt = {"ax_checksum.txt"}; an explicit set (even empty) replaces it.
    std::optional<std::set<std::string>> excluded_files;
    std::function<void(const checksum_progress&)> progress;  ///< called on the caller's executor; may be empty
};

/// The Python library's directory checksum (spec §9.1), bit for bit: XXH3-128 over every file's
/// `relative path ‖ content`, combined in byte order of the relative paths; 32 lowercase hex characters.
/// Files are hashed in parallel on the CPU pool in 8 MiB chunks (bounded memory for any file size).
/// @throws file_not_found_error / not_a_directory_error for the root, permission_error for unreadable parts,
/// value_error when no file is left to cover (§9.1 step 4 message) or workers < 0 (before anything is read).
asio::awaitable<std::string> async_calculate_directory_checksum(std::filesystem::path directory,
                                                                checksum_options options = {});

}  // namespace axds
