#pragma once
// Fault-injection seams for tests. Empty in normal operation; set only by tests.

#include <chrono>
#include <filesystem>
#include <functional>
#include <string_view>

namespace axds::detail::test_hooks {

/// Called by async_assemble_log_archives after an archive is written, before verification.
inline std::function<void(const std::filesystem::path& archive)> after_archive_written;

/// Asked by the data logger's writers for each entry file name; true makes that entry's open really fail (ENOENT,
/// the file is redirected into a directory that does not exist). Set before the logger starts.
inline std::function<bool(std::string_view file_name)> fail_log_entry;

/// Called by async_delete_directory just before it removes a (by then empty) directory.
inline std::function<void(const std::filesystem::path& directory)> before_rmdir;

/// Called by async_transfer_directory after every file is copied, before verification (corruption tests).
inline std::function<void(const std::filesystem::path& destination)> after_transfer_copy;

/// Pause between rmdir attempts of async_delete_directory (spec §9.2: 500 ms); tests shorten it.
inline std::chrono::milliseconds rmdir_retry_delay{500};

}  // namespace axds::detail::test_hooks
