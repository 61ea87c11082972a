#include <axds/log/log_package.hpp>

#include "support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

// upstream: serialized_data_logger_test.py::test_log_package_data
TEST_CASE("log_package produces the spec's golden file name and entry bytes", "[log]") {
    const axds::log_package package{.source_id = 7, .acquisition_time = 1234567890, .payload = {10, 20, 30, 255}};
    CHECK(package.file_name() == "007_00000000001234567890.npy");
    CHECK(package.entry_bytes() ==
          std::vector<std::uint8_t>{0x07, 0xd2, 0x02, 0x96, 0x49, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x14, 0x1e, 0xff});
    CHECK(package.npy_file_bytes().size() == 141);  // 128-byte header + 13-byte entry
}

// upstream: serialized_data_logger_test.py::test_log_package_large_timestamp
TEST_CASE("log_package encodes timestamps above 2^63 as unsigned and names the largest entry", "[log]") {
    const axds::log_package big{.source_id = 1, .acquisition_time = (1ULL << 63U) + 5};
    const auto bytes = big.entry_bytes();
    CHECK(bytes.size() == 9);
    CHECK(bytes[8] == 0x80);
    CHECK(bytes[1] == 5);
    CHECK(axds::log_entry_file_name(255, UINT64_MAX) == "255_18446744073709551615.npy");
}

TEST_CASE("make_onset_package stores the UTC onset as 8 little-endian bytes at time 0", "[log]") {
    const auto onset = axds::make_onset_package(3, 1700000000000000ULL);
    CHECK(onset.file_name() == "003_00000000000000000000.npy");
    REQUIRE(onset.payload.size() == 8);
    std::uint64_t value = 0;
    for (int i = 7; i >= 0; --i) {
        value = (value << 8U) | onset.payload[static_cast<std::size_t>(i)];
    }
    CHECK(value == 1700000000000000ULL);
    CHECK(axds::utc_now_us() > 1700000000000000ULL);
}

TEST_CASE("an entry file is byte-identical to numpy's np.save of the entry array", "[log][python]") {
    axds::test::temp_dir tmp;
    const axds::log_package package{.source_id = 12, .acquisition_time = 5, .payload = {7, 7}};
    const auto ours = package.npy_file_bytes();
    const auto result = axds::test::run_python(
        "import sys, numpy as np\n"
        "np.save(sys.argv[1], np.array([12, 5, 0, 0, 0, 0, 0, 0, 0, 7, 7], dtype=np.uint8))\n",
        {(tmp.path() / "numpy.npy").string()});
    REQUIRE(result.exit_code == 0);
    const std::string theirs = axds::test::read_file(tmp.path() / "numpy.npy");
    CHECK(std::string(ours.begin(), ours.end()) == theirs);
    CHECK(theirs.size() == 139);  // spec §7.5: 012_00000000000000000005.npy is 139 bytes
}
