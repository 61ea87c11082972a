#pragma once
// Fault-injection seams for tests (STYLE.md §3.5 "Faults"). Empty in normal operation; set only by tests.

#include <filesystem>
#include <functional>
#include <string_view>

namespace axds::detail::test_hooks {

/// Called by async_assemble_log_archives after an archive is written, before verification.
inline std::function<void(const std::filesystem::path& archive)> after_archive_written;

/// Asked by the data logger's writers for each entry file name; true makes that entry's open really fail (ENOENT,
/// the file is redirected into a directory that does not exist). Set before the logger starts.
inline std::function<bool(std::string_view file_name)> fail_log_entry;

}  // namespace axds::detail::test_hooks
