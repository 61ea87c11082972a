#include <axds/core/console.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <thread>
#include <vector>

TEST_CASE("scoped_warning_capture collects warnings and restores the previous sink", "[core]") {
    std::vector<std::string> outer;
    auto previous = axds::set_warning_sink([&](std::string_view m) { outer.emplace_back(m); });
    {
        axds::scoped_warning_capture capture;
        axds::warn("first");
        axds::warn("second");
        REQUIRE(capture.messages() == std::vector<std::string>{"first", "second"});
        CHECK(outer.empty());
    }
    axds::warn("after");
    CHECK(outer == std::vector<std::string>{"after"});
    axds::set_warning_sink(std::move(previous));
}

TEST_CASE("warn is safe from many threads and loses nothing", "[core]") {
    axds::scoped_warning_capture capture;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([] {
            for (int i = 0; i < 250; ++i) {
                axds::warn("w");
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    CHECK(capture.messages().size() == 1000);
}

TEST_CASE("a throwing sink does not turn a warning into a failure", "[core]") {
    auto previous = axds::set_warning_sink([](std::string_view) { throw std::runtime_error("sink broke"); });
    CHECK_NOTHROW(axds::warn("x"));
    axds::set_warning_sink(std::move(previous));
}
