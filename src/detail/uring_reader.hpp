#pragma once
// Batched whole-file reads for many small files (log entries, checksum inputs). Private to src/.

#include <cstdint>
#include <span>
#include <system_error>
#include <vector>

#include "sys/aligned_buffer.hpp"
#include "sys/io.hpp"
#include <fcntl.h>

namespace axds::detail {

/// One file to read: up to buffer.size() bytes from offset 0, with one read (io_uring's or pread): fewer bytes than
/// the buffer holds are taken as the whole file, so callers must validate the content (log entries are parsed).
struct prefix_read {
    const char* path = nullptr;  ///< relative to `dirfd` unless absolute
    int dirfd = AT_FDCWD;        ///< a directory descriptor saves the path walk to it on every open
    std::span<std::uint8_t> buffer;
    std::size_t bytes = 0;  ///< bytes read (≤ buffer.size())
    std::error_code error;  ///< why the file could not be opened or read (then `bytes` means nothing)
};

/// Opens, reads and closes every file, filling `result`. Blocking: call it from a CPU-pool thread, never from an
/// executor thread. With prefer_io_uring, uses linked OPENAT(direct) → READ → CLOSE(direct) chains, 64 files in
/// flight, on this thread's ring (sys::thread_ring); otherwise, and where io_uring or direct descriptors are
/// unavailable (or AXDS_NO_IO_URING is set), open/pread/close. Returns true if io_uring did the reads.
bool read_file_prefixes(std::span<prefix_read> reads, bool prefer_io_uring = true);

/// Reads the whole of `path` into the start of `out` with open/fstat/pread (for files larger than a prefix buffer),
/// growing `out` when the file does not fit. Returns the file's size, or the error (EIO: it shrank while read).
sys::io_result read_whole_file(const char* path, sys::aligned_buffer& out);

}  // namespace axds::detail
