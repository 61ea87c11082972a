#pragma once
// Many small files read ahead of their consumer, in order, by the calling thread and one helper. Private to src/.

#include "detail/uring_reader.hpp"

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

namespace axds::detail {

/// Reads files [0, count) with read_file_prefixes, a chunk of `chunk_files` at a time, into a ring of slots, and
/// hands each one to a consumer in index order. A helper thread reads chunks ahead while the caller consumes; the
/// caller reads chunks too whenever the next one to consume is not ready yet, so both cores open and read files
/// and the consumer's own work (parsing, hashing, copying into an archive) overlaps the helper's reads instead of
/// following them. A chunk's slots are reused only after the consumer is done with them.
class prefix_ring {
public:
    static constexpr std::size_t chunk_files = 64;

    /// What to read for file `index`: set `path` and `dirfd` (called from both threads: must not share state).
    using describe_fn = std::function<void(std::size_t index, prefix_read& read)>;
    /// Called for every file in order, on the caller's thread: `read.error` is set where it failed, `read.buffer`
    /// is valid until the call returns. May throw: the helper is stopped and joined before the exception leaves.
    using consume_fn = std::function<void(std::size_t index, const prefix_read& read)>;
    /// Called after each chunk is consumed with the number of files consumed so far; false stops the run.
    using after_chunk_fn = std::function<bool(std::size_t consumed)>;

    /// `scratch`: slots of `slot_size` bytes, at least chunk_files of them (the ring holds whole chunks).
    /// `helper`: whether a helper thread may be started (it is only for `count` >= 4 chunks).
    prefix_ring(std::size_t count, std::span<std::uint8_t> scratch, std::size_t slot_size, bool prefer_io_uring,
                bool helper, describe_fn describe);
    ~prefix_ring();

    prefix_ring(const prefix_ring&) = delete;
    prefix_ring& operator=(const prefix_ring&) = delete;

    /// Reads and consumes every file (once per object). False when after_chunk stopped it.
    bool run(const consume_fn& consume, const after_chunk_fn& after_chunk);

private:
    /// Claims the next chunk if its slots are free (lock held). False: none can be claimed now.
    bool claim(std::size_t& chunk);
    void read_chunk(std::size_t chunk);
    void helper_loop();
    void stop_helper();

    std::size_t count_;
    std::size_t chunks_;
    std::size_t ring_chunks_;
    std::size_t slot_size_;
    std::span<std::uint8_t> scratch_;
    bool prefer_io_uring_;
    bool want_helper_;
    describe_fn describe_;
    std::vector<prefix_read> reads_;  ///< one per slot

    std::mutex mutex_;
    std::condition_variable ready_;         ///< a chunk was read
    std::condition_variable space_;         ///< a chunk was consumed (its slots are free) or the run stops
    std::vector<std::size_t> ready_chunk_;  ///< per ring position: 1 + the chunk read into it, 0 for none yet
    std::size_t next_claim_ = 0;
    std::size_t consumed_ = 0;
    bool stop_ = false;
    std::thread helper_;
};

}  // namespace axds::detail
