#pragma once
// The bounded spin of async_lock on a held robust mutex, before it sleeps (issue 21). Private to src/.

#include <atomic>
#include <chrono>

#include <linux/futex.h>

namespace axds::detail {

/// How long async_lock spins on a held robust mutex before each sleep: shorter than one futex-wait cycle (arm, wake,
/// resume: ~11 us measured on the 2-vCPU VM, most of it system calls), long enough to catch a holder that takes the
/// lock for short moments in a loop, from whom a waiter resumed microseconds after the unlock would keep losing it.
inline constexpr auto lock_spin_budget = std::chrono::microseconds(3);

/// Lets the other hyper-thread (or the host) run while spinning on a word that another core will change.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

/// Spins until `until` on the futex word of a held robust mutex: watches it with plain loads (no cache-line
/// ping-pong with the holder) and calls `try_lock` whenever the word shows the mutex free or its holder dead
/// (FUTEX_OWNER_DIED: try_lock then gets EOWNERDEAD and reports it as always). Returns the first engaged result of
/// `try_lock`, or an empty one when the holder kept the mutex all the while.
template <typename TryLock>
auto spin_for_lock(int* word, std::chrono::steady_clock::time_point until, TryLock&& try_lock) -> decltype(try_lock()) {
    const std::atomic_ref<int> lock_word(*word);
    for (unsigned round = 1;; ++round) {
        const auto bits = static_cast<unsigned>(lock_word.load(std::memory_order_relaxed));
        if (bits == 0 || (bits & static_cast<unsigned>(FUTEX_OWNER_DIED)) != 0) {
            auto result = try_lock();
            if (result) {
                return result;
            }
        }
        if (round % 16 == 0 && std::chrono::steady_clock::now() >= until) {
            return {};
        }
        cpu_relax();
    }
}

}  // namespace axds::detail
