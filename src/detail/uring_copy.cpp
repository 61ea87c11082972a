#include "detail/uring_copy.hpp"

#include <axds/core/runtime.hpp>

#include "detail/uring_sqe.hpp"
#include "sys/aligned_buffer.hpp"

#include <liburing.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <memory>

namespace axds::detail {

namespace {

constexpr unsigned depth = 4;
constexpr std::size_t chunk = std::size_t{1} << 20;
static_assert(chunk % sys::buffer_alignment == 0);

/// One ring and its buffers per pool thread, created on first use and reused for every copy on that thread.
class copy_ring {
public:
    copy_ring() {
        // AXDS_NO_IO_URING=1 forces the plain path (for comparisons and for sandboxes that break io_uring).
        if (!io_uring_available() || std::getenv("AXDS_NO_IO_URING") != nullptr) {  // NOLINT(concurrency-mt-unsafe)
            return;
        }
        ready_ = io_uring_queue_init(depth * 2, &ring_, 0) == 0;
        if (ready_) {
            buffers_ = sys::aligned_buffer(depth * chunk);  // uninitialized: every byte is read into before use
        }
    }

    ~copy_ring() {
        if (ready_) {
            io_uring_queue_exit(&ring_);
        }
    }

    copy_ring(const copy_ring&) = delete;
    copy_ring& operator=(const copy_ring&) = delete;

    [[nodiscard]] bool ready() const noexcept { return ready_; }

    std::int64_t copy(int in, int out, std::uint64_t offset, std::uint64_t size, const chunk_observer& observe);

private:
    enum class stage : std::uint8_t { idle, reading, read, writing };

    struct slot {
        stage state = stage::idle;
        std::uint64_t index = 0;  ///< chunk number
        std::size_t length = 0;   ///< bytes expected (read) or held (written)
    };

    struct transfer;

    // Each chunk starts on a page: the buffers start on one and chunk is a multiple of the page size.
    char* buffer(unsigned s) { return buffers_.as<char>().data() + static_cast<std::size_t>(s) * chunk; }

    io_uring ring_{};
    bool ready_ = false;
    sys::aligned_buffer buffers_;
};

/// One copy's state: reads go out for the first `depth` chunks; each slot then cycles read → (observe, in file order)
/// → write → read.
struct copy_ring::transfer {
    copy_ring& ring;
    int in;
    int out;
    std::uint64_t offset;
    std::uint64_t size;
    const chunk_observer& observe;
    std::array<slot, depth> slots{};
    std::uint64_t next_read = 0;   ///< next chunk to read
    std::uint64_t next_write = 0;  ///< next chunk to observe and write (file order)
    std::uint64_t end = 0;         ///< chunks in the file; lowered when the file turns out shorter
    std::uint64_t copied = 0;
    int error = 0;
    unsigned in_flight = 0;

    void queue_read(unsigned s) {
        slot& sl = slots[s];
        sl.state = stage::reading;
        sl.index = next_read++;
        sl.length = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, size - sl.index * chunk));
        io_uring_sqe* e = next_sqe(ring.ring_);
        io_uring_prep_read(e, in, ring.buffer(s), static_cast<unsigned>(sl.length), offset + sl.index * chunk);
        io_uring_sqe_set_data64(e, s);
        ++in_flight;
    }

    void queue_write(unsigned s) {
        slot& sl = slots[s];
        if (out < 0) {  // read-only stream: the slot is free again at once
            copied += sl.length;
            sl.state = stage::idle;
            if (next_read < end) {
                queue_read(s);
            }
            return;
        }
        sl.state = stage::writing;
        io_uring_sqe* e = next_sqe(ring.ring_);
        io_uring_prep_write(e, out, ring.buffer(s), static_cast<unsigned>(sl.length), offset + sl.index * chunk);
        io_uring_sqe_set_data64(e, s);
        ++in_flight;
    }

    /// Slot `s`'s operation finished with `res`.
    void complete(unsigned s, int res) {
        --in_flight;
        slot& sl = slots[s];
        if (sl.state == stage::reading) {
            if (res < 0) {
                error = error == 0 ? -res : error;
                sl.state = stage::idle;
                return;
            }
            if (static_cast<std::size_t>(res) < sl.length) {
                // Short read: the file ends here (it shrank) — or a rare partial read, finished by the caller.
                sl.length = static_cast<std::size_t>(res);
                end = std::min(end, sl.index + 1);
            }
            sl.state = stage::read;
        } else if (sl.state == stage::writing) {
            if (res < 0 || static_cast<std::size_t>(res) != sl.length) {
                error = error == 0 ? (res < 0 ? -res : EIO) : error;
            } else {
                copied += sl.length;
            }
            sl.state = stage::idle;
            if (error == 0 && next_read < end) {
                queue_read(s);
            }
        }
    }

    /// Observes and writes the chunks that are next in file order; drops chunks read past a shortened end.
    void pass_on_in_order() {
        bool progressed = true;
        while (error == 0 && progressed) {
            progressed = false;
            for (unsigned s = 0; s < depth; ++s) {
                if (slots[s].state == stage::read && slots[s].index == next_write) {
                    if (observe) {
                        observe(std::span<const char>(ring.buffer(s), slots[s].length));
                    }
                    queue_write(s);
                    ++next_write;
                    progressed = true;
                }
            }
        }
        for (auto& sl : slots) {
            if (sl.state == stage::read && sl.index >= end) {
                sl.state = stage::idle;
            }
        }
    }
};

std::int64_t copy_ring::copy(int in, int out, std::uint64_t offset, std::uint64_t size, const chunk_observer& observe) {
    transfer t{.ring = *this, .in = in, .out = out, .offset = offset, .size = size, .observe = observe};
    t.end = (size + chunk - 1) / chunk;
    for (unsigned s = 0; s < depth && t.next_read < t.end; ++s) {
        t.queue_read(s);
    }
    while (t.in_flight > 0) {
        const int rc = io_uring_submit_and_wait(&ring_, 1);
        if (rc < 0 && rc != -EINTR) {
            // The ring itself failed: retire it for good (tearing it down cancels what is in flight; the buffers are
            // never handed out again), and let the caller copy with plain reads.
            io_uring_queue_exit(&ring_);
            ready_ = false;
            return rc;
        }
        io_uring_cqe* cqe = nullptr;
        unsigned head = 0;
        unsigned seen = 0;
        io_uring_for_each_cqe(&ring_, head, cqe) {
            ++seen;
            t.complete(static_cast<unsigned>(io_uring_cqe_get_data64(cqe)), cqe->res);
        }
        io_uring_cq_advance(&ring_, seen);
        t.pass_on_in_order();
    }
    return t.error != 0 ? -t.error : static_cast<std::int64_t>(t.copied);
}

}  // namespace

std::int64_t uring_copy(int in, int out, std::uint64_t size, const chunk_observer& observe, std::uint64_t offset) {
    thread_local copy_ring ring;
    if (!ring.ready()) {
        return -ENOSYS;
    }
    if (size == 0) {
        return 0;
    }
    return ring.copy(in, out, offset, size, observe);
}

}  // namespace axds::detail
