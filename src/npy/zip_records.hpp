#pragma once
// The zip records npz_writer writes (private to src/): one encoder shared by npz_writer (assembly) and the data
// logger's streaming archives, so both produce the same bytes for the same members.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace axds::detail {

inline constexpr std::uint32_t zip_local_signature = 0x04034b50;
inline constexpr std::uint32_t zip_central_signature = 0x02014b50;
inline constexpr std::size_t zip_local_fixed_size = 30;  ///< local header before its name
inline constexpr std::size_t zip_local_zip64_extra_size = 20;
inline constexpr std::uint16_t zip_alignment_extra_id = 0xD935;  // the id zipalign uses for its padding block

/// Bytes of the local header (fixed part, name, ZIP64 extra, alignment padding) of a stored member whose header starts
/// at `offset`: its data then starts at a multiple of npz_member_alignment.
[[nodiscard]] std::size_t zip_local_header_size(std::uint64_t offset, std::size_t name_size) noexcept;

/// Writes that local header (zip_local_header_size bytes) to `out`: version 4.5, stored, 1980-01-01, the CRC, sizes in
/// a ZIP64 extra (as CPython >= 3.12 writes with force_zip64), then a 0xD935 padding block.
void encode_zip_local_header(std::uint8_t* out, std::uint64_t offset, std::string_view name, std::uint32_t crc,
                             std::uint64_t size) noexcept;

/// Appends the central-directory record of a stored member; returns true when it needed ZIP64 fields.
bool append_zip_central_record(std::string& out, std::string_view name, std::uint32_t crc, std::uint64_t size,
                               std::uint64_t offset);

/// Appends the end records of an archive of `count` members whose central directory (`cd_size` bytes) starts at
/// `cd_offset`: a ZIP64 end record and locator first when `zip64` or any of the values needs them.
void append_zip_end_records(std::string& out, std::uint64_t count, std::uint64_t cd_offset, std::uint64_t cd_size,
                            bool zip64);

}  // namespace axds::detail
