#include "fs/xxh3_update.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <xxhash.h>

namespace {

using update_fn = void (*)(void*, const void*, std::size_t) noexcept;

/// XXH3-128 of `data` fed to `update` in pieces of `piece` bytes (the last one shorter), canonical big-endian bytes.
std::string streamed(update_fn update, const std::vector<std::uint8_t>& data, std::size_t piece) {
    const std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(), &XXH3_freeState);
    REQUIRE(state != nullptr);
    REQUIRE(XXH3_128bits_reset(state.get()) == XXH_OK);
    for (std::size_t at = 0; at < data.size(); at += piece) {
        update(state.get(), data.data() + at, std::min(piece, data.size() - at));
    }
    XXH128_canonical_t canonical;
    XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(state.get()));
    return {reinterpret_cast<const char*>(canonical.digest), sizeof(canonical.digest)};
}

std::string one_shot(const std::vector<std::uint8_t>& data) {
    XXH128_canonical_t canonical;
    XXH128_canonicalFromHash(&canonical, XXH3_128bits(data.data(), data.size()));
    return {reinterpret_cast<const char*>(canonical.digest), sizeof(canonical.digest)};
}

}  // namespace

TEST_CASE("every XXH3 vector kernel gives libxxhash's digest, whatever the sizes it is fed", "[fs]") {
    std::vector<std::pair<const char*, update_fn>> kernels{{"dispatched", axds::detail::xxh3_128_update}};
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") != 0) {
        kernels.emplace_back("avx2", axds::detail::xxh3_128_update_avx2);
    }
    if (__builtin_cpu_supports("avx512f") != 0) {
        kernels.emplace_back("avx512", axds::detail::xxh3_128_update_avx512);
    }
#endif
    INFO("the dispatcher chose " << axds::detail::xxh3_update_isa());
    std::mt19937_64 random(1234);
    // Around XXH3's internal edges: 16/128/240-byte short paths, the 64-byte stripe, the 1 KiB block, the 256-byte
    // internal buffer of the streaming state, and large inputs.
    const std::vector<std::size_t> sizes{0,   1,   15,  16,  17,   127,  128,  129,  239,   240,
                                         241, 255, 256, 257, 1023, 1024, 1025, 4096, 65543, 1U << 20U};
    for (const std::size_t size : sizes) {
        std::vector<std::uint8_t> data(size);
        for (auto& b : data) {
            b = static_cast<std::uint8_t>(random());
        }
        const std::string expected = one_shot(data);
        for (const auto& [name, update] : kernels) {
            for (const std::size_t piece : {std::size_t{1}, std::size_t{63}, std::size_t{64}, std::size_t{1000},
                                            std::size_t{65536}, size == 0 ? std::size_t{1} : size}) {
                if (piece == 1 && size > 4096) {
                    continue;  // byte by byte through 1 MiB adds time, not coverage
                }
                INFO(name << ": " << size << " bytes in pieces of " << piece);
                CHECK(streamed(update, data, piece) == expected);
            }
        }
    }
}
