#pragma once
// Transparent huge pages for large, freshly reserved arrays that are filled at once (archive member tables).

#include "sys/aligned_buffer.hpp"

#include <cstddef>
#include <cstdint>
#include <new>

#include <sys/mman.h>

namespace axds::detail {

/// Asks for transparent huge pages on the 2 MiB-aligned interior of [data, data + bytes): a million-member table
/// then takes a few dozen page faults instead of tens of thousands (each costs microseconds, far more in a VM).
/// Only advice: nothing changes where THP is off ("never") or the range holds no aligned 2 MiB.
inline void advise_huge_pages(const void* data, std::size_t bytes) noexcept {
    constexpr std::uintptr_t huge = sys::huge_page_size;
    const auto start = reinterpret_cast<std::uintptr_t>(data);  // NOLINT: madvise takes page addresses
    const std::uintptr_t begin = (start + huge - 1) & ~(huge - 1);
    const std::uintptr_t end = (start + bytes) & ~(huge - 1);
    if (end > begin) {
        ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);  // NOLINT
    }
}

/// An allocator for arrays that grow with the input (one element per file or log entry): blocks of 256 KiB or more
/// are 2 MiB-aligned, rounded up to whole huge pages and advised for them (advise_huge_pages), smaller ones come from
/// the heap. Why: a 20,000-entry assembly faulted in ~1,500 pages of such arrays one by one, ~13 us each in a VM
/// (~0.5 us on bare metal), where one 2 MiB page costs ~150 us to clear (~80 us on bare metal). Nothing changes
/// where transparent huge pages are off, but the address space spent on the rounding.
template <typename T>
struct huge_page_allocator {
    using value_type = T;

    static constexpr std::size_t huge_page = sys::huge_page_size;
    static constexpr std::size_t min_bytes = std::size_t{256} << 10U;

    huge_page_allocator() noexcept = default;

    template <typename U>
    huge_page_allocator(const huge_page_allocator<U>& /*other*/) noexcept {}  // NOLINT: allocator rebinding

    [[nodiscard]] T* allocate(std::size_t n) {
        if (n > SIZE_MAX / sizeof(T)) {
            throw std::bad_array_new_length();
        }
        const std::size_t bytes = n * sizeof(T);
        if (bytes < min_bytes) {
            return static_cast<T*>(::operator new (bytes, std::align_val_t{alignof(T)}));
        }
        const std::size_t rounded = (bytes + huge_page - 1) / huge_page * huge_page;
        void* block = ::operator new (rounded, std::align_val_t{huge_page});
        advise_huge_pages(block, rounded);
        return static_cast<T*>(block);
    }

    void deallocate(T* block, std::size_t n) noexcept {
        const std::size_t bytes = n * sizeof(T);
        ::operator delete (block, std::align_val_t{bytes < min_bytes ? alignof(T) : huge_page});
    }

    template <typename U>
    bool operator==(const huge_page_allocator<U>& /*other*/) const noexcept {
        return true;
    }
};

}  // namespace axds::detail
