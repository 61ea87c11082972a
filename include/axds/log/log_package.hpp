#pragma once

#include <axds/core/clock.hpp>  // utc_now_us, utc_iso8601 (declared here before they moved)

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <ranges>
#include <string>
#include <string_view>
#include <vector>

namespace axds {

/// Suffix of a data logger's output directory: `{instance_name}_data_log` (spec §7.4).
inline constexpr const char* log_directory_suffix = "_data_log";
/// Suffix of an assembled archive: `{source_id}_log.npz` (spec §7.4).
inline constexpr const char* log_archive_suffix = "_log.npz";

/// Suffix of the onset message's key `SSS_00000000000000000000` (spec §7.3, §8.4).
inline constexpr std::string_view log_onset_key_suffix = "_00000000000000000000";

/// An archive member's message key: its name without a trailing ".npy".
[[nodiscard]] constexpr std::string_view log_member_key(std::string_view member_name) noexcept {
    if (member_name.ends_with(".npy")) {
        member_name.remove_suffix(4);
    }
    return member_name;
}

/// The element types a typed log payload may hold: `bool` and the unsigned integer types (`unsigned char` …
/// `unsigned long long`, so every `std::uintN_t`). They are the types numpy's "same_kind" rule casts into uint8, the
/// rule the Python LogPackage applies to its payload (spec §6.1). Everything else is refused at compile time, as
/// Python refuses its counterpart with TypeError: signed integers, floating point, character types (`char`,
/// `char8_t`, …), `std::byte`, enums and classes.
template <typename T>
concept log_payload_value =
    std::same_as<T, bool> || std::same_as<T, unsigned char> || std::same_as<T, unsigned short> ||
    std::same_as<T, unsigned int> || std::same_as<T, unsigned long> || std::same_as<T, unsigned long long>;

/// A range of log_payload_value elements (`std::span<const std::uint16_t>`, `std::vector<bool>`, a C array, …).
template <typename R>
concept log_payload_range = std::ranges::input_range<R> && log_payload_value<std::ranges::range_value_t<R>>;

/// One log message as producers hand it to a data_logger (spec §6.1).
struct log_package {
    std::uint8_t source_id = 0;          ///< which producer (archive `{source_id}_log.npz`)
    std::uint64_t acquisition_time = 0;  ///< µs since the source's onset; 0 marks the onset message (§7.3)
    std::vector<std::uint8_t> payload;   ///< the serialized message

    /// The package the Python `LogPackage(source_id, acquisition_time, values)` writes for a 1-D numpy array of the
    /// same element type: numpy's "same_kind" cast into uint8 (spec §6.1). `bool` becomes 0/1; a wider unsigned value
    /// is narrowed element by element modulo 256 (uint16 258 -> 2, uint64 2^64-1 -> 255); uint8 is copied. An empty
    /// range gives an empty payload (a 9-byte entry). The element type alone decides acceptance, so every refusal is a
    /// compile error (the constraint), never a run-time type_error. Multi-dimensional data is passed flattened in C
    /// order: Python accepts only shapes that broadcast to 1-D, such as (1, n).
    template <log_payload_range Values>
    [[nodiscard]] static log_package from_values(std::uint8_t source_id, std::uint64_t acquisition_time,
                                                 Values&& values) {
        log_package package{.source_id = source_id, .acquisition_time = acquisition_time};
        if constexpr (std::ranges::sized_range<Values>) {
            package.payload.reserve(static_cast<std::size_t>(std::ranges::size(values)));
        }
        for (auto&& value : values) {
            // Unsigned narrowing is modulo 2^8 in C++ too; bool converts to 0 or 1.
            package.payload.push_back(static_cast<std::uint8_t>(value));
        }
        return package;
    }

    /// `SSS_TTTTTTTTTTTTTTTTTTTT.npy`: source zero-padded to 3 digits, time to 20 (spec §6.1).
    [[nodiscard]] std::string file_name() const;
    /// The entry array: `[source_id][acquisition_time, 8 bytes LE][payload]`.
    [[nodiscard]] std::vector<std::uint8_t> entry_bytes() const;
    /// The complete `.npy` file numpy's np.save writes for entry_bytes() (spec §6.2: 128-byte header + entry).
    [[nodiscard]] std::vector<std::uint8_t> npy_file_bytes() const;
};

/// The entry file name for a source and time (spec §6.1).
[[nodiscard]] std::string log_entry_file_name(std::uint8_t source_id, std::uint64_t acquisition_time);

/// The onset message of spec §7.3 for `source_id`: time 0, payload = `utc_epoch_us` as 8 bytes LE.
[[nodiscard]] log_package make_onset_package(std::uint8_t source_id, std::uint64_t utc_epoch_us);

}  // namespace axds
