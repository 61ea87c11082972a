#pragma once
// The fast path of npy_u1_payload (private to src/, visible to the tests): every log entry's header, recognised
// without building a dictionary.

#include <cstddef>
#include <cstdint>
#include <span>

namespace axds::detail {

/// The data offset (128) when `bytes` starts with exactly the header np.save (and encode_npy_u1_header) writes for a
/// 1-D uint8 array — `{'descr': '|u1', 'fortran_order': False, 'shape': (N,), }`, space-padded to 128 bytes, N in
/// decimal without leading zeros — and exactly N bytes follow it; 0 for anything else (the generic parser then
/// decides, and names the problem if there is one).
[[nodiscard]] std::size_t npy_canonical_u1_offset(std::span<const std::uint8_t> bytes) noexcept;

}  // namespace axds::detail
