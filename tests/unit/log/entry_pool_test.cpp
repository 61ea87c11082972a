// The data logger's node pool (issue 21): recycling, the heap fallback when it is empty, growth up to its bound, and
// many threads popping while one recycles (no node handed out twice, nothing lost). The logger-level tests are in
// data_logger_pool_test.cpp.
#include "log/entry_pool.hpp"

#include <axds/log/log_package.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

using axds::detail::entry_pool;
using axds::detail::queued_entry;

namespace {

std::vector<std::uint8_t> payload_of(std::uint64_t value, std::size_t size) {
    std::vector<std::uint8_t> payload(size);
    for (std::size_t i = 0; i < size; ++i) {
        payload[i] = static_cast<std::uint8_t>(value >> (8 * (i % 8)));
    }
    return payload;
}

}  // namespace

TEST_CASE("entry pool hands out its populated nodes and recycles them without growing", "[log]") {
    entry_pool pool(1000, 64);
    REQUIRE(pool.populated() >= 64);
    const std::size_t populated = pool.populated();
    std::vector<queued_entry*> first;
    for (std::size_t i = 0; i < populated; ++i) {
        queued_entry* node = pool.acquire();
        CHECK(pool.owns(node));
        CHECK(node->package.payload.empty());
        node->package.payload = payload_of(i, 100);  // released with a payload: the pool frees it
        first.push_back(node);
    }
    CHECK(pool.heap_nodes() == 0);
    CHECK(std::set<queued_entry*>(first.begin(), first.end()).size() == populated);
    for (queued_entry* node : first) {
        pool.release(node);
    }
    CHECK(pool.free_nodes() == populated);
    std::vector<queued_entry*> second;
    for (std::size_t i = 0; i < populated; ++i) {
        second.push_back(pool.acquire());
        CHECK(second.back()->package.payload.empty());
    }
    CHECK(std::set<queued_entry*>(second.begin(), second.end()) == std::set<queued_entry*>(first.begin(), first.end()));
    CHECK(pool.heap_nodes() == 0);
    CHECK(pool.populated() == populated);
    for (queued_entry* node : second) {
        pool.release(node);
    }
}

TEST_CASE("entry pool falls back to the heap when empty and deletes heap nodes on release", "[log]") {
    entry_pool pool(64, 64);
    const std::size_t populated = pool.populated();
    REQUIRE(populated == pool.max_nodes());
    std::vector<queued_entry*> nodes;
    for (std::size_t i = 0; i < populated + 3; ++i) {
        nodes.push_back(pool.acquire());
        nodes.back()->package.payload = payload_of(i, 10);
    }
    CHECK(pool.heap_nodes() == 3);
    CHECK_FALSE(pool.owns(nodes.back()));
    CHECK(pool.free_nodes() == 0);
    CHECK(pool.replenish() == 0);  // at its bound: the heap takes the excess
    for (queued_entry* node : nodes) {
        pool.release(node);  // ASan's leak check fails the run if a heap node or a payload is not freed
    }
    CHECK(pool.free_nodes() == populated);
}

TEST_CASE("entry pool replenish quadruples the pool while half of it is in use and stops at its bound", "[log]") {
    entry_pool pool(1024, 64);
    const std::size_t start = pool.populated();
    const std::size_t bound = pool.max_nodes();
    REQUIRE(bound >= 1024);
    CHECK(pool.replenish() == 0);  // all free
    std::vector<queued_entry*> held;
    std::size_t last = start;
    while (held.size() < bound) {
        held.push_back(pool.acquire());
        if (pool.replenish() > 0) {
            CHECK(pool.populated() <= std::max<std::size_t>(4 * last, start + last));
            CHECK(pool.populated() <= bound);
            last = pool.populated();
        }
    }
    CHECK(pool.populated() == bound);
    CHECK(pool.heap_nodes() <= start);  // only what was taken between two replenish calls
    for (queued_entry* node : held) {
        pool.release(node);
    }
    CHECK(pool.free_nodes() == bound);
}

TEST_CASE("entry pool under 4 producer threads and a recycling consumer hands no node out twice and loses nothing",
          "[log]") {
    // A pool far smaller than what is in flight: nodes are recycled thousands of times while producers pop, the
    // situation in which a free list without ABA protection hands one node to two producers.
    constexpr std::size_t producers = 4;
    constexpr std::size_t per_producer = 20'000;
    entry_pool pool(128, 64);
    std::atomic<queued_entry*> stack{nullptr};  // the logger's queue: producers push, the consumer takes all
    std::atomic<std::size_t> done{0};
    std::vector<std::thread> threads;
    for (std::size_t p = 0; p < producers; ++p) {
        threads.emplace_back([&, p] {
            for (std::uint64_t i = 0; i < per_producer; ++i) {
                queued_entry* node = pool.acquire();
                node->package.source_id = static_cast<std::uint8_t>(p);
                node->package.acquisition_time = i;
                node->package.payload = payload_of((p << 32U) | i, 16);
                node->charge = i;
                queued_entry* old = stack.load(std::memory_order_relaxed);
                do {
                    node->next = old;
                } while (!stack.compare_exchange_weak(old, node, std::memory_order_release, std::memory_order_relaxed));
            }
            done.fetch_add(1);
        });
    }
    std::vector<std::vector<std::uint8_t>> seen(producers, std::vector<std::uint8_t>(per_producer, 0));
    std::size_t intact = 0;
    std::size_t received = 0;
    while (received < producers * per_producer) {
        const bool finished = done.load() == producers;
        queued_entry* taken = stack.exchange(nullptr, std::memory_order_acquire);
        while (taken != nullptr) {
            queued_entry* next = taken->next;
            const std::size_t p = taken->package.source_id;
            const std::uint64_t i = taken->package.acquisition_time;
            REQUIRE(p < producers);
            REQUIRE(i < per_producer);
            ++seen[p][i];
            intact += taken->charge == i && taken->package.payload == payload_of((p << 32U) | i, 16) ? 1U : 0U;
            pool.release(taken);
            taken = next;
            ++received;
        }
        pool.replenish();
        if (finished && stack.load() == nullptr) {
            break;
        }
    }
    for (auto& thread : threads) {
        thread.join();
    }
    CHECK(received == producers * per_producer);
    CHECK(intact == producers * per_producer);
    std::size_t once = 0;
    for (const auto& flags : seen) {
        once += static_cast<std::size_t>(std::count(flags.begin(), flags.end(), std::uint8_t{1}));
    }
    CHECK(once == producers * per_producer);
    CHECK(pool.free_nodes() == pool.populated());
    CHECK(pool.populated() <= pool.max_nodes());
    INFO("heap fallbacks: " << pool.heap_nodes());
}

TEST_CASE("entry pool hands out never-used nodes once each before the heap and counts them as free", "[log]") {
    // Populating writes nothing into the nodes: a node is constructed when first taken. Every populated node must be
    // handed out exactly once before the heap is used, recycled ones first, and counted as free until then.
    entry_pool pool(4096, 256);
    const std::size_t populated = pool.populated();
    REQUIRE(populated >= 256);
    CHECK(pool.free_nodes() == populated);
    queued_entry* first = pool.acquire();
    first->package.payload = payload_of(1, 40);
    pool.release(first);
    CHECK(pool.acquire() == first);  // the recycled node before a fresh one (warm in the cache)
    std::set<queued_entry*> seen{first};
    for (std::size_t i = 1; i < populated; ++i) {
        queued_entry* node = pool.acquire();
        REQUIRE(pool.owns(node));
        CHECK(node->package.payload.empty());
        CHECK(node->next == nullptr);
        CHECK(node->charge == 0);
        seen.insert(node);
        CHECK(pool.free_nodes() == populated - 1 - i);
    }
    CHECK(seen.size() == populated);
    CHECK(pool.heap_nodes() == 0);
    queued_entry* extra = pool.acquire();
    CHECK_FALSE(pool.owns(extra));
    CHECK(pool.heap_nodes() == 1);
    pool.release(extra);
    CHECK(pool.replenish() > 0);  // none free: grows
    CHECK(pool.free_nodes() == pool.populated() - populated);
    for (queued_entry* node : seen) {
        pool.release(node);
    }
    CHECK(pool.free_nodes() == pool.populated());
}

TEST_CASE("entry pool with enough nodes for all threads never falls back to the heap under contention", "[log]") {
    // Issue 21 saw heap fallbacks in a loaded run of a fully grown pool. With every node populated and each of 4
    // threads holding at most 64 at once, the pool always has free nodes: a heap node would mean a lost node or a
    // pop that saw an empty list while nodes were free.
    constexpr std::size_t threads = 4;
    constexpr std::size_t held_at_most = 64;
    constexpr std::size_t rounds = 2000;
    entry_pool pool(512, 512);
    REQUIRE(pool.populated() == pool.max_nodes());
    REQUIRE(pool.populated() > threads * held_at_most);
    std::vector<std::thread> workers;
    for (std::size_t t = 0; t < threads; ++t) {
        workers.emplace_back([&pool] {
            std::vector<queued_entry*> held;
            for (std::size_t r = 0; r < rounds; ++r) {
                for (std::size_t i = 0; i < held_at_most; ++i) {
                    held.push_back(pool.acquire());
                    held.back()->package.payload = payload_of(i, 8);
                }
                entry_pool::release_batch batch(pool);  // the writer's way: one compare-exchange per chain
                for (queued_entry* node : held) {
                    batch.add(node);
                }
                held.clear();
            }
        });
    }
    for (auto& worker : workers) {
        worker.join();
    }
    CHECK(pool.heap_nodes() == 0);
    CHECK(pool.free_nodes() == pool.populated());
}

TEST_CASE("entry pool keeps released payload buffers up to its retain budget and accounts for the ones handed on",
          "[log]") {
    // Issue 19: free nodes keep their payload's buffer (empty, capacity kept) so that the producer filling the node
    // next gets it back instead of allocating; the buffers kept stay within the budget.
    constexpr std::size_t budget = 4096;
    entry_pool pool(64, 64, budget);
    std::vector<queued_entry*> nodes;
    for (int i = 0; i < 10; ++i) {
        nodes.push_back(pool.acquire());
        nodes.back()->package.payload.reserve(1000);
        nodes.back()->package.payload.assign(1000, 7);
    }
    {
        entry_pool::release_batch batch(pool);
        for (queued_entry* node : nodes) {
            batch.add(node);
        }
    }
    CHECK(pool.retained_bytes() == 4000);  // four buffers of 1000: a fifth would pass 4096
    nodes.clear();
    std::size_t with_buffer = 0;
    for (int i = 0; i < 10; ++i) {
        queued_entry* node = pool.acquire();
        CHECK(node->package.payload.empty());
        CHECK(node->package.source_id == 0);
        CHECK(node->package.acquisition_time == 0);
        if (node->package.payload.capacity() >= 1000) {
            ++with_buffer;
            CHECK(node->retained == node->package.payload.capacity());
        } else {
            CHECK(node->retained == 0);
        }
        // What data_logger does: the producer takes the kept buffer and leaves its own (500 bytes) in the node.
        std::vector<std::uint8_t> producers(500, 9);
        node->package.payload.swap(producers);
        nodes.push_back(node);
    }
    CHECK(with_buffer == 4);
    // The pool is a stack: the four nodes with buffers came out last. Released first, each gives back the 1000 its
    // buffer counted (now the producer's) and keeps the producer's 500; then four of the other six fit the budget.
    std::reverse(nodes.begin(), nodes.end());
    for (queued_entry* node : nodes) {
        pool.release(node);  // one at a time: the total is right after each
    }
    CHECK(pool.retained_bytes() == 8 * 500);
    // The pool frees the buffers its free nodes keep when it goes (ASan/LSan check that nothing leaks).
}

TEST_CASE("entry pool without a retain budget frees every released payload", "[log]") {
    entry_pool pool(64, 64);
    queued_entry* node = pool.acquire();
    node->package.payload.assign(100, 1);
    pool.release(node);
    CHECK(pool.retained_bytes() == 0);
    queued_entry* again = pool.acquire();
    CHECK(again->package.payload.capacity() == 0);
    pool.release(again);
}
