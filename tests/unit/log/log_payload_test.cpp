// log_package::from_values: typed payloads cast into bytes with numpy's "same_kind" rule, as the Python LogPackage
// casts its payload array (spec §6.1). Every case is checked against Debian's python3 + numpy.
#include <axds/log/log_package.hpp>

#include "support/temp_dir.hpp"

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <span>
#include <sstream>
#include <string>
#include <vector>

using axds::log_package;

namespace {

/// The Python LogPackage.data of ataraxis-data-structures 7.0.0 (spec §6.1), verbatim in its numpy calls. Each
/// argument `source:time:dtype:v1,v2,...` prints `source:time:dtype name hex`; a refused cast prints `... TypeError`.
constexpr const char* python_log_package = R"(
import sys, numpy as np
def data(source_id, acquisition_time, serialized_data):
    data = np.empty(shape=9 + serialized_data.size, dtype=np.uint8)
    data[0] = source_id
    data[1:9] = np.frombuffer(buffer=np.uint64(acquisition_time).tobytes(), dtype=np.uint8)
    np.copyto(dst=data[9:], src=serialized_data, casting="same_kind")
    return f"{source_id:03d}_{acquisition_time:020d}.npy", data
for arg in sys.argv[1:]:
    source, time, dtype, values = arg.split(":")
    payload = np.array([int(v) for v in values.split(",") if v], dtype=dtype)
    try:
        name, entry = data(np.uint8(int(source)), np.uint64(int(time)), payload)
        print(arg.rsplit(":", 1)[0], name, entry.tobytes().hex())
    except TypeError:
        print(arg.rsplit(":", 1)[0], "TypeError")
)";

std::string hex(const std::vector<std::uint8_t>& bytes) {
    std::string out;
    for (const std::uint8_t byte : bytes) {
        out += fmt::format("{:02x}", byte);
    }
    return out;
}

/// One typed payload: the argument for the Python script and the line it must print for our package.
struct payload_case {
    std::string argument;
    std::string expected_line;
};

template <typename T>
payload_case make_case(std::uint8_t source, std::uint64_t time, const char* dtype, std::span<const T> values) {
    std::string listed;
    for (const T value : values) {
        listed += fmt::format("{}{}", listed.empty() ? "" : ",", static_cast<unsigned long long>(value));
    }
    const log_package package = log_package::from_values(source, time, values);
    const std::string key = fmt::format("{}:{}:{}", source, time, dtype);
    return {.argument = key + ":" + listed,
            .expected_line = fmt::format("{} {} {}", key, package.file_name(), hex(package.entry_bytes()))};
}

/// Runs the Python LogPackage on every argument; returns its output lines keyed by `source:time:dtype`.
std::map<std::string, std::string> run_python_log_package(const std::vector<std::string>& arguments) {
    const auto result = axds::test::run_python(python_log_package, arguments);
    INFO(result.output);
    REQUIRE(result.exit_code == 0);
    std::map<std::string, std::string> lines;
    std::istringstream output(result.output);
    for (std::string line; std::getline(output, line);) {
        lines[line.substr(0, line.find(' '))] = line;
    }
    return lines;
}

constexpr std::uint64_t big_time = (std::uint64_t{1} << 63U) + 5;

// The element types numpy casts into uint8 under "same_kind" (every unsigned width and bool) and, for the check
// below, their acceptance by both entry points: from_values and data_logger::async_log (tests/unit/log/
// data_logger_parts_test.cpp checks the latter).
template <typename T>
constexpr bool from_values_accepts = requires(std::span<const T> values) {
    log_package::from_values(1, 2, values);
};

template <typename T>
constexpr bool from_vector_accepts = requires(const std::vector<T>& values) {
    log_package::from_values(1, 2, values);
};

template <typename T>
constexpr bool scalar_accepted = requires(T value) {
    log_package::from_values(1, 2, value);
};

enum class small_code : std::uint8_t { a = 1 };

}  // namespace

TEST_CASE("log_package from_values narrows every unsigned width and bool exactly as numpy same_kind", "[log][python]") {
    const std::array<std::uint8_t, 5> u8{0, 1, 127, 128, 255};
    const std::array<std::uint16_t, 7> u16{0, 1, 255, 256, 258, 300, 65535};
    const std::array<std::uint32_t, 7> u32{0, 255, 256, 300, 65793, 0x12345678U, 4294967295U};
    const std::array<std::uint64_t, 6> u64{0,        258,           0x0123456789ABCDEFULL,
                                           big_time, 4294967552ULL, std::numeric_limits<std::uint64_t>::max()};
    const std::array<unsigned long long, 3> ull{511, 0xFEDCBA9876543210ULL,
                                                std::numeric_limits<unsigned long long>::max()};
    const std::array<unsigned int, 3> uints{1, 257, 4294967295U};
    const std::array<unsigned short, 2> ushorts{513, 65280};
    const std::array<bool, 5> flags{true, false, true, true, false};

    std::vector<payload_case> cases;
    cases.push_back(make_case<std::uint8_t>(1, 10, "uint8", u8));
    cases.push_back(make_case<std::uint16_t>(2, 20, "uint16", u16));
    cases.push_back(make_case<std::uint32_t>(3, 30, "uint32", u32));
    cases.push_back(make_case<std::uint64_t>(4, big_time, "uint64", u64));
    cases.push_back(make_case<unsigned long long>(5, 50, "ulonglong", ull));
    cases.push_back(make_case<unsigned int>(6, 60, "uintc", uints));
    cases.push_back(make_case<unsigned short>(7, 70, "ushort", ushorts));
    cases.push_back(make_case<bool>(8, 80, "bool", flags));
    // Empty payloads of every type: a 9-byte entry.
    cases.push_back(make_case<std::uint8_t>(11, 0, "uint8", {}));
    cases.push_back(make_case<std::uint16_t>(12, 1, "uint16", {}));
    cases.push_back(make_case<std::uint32_t>(13, 2, "uint32", {}));
    cases.push_back(make_case<std::uint64_t>(14, 3, "uint64", {}));
    cases.push_back(make_case<bool>(15, 4, "bool", {}));
    // A single element at the edges of source, time and value.
    const std::array<std::uint64_t, 1> one_u64{std::numeric_limits<std::uint64_t>::max() - 1};
    cases.push_back(make_case<std::uint64_t>(255, std::numeric_limits<std::uint64_t>::max(), "uint64", one_u64));

    std::vector<std::string> arguments;
    for (const auto& c : cases) {
        arguments.push_back(c.argument);
    }
    const auto python_lines = run_python_log_package(arguments);
    for (const auto& c : cases) {
        INFO(c.argument);
        const std::string key = c.expected_line.substr(0, c.expected_line.find(' '));
        REQUIRE(python_lines.count(key) == 1);
        CHECK(python_lines.at(key) == c.expected_line);
    }

    // Independent of Python, the rule itself: modulo 256 per element, bool 0/1, empty is a 9-byte entry.
    CHECK(log_package::from_values(2, 20, u16).payload == std::vector<std::uint8_t>{0, 1, 255, 0, 2, 44, 255});
    CHECK(log_package::from_values(8, 80, flags).payload == std::vector<std::uint8_t>{1, 0, 1, 1, 0});
    CHECK(log_package::from_values(15, 4, std::span<const bool>{}).entry_bytes().size() == 9);
}

TEST_CASE("log_package from_values takes any range of bool or unsigned values", "[log]") {
    // std::vector<bool> (proxy references), a mutable span, a C array and a plain vector give the same bytes.
    const std::vector<bool> bits{true, false, false, true};
    CHECK(log_package::from_values(1, 2, bits).payload == std::vector<std::uint8_t>{1, 0, 0, 1});
    std::vector<std::uint16_t> words{258, 1, 0xFFFF};
    CHECK(log_package::from_values(1, 2, std::span<std::uint16_t>(words)).payload ==
          std::vector<std::uint8_t>{2, 1, 255});
    const std::uint32_t raw[] = {0x1FF, 0x100};
    CHECK(log_package::from_values(1, 2, raw).payload == std::vector<std::uint8_t>{255, 0});
    const log_package package = log_package::from_values(9, 1234567890, std::vector<std::uint8_t>{10, 20, 30, 255});
    CHECK(package.file_name() == "009_00000000001234567890.npy");
    CHECK(package.entry_bytes() ==
          std::vector<std::uint8_t>{0x09, 0xd2, 0x02, 0x96, 0x49, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x14, 0x1e, 0xff});
}

TEST_CASE("log_package from_values refuses at compile time every element type numpy refuses", "[log][python]") {
    // Accepted: bool and every unsigned integer type.
    static_assert(from_values_accepts<bool> && from_vector_accepts<bool>);
    static_assert(from_values_accepts<std::uint8_t> && from_values_accepts<std::uint16_t>);
    static_assert(from_values_accepts<std::uint32_t> && from_values_accepts<std::uint64_t>);
    static_assert(from_values_accepts<unsigned long> && from_values_accepts<unsigned long long>);
    static_assert(from_vector_accepts<std::uint16_t> && from_vector_accepts<unsigned short>);
    // Refused: signed integers ...
    static_assert(!from_values_accepts<std::int8_t> && !from_values_accepts<std::int16_t>);
    static_assert(!from_values_accepts<std::int32_t> && !from_values_accepts<std::int64_t>);
    static_assert(!from_values_accepts<signed char> && !from_values_accepts<long long>);
    static_assert(!from_vector_accepts<int> && !from_vector_accepts<std::int16_t>);
    // ... floating point ...
    static_assert(!from_values_accepts<float> && !from_values_accepts<double> && !from_values_accepts<long double>);
    static_assert(!from_vector_accepts<float> && !from_vector_accepts<double>);
    // ... and what is not a number in numpy's sense: characters, raw bytes, enums.
    static_assert(!from_values_accepts<char> && !from_values_accepts<char8_t> && !from_values_accepts<char16_t>);
    static_assert(!from_values_accepts<char32_t> && !from_values_accepts<wchar_t>);
    static_assert(!from_values_accepts<std::byte> && !from_values_accepts<small_code>);
    // A scalar is not a payload range (Python: a plain int has no .size and fails too).
    static_assert(!scalar_accepted<std::uint16_t> && !scalar_accepted<bool>);

    // numpy agrees, type by type: a one-element array of each refused dtype raises TypeError in LogPackage.data,
    // each accepted one does not.
    const std::vector<std::string> refused{"int8",    "int16",   "int32",      "int64",     "longlong", "float16",
                                           "float32", "float64", "longdouble", "complex64", "S1"};
    const std::vector<std::string> accepted{"bool", "uint8", "uint16", "uint32", "uint64", "ulonglong"};
    std::vector<std::string> arguments;
    for (const auto& dtype : refused) {
        arguments.push_back("1:2:" + dtype + ":1");
    }
    for (const auto& dtype : accepted) {
        arguments.push_back("1:2:" + dtype + ":1");
    }
    const auto python_lines = run_python_log_package(arguments);
    for (const auto& dtype : refused) {
        INFO(dtype);
        CHECK(python_lines.at("1:2:" + dtype) == "1:2:" + dtype + " TypeError");
    }
    for (const auto& dtype : accepted) {
        INFO(dtype);
        CHECK(python_lines.at("1:2:" + dtype) == "1:2:" + dtype + " 001_00000000000000000002.npy 01020000000000000001");
    }
}
