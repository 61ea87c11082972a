// Compiled with -mavx2 (CMakeLists.txt): xxhash.h picks its AVX2 kernel at preprocessing time.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "fs/xxh3_update.hpp"

namespace axds::detail {

void xxh3_128_update_avx2(void* state, const void* data, std::size_t size) noexcept {
    // The inline build's state type has another name but the same layout as the library's (one header).
    (void)XXH3_128bits_update(static_cast<XXH3_state_t*>(state), data, size);
}

}  // namespace axds::detail
