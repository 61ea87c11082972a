#include <axds/core/console.hpp>

#include <mutex>
#include <string>
#include <utility>

#include <unistd.h>

namespace axds {

namespace {

std::mutex& sink_mutex() {
    static std::mutex mutex;
    return mutex;
}

warning_sink& current_sink() {
    static warning_sink sink;
    return sink;
}

void default_sink(std::string_view message) {
    std::string line;
    line.reserve(message.size() + 10);
    line.append("WARNING: ").append(message).push_back('\n');
    // One write(2) so concurrent processes sharing stderr do not interleave within a line.
    const char* data = line.data();
    std::size_t left = line.size();
    while (left > 0) {
        const ssize_t n = ::write(STDERR_FILENO, data, left);
        if (n <= 0) {
            return;
        }
        data += n;
        left -= static_cast<std::size_t>(n);
    }
}

}  // namespace

void warn(std::string_view message) noexcept {
    try {
        const std::lock_guard lock(sink_mutex());
        if (current_sink()) {
            current_sink()(message);
        } else {
            default_sink(message);
        }
    } catch (...) {  // a warning must never turn into a failure of the caller
    }
}

warning_sink set_warning_sink(warning_sink sink) {
    const std::lock_guard lock(sink_mutex());
    return std::exchange(current_sink(), std::move(sink));
}

struct scoped_warning_capture::state {
    mutable std::mutex mutex;
    std::vector<std::string> messages;
};

scoped_warning_capture::scoped_warning_capture() : state_(std::make_shared<state>()) {
    previous_ = set_warning_sink([s = state_](std::string_view message) {
        const std::lock_guard lock(s->mutex);
        s->messages.emplace_back(message);
    });
}

scoped_warning_capture::~scoped_warning_capture() {
    set_warning_sink(std::move(previous_));
}

std::vector<std::string> scoped_warning_capture::messages() const {
    const std::lock_guard lock(state_->mutex);
    return state_->messages;
}

}  // namespace axds
