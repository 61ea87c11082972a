#include "fs/copy_pipeline.hpp"

#include "sys/aligned_buffer.hpp"
#include "sys/io.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <new>
#include <string>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <limits.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

namespace axds::detail {

namespace {

/// Whether the file open as `fd` is `size` bytes long (false when that cannot be told).
bool size_is(int fd, std::uint64_t size) noexcept {
    struct stat st {};

    return ::fstat(fd, &st) == 0 && static_cast<std::uint64_t>(st.st_size) == size;
}

/// The destination side of the pipeline: reads back and hashes the ranges the copying thread publishes, in order,
/// until it finishes.
class chunk_follower {
public:
    chunk_follower(int out, file_hasher& destination) : reader_(out), destination_(destination) {}

    /// Copier: the first `copied` bytes of the destination are written.
    void publish(std::uint64_t copied) {
        {
            const std::lock_guard lock(mutex_);
            copied_ = copied;
        }
        ready_.notify_one();
    }

    /// Copier: no more chunks. `failed`: the copy failed, so hashing stops where it is.
    void finish(bool failed) {
        {
            const std::lock_guard lock(mutex_);
            done_ = true;
            failed_ = failed;
        }
        ready_.notify_one();
    }

    /// The hashing thread's body (or the copier's, after the copy, when no thread could be started).
    void run() noexcept {
        try {
            sys::aligned_buffer buffer(read_chunk_size);
            std::uint64_t hashed = 0;
            for (;;) {
                std::unique_lock lock(mutex_);
                ready_.wait(lock, [&] { return copied_ > hashed || done_; });
                const std::uint64_t target = copied_;
                const bool done = done_;
                const bool failed = failed_;
                lock.unlock();
                if (failed) {
                    return;
                }
                if (target == hashed && done) {
                    break;
                }
                if (!hash_range(buffer, hashed, target)) {
                    return;
                }
                hashed = target;
            }
        } catch (const std::bad_alloc&) {
            error_ = ENOMEM;
        }
    }

    /// 0 or the errno of a read. Read after run() returned.
    [[nodiscard]] int error() const noexcept { return error_; }

private:
    /// Destination bytes [from, to) read back and hashed, piece by piece. False on a read error.
    bool hash_range(const sys::aligned_buffer& buffer, std::uint64_t from, std::uint64_t to) {
        while (from < to) {
            const auto piece = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), to - from));
            // Fewer bytes where the file ends early: the digest then differs from the source's.
            const sys::io_result n = reader_.read(buffer.data(), piece, static_cast<off_t>(from));
            if (n.error) {
                error_ = n.error.value();
                return false;
            }
            destination_.update(buffer.data(), n.bytes);
            from += piece;
        }
        return true;
    }

    read_back reader_;
    file_hasher& destination_;
    std::mutex mutex_;
    std::condition_variable ready_;
    std::uint64_t copied_ = 0;
    bool done_ = false;
    bool failed_ = false;
    int error_ = 0;
};

/// The source side, on its own thread: the source read from offset 0 to its end and hashed, independently of the
/// copy (reading the source needs nothing the copy does), until `abort` is raised (the copy failed).
class source_reader {
public:
    source_reader(int in, file_hasher* hasher, const std::atomic<bool>& abort)
        : in_(in), hasher_(hasher), abort_(abort) {}

    void run() noexcept {
        try {
            const sys::aligned_buffer buffer(read_chunk_size);
            for (std::uint64_t offset = 0; !abort_.load(std::memory_order_relaxed);) {
                const sys::io_result n = sys::pread_full(in_, buffer.data(), buffer.size(), static_cast<off_t>(offset));
                if (n.error) {
                    error_ = n.error.value();
                    return;
                }
                if (n.bytes == 0) {
                    return;
                }
                hasher_->update(buffer.data(), n.bytes);
                offset += n.bytes;
            }
        } catch (const std::bad_alloc&) {
            error_ = ENOMEM;
        }
    }

    /// 0 or the errno of a read. Read after run() returned.
    [[nodiscard]] int error() const noexcept { return error_; }

private:
    int in_;
    file_hasher* hasher_;
    const std::atomic<bool>& abort_;
    int error_ = 0;
};

/// The copy through buffers (copy_method::buffers). The copier (the calling thread) reads chunk i of the source into
/// slot i % ring_slots and writes it to the destination; the follower hashes the slot into the source hasher, which
/// frees it, then reads the written range back from the destination into the destination hasher. Used where the
/// kernel refuses copy_file_range (another filesystem): before it, such a copy hashed its source while copying and
/// read the whole copy back after it (bench/README.md has both).
class ring_pipeline {
public:
    ring_pipeline(int in, int out, pipeline_hashers hashers, std::size_t chunk)
        : in_(in), out_(out), reader_(out), hashers_(hashers), chunk_(chunk) {
        for (auto& s : slots_) {
            s.data = sys::aligned_buffer(chunk);
        }
    }

    /// The copier's part, on the calling thread; `inline_follow`: no helper thread, so each chunk is also hashed
    /// and read back here, right after it is written.
    void copy(pipelined_copy& result, bool inline_follow, const std::function<void(std::uint64_t)>& after_chunk) {
        sys::aligned_buffer back;  // the read-back buffer when following inline
        for (std::uint64_t i = 0;; ++i) {
            if (i >= ring_slots && !inline_follow) {  // slot i % ring_slots holds chunk i - ring_slots until freed
                wait_until([&] { return freed_.load() > i - ring_slots || failed_.load(); });
            }
            if (failed_.load()) {
                break;  // the follower's read failed: its error is the result
            }
            chunk_slot& s = slots_[i % ring_slots];
            const sys::io_result n = sys::pread_full(in_, s.data.data(), chunk_, static_cast<off_t>(result.copied));
            if (n.error || n.bytes == 0) {
                result.error = n.error.value();
                break;
            }
            s.offset = result.copied;
            s.length = n.bytes;
            publish(read_, i + 1);
            result.resized = result.resized || !size_is(out_, result.copied);
            const sys::io_result w = sys::pwrite_full(out_, s.data.data(), n.bytes, static_cast<off_t>(s.offset));
            if (w.error) {
                result.error = w.error.value();
                break;
            }
            result.copied += n.bytes;
            if (after_chunk) {
                after_chunk(result.copied);
            }
            publish(written_, i + 1);
            if (inline_follow && !follow_chunk(i, back)) {
                break;
            }
        }
        finished_.store(true);
        if (result.error != 0) {
            failed_.store(true);
        }
        signal();
    }

    /// The follower's part, on the helper thread: every chunk the copier publishes, in order, until it finishes.
    void follow() noexcept {
        try {
            sys::aligned_buffer back(chunk_);
            for (std::uint64_t i = 0;; ++i) {
                wait_until([&] { return read_.load() > i || finished_.load(); });
                if (read_.load() <= i || !follow_chunk(i, back)) {
                    return;
                }
            }
        } catch (const std::bad_alloc&) {
            fail(ENOMEM);
        }
    }

    /// 0 or the errno of a read back. Read after follow() returned.
    [[nodiscard]] int error() const noexcept { return error_; }

private:
    struct chunk_slot {
        sys::aligned_buffer data;
        std::uint64_t offset = 0;  ///< of the chunk in the files
        std::size_t length = 0;
    };

    /// Chunk i (read by the copier) hashed from its slot, the slot freed, then, once written, read back. False when
    /// the copy failed or a read back did.
    bool follow_chunk(std::uint64_t i, sys::aligned_buffer& back) {
        const chunk_slot& s = slots_[i % ring_slots];
        const std::uint64_t offset = s.offset;
        const std::size_t length = s.length;
        if (hashers_.source != nullptr) {
            hashers_.source->update(s.data.data(), length);
        }
        publish(freed_, i + 1);
        wait_until([&] { return written_.load() > i || failed_.load(); });
        if (written_.load() <= i) {
            return false;  // the copier failed writing it
        }
        if (back.size() == 0) {
            back = sys::aligned_buffer(chunk_);
        }
        // Fewer bytes where the file ends early (another process truncated it): the digest then differs.
        const sys::io_result n = reader_.read(back.data(), length, static_cast<off_t>(offset));
        if (n.error) {
            fail(n.error.value());
            return false;
        }
        hashers_.destination->update(back.data(), n.bytes);
        return true;
    }

    void fail(int error) noexcept {
        error_ = error;
        failed_.store(true);
        signal();
    }

    void publish(std::atomic<std::uint64_t>& counter, std::uint64_t value) noexcept {
        counter.store(value);
        signal();
    }

    void signal() noexcept {
        progress_.fetch_add(1);
        progress_.notify_all();
    }

    template <typename Predicate>
    void wait_until(Predicate done) noexcept {
        for (;;) {
            const std::uint32_t seen = progress_.load();
            if (done()) {
                return;
            }
            progress_.wait(seen);
        }
    }

    int in_;
    int out_;
    read_back reader_;  ///< of out_, by whichever thread follows
    pipeline_hashers hashers_;
    std::size_t chunk_;
    std::array<chunk_slot, ring_slots> slots_;
    std::atomic<std::uint64_t> read_{0};      ///< chunks read into the ring
    std::atomic<std::uint64_t> written_{0};   ///< chunks written to the destination
    std::atomic<std::uint64_t> freed_{0};     ///< chunks whose slot the follower is done with
    std::atomic<bool> finished_{false};       ///< the copier publishes no more chunks
    std::atomic<bool> failed_{false};         ///< the copy or a read back failed: both sides stop
    std::atomic<std::uint32_t> progress_{0};  ///< bumped at every change of the above: what a waiter sleeps on
    int error_ = 0;
};

pipelined_copy ring_copy_and_hash(int in, int out, pipeline_hashers hashers, std::size_t chunk,
                                  const std::function<void(std::uint64_t)>& after_chunk) {
    pipelined_copy result;
    ring_pipeline pipeline(in, out, hashers, chunk);
    std::thread follower;
    try {
        follower = std::thread([&pipeline] { pipeline.follow(); });
    } catch (const std::system_error&) {
        // No thread to be had: each chunk is hashed and read back on this thread.
    }
    pipeline.copy(result, !follower.joinable(), after_chunk);
    if (follower.joinable()) {
        follower.join();
    }
    if (result.error == 0) {
        result.error = pipeline.error();
    }
    return result;
}

}  // namespace

bool on_local_filesystem(int fd) noexcept {
    constexpr std::array<std::uint32_t, 12> local{
        0xEF53,      // ext2/3/4
        0x58465342,  // XFS
        0x9123683E,  // btrfs
        0x01021994,  // tmpfs
        0xF2F52010,  // f2fs
        0x2FC12FC1,  // ZFS
        0xCA451A4E,  // bcachefs
        0x3153464A,  // JFS
        0x52654973,  // reiserfs
        0x4D44,      // FAT
        0x2011BAB0,  // exFAT
        0x858458F6,  // ramfs
    };

    struct statfs info {};

    return ::fstatfs(fd, &info) == 0 &&
           std::find(local.begin(), local.end(), static_cast<std::uint32_t>(info.f_type)) != local.end();
}

copy_watch::copy_watch(int fd) noexcept : fd_(fd) {
    // inotify sees the opens made on this machine only: on a network or FUSE filesystem another client's (or the
    // server's) write would go unseen, so there the copy is always read again.
    if (!on_local_filesystem(fd)) {
        return;
    }
    inotify_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (inotify_ < 0) {
        return;
    }
    // Through /proc/self/fd: the watch is on this very inode, whatever the name holds by now.
    std::array<char, 40> link{};
    (void)std::snprintf(link.data(), link.size(), "/proc/self/fd/%d", fd);
    if (::inotify_add_watch(inotify_, link.data(), IN_OPEN) < 0) {
        ::close(inotify_);
        inotify_ = -1;
    }
}

copy_watch::~copy_watch() {
    if (inotify_ >= 0) {
        ::close(inotify_);
    }
}

bool copy_watch::untouched() const noexcept {
    if (inotify_ < 0) {
        return false;
    }
    alignas(inotify_event) std::array<char, sizeof(inotify_event) + NAME_MAX + 1> event{};
    if (::read(inotify_, event.data(), event.size()) >= 0 || errno != EAGAIN) {
        return false;  // an open by someone (or a queue overflow, or an error: nothing can be told)
    }

    struct stat st {};

    // A hole: fewer 512-byte blocks than the size needs (also true of a compressing filesystem: read again there).
    return ::fstat(fd_, &st) == 0 && st.st_blocks * 512 >= st.st_size;
}

bool read_back::open_pipe() noexcept {
    std::array<int, 2> ends{-1, -1};
    if (::pipe2(ends.data(), O_CLOEXEC) != 0) {
        return false;
    }
    pipe_read_.reset(ends[0]);
    pipe_write_.reset(ends[1]);
    // As large as a read-back chunk when allowed (1 MiB is the default limit for users), else what the pipe has.
    (void)::fcntl(pipe_write_.get(), F_SETPIPE_SZ, static_cast<int>(read_chunk_size));
    const int capacity = ::fcntl(pipe_write_.get(), F_GETPIPE_SZ);
    capacity_ = capacity > 0 ? static_cast<std::size_t>(capacity) : 0;
    return capacity_ > 0;
}

void read_back::give_up() noexcept {
    splice_ = false;
    pipe_read_.reset();
    pipe_write_.reset();
}

sys::io_result read_back::read(void* buffer, std::size_t size, off_t offset) noexcept {
    if (splice_ && !pipe_write_ && !open_pipe()) {
        give_up();
    }
    auto* bytes = static_cast<char*>(buffer);
    sys::io_result result;
    while (splice_ && result.bytes < size) {
        loff_t from = offset + static_cast<off_t>(result.bytes);
        const std::size_t want = std::min(size - result.bytes, capacity_);
        // The pipe is empty before each splice, so it never blocks; NONBLOCK makes sure of it.
        const ssize_t n =
            sys::retry_eintr([&] { return ::splice(fd_, &from, pipe_write_.get(), nullptr, want, SPLICE_F_NONBLOCK); });
        if (n < 0 && (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP || errno == EAGAIN)) {
            give_up();  // this file (or kernel) does not splice: pread from here on
            break;
        }
        if (n < 0) {
            result.error = {errno, std::system_category()};
            return result;
        }
        if (n == 0) {
            return result;  // end of file
        }
        const sys::io_result drained =
            sys::read_full(pipe_read_.get(), bytes + result.bytes, static_cast<std::size_t>(n));
        result.bytes += drained.bytes;
        if (drained.error || drained.bytes != static_cast<std::size_t>(n)) {
            give_up();  // the pipe may hold the rest: never read from it again
            result.error = drained.error ? drained.error : std::error_code(EIO, std::system_category());
            return result;
        }
    }
    if (result.bytes < size) {
        const sys::io_result rest =
            sys::pread_full(fd_, bytes + result.bytes, size - result.bytes, offset + static_cast<off_t>(result.bytes));
        result.bytes += rest.bytes;
        result.error = rest.error;
    }
    return result;
}

bool kernel_refuses_copy(int error) noexcept {
    return error == EXDEV || error == ENOSYS || error == EINVAL || error == EOPNOTSUPP;
}

pipelined_copy copy_and_hash(int in, int out, pipeline_hashers hashers, copy_method method, std::size_t chunk,
                             const std::function<void(std::uint64_t)>& after_chunk) {
    if (method == copy_method::buffers) {
        return ring_copy_and_hash(in, out, hashers, chunk, after_chunk);
    }
    pipelined_copy result;
    // The destination's follower reads back what was copied; the source is hashed by a thread of its own (three
    // threads: the copy, the source's hash, the destination's hash, each about as costly: one follower doing both
    // hashes was the bound of a verified 1 GiB copy, 0.47 s against 0.31 s for the copy alone).
    chunk_follower follower(out, *hashers.destination);
    std::atomic<bool> abort_source{false};
    source_reader source(in, hashers.source, abort_source);
    std::thread source_thread;  // started with the first chunk: a refused copy must leave both hashers untouched
    std::thread helper;
    bool hash_here = false;
    for (;;) {
        result.resized = result.resized || !size_is(out, result.copied);
        const ssize_t n = sys::retry_eintr([&] { return ::copy_file_range(in, nullptr, out, nullptr, chunk, 0); });
        if (n < 0 && result.copied == 0 && kernel_refuses_copy(errno)) {
            result.in_kernel = false;  // e.g. another filesystem: the caller copies through buffers
            break;
        }
        if (n < 0) {
            result.error = errno;
        }
        if (n <= 0) {
            break;
        }
        result.copied += static_cast<std::uint64_t>(n);
        if (after_chunk) {
            after_chunk(result.copied);
        }
        follower.publish(result.copied);
        if (!helper.joinable() && !hash_here) {
            try {
                helper = std::thread([&follower] { follower.run(); });
                if (hashers.source != nullptr) {
                    source_thread = std::thread([&source] { source.run(); });
                }
            } catch (const std::system_error&) {
                hash_here = true;  // no thread to be had: hash after the copy, on this one
            }
        }
    }
    const bool failed = result.error != 0 || !result.in_kernel;
    follower.finish(failed);
    abort_source.store(failed, std::memory_order_relaxed);
    if (helper.joinable()) {
        helper.join();
    } else if (hash_here || result.copied == 0) {
        follower.run();
    }
    if (source_thread.joinable()) {
        source_thread.join();
    } else if (hashers.source != nullptr && result.in_kernel) {
        source.run();  // no thread was had (or nothing was copied: an empty source, whose growth is still hashed)
    }
    if (result.error == 0 && result.in_kernel) {
        result.error = follower.error() != 0 ? follower.error() : source.error();
    }
    return result;
}

}  // namespace axds::detail
