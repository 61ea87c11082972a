#include <axds/core/clock.hpp>

#include <fmt/format.h>

#include <chrono>
#include <ctime>

namespace axds {

std::uint64_t utc_now_us() noexcept {
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(now).count());
}

std::string utc_iso8601(std::uint64_t epoch_us) {
    const auto seconds = static_cast<std::time_t>(epoch_us / 1'000'000);
    std::tm utc{};
    ::gmtime_r(&seconds, &utc);
    return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:06d}Z", utc.tm_year + 1900, utc.tm_mon + 1,
                       utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, epoch_us % 1'000'000);
}

}  // namespace axds
