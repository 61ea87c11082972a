#pragma once
// The verified copy of a large file, with both hashes overlapping the copy instead of following it: either in-kernel
// (copy_file_range, while helper threads hash the source and read the copy back) or, where the kernel refuses that
// (another filesystem), through a ring of buffers (each chunk read once, hashed from the buffer and written, then
// read back from the destination by a helper thread). Private to src/.

#include "fs/file_digest.hpp"
#include "sys/io.hpp"
#include "sys/unique_fd.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>

#include <sys/types.h>

namespace axds::detail {

/// Whether `fd` is on a filesystem of this machine's own (ext4, XFS, btrfs, tmpfs, ... by magic number): false on
/// network and FUSE filesystems, where other machines write too and closing a file may report write-back errors,
/// and when it cannot be told.
[[nodiscard]] bool on_local_filesystem(int fd) noexcept;

/// Whether another process can have changed a file while a pipelined copy read it back. The read-back digests what
/// the copy held as each range was written, and the copy's times are set to the source's afterwards, so a write by
/// anyone else during the copy would go unseen. Set up right after the copy's temporary file is created, it watches
/// that inode for opens by anyone (inotify IN_OPEN: writing a file's bytes needs an open, wherever the name or link
/// it comes by); a truncation by name needs none, but leaves a hole once the copy writes past it (untouched()
/// checks the blocks).
class copy_watch {
public:
    explicit copy_watch(int fd) noexcept;
    ~copy_watch();
    copy_watch(const copy_watch&) = delete;
    copy_watch& operator=(const copy_watch&) = delete;

    /// True when the watch was set, nobody opened the file since, and it has the blocks its size needs. False also
    /// whenever that cannot be told (no inotify): the caller then reads the copy again.
    [[nodiscard]] bool untouched() const noexcept;

private:
    int fd_;
    int inotify_ = -1;
};

/// Reads a file's bytes back through a pipe: splice moves references to the page-cache pages into the pipe and a read
/// copies them out. Reading back a copy while it is being written, this left the copy itself faster than `pread` did
/// on tmpfs (bench/README.md, session 19). Where the kernel refuses to splice from the file, `pread` instead.
/// One thread at a time.
class read_back {
public:
    /// `splice`: false reads with pread only (tests compare both ways).
    explicit read_back(int fd, bool splice = true) noexcept : fd_(fd), splice_(splice) {}

    /// As sys::pread_full: `size` bytes from `offset` into `buffer`, fewer at end of file, or an error.
    sys::io_result read(void* buffer, std::size_t size, off_t offset) noexcept;

    /// True while reads go through the pipe (false once the kernel refused, or when asked).
    [[nodiscard]] bool spliced() const noexcept { return splice_; }

private:
    bool open_pipe() noexcept;
    void give_up() noexcept;

    int fd_;
    bool splice_;
    sys::unique_fd pipe_read_;
    sys::unique_fd pipe_write_;
    std::size_t capacity_ = 0;  ///< bytes one splice may move into the (empty) pipe
};

/// copy_file_range refused the copy itself (another filesystem, no support): the content must move through buffers.
[[nodiscard]] bool kernel_refuses_copy(int error) noexcept;

/// Bytes per copy_file_range call of a pipelined copy (see bench/README.md for the sizes measured).
inline constexpr std::size_t pipeline_chunk_size = std::size_t{16} << 20;

/// Bytes per chunk of a copy through buffers, and the number of chunk buffers in its ring.
inline constexpr std::size_t ring_chunk_size = std::size_t{1} << 20;
inline constexpr std::size_t ring_slots = 4;

/// How a verified copy moves the bytes.
enum class copy_method {
    kernel,   ///< copy_file_range (the kernel may share extents or copy on a server); the source is read again to hash
    buffers,  ///< through a ring of page-aligned buffers: the source is read once, for the copy and its hash
};

/// What copy_and_hash did.
struct pipelined_copy {
    int error = 0;             ///< 0 or an errno (of the copy, or of a read for hashing)
    std::uint64_t copied = 0;  ///< bytes copied
    bool in_kernel = true;     ///< false: the kernel refused copy_file_range before any byte moved (nothing hashed)
    /// The destination's size differed from the bytes written so far before a later chunk was written: another
    /// process truncated (or extended) it by name, which needs no open. The read-back must not be trusted.
    bool resized = false;
};

/// The hashers of a pipelined copy, both started by the caller (`source` may be null: only the copy is verified;
/// `destination` may not).
struct pipeline_hashers {
    file_hasher* source = nullptr;
    file_hasher* destination = nullptr;
};

/// Copies `in` (from its offset 0) to `out` (opened for reading and writing, empty) until the source's end, by
/// `method`. Buffers: this thread reads each `chunk` of the source into a free buffer of the ring and writes it to
/// `out`; a helper thread hashes the buffer into `hashers.source` (which frees it) and, once written, reads the range
/// back from `out` into `hashers.destination`. Kernel: copy_file_range calls of `chunk` bytes; once the first chunk
/// is copied, two helper threads run along: one reads the source from its start to its end and feeds
/// `hashers.source` (independent of the copy), the other follows the copy, reading each copied range back from `out`
/// (1 MiB at a time, still in the page cache) into `hashers.destination`. Either way `destination` digests what the
/// destination file holds after the write, over the whole file. The source is hashed to its end, so a source that grew
/// meanwhile digests differently from its copy (verification then fails). Without threads to be had, the hashing runs
/// on this thread (kernel: after the copy). `after_chunk(copied)` (tests only) runs on this thread after each chunk is
/// copied and before the destination's hashing may read it back. Only the kernel method can report `in_kernel == false`
/// (refused, nothing done).
pipelined_copy copy_and_hash(int in, int out, pipeline_hashers hashers, copy_method method, std::size_t chunk,
                             const std::function<void(std::uint64_t copied)>& after_chunk = {});

}  // namespace axds::detail
