#include <axds/log/log_package.hpp>

#include <axds/npy/npy_format.hpp>

#include "sys/endian.hpp"

#include <fmt/format.h>

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

}  // namespace axds
