#pragma once
// The one owner of every buffer the kernel copies into or out of (read, pread, write, writev vectors, io_uring
// buffers, socket receive buffers, scratch windows, copy fallbacks). Private to src/.
//
// Why: on some x86-64 CPUs (AMD Zen, whose kernel copy is `rep movsb`) the kernel's copy into a user buffer that is
// not 64-byte aligned runs several times slower; `malloc`/`new[]` of a large block returns an address 16 bytes past a
// page boundary. Every buffer made here starts on a page boundary and its size is rounded up to whole pages, so any
// chunk at a page- or 64-byte-multiple offset inside it is aligned too.

#include <cstddef>
#include <cstdint>
#include <new>
#include <span>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace axds::sys {

/// Where every buffer starts (a page).
inline constexpr std::size_t buffer_alignment = 4096;

/// A transparent huge page on x86-64 (2 MiB): what detail::advise_huge_pages and detail::huge_page_allocator ask for.
inline constexpr std::size_t huge_page_size = std::size_t{2} << 20U;

/// Where buffers of a huge page or more start (a 2 MiB boundary on x86-64), so that huge-page advice
/// (detail::advise_huge_pages) covers all of them, not only an aligned interior: a 4 MiB staging buffer on a page
/// boundary took one huge page and 512 small faults (each ~13 us in a VM), and where transparent huge pages are
/// always on the kernel can back the whole buffer with them. Only address space is spent on the alignment.
inline constexpr std::size_t huge_buffer_alignment = huge_page_size;

/// The alignment the kernel's copy needs to run at full speed: what the checks (and the tests) demand.
inline constexpr std::size_t io_alignment = 64;

[[nodiscard]] inline bool io_aligned(const void* address) noexcept {
    return reinterpret_cast<std::uintptr_t>(address) % io_alignment == 0;
}

/// An owning, move-only, uninitialized, page-aligned byte buffer.
class aligned_buffer {
public:
    aligned_buffer() noexcept = default;

    /// `size` uninitialized bytes (no page is touched here: a page is faulted in when first written).
    explicit aligned_buffer(std::size_t size) : data_(allocate(size)), size_(size), allocations_(size != 0 ? 1 : 0) {}

    ~aligned_buffer() { release(); }

    aligned_buffer(aligned_buffer&& other) noexcept
        : data_(std::exchange(other.data_, nullptr)),
          size_(std::exchange(other.size_, 0)),
          allocations_(std::exchange(other.allocations_, 0)) {}

    aligned_buffer& operator=(aligned_buffer&& other) noexcept {
        if (this != &other) {
            release();
            data_ = std::exchange(other.data_, nullptr);
            size_ = std::exchange(other.size_, 0);
            allocations_ = std::exchange(other.allocations_, 0);
        }
        return *this;
    }

    aligned_buffer(const aligned_buffer&) = delete;
    aligned_buffer& operator=(const aligned_buffer&) = delete;

    /// Makes room for at least `size` bytes. The contents are NOT kept when the buffer grows (it is reallocated).
    void reserve_discarding(std::size_t size) {
        if (size > size_) {
            std::byte* fresh = allocate(size);
            release();
            data_ = fresh;
            size_ = size;
            ++allocations_;
        }
    }

    [[nodiscard]] std::byte* data() const noexcept { return data_; }

    [[nodiscard]] std::size_t size() const noexcept { return size_; }

    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }

    /// The bytes as `T` (a byte-sized type: char, unsigned char, std::uint8_t, std::byte).
    template <typename T = std::byte>
    [[nodiscard]] std::span<T> as() const noexcept {
        static_assert(sizeof(T) == 1 && std::is_trivial_v<T>, "aligned_buffer holds bytes");
        return {reinterpret_cast<T*>(data_), size_};  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
    }

    /// How many times this instance allocated (tests count reallocations per instance with it).
    [[nodiscard]] std::size_t allocations() const noexcept { return allocations_; }

private:
    static std::align_val_t alignment_for(std::size_t size) noexcept {
        return std::align_val_t{size >= huge_buffer_alignment ? huge_buffer_alignment : buffer_alignment};
    }

    static std::byte* allocate(std::size_t size) {
        if (size == 0) {
            return nullptr;
        }
        const std::size_t rounded = (size + buffer_alignment - 1) / buffer_alignment * buffer_alignment;
        auto* address = static_cast<std::byte*>(::operator new(rounded, alignment_for(size)));
        if (!io_aligned(address)) {  // cannot happen with a conforming allocator: checked, never assumed
            ::operator delete(address, alignment_for(size));
            throw std::logic_error("aligned_buffer: the allocator returned a buffer that is not 64-byte aligned");
        }
        return address;
    }

    void release() noexcept {
        if (data_ != nullptr) {
            ::operator delete(data_, alignment_for(size_));
            data_ = nullptr;
        }
        size_ = 0;
    }

    std::byte* data_ = nullptr;
    std::size_t size_ = 0;
    std::size_t allocations_ = 0;
};

}  // namespace axds::sys
