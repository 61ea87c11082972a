#include <axds/core/interpolate.hpp>

#include "support/matchers.hpp"
#include "support/temp_dir.hpp"

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

using axds::continuous;
using axds::discrete;
using axds::interpolate_data;
using axds::test::message_contains;

// upstream: interpolation_test.py::test_discrete_interpolation_within_bounds
TEST_CASE("discrete interpolation takes the last value at or before each target", "[core]") {
    const std::vector<std::uint64_t> coords{0, 100, 200, 300, 400};
    const std::vector<std::int64_t> values{10, 20, 30, 40, 50};
    const std::vector<std::uint64_t> targets{50, 150, 250, 350};
    CHECK(interpolate_data(coords, values, targets, discrete) == std::vector<std::int64_t>{10, 20, 30, 40});
}

// upstream: interpolation_test.py::test_discrete_interpolation_below_min
// upstream: interpolation_test.py::test_discrete_interpolation_above_max
// upstream: interpolation_test.py::test_discrete_interpolation_exact_matches
// upstream: interpolation_test.py::test_discrete_mixed_boundaries
TEST_CASE("discrete interpolation clamps outside the coordinates and honours exact matches", "[core]") {
    const std::vector<double> coords{10, 20, 30, 40};
    const std::vector<int> values{10, 20, 30, 40};
    CHECK(interpolate_data(coords, values, std::vector<double>{0, 5}, discrete) == std::vector<int>{10, 10});
    CHECK(interpolate_data(coords, values, std::vector<double>{45, 100}, discrete) == std::vector<int>{40, 40});
    CHECK(interpolate_data(coords, values, std::vector<double>{10, 20, 30, 40}, discrete) ==
          std::vector<int>{10, 20, 30, 40});
    CHECK(interpolate_data(coords, values, std::vector<double>{5, 15, 25, 45}, discrete) ==
          std::vector<int>{10, 10, 20, 40});
}

// upstream: interpolation_test.py::test_discrete_preserves_int32_dtype
// upstream: interpolation_test.py::test_discrete_uint8_values
TEST_CASE("discrete interpolation keeps the value type", "[core]") {
    const std::vector<std::int32_t> coords{0, 10, 20};
    const std::vector<std::int32_t> values{1, 2, 3};
    const auto out = interpolate_data(coords, values, std::vector<std::int32_t>{15}, discrete);
    STATIC_REQUIRE(std::is_same_v<decltype(out)::value_type, std::int32_t>);
    const std::vector<std::uint8_t> small{0, 127, 200};
    const auto bytes = interpolate_data(coords, small, std::vector<std::int32_t>{0, 10, 25}, discrete);
    STATIC_REQUIRE(std::is_same_v<decltype(bytes)::value_type, std::uint8_t>);
    CHECK(bytes == std::vector<std::uint8_t>{0, 127, 200});
}

// upstream: interpolation_test.py::test_continuous_linear
// upstream: interpolation_test.py::test_continuous_float64_output
TEST_CASE("continuous interpolation is linear and always float64", "[core]") {
    const std::vector<float> coords{0, 10};
    const std::vector<std::int32_t> values{0, 20};
    const auto out = interpolate_data(coords, values, std::vector<float>{2.5F, 7.5F}, continuous);
    STATIC_REQUIRE(std::is_same_v<decltype(out)::value_type, double>);
    CHECK(out == std::vector<double>{5.0, 15.0});
}

// upstream: interpolation_test.py::test_continuous_clamping
// upstream: interpolation_test.py::test_continuous_exact_matches
TEST_CASE("continuous interpolation clamps and returns exact points", "[core]") {
    const std::vector<double> coords{0, 1, 2};
    const std::vector<double> values{10, 20, 30};
    CHECK(interpolate_data(coords, values, std::vector<double>{-5, 9}, continuous) == std::vector<double>{10, 30});
    CHECK(interpolate_data(coords, values, std::vector<double>{0, 1, 2}, continuous) ==
          std::vector<double>{10, 20, 30});
}

// upstream: interpolation_test.py::test_single_source_point
TEST_CASE("a single source point gives its value everywhere, NaN targets included", "[core]") {
    const std::vector<double> coords{5};
    const std::vector<int> values{42};
    const std::vector<double> targets{0, 5, 10, std::numeric_limits<double>::quiet_NaN()};
    CHECK(interpolate_data(coords, values, targets, discrete) == std::vector<int>{42, 42, 42, 42});
    CHECK(interpolate_data(coords, values, targets, continuous) == std::vector<double>{42, 42, 42, 42});
}

// upstream: interpolation_test.py::test_empty_target
TEST_CASE("an empty target gives an empty result in both modes", "[core]") {
    const std::vector<double> coords{0, 1};
    const std::vector<std::uint8_t> values{1, 2};
    const std::vector<double> none;
    CHECK(interpolate_data(coords, values, none, discrete).empty());
    CHECK(interpolate_data(coords, values, none, continuous).empty());
}

// upstream: interpolation_test.py::test_empty_source_raises
TEST_CASE("an empty source is rejected in both modes", "[core]") {
    const std::vector<double> empty;
    const std::vector<double> some{1, 2};
    const auto anchor = message_contains("must each hold at least one element");
    CHECK_THROWS_MATCHES(interpolate_data(empty, empty, some, discrete), axds::value_error, anchor);
    CHECK_THROWS_MATCHES(interpolate_data(empty, empty, some, continuous), axds::value_error, anchor);
    CHECK_THROWS_MATCHES(interpolate_data(some, empty, some, discrete), axds::value_error,
                         message_contains("but got 2 coordinate(s) and 0 value(s)"));
    CHECK_THROWS_MATCHES(interpolate_data(some, empty, some, continuous), axds::value_error, anchor);
    CHECK_THROWS_MATCHES(interpolate_data(empty, some, some, discrete), axds::value_error, anchor);
    CHECK_THROWS_MATCHES(interpolate_data(empty, some, some, continuous), axds::value_error, anchor);
}

TEST_CASE("continuous interpolation rejects sources of different lengths as numpy does", "[core]") {
    const std::vector<double> coords{0, 1, 2};
    const std::vector<double> values{1, 2};
    CHECK_THROWS_WITH(interpolate_data(coords, values, coords, continuous), "fp and xp are not of the same length.");
}

TEST_CASE("interpolation matches the spec's verified README and duplicate-coordinate examples", "[core]") {
    const std::vector<std::uint64_t> coords{0, 100, 200, 300, 400};
    const std::vector<double> values{10, 20, 15, 25, 30};
    const std::vector<std::uint64_t> targets{50, 150, 250, 350};
    CHECK(interpolate_data(coords, values, targets, continuous) == std::vector<double>{15.0, 17.5, 20.0, 27.5});
    const std::vector<std::uint8_t> steps{1, 2, 3, 4, 5};
    CHECK(interpolate_data(coords, steps, targets, discrete) == std::vector<std::uint8_t>{1, 2, 3, 4});

    const std::vector<double> dup{0, 1, 1, 2};
    const std::vector<double> probe{1.0, 0.999, 1.5};
    CHECK(interpolate_data(dup, std::vector<int>{1, 2, 3, 4}, probe, discrete) == std::vector<int>{3, 1, 3});
    const auto linear = interpolate_data(dup, std::vector<double>{1, 2, 3, 4}, probe, continuous);
    CHECK(linear[0] == 3.0);
    CHECK(linear[1] == Approx(1.999).epsilon(0));
    CHECK(linear[2] == 3.5);
}

TEST_CASE("discrete interpolation compares uint64 with int64 in float64, as numpy does", "[core]") {
    // 2^53 + 1 is not representable in float64: numpy compares it as 2^53, so the target equals the coordinate.
    const std::vector<std::uint64_t> coords{0, (1ULL << 53U) + 1};
    const std::vector<int> values{1, 2};
    const std::vector<std::int64_t> targets{static_cast<std::int64_t>(1ULL << 53U)};
    CHECK(interpolate_data(coords, values, targets, discrete) == std::vector<int>{2});
    // Same signedness compares exactly.
    const std::vector<std::uint64_t> exact_targets{1ULL << 53U};
    CHECK(interpolate_data(coords, values, exact_targets, discrete) == std::vector<int>{1});
}

namespace {

std::string hex_of(const std::vector<double>& values) {
    std::string out;
    for (const double v : values) {
        unsigned char bytes[sizeof(double)];  // little-endian, as numpy's tobytes() on x86-64
        std::memcpy(bytes, &v, sizeof v);
        for (const unsigned char b : bytes) {
            out += fmt::format("{:02x}", b);
        }
    }
    return out;
}

std::string list_of(const std::vector<double>& values) {
    std::string out = "[";
    for (const double v : values) {
        out += std::isnan(v) ? "float('nan')" : fmt::format("{}", v);
        out += ',';
    }
    return out + "]";
}

}  // namespace

TEST_CASE("interpolation is bit-identical to numpy on random inputs, NaN and duplicates included", "[core][python]") {
    std::mt19937_64 rng(20261127);
    std::string script =
        "import numpy as np, sys\n"
        "cases = eval(sys.stdin.read())\n"
        "for xp, fp, x in cases:\n"
        "    xp = np.array(xp, dtype=np.float64); fp = np.array(fp, dtype=np.float64);"
        " x = np.array(x, dtype=np.float64)\n"
        "    c = np.interp(x, xp, fp)\n"
        "    i = np.clip(np.searchsorted(xp, x, side='right') - 1, 0, len(fp) - 1)\n"
        "    print(c.astype('<f8').tobytes().hex() + ' ' + fp[i].astype('<f8').tobytes().hex())\n";
    std::string cases = "[";
    std::vector<std::string> expected;
    for (int round = 0; round < 200; ++round) {
        const std::size_t n = 1 + rng() % 20;
        std::vector<double> xp;
        std::vector<double> fp;
        double x0 = static_cast<double>(rng() % 1000) / 7.0 - 50.0;
        for (std::size_t i = 0; i < n; ++i) {
            xp.push_back(x0);
            if (rng() % 4 != 0) {  // duplicates on purpose
                x0 += static_cast<double>(rng() % 10000) / 333.0;
            }
            fp.push_back(static_cast<double>(static_cast<std::int64_t>(rng() % 20000) - 10000) / 3.0);
        }
        std::vector<double> x;
        for (int i = 0; i < 30; ++i) {
            x.push_back(xp.front() - 10.0 +
                        static_cast<double>(rng() % 100000) / 1000.0 * (xp.back() - xp.front() + 20.0) / 100.0);
        }
        x.push_back(xp.front());
        x.push_back(xp.back());
        x.push_back(std::numeric_limits<double>::quiet_NaN());
        cases += "(" + list_of(xp) + "," + list_of(fp) + "," + list_of(x) + "),";
        const auto c = interpolate_data(xp, fp, x, continuous);
        const auto d = interpolate_data(xp, fp, x, discrete);
        expected.push_back(hex_of(c) + " " + hex_of(d));
    }
    cases += "]";
    axds::test::temp_dir tmp;
    axds::test::write_file(tmp.path() / "cases.txt", cases);
    const auto result = axds::test::run_python("import sys\nsys.stdin = open(sys.argv[1])\nexec(sys.argv[2])",
                                               {(tmp.path() / "cases.txt").string(), script});
    REQUIRE(result.exit_code == 0);
    std::vector<std::string> lines;
    std::size_t start = 0;
    while (start < result.output.size()) {
        const auto end = result.output.find('\n', start);
        lines.push_back(result.output.substr(start, end - start));
        start = end == std::string::npos ? result.output.size() : end + 1;
    }
    REQUIRE(lines.size() == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        INFO("case " << i);
        CHECK(lines[i] == expected[i]);
    }
}
