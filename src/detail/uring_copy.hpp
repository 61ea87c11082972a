#pragma once
// Pipelined file content copies through io_uring: large chunks read and written with several in flight, for when
// copy_file_range cannot move the data in-kernel (another filesystem) or the content must be hashed on the way.
// Private to src/.

#include "sys/io.hpp"

#include <cstdint>
#include <functional>
#include <span>

namespace axds::detail {

/// Called with each chunk of the content, in file order, before it is written. Must not throw.
using chunk_observer = std::function<void(std::span<const char> chunk)>;

/// Copies `size` bytes from `offset` of `in` to the same offset of `out` (both blocking descriptors) with 4 chunks of 1
/// MiB in flight on this thread's io_uring: each chunk's read completes, `observe` sees it (in order), then its write
/// is queued. Blocking: call from a CPU-pool thread. Returns the bytes copied, or an error with `bytes` 0 (ENOSYS
/// when io_uring is unavailable: the caller falls back to read/write from the start). A short read (the file shrank
/// meanwhile) ends the copy there: the caller continues from the returned count with plain reads until end of file.
/// With `out` < 0 nothing is written: the content is only streamed to `observe` (checksums of large files).
sys::io_result uring_copy(int in, int out, std::uint64_t size, const chunk_observer& observe = {},
                          std::uint64_t offset = 0);

}  // namespace axds::detail
