#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace axds {

/// The `.npy` magic string, "\x93NUMPY".
inline constexpr std::string_view npy_magic{"\x93NUMPY", 6};

/// Most dimensions a `.npy` shape may have (numpy 2's NPY_MAXDIMS; numpy 1.x allows 32).
inline constexpr std::size_t npy_max_dimensions = 64;

/// A parsed `.npy` header (numpy format 1.0, 2.0 or 3.0).
struct npy_header {
    std::uint8_t major_version = 1;
    std::uint8_t minor_version = 0;
    std::string descr;  ///< numpy dtype string, e.g. "|u1" or "<u8"
    bool fortran_order = false;
    std::vector<std::uint64_t> shape;  ///< empty for a 0-d array
    std::size_t data_offset = 0;       ///< where the array bytes start

    /// Number of elements (1 for a 0-d array); UINT64_MAX if the product overflows, which parse_npy_header never
    /// lets through.
    [[nodiscard]] std::uint64_t element_count() const noexcept;
    /// Size of one element from descr ("|u1" → 1, "<f8" → 8, "<U3" → 12); 0 when descr is not a simple type.
    [[nodiscard]] std::size_t item_size() const noexcept;
};

/// The exact header numpy's np.save writes (format 1.0, numpy ≥ 1.23): sorted dict keys, repr values, 21-digit growth
/// padding, spaces up to a 64-byte boundary, then '\n' (spec §6.2). For a 1-D array of ≤ 21-digit length the header
/// is 128 bytes long.
[[nodiscard]] std::string encode_npy_header(std::string_view descr, bool fortran_order,
                                            std::span<const std::uint64_t> shape);

/// encode_npy_header("|u1", false, {length}): the 128-byte header of a 1-D uint8 array (a log entry).
[[nodiscard]] std::string encode_npy_u1_header(std::uint64_t length);

/// Parses a `.npy` header from the start of `bytes` (versions 1.0/2.0/3.0, any key order). `source` names the file or
/// archive member in error messages.
/// @throws value_error naming `source`, the byte offset and the problem (bad magic, truncated header, unsupported
/// version, malformed dictionary or text after it, structured dtype, a shape that is not a tuple of integers without
/// leading zeros, more than npy_max_dimensions dimensions or more elements than fit 64 bits, header longer than the
/// data).
[[nodiscard]] npy_header parse_npy_header(std::span<const std::uint8_t> bytes, std::string_view source);

/// Parses the header of a 1-D uint8 `.npy` (a log entry or archive member) and returns its payload bytes.
/// @throws value_error naming `source` if the header is malformed, the array is not 1-D uint8 ("|u1"), or the data
/// length disagrees with the shape.
[[nodiscard]] std::span<const std::uint8_t> npy_u1_payload(std::span<const std::uint8_t> bytes,
                                                           std::string_view source);

}  // namespace axds
