#include "log/entry_pool.hpp"

#include <algorithm>
#include <functional>
#include <limits>
#include <new>
#include <utility>

#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/lsan_interface.h>
#define AXDS_POOL_POISON(address, size) ASAN_POISON_MEMORY_REGION(address, size)
#define AXDS_POOL_UNPOISON(address, size) ASAN_UNPOISON_MEMORY_REGION(address, size)
#else
#define AXDS_POOL_POISON(address, size) ((void)(address), (void)(size))
#define AXDS_POOL_UNPOISON(address, size) ((void)(address), (void)(size))
#endif

namespace axds::detail {

namespace {

static_assert(sizeof(queued_entry) <= entry_pool::node_size && alignof(queued_entry) <= entry_pool::node_size);

#ifndef MADV_POPULATE_WRITE
constexpr int MADV_POPULATE_WRITE = 23;  // Linux 5.14
#endif

constexpr std::uint64_t pack(std::uint32_t index, std::uint32_t pops) noexcept {
    return (std::uint64_t{pops} << 32U) | index;
}

constexpr std::uint32_t index_of(std::uint64_t head) noexcept {
    return static_cast<std::uint32_t>(head);
}

constexpr std::uint32_t pops_of(std::uint64_t head) noexcept {
    return static_cast<std::uint32_t>(head >> 32U);
}

/// The part of a free node that nobody may touch (all but free_next, which pops read).
constexpr std::size_t guarded_offset = 8;
static_assert(sizeof(std::atomic<std::uint32_t>) <= guarded_offset);

void poison_free_node(queued_entry* node) noexcept {
    AXDS_POOL_POISON(reinterpret_cast<std::byte*>(node) + guarded_offset,  // NOLINT
                     entry_pool::node_size - guarded_offset);
}

void unpoison_node(queued_entry* node) noexcept {
    AXDS_POOL_UNPOISON(reinterpret_cast<std::byte*>(node) + guarded_offset,  // NOLINT
                       entry_pool::node_size - guarded_offset);
}

std::size_t round_up(std::size_t value, std::size_t multiple) noexcept {
    return (value + multiple - 1) / multiple * multiple;
}

}  // namespace

entry_pool::entry_pool(std::size_t max_nodes, std::size_t initial_nodes, std::size_t retain_budget)
    : retain_budget_(retain_budget), head_(pack(no_node, 0)) {
    const long page = ::sysconf(_SC_PAGESIZE);
    nodes_per_page_ = std::max<std::size_t>(1, static_cast<std::size_t>(page > 0 ? page : 4096) / node_size);
    max_nodes = round_up(std::clamp<std::size_t>(max_nodes, 1, max_pool_nodes), nodes_per_page_);
    // PROT_NONE: address space only, not counted against the commit limit until a part is populated.
    void* reserved =
        ::mmap(nullptr, max_nodes * node_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (reserved == MAP_FAILED) {
        return;  // no pool: every node comes from the heap
    }
    base_ = static_cast<std::byte*>(reserved);
    reserved_bytes_ = max_nodes * node_size;
    max_nodes_ = max_nodes;
#if defined(__SANITIZE_ADDRESS__)
    // Free nodes keep payload buffers: LeakSanitizer must scan this mapping (its readable parts) to find them.
    __lsan_register_root_region(base_, reserved_bytes_);
#endif
    initial_nodes_ = round_up(std::clamp<std::size_t>(initial_nodes, 1, max_nodes_), nodes_per_page_);
    populate(initial_nodes_);
}

entry_pool::~entry_pool() {
    // Every node is back here (the logger releases what it still holds before the pool goes): free nodes hold empty
    // packages, some with a kept payload buffer, which is freed here.
    if (base_ != nullptr) {
        AXDS_POOL_UNPOISON(base_, populated() * node_size);  // the addresses may be mapped again
        if (retained_bytes() != 0) {
            const std::size_t used = std::min(fresh_.load(), populated());
            for (std::size_t i = 0; i < used; ++i) {
                queued_entry* node = node_at(static_cast<std::uint32_t>(i));
                if (node->retained != 0) {
                    node->package.payload = std::vector<std::uint8_t>{};
                }
            }
        }
#if defined(__SANITIZE_ADDRESS__)
        __lsan_unregister_root_region(base_, reserved_bytes_);
#endif
        ::munmap(base_, reserved_bytes_);
    }
}

queued_entry* entry_pool::node_at(std::uint32_t index) const noexcept {
    return std::launder(reinterpret_cast<queued_entry*>(base_ + std::size_t{index} * node_size));  // NOLINT
}

bool entry_pool::owns(const queued_entry* entry) const noexcept {
    const auto* at = reinterpret_cast<const std::byte*>(entry);  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
    return base_ != nullptr && std::greater_equal<>{}(at, base_) && std::less<>{}(at, base_ + reserved_bytes_);
}

queued_entry* entry_pool::acquire() {
    std::uint64_t head = head_.load(std::memory_order_acquire);
    while (index_of(head) != no_node) {
        queued_entry* node = node_at(index_of(head));
        // The node may be taken, written and pushed back by others meanwhile: free_next is atomic, and the pop count
        // in the head makes this compare-exchange fail if anything was popped since `head` was read.
        const std::uint64_t next = pack(node->free_next.load(std::memory_order_relaxed), pops_of(head) + 1);
        if (head_.compare_exchange_weak(head, next, std::memory_order_acquire, std::memory_order_acquire)) {
            unpoison_node(node);
            return node;
        }
    }
    if (queued_entry* node = take_fresh(); node != nullptr) {
        return node;
    }
    heap_nodes_.fetch_add(1, std::memory_order_relaxed);
    return new queued_entry{};  // NOLINT(cppcoreguidelines-owning-memory)
}

queued_entry* entry_pool::take_fresh() noexcept {
    // populated_ is stored (release) after the pages are mapped and populated, so a node below it may be written.
    const std::size_t limit = populated_.load(std::memory_order_acquire);
    std::size_t index = fresh_.load(std::memory_order_relaxed);
    while (index < limit) {
        if (fresh_.compare_exchange_weak(index, index + 1, std::memory_order_relaxed, std::memory_order_relaxed)) {
            std::byte* at = base_ + index * node_size;  // NOLINT
            AXDS_POOL_UNPOISON(at, node_size);          // poisoned by populate()
            return new (at) queued_entry{};  // first use: the page is populated, this is the node's only construction
        }
    }
    return nullptr;
}

void entry_pool::release(queued_entry* entry) noexcept {
    release_batch one(*this);
    one.add(entry);
}

void entry_pool::release_batch::add(queued_entry* entry) noexcept {
    if (!pool_->owns(entry)) {
        delete entry;  // NOLINT(cppcoreguidelines-owning-memory)
        return;
    }
    // The buffer this node kept at its last release went to the producer that filled it (data_logger swaps).
    retained_delta_ -= static_cast<std::ptrdiff_t>(entry->retained);
    std::vector<std::uint8_t>& payload = entry->package.payload;
    const std::size_t capacity = payload.capacity();
    const auto retained_now = static_cast<std::ptrdiff_t>(pool_->retained_bytes()) + retained_delta_;
    if (capacity != 0 && capacity <= std::numeric_limits<std::uint32_t>::max() &&
        retained_now + static_cast<std::ptrdiff_t>(capacity) <= static_cast<std::ptrdiff_t>(pool_->retain_budget_)) {
        payload.clear();  // kept for the next producer: no free here, no malloc there
        entry->retained = static_cast<std::uint32_t>(capacity);
        retained_delta_ += static_cast<std::ptrdiff_t>(capacity);
    } else {
        payload = std::vector<std::uint8_t>{};  // frees it
        entry->retained = 0;
    }
    entry->package.source_id = 0;
    entry->package.acquisition_time = 0;
    entry->next = nullptr;
    entry->charge = 0;
    poison_free_node(entry);
    const auto offset = static_cast<std::size_t>(reinterpret_cast<std::byte*>(entry) - pool_->base_);  // NOLINT
    const auto index = static_cast<std::uint32_t>(offset / node_size);
    entry->free_next.store(first_, std::memory_order_relaxed);  // linked in front of the batch's chain
    first_ = index;
    if (last_ == nullptr) {
        last_ = entry;
    }
    ++count_;
}

void entry_pool::release_batch::flush() noexcept {
    if (retained_delta_ != 0) {
        // Signed change applied to an unsigned total: wraps back to the right value (modular arithmetic).
        pool_->retained_bytes_.fetch_add(static_cast<std::size_t>(retained_delta_), std::memory_order_relaxed);
        retained_delta_ = 0;
    }
    if (count_ != 0) {
        pool_->push_chain(first_, last_, count_);
    }
    first_ = no_node;
    last_ = nullptr;
    count_ = 0;
}

void entry_pool::push_chain(std::uint32_t first, queued_entry* last, std::size_t count) noexcept {
    pushed_.fetch_add(count, std::memory_order_relaxed);  // before the push: free_nodes() never goes negative
    std::uint64_t head = head_.load(std::memory_order_relaxed);
    do {
        last->free_next.store(index_of(head), std::memory_order_relaxed);
    } while (!head_.compare_exchange_weak(head, pack(first, pops_of(head)), std::memory_order_release,
                                          std::memory_order_relaxed));
}

std::size_t entry_pool::free_nodes() noexcept {
    const std::uint32_t pops = pops_of(head_.load(std::memory_order_acquire));
    pops_ += static_cast<std::uint32_t>(pops - last_pops_);  // fewer than 2^32 pops between two calls
    last_pops_ = pops;
    const std::uint64_t pushed = pushed_.load(std::memory_order_relaxed);
    const std::size_t recycled = pushed > pops_ ? static_cast<std::size_t>(pushed - pops_) : 0;
    const std::size_t fresh = fresh_.load(std::memory_order_relaxed);
    const std::size_t have = populated();
    return recycled + (have > fresh ? have - fresh : 0);
}

std::size_t entry_pool::replenish() noexcept {
    const std::size_t have = populated();
    if (base_ == nullptr || have >= max_nodes_) {
        return 0;
    }
    if (free_nodes() >= std::max(initial_nodes_, have / 2)) {
        return 0;
    }
    // Four times as large: the producers can take thousands of nodes between two of the writer's calls (one per
    // finished batch), and a node they find missing comes from the heap with its page faults (issue 21).
    return populate(std::min(std::max(3 * have, initial_nodes_), max_nodes_ - have));
}

namespace {

/// One store per page, from user mode. Under a hypervisor that shadows the guest's page tables (this project's CI VMs:
/// bench/README.md, "try_log tail"), a page that MADV_POPULATE_WRITE mapped still costs ~8 us on its first user-mode
/// access, a fault the guest never sees; a touch from any thread pays it here, on the writer, instead of in a
/// producer's try_log(). Elsewhere it is one store to a mapped page. The value is irrelevant: a node is constructed
/// when it is first taken.
void touch_pages(std::byte* begin, std::size_t bytes, std::size_t page) noexcept {
    for (std::size_t at = 0; at < bytes; at += page) {
        std::byte* const p = begin + at;  // NOLINT(cppcoreguidelines-pro-bounds-pointer-arithmetic)
        *static_cast<volatile std::byte*>(p) = std::byte{0};
    }
}

}  // namespace

std::size_t entry_pool::populate(std::size_t count) noexcept {
    const std::size_t first = populated();
    count = std::min(round_up(count, nodes_per_page_), max_nodes_ - first);
    if (count == 0) {
        return 0;
    }
    std::byte* begin = base_ + first * node_size;
    if (::mprotect(begin, count * node_size, PROT_READ | PROT_WRITE) != 0) {
        max_nodes_ = first;  // the system refuses more memory: stay at this size, the heap takes the rest
        return 0;
    }
    // One system call instead of a fault per page; only advice (older kernels refuse it, and the producers' first
    // touch faults then). The nodes are not constructed nor linked here: a producer constructs a fresh node when it
    // takes it (take_fresh), so the writer does not write 64 bytes per node into memory it has never cached.
    // In steps of populate_step nodes, each published at once: growing by a million nodes takes tens of milliseconds
    // (a VM's faults), and the producers take the first new nodes meanwhile instead of falling back to the heap.
    for (std::size_t done = 0; done < count; done += populate_step) {
        const std::size_t step = std::min(populate_step, count - done);
        std::byte* at = begin + done * node_size;  // NOLINT(cppcoreguidelines-pro-bounds-pointer-arithmetic)
        ::madvise(at, step * node_size, MADV_POPULATE_WRITE);
        touch_pages(at, step * node_size, nodes_per_page_ * node_size);
        AXDS_POOL_POISON(at, step * node_size);
        populated_.store(first + done + step, std::memory_order_release);
    }
    return count;
}

}  // namespace axds::detail
