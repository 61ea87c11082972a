#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace axds {

/// Receives every warning the library prints (spec §1.3 console.echo(level=WARNING)).
using warning_sink = std::function<void(std::string_view message)>;

/// Prints `message` as a warning through the current sink. The default sink writes
/// "WARNING: <message>\n" to stderr in one write. Never throws.
///
/// Thread safety: may be called from any thread; calls are serialised.
void warn(std::string_view message) noexcept;

/// Replaces the warning sink and returns the previous one. An empty sink restores the default.
/// Thread safety: may be called from any thread.
warning_sink set_warning_sink(warning_sink sink);

/// Captures every warning printed while it lives (tests assert "exactly one WARNING containing …").
/// Restores the previous sink on destruction. Not reentrant across threads: one capture at a time.
class scoped_warning_capture {
public:
    scoped_warning_capture();
    scoped_warning_capture(const scoped_warning_capture&) = delete;
    scoped_warning_capture& operator=(const scoped_warning_capture&) = delete;
    ~scoped_warning_capture();

    /// The captured warnings, oldest first.
    [[nodiscard]] std::vector<std::string> messages() const;

private:
    struct state;
    std::shared_ptr<state> state_;
    warning_sink previous_;
};

}  // namespace axds
