// Zip archives (.npz, ZIP64 included): central directory, local headers, stored and deflated members, CRC-32; then
// the same file as a log archive (onset, message keys, every message).

#include "fuzz_target.hpp"

#include <axds/log/log_archive_reader.hpp>
#include <axds/npy/npy_format.hpp>
#include <axds/npy/npz_archive.hpp>
#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <exception>
#include <filesystem>
#include <fstream>
#include <utility>
#include <vector>

namespace axds::fuzz {
namespace {

std::filesystem::path archive;  // in the run's scratch directory

void set_up(const std::string& scratch) {
    archive = std::filesystem::path(scratch) / "fuzz_archive.npz";
}

/// One member's checks; returns the bytes of the file it occupies (local header to end of data).
std::pair<std::uint64_t, std::uint64_t> check_member(const npz_reader& reader, const npz_member& member,
                                                     std::uint64_t file_size, const std::string& name) {
    const std::uint64_t data_offset = reader.data_offset(member);  // checks the local header
    if (data_offset > file_size || member.compressed_size > file_size - data_offset) {
        throw fuzz_failure(fmt::format("member '{}' was served with data past the end of the file", member.name));
    }
    const auto data = reader.data(member);
    if (data.size() != member.uncompressed_size) {
        throw fuzz_failure(fmt::format("member '{}' served {} bytes, its record says {}", member.name, data.size(),
                                       member.uncompressed_size));
    }
    // The reader checked the CRC-32 on this first read; check that it did.
    const auto crc = ::crc32(::crc32(0, nullptr, 0), data.data(), static_cast<uInt>(data.size()));
    if (data.size() <= 0xFFFFFFFFU && crc != member.crc32) {
        throw fuzz_failure(fmt::format("member '{}' was served with a CRC-32 that does not match", member.name));
    }
    (void)npy_u1_payload(data, fmt::format("{}: {}", name, member.name));
    return {member.local_header_offset, data_offset + member.compressed_size};
}

/// Reads every member, going on past refused ones (local headers are checked per member, on read), then checks
/// that no two members that were served share a byte of the file; rethrows the first refusal.
void check_members(const npz_reader& reader, std::uint64_t file_size, const std::string& name) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> served;
    std::exception_ptr first_refusal;
    for (const npz_member& member : reader.members()) {
        try {
            served.push_back(check_member(reader, member, file_size, name));
        } catch (const value_error&) {
            if (!first_refusal) {
                first_refusal = std::current_exception();
            }
        }
    }
    std::sort(served.begin(), served.end());
    for (std::size_t i = 1; i < served.size(); ++i) {
        if (served[i].first < served[i - 1].second) {
            throw fuzz_failure(fmt::format("two members were served overlapping bytes (offsets {} to {} and {} to {})",
                                           served[i - 1].first, served[i - 1].second, served[i].first,
                                           served[i].second));
        }
    }
    if (first_refusal) {
        std::rethrow_exception(first_refusal);
    }
}

outcome one_input(std::span<const std::uint8_t> input) {
    {
        std::ofstream out(archive, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(input.data()), static_cast<std::streamsize>(input.size()));
    }
    const std::string name = archive.string();
    const outcome as_zip = expect_clean(
        [&] {
            const npz_reader reader(archive, {.max_inflated_size = std::uint64_t{64} << 20U});
            check_members(reader, input.size(), name);
        },
        name);
    const outcome as_log = expect_clean(
        [&] {
            const log_archive_reader reader(archive);
            (void)reader.onset_timestamp_us();
            for (const auto& message : reader.messages()) {
                (void)message;
            }
            (void)reader.read_all_messages();
        },
        name);
    return as_zip == outcome::accepted || as_log == outcome::accepted ? outcome::accepted : outcome::refused;
}

const registration npz{{
    .name = "npz_archive",
    .about = "zip/zip64 central directory and local headers, inflation, CRC-32, log archive decoding",
    .one_input = one_input,
    .set_up = set_up,
    .dictionary = {"PK\x03\x04", "PK\x01\x02", "PK\x05\x06", "PK\x06\x06", "PK\x06\x07", std::string("\x08\x00", 2),
                   std::string("\x00\x00", 2), std::string("\x01\x00", 2), "\xff\xff\xff\xff", "\xff\xff",
                   std::string("\x2d\x00", 2), ".npy", "onset", "001_", "00000000000000000000", "\x93NUMPY",
                   std::string("\x14\x00", 2)},
    .max_length = 8192,
}};

}  // namespace
}  // namespace axds::fuzz
