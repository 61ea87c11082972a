// The little-endian codecs: byte layout, round trips at every alignment, appends to strings and byte vectors.
#include "sys/endian.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

using namespace axds::sys;

TEST_CASE("little-endian stores put the low byte first", "[sys][endian]") {
    std::array<std::uint8_t, 8> bytes{};
    store_le16(bytes.data(), 0x0102U);
    CHECK(bytes[0] == 0x02);
    CHECK(bytes[1] == 0x01);
    store_le32(bytes.data(), 0x01020304U);
    CHECK(bytes == std::array<std::uint8_t, 8>{0x04, 0x03, 0x02, 0x01, 0, 0, 0, 0});
    CHECK(store_le64(bytes.data(), 0x0102030405060708ULL) == bytes.data() + 8);
    CHECK(bytes == std::array<std::uint8_t, 8>{0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01});
    CHECK(load_le16(bytes.data()) == 0x0708U);
    CHECK(load_le32(bytes.data() + 4) == 0x01020304U);
    CHECK(load_le64(bytes.data()) == 0x0102030405060708ULL);
}

TEST_CASE("little-endian codecs round trip at every alignment", "[sys][endian]") {
    const std::array<std::uint64_t, 6> values{
        0, 1, 0x80, 0xFF00FF00FF00FF00ULL, 0x0123456789ABCDEFULL, std::numeric_limits<std::uint64_t>::max()};
    std::array<std::uint8_t, 24> buffer{};
    for (std::size_t at = 0; at < 8; ++at) {
        for (const std::uint64_t v : values) {
            INFO("offset " << at << " value " << v);
            store_le64(buffer.data() + at, v);
            CHECK(load_le64(buffer.data() + at) == v);
            store_le32(buffer.data() + at, static_cast<std::uint32_t>(v));
            CHECK(load_le32(buffer.data() + at) == static_cast<std::uint32_t>(v));
            store_le16(buffer.data() + at, static_cast<std::uint16_t>(v));
            CHECK(load_le16(buffer.data() + at) == static_cast<std::uint16_t>(v));
        }
    }
}

TEST_CASE("append_le grows strings and byte vectors", "[sys][endian]") {
    std::string text = "x";
    append_le16(text, 0xBEEFU);
    append_le32(text, 0xDEADBEEFU);
    append_le64(text, 42U);
    REQUIRE(text.size() == 1 + 2 + 4 + 8);
    CHECK(text.substr(0, 3) == std::string("x\xEF\xBE", 3));
    CHECK(load_le32(text.data() + 3) == 0xDEADBEEFU);
    CHECK(load_le64(text.data() + 7) == 42U);
    std::vector<std::uint8_t> bytes;
    append_le64(bytes, 0x0102030405060708ULL);
    CHECK(bytes == std::vector<std::uint8_t>{8, 7, 6, 5, 4, 3, 2, 1});
}
