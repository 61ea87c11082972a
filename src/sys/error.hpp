#pragma once
// The error model of src/: functions below the public API report operating-system failures as std::error_code
// (errno values in std::system_category()); the public function that called them turns the code into the
// exception type of <axds/error.hpp> once (throw_os_error / throw_errno), with a message that names the file.
// errno_message is the one rule for turning an errno into text. Private to src/.

#include <cerrno>
#include <string>
#include <system_error>

namespace axds::sys {

/// The text of `errno_value` ("No such file or directory"): what strerror says, but thread-safe.
[[nodiscard]] inline std::string errno_message(int errno_value) {
    return std::system_category().message(errno_value);
}

/// `errno_value` as an error_code in std::system_category().
[[nodiscard]] inline std::error_code errno_code(int errno_value) noexcept {
    return {errno_value, std::system_category()};
}

/// The current errno as an error_code (read it right after the failed call).
[[nodiscard]] inline std::error_code last_error() noexcept {
    return errno_code(errno);
}

}  // namespace axds::sys
