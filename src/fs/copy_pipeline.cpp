#include "fs/copy_pipeline.hpp"

#include "sys/aligned_buffer.hpp"
#include "sys/io.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>

#include <unistd.h>

namespace axds::detail {

namespace {

/// The destination side of the pipeline: reads back and hashes the ranges the copying thread publishes, in order,
/// until it finishes.
class chunk_follower {
public:
    chunk_follower(int out, file_hasher& destination) : out_(out), destination_(destination) {}

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
            const sys::io_result n = sys::pread_full(out_, buffer.data(), piece, static_cast<off_t>(from));
            if (n.error) {
                error_ = n.error.value();
                return false;
            }
            destination_.update(buffer.data(), n.bytes);
            from += piece;
        }
        return true;
    }

    int out_;
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

}  // namespace

bool kernel_refuses_copy(int error) noexcept {
    return error == EXDEV || error == ENOSYS || error == EINVAL || error == EOPNOTSUPP;
}

pipelined_copy copy_and_hash(int in, int out, pipeline_hashers hashers, std::size_t chunk,
                             const std::function<void(std::uint64_t)>& after_chunk) {
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
