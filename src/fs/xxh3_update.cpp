#include "fs/xxh3_update.hpp"

#include <xxhash.h>

namespace axds::detail {
namespace {

using update_fn = void (*)(void*, const void*, std::size_t) noexcept;

void update_sse2(void* state, const void* data, std::size_t size) noexcept {
    (void)XXH3_128bits_update(static_cast<XXH3_state_t*>(state), data, size);
}

struct choice {
    update_fn fn;
    const char* isa;
};

choice choose() noexcept {
#if defined(__x86_64__) && defined(AXDS_XXH3_VECTOR_KERNELS)
    // libgcc's CPU model checks the OS enables the registers too (XGETBV), as xxhash's own dispatcher does.
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") != 0) {
        return {xxh3_128_update_avx512, "avx512"};
    }
    if (__builtin_cpu_supports("avx2") != 0) {
        return {xxh3_128_update_avx2, "avx2"};
    }
#endif
    return {update_sse2, "sse2"};
}

const choice& chosen() noexcept {
    static const choice c = choose();
    return c;
}

}  // namespace

void xxh3_128_update(void* state, const void* data, std::size_t size) noexcept {
    chosen().fn(state, data, size);
}

const char* xxh3_update_isa() noexcept {
    return chosen().isa;
}

}  // namespace axds::detail
