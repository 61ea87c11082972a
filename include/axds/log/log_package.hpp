#pragma once

#include <cstdint>
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

/// One log message as producers hand it to a data_logger (spec §6.1).
struct log_package {
    std::uint8_t source_id = 0;          ///< which producer (archive `{source_id}_log.npz`)
    std::uint64_t acquisition_time = 0;  ///< µs since the source's onset; 0 marks the onset message (§7.3)
    std::vector<std::uint8_t> payload;   ///< the serialized message

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

/// Current UTC time in µs since the Unix epoch (spec §1.5).
[[nodiscard]] std::uint64_t utc_now_us() noexcept;

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` for µs since the Unix epoch (e.g. an archive's onset).
[[nodiscard]] std::string utc_iso8601(std::uint64_t epoch_us);

}  // namespace axds
