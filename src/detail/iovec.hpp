#pragma once
// Partial vectored writes (writev, sendmsg). Private to src/.

#include <cstddef>
#include <cstdint>

#include <sys/uio.h>

namespace axds::detail {

/// After a vectored write took `n` bytes: drops the iovecs it finished from the front (`first`, `count`) and trims
/// the one it stopped inside, so the next call continues where this one ended.
template <typename Count>
void advance_iovecs(iovec*& first, Count& count, std::size_t n) noexcept {
    while (count > 0 && n >= first->iov_len) {
        n -= first->iov_len;
        ++first;
        --count;
    }
    if (count > 0) {
        first->iov_base = static_cast<std::uint8_t*>(first->iov_base) + n;
        first->iov_len -= n;
    }
}

}  // namespace axds::detail
