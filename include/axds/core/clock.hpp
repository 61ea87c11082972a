#pragma once
// The wall clock as the library records it (log onsets, tracker timestamps); shared by log/ and jobs/.

#include <cstdint>
#include <string>

namespace axds {

/// Current UTC time in µs since the Unix epoch (spec §1.5).
[[nodiscard]] std::uint64_t utc_now_us() noexcept;

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` for µs since the Unix epoch (e.g. an archive's onset).
[[nodiscard]] std::string utc_iso8601(std::uint64_t epoch_us);

}  // namespace axds
