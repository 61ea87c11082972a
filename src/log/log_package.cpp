#include <axds/log/log_package.hpp>

#include <axds/npy/npy_format.hpp>

#include "sys/endian.hpp"

#include <fmt/format.h>

#include <chrono>
#include <ctime>

namespace axds {

std::string log_entry_file_name(std::uint8_t source_id, std::uint64_t acquisition_time) {
    return fmt::format("{:03d}_{:020d}.npy", source_id, acquisition_time);
}

std::string log_package::file_name() const {
    return log_entry_file_name(source_id, acquisition_time);
}

std::vector<std::uint8_t> log_package::entry_bytes() const {
    std::vector<std::uint8_t> out;
    out.reserve(9 + payload.size());
    out.push_back(source_id);
    sys::append_le64(out, acquisition_time);
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
}

std::vector<std::uint8_t> log_package::npy_file_bytes() const {
    const std::string header = encode_npy_u1_header(9 + payload.size());
    std::vector<std::uint8_t> out(header.begin(), header.end());
    out.reserve(header.size() + 9 + payload.size());
    out.push_back(source_id);
    sys::append_le64(out, acquisition_time);
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
}

log_package make_onset_package(std::uint8_t source_id, std::uint64_t utc_epoch_us) {
    log_package package{.source_id = source_id, .acquisition_time = 0};
    sys::append_le64(package.payload, utc_epoch_us);
    return package;
}

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
