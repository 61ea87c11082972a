#pragma once
// The data logger's queue nodes (private to src/): a pool of nodes in memory that is populated (pre-faulted) by the
// writer, off the producers' path, and recycled by it once an entry is written, so that try_log() neither allocates
// nor takes a page fault (issue 21: the faults of fresh heap memory were the try_log tail).

#include <axds/log/log_package.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace axds::detail {

/// One queued package, linked into the logger's lock-free stack and then into the writer's backlog.
struct queued_entry {
    /// entry_pool's free-list link (the index of the next free node) while the node is free. First: the rest of a
    /// free node is poisoned under AddressSanitizer, so a use after release is reported. While the node is queued the
    /// link is unused and holds the payload's CRC-32 instead (payload_crc(): the node stays one 64-byte line).
    std::atomic<std::uint32_t> free_next{0};
    /// Capacity of the payload buffer this node kept when it was last released (0: none). That buffer goes to the
    /// producer that fills the node next (data_logger swaps payloads), which the next release() accounts for.
    std::uint32_t retained = 0;
    queued_entry* next = nullptr;
    log_package package;
    std::size_t charge = 0;  ///< bytes counted against the queue capacity

    /// The CRC-32 of the payload alone, set by the producer when the logger streams into archives and the payload
    /// has at least payload_crc_bytes (its cache holds the bytes it just wrote; the writer would read them from
    /// memory). Meaningful only while the node is queued and only for such payloads.
    void set_payload_crc(std::uint32_t crc) noexcept { free_next.store(crc, std::memory_order_relaxed); }

    [[nodiscard]] std::uint32_t payload_crc() const noexcept { return free_next.load(std::memory_order_relaxed); }
};

/// Payloads of at least this many bytes get their CRC-32 from the producer when the logger streams into archives.
inline constexpr std::size_t payload_crc_bytes = std::size_t{64} << 10U;

/// A bounded pool of queued_entry nodes in one reserved address range (PROT_NONE until populated).
///
/// - acquire() (any thread, lock-free, no system call): pops a node from the free list; when the list is empty it
///   takes the next never-used populated node (constructed then, by the caller: populating writes nothing into the
///   nodes); when there is none it returns a node from the heap instead (counted in heap_nodes()), so the caller's
///   call keeps its semantics.
/// - release() (any thread): clears the node's package and pushes a pooled node back on the free list; a heap node is
///   deleted. A pooled node keeps its payload's buffer (empty, capacity kept) while the buffers kept by free nodes
///   stay within retain_budget() bytes, otherwise the buffer is freed. The logger hands a kept buffer to the producer
///   whose package fills the node (a swap), so a producer that refills the same package allocates nothing: no
///   malloc/free pair across threads, and no payload on memory the process has never touched (issue 19).
/// - replenish() (one thread at a time: the logger's writer): when fewer than half of the populated nodes are free,
///   makes the pool about four times as large, up to max_nodes(): mprotect + MADV_POPULATE_WRITE + one store per page,
///   published in steps of populate_step nodes (the new nodes are "fresh": handed out in address order by acquire()
///   once the free list is empty).
///
/// The free list is a stack whose head holds a 32-bit node index and a 32-bit count of the pops (not of the pushes).
/// A pop's compare-exchange succeeds only if no other pop happened since it read the head, and the head can only
/// come back to the same index through a pop, so a node that was popped and pushed back in between (ABA) makes the
/// stale compare-exchange fail. Populated memory is never returned to the system while the pool lives: it is bounded
/// by max_nodes() * node_size.
class entry_pool {
public:
    static constexpr std::size_t node_size = 64;                         ///< bytes per node: one cache line
    static constexpr std::size_t max_pool_nodes = std::size_t{1} << 26;  ///< cap of the reserved range (4 GiB)
    static constexpr std::size_t populate_step = 4096;  ///< nodes (256 KiB) populated and published at a time

    /// Reserves address space for `max_nodes` nodes (rounded up to whole pages, at most max_pool_nodes) and
    /// populates `initial_nodes` of them. When the system refuses the reservation the pool stays empty and every
    /// acquire() uses the heap (as before the pool existed).
    entry_pool(std::size_t max_nodes, std::size_t initial_nodes, std::size_t retain_budget = 0);
    ~entry_pool();
    entry_pool(const entry_pool&) = delete;
    entry_pool& operator=(const entry_pool&) = delete;

    /// A node with an empty package, from the pool when one is free, else from the heap (may throw bad_alloc).
    [[nodiscard]] queued_entry* acquire();
    /// Frees the entry's payload and recycles the node (pool) or deletes it (heap).
    void release(queued_entry* entry) noexcept;
    /// Writer side: grows the pool (four times as large) when fewer than half its populated nodes (or fewer than the
    /// initial count) are free. Returns the number of nodes added (0 when none were needed or the bound is reached).
    std::size_t replenish() noexcept;

    /// Nodes populated so far.
    [[nodiscard]] std::size_t populated() const noexcept { return populated_.load(std::memory_order_relaxed); }

    /// The bound of populated().
    [[nodiscard]] std::size_t max_nodes() const noexcept { return max_nodes_; }

    /// The most payload bytes (capacities) that free nodes keep for reuse.
    [[nodiscard]] std::size_t retain_budget() const noexcept { return retain_budget_; }

    /// Payload bytes (capacities) kept by pooled nodes that were released and not yet released again.
    [[nodiscard]] std::size_t retained_bytes() const noexcept {
        return retained_bytes_.load(std::memory_order_relaxed);
    }

    /// acquire() calls that found the pool empty and used the heap.
    [[nodiscard]] std::uint64_t heap_nodes() const noexcept { return heap_nodes_.load(std::memory_order_relaxed); }

    /// Free pooled nodes (exact when no acquire() or release() runs at the same time). One thread at a time, like
    /// replenish().
    [[nodiscard]] std::size_t free_nodes() noexcept;
    /// True when `entry` is one of this pool's nodes.
    [[nodiscard]] bool owns(const queued_entry* entry) const noexcept;

    /// Entries released together (a writer's finished batch): their nodes go back with one compare-exchange on
    /// flush() or destruction instead of one each, so the writer contends less with the producers' pops.
    class release_batch {
    public:
        explicit release_batch(entry_pool& pool) noexcept : pool_(&pool) {}

        ~release_batch() { flush(); }

        release_batch(const release_batch&) = delete;
        release_batch& operator=(const release_batch&) = delete;

        /// release() of `entry`, its node pushed at the next flush().
        void add(queued_entry* entry) noexcept;
        void flush() noexcept;

    private:
        entry_pool* pool_;
        std::uint32_t first_ = no_node;
        queued_entry* last_ = nullptr;
        std::size_t count_ = 0;
        std::ptrdiff_t retained_delta_ = 0;  ///< change of the pool's retained_bytes_, applied by flush()
    };

private:
    static constexpr std::uint32_t no_node = ~std::uint32_t{0};

    [[nodiscard]] queued_entry* node_at(std::uint32_t index) const noexcept;
    /// The next never-used populated node, constructed, or nullptr when all populated nodes were used once.
    [[nodiscard]] queued_entry* take_fresh() noexcept;
    /// Pushes the chain first..last (linked through free_next) of `count` nodes.
    void push_chain(std::uint32_t first, queued_entry* last, std::size_t count) noexcept;
    std::size_t populate(std::size_t count) noexcept;

    std::byte* base_ = nullptr;
    std::size_t reserved_bytes_ = 0;
    std::size_t max_nodes_ = 0;
    std::size_t initial_nodes_ = 0;
    std::size_t retain_budget_ = 0;
    std::size_t nodes_per_page_ = 1;
    alignas(64) std::atomic<std::uint64_t> head_;    ///< low 32 bits: first free node (no_node = empty); high: pops
    alignas(64) std::atomic<std::size_t> fresh_{0};  ///< nodes [fresh_, populated_) were never handed out
    std::atomic<std::size_t> populated_{0};
    alignas(64) std::atomic<std::uint64_t> pushed_{0};  ///< nodes ever pushed (recycled)
    std::atomic<std::uint64_t> heap_nodes_{0};
    std::atomic<std::size_t> retained_bytes_{0};
    std::uint32_t last_pops_ = 0;  ///< replenish side: the pop count seen last, to unwrap its 32 bits
    std::uint64_t pops_ = 0;       ///< replenish side: pops seen so far
};

}  // namespace axds::detail
