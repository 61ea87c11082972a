#include "detail/uring_copy.hpp"

#include "sys/aligned_buffer.hpp"
#include "sys/error.hpp"
#include "sys/uring.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <system_error>

namespace axds::detail {

namespace {

constexpr unsigned depth = 4;
constexpr std::size_t chunk = std::size_t{1} << 20;
static_assert(chunk % sys::buffer_alignment == 0);

/// This thread's copy buffers (`depth` chunks), made on first use and reused for every copy on the thread.
char* thread_buffers() {
    // uninitialized: every byte is read into before use
    thread_local sys::aligned_buffer buffers(depth * chunk);
    return buffers.as<char>().data();
}

/// One copy's state: reads go out for the first `depth` chunks; each slot then cycles read → (observe, in file order)
/// → write → read.
struct transfer {
    enum class stage : std::uint8_t { idle, reading, read, writing };

    struct slot {
        stage state = stage::idle;
        std::uint64_t index = 0;  ///< chunk number
        std::size_t length = 0;   ///< bytes expected (read) or held (written)
    };

    sys::uring& ring;
    char* buffers;
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
    std::error_code error;
    unsigned in_flight = 0;

    void queue_read(unsigned s) {
        slot& sl = slots[s];
        sl.state = stage::reading;
        sl.index = next_read++;
        sl.length = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, size - sl.index * chunk));
        io_uring_sqe* e = ring.sqe();
        io_uring_prep_read(e, in, buffer(s), static_cast<unsigned>(sl.length), offset + sl.index * chunk);
        sys::set_tag(e, s, sys::op::read);
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
        io_uring_sqe* e = ring.sqe();
        io_uring_prep_write(e, out, buffer(s), static_cast<unsigned>(sl.length), offset + sl.index * chunk);
        sys::set_tag(e, s, sys::op::write);
        ++in_flight;
    }

    // Each chunk starts on a page: the buffers start on one and chunk is a multiple of the page size.
    [[nodiscard]] char* buffer(unsigned s) const { return buffers + static_cast<std::size_t>(s) * chunk; }

    /// A slot's read or write finished.
    void complete(const sys::completion& c) {
        --in_flight;
        slot& sl = slots[c.index];
        if (c.kind == sys::op::read) {
            if (c.error()) {
                error = error ? error : c.error();
                sl.state = stage::idle;
                return;
            }
            if (c.bytes() < sl.length) {
                // Short read: the file ends here (it shrank) — or a rare partial read, finished by the caller.
                sl.length = c.bytes();
                end = std::min(end, sl.index + 1);
            }
            sl.state = stage::read;
        } else {
            if (c.error() || c.bytes() != sl.length) {
                error = error ? error : (c.error() ? c.error() : sys::errno_code(EIO));
            } else {
                copied += sl.length;
            }
            sl.state = stage::idle;
            if (!error && next_read < end) {
                queue_read(static_cast<unsigned>(c.index));
            }
        }
    }

    /// Observes and writes the chunks that are next in file order; drops chunks read past a shortened end.
    void pass_on_in_order() {
        bool progressed = true;
        while (!error && progressed) {
            progressed = false;
            for (unsigned s = 0; s < depth; ++s) {
                if (slots[s].state == stage::read && slots[s].index == next_write) {
                    if (observe) {
                        observe(std::span<const char>(buffer(s), slots[s].length));
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

}  // namespace

sys::io_result uring_copy(int in, int out, std::uint64_t size, const chunk_observer& observe, std::uint64_t offset) {
    sys::uring* ring = sys::thread_ring();
    if (ring == nullptr) {
        return {.bytes = 0, .error = sys::errno_code(ENOSYS)};
    }
    if (size == 0) {
        return {};
    }
    transfer t{.ring = *ring,
               .buffers = thread_buffers(),
               .in = in,
               .out = out,
               .offset = offset,
               .size = size,
               .observe = observe};
    t.end = (size + chunk - 1) / chunk;
    for (unsigned s = 0; s < depth && t.next_read < t.end; ++s) {
        t.queue_read(s);
    }
    while (t.in_flight > 0) {
        // A failure of the ring itself retires it (the buffers are never handed to it again): the caller copies with
        // plain reads.
        if (const std::error_code ec = ring->submit_and_reap([&t](const sys::completion& c) { t.complete(c); })) {
            return {.bytes = 0, .error = ec};
        }
        t.pass_on_in_order();
    }
    if (t.error) {
        return {.bytes = 0, .error = t.error};
    }
    return {.bytes = static_cast<std::size_t>(t.copied), .error = {}};
}

}  // namespace axds::detail
