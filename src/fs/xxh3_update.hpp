#pragma once

#include <cstddef>

namespace axds::detail {

/// XXH3-128 streaming update (`XXH3_128bits_update`) on `state` (an `XXH3_state_t*` made and reset by libxxhash)
/// with the widest vector unit this CPU and its OS support: AVX-512, AVX2, else the library's SSE2 build. What
/// libxxhash's `XXH3_128bits_update_dispatch` does, which the shared library exports but its static archive lacks
/// (the static `axds` command, AXDS_STATIC_CLI): the vector kernels are xxhash.h's own code, compiled inline in one
/// file per instruction set (xxh3_update_avx2.cpp, xxh3_update_avx512.cpp). The digest is the same on every path.
void xxh3_128_update(void* state, const void* data, std::size_t size) noexcept;

/// The vector unit xxh3_128_update chose: "avx512", "avx2" or "sse2" (benchmark tables print it).
const char* xxh3_update_isa() noexcept;

// One per instruction set, each in a file compiled for it; called only when the CPU has it.
void xxh3_128_update_avx2(void* state, const void* data, std::size_t size) noexcept;
void xxh3_128_update_avx512(void* state, const void* data, std::size_t size) noexcept;

}  // namespace axds::detail
