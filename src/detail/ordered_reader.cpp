#include "detail/ordered_reader.hpp"

#include "detail/huge_pages.hpp"
#include "sys/aligned_buffer.hpp"
#include "sys/error.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <limits>
#include <system_error>
#include <thread>
#include <vector>

namespace axds::detail {

namespace {

constexpr std::size_t slot_count = 8;  // chunks read ahead of the consumer, at most
constexpr std::uint64_t stopped = std::numeric_limits<std::uint64_t>::max();  // `consumed` once the consumer left

/// Shared by the readers and the consumer. Chunk i goes to slot i % slot_count once chunk i - slot_count has been
/// consumed; `ready[slot]` becomes i + 1 when it holds chunk i.
struct ordered_state {
    int fd;
    std::uint64_t offset;
    std::uint64_t length;
    std::uint64_t chunks;
    sys::aligned_buffer buffers{slot_count * ordered_chunk_size};
    std::array<std::atomic<std::uint64_t>, slot_count> ready{};
    std::array<std::size_t, slot_count> bytes{};
    std::array<int, slot_count> errors{};
    std::atomic<std::uint64_t> next{0};      ///< the next chunk a reader takes
    std::atomic<std::uint64_t> consumed{0};  ///< chunks consumed (`stopped`: the consumer is gone)

    ordered_state(int file, std::uint64_t from, std::uint64_t size)
        : fd(file), offset(from), length(size), chunks((size + ordered_chunk_size - 1) / ordered_chunk_size) {
        advise_huge_pages(buffers.data(), buffers.size());  // 4 faults instead of 2,048 (each ~10 us in a VM)
    }

    [[nodiscard]] std::byte* slot_data(std::size_t slot) const noexcept {
        return buffers.data() + slot * ordered_chunk_size;
    }

    /// A reader's loop: take the next chunk, wait for its slot to be free, read it, publish it.
    void read_chunks() noexcept {
        for (std::uint64_t i = next.fetch_add(1); i < chunks; i = next.fetch_add(1)) {
            std::uint64_t done = consumed.load(std::memory_order_acquire);
            while (done != stopped && done + slot_count <= i) {
                consumed.wait(done, std::memory_order_acquire);
                done = consumed.load(std::memory_order_acquire);
            }
            if (done == stopped) {
                return;
            }
            const std::size_t slot = i % slot_count;
            const std::uint64_t start = i * ordered_chunk_size;
            const auto size = static_cast<std::size_t>(std::min<std::uint64_t>(ordered_chunk_size, length - start));
            const sys::io_result n = sys::pread_full(fd, slot_data(slot), size, static_cast<off_t>(offset + start));
            bytes[slot] = n.bytes;
            errors[slot] = n.error ? n.error.value() : 0;
            ready[slot].store(i + 1, std::memory_order_release);
            ready[slot].notify_all();
        }
    }

    /// Releases every waiting reader: nothing more will be consumed.
    void stop() noexcept {
        next.store(chunks, std::memory_order_relaxed);
        consumed.store(stopped, std::memory_order_release);
        consumed.notify_all();
    }
};

}  // namespace

sys::io_result read_in_order(int fd, std::uint64_t offset, std::uint64_t length, unsigned readers,
                             const std::function<void(std::span<const std::byte>)>& consume) {
    ordered_state state(fd, offset, length);
    std::vector<std::thread> threads;
    try {
        while (threads.size() < readers) {
            threads.emplace_back([&state] { state.read_chunks(); });
        }
    } catch (const std::system_error&) {
        // Fewer threads than asked (or none): the consumer also reads when no reader has its chunk yet, below.
    }

    // Whatever happens (consume may throw), the readers are released and joined before `state` goes away.
    struct joiner {
        ordered_state& state;
        std::vector<std::thread>& threads;

        ~joiner() {
            state.stop();
            for (auto& thread : threads) {
                thread.join();
            }
        }
    } join_on_exit{state, threads};

    sys::io_result result;
    for (std::uint64_t i = 0; i < state.chunks; ++i) {
        const std::size_t slot = i % slot_count;
        if (threads.empty()) {  // alone: chunk i is read here
            const std::uint64_t start = i * ordered_chunk_size;
            const auto size = static_cast<std::size_t>(std::min<std::uint64_t>(ordered_chunk_size, length - start));
            const sys::io_result n =
                sys::pread_full(fd, state.slot_data(slot), size, static_cast<off_t>(offset + start));
            state.bytes[slot] = n.bytes;
            state.errors[slot] = n.error ? n.error.value() : 0;
        } else {
            for (std::uint64_t seen = state.ready[slot].load(std::memory_order_acquire); seen != i + 1;
                 seen = state.ready[slot].load(std::memory_order_acquire)) {
                state.ready[slot].wait(seen, std::memory_order_acquire);
            }
        }
        if (state.errors[slot] != 0) {
            result.error = sys::errno_code(state.errors[slot]);
            break;
        }
        const std::uint64_t start = i * ordered_chunk_size;
        const auto expected = static_cast<std::size_t>(std::min<std::uint64_t>(ordered_chunk_size, length - start));
        consume(std::span<const std::byte>(state.slot_data(slot), state.bytes[slot]));
        result.bytes += state.bytes[slot];
        if (state.bytes[slot] < expected) {
            break;  // the file ended early
        }
        state.consumed.store(i + 1, std::memory_order_release);
        state.consumed.notify_all();
    }
    return result;
}

}  // namespace axds::detail
