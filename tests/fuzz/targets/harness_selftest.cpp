// A target that misbehaves on purpose, so tests/fuzz/harness_test.py can show the driver catches each kind of failure
// (one huge allocation, unbounded growth, a hang, a wild write, a bare std:: exception). Never fuzzed.

#include "fuzz_target.hpp"

#include <chrono>
#include <cstring>
#include <list>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <vector>

#include <sys/mman.h>

namespace axds::fuzz {
namespace {

outcome one_input(std::span<const std::uint8_t> input) {
    const std::string_view what(reinterpret_cast<const char*>(input.data()), input.size());
    if (what == "huge") {
        std::vector<char> block(std::size_t{6} << 30U, 1);
        return block.back() == 1 ? outcome::accepted : outcome::refused;
    }
    if (what == "grow") {
        std::list<std::unique_ptr<char[]>> blocks;  // NOLINT(modernize-avoid-c-arrays)
        constexpr std::size_t block = std::size_t{64} << 20U;
        for (int i = 0; i < 256; ++i) {  // 256 x 64 MiB = 16 GiB, every page touched
            auto& bytes = blocks.emplace_back(new char[block]);
            for (std::size_t at = 0; at < block; at += 4096) {
                static_cast<volatile char*>(bytes.get())[at] = 1;
            }
        }
        return outcome::accepted;
    }
    if (what == "hang") {
        std::this_thread::sleep_for(std::chrono::seconds(60));
        return outcome::accepted;
    }
    if (what == "wild") {
        std::vector<char> small(16);
        volatile std::size_t at = 4096;
        small.data()[at] = 1;  // past the end: ASan reports it; a plain build may or may not crash
        // Then certainly a crash: a write to a page mapped with no access.
        void* page = ::mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        *static_cast<volatile char*>(page) = 1;
        return outcome::accepted;
    }
    if (what == "bare") {
        return expect_clean([] { throw std::out_of_range("vector::at"); }, "selftest");
    }
    return expect_clean([] {}, "selftest");
}

const registration selftest{{
    .name = "harness_selftest",
    .about = "misbehaves on purpose (huge, grow, hang, wild, bare): checks the driver, never fuzzed",
    .one_input = one_input,
}};

}  // namespace
}  // namespace axds::fuzz
