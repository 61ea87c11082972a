#pragma once
// Little-endian codecs: the one place that turns integers into the little-endian bytes of the on-disk and wire
// formats (.npy headers, zip records, log entries, socket frames) and back. Private to src/.
//
// Loads and stores go through memcpy (one unaligned move on x86-64 and AArch64), so `p` needs no alignment.

#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace axds::sys {

namespace detail {

template <std::unsigned_integral T>
[[nodiscard]] constexpr T byteswap_if_big(T value) noexcept {
    if constexpr (std::endian::native == std::endian::little || sizeof(T) == 1) {
        return value;
    } else {
        T out = 0;
        for (std::size_t i = 0; i < sizeof(T); ++i) {
            out = static_cast<T>((out << 8U) | ((value >> (8U * i)) & 0xFFU));
        }
        return out;
    }
}

}  // namespace detail

/// The unsigned `T` stored little-endian at `p` (any alignment).
template <std::unsigned_integral T>
[[nodiscard]] inline T load_le(const void* p) noexcept {
    T value;
    std::memcpy(&value, p, sizeof value);
    return detail::byteswap_if_big(value);
}

/// Stores `value` little-endian at `p` (any alignment); returns the byte after it.
template <std::unsigned_integral T>
inline std::uint8_t* store_le(void* p, T value) noexcept {
    value = detail::byteswap_if_big(value);
    std::memcpy(p, &value, sizeof value);
    return static_cast<std::uint8_t*>(p) + sizeof value;
}

[[nodiscard]] inline std::uint16_t load_le16(const void* p) noexcept {
    return load_le<std::uint16_t>(p);
}

[[nodiscard]] inline std::uint32_t load_le32(const void* p) noexcept {
    return load_le<std::uint32_t>(p);
}

[[nodiscard]] inline std::uint64_t load_le64(const void* p) noexcept {
    return load_le<std::uint64_t>(p);
}

inline std::uint8_t* store_le16(void* p, std::uint16_t value) noexcept {
    return store_le(p, value);
}

inline std::uint8_t* store_le32(void* p, std::uint32_t value) noexcept {
    return store_le(p, value);
}

inline std::uint8_t* store_le64(void* p, std::uint64_t value) noexcept {
    return store_le(p, value);
}

/// Appends `value` little-endian to a byte container (`std::string`, `std::vector<std::uint8_t>`).
template <std::unsigned_integral T, class Bytes>
inline void append_le(Bytes& out, T value) {
    const std::size_t at = out.size();
    out.resize(at + sizeof value);
    store_le(out.data() + at, value);
}

template <class Bytes>
inline void append_le16(Bytes& out, std::uint16_t value) {
    append_le(out, value);
}

template <class Bytes>
inline void append_le32(Bytes& out, std::uint32_t value) {
    append_le(out, value);
}

template <class Bytes>
inline void append_le64(Bytes& out, std::uint64_t value) {
    append_le(out, value);
}

}  // namespace axds::sys
