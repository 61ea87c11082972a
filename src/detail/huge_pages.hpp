#pragma once
// Transparent huge pages for large, freshly reserved arrays that are filled at once (archive member tables).

#include <cstddef>
#include <cstdint>

#include <sys/mman.h>

namespace axds::detail {

/// Asks for transparent huge pages on the 2 MiB-aligned interior of [data, data + bytes): a million-member table
/// then takes a few dozen page faults instead of tens of thousands (each costs microseconds, far more in a VM).
/// Only advice: nothing changes where THP is off ("never") or the range holds no aligned 2 MiB.
inline void advise_huge_pages(const void* data, std::size_t bytes) noexcept {
    constexpr std::uintptr_t huge = std::uintptr_t{2} << 20U;
    const auto start = reinterpret_cast<std::uintptr_t>(data);  // NOLINT: madvise takes page addresses
    const std::uintptr_t begin = (start + huge - 1) & ~(huge - 1);
    const std::uintptr_t end = (start + bytes) & ~(huge - 1);
    if (end > begin) {
        ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);  // NOLINT
    }
}

}  // namespace axds::detail
