#pragma once
// Fault-injection seams for tests (STYLE.md §3.5 "Faults"). Empty in normal operation; set only by tests.

#include <filesystem>
#include <functional>

namespace axds::detail::test_hooks {

/// Called by async_assemble_log_archives after an archive is written, before verification.
inline std::function<void(const std::filesystem::path& archive)> after_archive_written;

}  // namespace axds::detail::test_hooks
