#include <axds/npy/npy_format.hpp>

#include "npy/npy_fast.hpp"
#include "support/matchers.hpp"
#include "support/temp_dir.hpp"

#include <axds/error.hpp>
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

using axds::test::message_contains;

namespace {

std::span<const std::uint8_t> bytes_of(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

}  // namespace

TEST_CASE("encode_npy_u1_header writes numpy's 128-byte header for any entry length", "[npy]") {
    for (const std::uint64_t length : {0ULL, 9ULL, 13ULL, 99999ULL, 18446744073709551615ULL}) {
        const std::string header = axds::encode_npy_u1_header(length);
        INFO(length);
        REQUIRE(header.size() == 128);
        CHECK(header.substr(0, 10) == std::string("\x93NUMPY\x01\x00\x76\x00", 10));
        const std::string dict =
            "{'descr': '|u1', 'fortran_order': False, 'shape': (" + std::to_string(length) + ",), }";
        CHECK(header.substr(10, dict.size()) == dict);
        const std::size_t digits = std::to_string(length).size();
        CHECK(header.find_last_not_of(" \n") == 10 + dict.size() - 1);
        CHECK(header.size() - 10 - dict.size() - 1 == 61 - digits);  // spaces after '}' (spec §6.2)
        CHECK(header.back() == '\n');
    }
}

TEST_CASE("encode_npy_header is byte-identical to numpy's np.save for several shapes and dtypes", "[npy][python]") {
    axds::test::temp_dir tmp;
    const auto result = axds::test::run_python(
        "import io, sys, numpy as np\n"
        "cases = [(np.zeros(0, np.uint8),), (np.zeros(13, np.uint8),), (np.zeros((2, 3), np.uint8),),"
        " (np.zeros((2, 3), np.uint8, order='F'),), (np.zeros((), np.uint8),), (np.zeros(5, '<u8'),),"
        " (np.zeros((4, 0, 7), '<f8'),)]\n"
        "for (a,) in cases:\n"
        "    b = io.BytesIO(); np.save(b, a); raw = b.getvalue()\n"
        "    n = 10 + int.from_bytes(raw[8:10], 'little')\n"
        "    print(raw[:n].hex())\n");
    REQUIRE(result.exit_code == 0);
    const std::vector<std::uint64_t> empty;
    const std::vector<std::uint64_t> s13{13};
    const std::vector<std::uint64_t> s23{2, 3};
    const std::vector<std::uint64_t> s5{5};
    const std::vector<std::uint64_t> s407{4, 0, 7};
    const std::vector<std::string> ours = {axds::encode_npy_u1_header(0),
                                           axds::encode_npy_header("|u1", false, s13),
                                           axds::encode_npy_header("|u1", false, s23),
                                           axds::encode_npy_header("|u1", true, s23),
                                           axds::encode_npy_header("|u1", false, empty),
                                           axds::encode_npy_header("<u8", false, s5),
                                           axds::encode_npy_header("<f8", false, s407)};
    std::string expected;
    for (const auto& header : ours) {
        for (const char raw : header) {
            const auto c = static_cast<unsigned char>(raw);
            static constexpr char digits[] = "0123456789abcdef";
            expected.push_back(digits[c >> 4U]);
            expected.push_back(digits[c & 15U]);
        }
        expected.push_back('\n');
    }
    CHECK(result.output == expected);
}

TEST_CASE("parse_npy_header reads versions 1.0, 2.0 and 3.0 written by numpy", "[npy][python]") {
    axds::test::temp_dir tmp;
    const auto result = axds::test::run_python(
        "import sys, numpy as np\n"
        "from numpy.lib import format as f\n"
        "for v in [(1, 0), (2, 0), (3, 0)]:\n"
        "    with open(sys.argv[1] + '/v%d.npy' % v[0], 'wb') as out:\n"
        "        f.write_array(out, np.arange(6, dtype=np.uint8).reshape(2, 3), version=v)\n",
        {tmp.path().string()});
    REQUIRE(result.exit_code == 0);
    for (const char* name : {"v1.npy", "v2.npy", "v3.npy"}) {
        INFO(name);
        const std::string file = axds::test::read_file(tmp.path() / name);
        const auto header = axds::parse_npy_header(bytes_of(file), name);
        CHECK(header.major_version == name[1] - '0');
        CHECK(header.descr == "|u1");
        CHECK_FALSE(header.fortran_order);
        CHECK(header.shape == std::vector<std::uint64_t>{2, 3});
        CHECK(header.element_count() == 6);
        CHECK(header.item_size() == 1);
        CHECK(header.data_offset + 6 == file.size());
        CHECK(file.substr(header.data_offset) == std::string("\x00\x01\x02\x03\x04\x05", 6));
    }
}

TEST_CASE("npy_u1_payload returns the data of a 1-D uint8 array, fast path and generic path", "[npy]") {
    const std::string canonical = axds::encode_npy_u1_header(3) + "abc";
    CHECK(axds::npy_u1_payload(bytes_of(canonical), "x").size() == 3);
    // Reordered keys and extra spaces are valid Python dict syntax: the generic parser takes them.
    std::string dict = "{'shape': (3,), 'fortran_order': False, 'descr': '|u1'}";
    dict.append(118 - dict.size() - 1, ' ');
    dict.push_back('\n');
    const std::string reordered = std::string("\x93NUMPY\x01\x00\x76\x00", 10) + dict + "xyz";
    const auto payload = axds::npy_u1_payload(bytes_of(reordered), "x");
    CHECK(std::string(payload.begin(), payload.end()) == "xyz");
}

TEST_CASE("every log entry's header takes the fast path, and a leading zero in its shape falls to the parser",
          "[npy]") {
    for (const std::uint64_t length : {0ULL, 3ULL, 73ULL, 1234567ULL}) {
        INFO(length);
        const std::string entry = axds::encode_npy_u1_header(length) + std::string(length, 'x');
        CHECK(axds::detail::npy_canonical_u1_offset(bytes_of(entry)) == 128);
        CHECK(axds::detail::npy_canonical_u1_offset(bytes_of(entry + "y")) == 0);  // the length disagrees
    }
    // The layout of the fast path with the length written "03": Python refuses the leading zero, and so do we.
    std::string dict = "{'descr': '|u1', 'fortran_order': False, 'shape': (03,), }";
    dict.append(118 - dict.size() - 1, ' ');
    dict.push_back('\n');
    const std::string padded = std::string("\x93NUMPY\x01\x00\x76\x00", 10) + dict + "abc";
    REQUIRE(padded.size() == 131);
    CHECK(axds::detail::npy_canonical_u1_offset(bytes_of(padded)) == 0);
    CHECK_THROWS_MATCHES(axds::npy_u1_payload(bytes_of(padded), "zero.npy"), axds::value_error,
                         message_contains("zero.npy") && message_contains("leading zero"));
}

TEST_CASE("malformed .npy headers are rejected naming the source and the byte offset", "[npy]") {
    const std::string good = axds::encode_npy_u1_header(3) + "abc";
    const auto fails_with = [](const std::string& data, const char* fragment) {
        INFO(fragment);
        CHECK_THROWS_MATCHES(
            axds::npy_u1_payload(bytes_of(data), "entry.npy"), axds::value_error,
            message_contains("entry.npy") && message_contains(fragment) && message_contains("byte offset"));
    };
    fails_with("short", "too short");
    fails_with("X" + good.substr(1), "magic string");
    std::string bad_version = good;
    bad_version[6] = 9;
    fails_with(bad_version, "unsupported .npy format version 9.0");
    std::string long_header = good;
    long_header[9] = 0x7F;
    fails_with(long_header, "runs past the end");
    fails_with(good.substr(0, good.size() - 1), "declares 3 bytes of data, but 2 follow");
    std::string not_u1 = good;
    not_u1.replace(not_u1.find("|u1"), 3, "<f8");
    fails_with(not_u1, "expected a uint8 array");
    std::string two_d = axds::encode_npy_header("|u1", false, std::vector<std::uint64_t>{1, 3}) + "abc";
    fails_with(two_d, "1-D array");
    std::string structured = good;
    structured.replace(structured.find("'|u1'"), 5, "[('a',");
    fails_with(structured, "structured dtypes");
    std::string broken_shape = good;
    broken_shape.replace(broken_shape.find("(3,)"), 4, "(x,)");
    fails_with(broken_shape, "tuple of non-negative integers");
    std::string unknown_key = good;
    unknown_key.replace(unknown_key.find("'shape'"), 7, "'shapy'");
    fails_with(unknown_key, "unexpected key 'shapy'");
}

// Found by the review of the fuzz harness: headers numpy refuses were accepted ("(5)" is the int 5, not a tuple;
// "005" is not a Python integer; text after the dictionary; 30,000 dimensions), a shape whose element count overflows
// 64 bits made element_count() return 0, item_size() said 3 bytes for '<U3' (numpy: 12), and encode_npy_header
// wrote a header over 64 KiB with a truncated 16-bit length instead of switching to format 2.0.
TEST_CASE("parse_npy_header refuses shapes and text numpy refuses", "[npy][hostile]") {
    const auto with_dict = [](const std::string& dict) {
        std::string header = dict;
        header.append(63 - (10 + header.size()) % 64, ' ');
        header.push_back('\n');
        std::string out("\x93NUMPY\x01\x00", 8);
        out.push_back(static_cast<char>(header.size() & 0xFFU));
        out.push_back(static_cast<char>(header.size() >> 8U));
        return out + header;
    };
    const auto refused = [&](const std::string& dict, const char* fragment) {
        INFO(dict);
        CHECK_THROWS_MATCHES(axds::parse_npy_header(bytes_of(with_dict(dict)), "odd.npy"), axds::value_error,
                             message_contains("odd.npy") && message_contains(fragment));
    };
    refused("{'descr': '|u1', 'fortran_order': False, 'shape': (5), }", "trailing comma");
    refused("{'descr': '|u1', 'fortran_order': False, 'shape': (005,), }", "leading zero");
    refused("{'descr': '|u1', 'fortran_order': False, 'shape': (5,), } junk", "after the header dictionary");
    refused("{'descr': '|u1', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", "64 bits");
    std::string many = "{'descr': '|u1', 'fortran_order': False, 'shape': (";
    for (int i = 0; i < 65; ++i) {
        many += "1, ";
    }
    refused(many + "), }", "more than 64 dimensions");
    // What numpy writes still loads: one dimension with its comma, 0-d, trailing comma after the last of several.
    for (const std::string ok : {"{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }",
                                 "{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
                                 "{'descr': '<U3', 'fortran_order': True, 'shape': (2, 0, 3,), }"}) {
        INFO(ok);
        CHECK_NOTHROW(axds::parse_npy_header(bytes_of(with_dict(ok)), "ok.npy"));
    }
    const auto unicode = axds::parse_npy_header(
        bytes_of(with_dict("{'descr': '<U3', 'fortran_order': False, 'shape': (2,), }")), "u.npy");
    CHECK(unicode.item_size() == 12);
    axds::npy_header by_hand;
    by_hand.shape = {std::uint64_t{1} << 40U, std::uint64_t{1} << 40U};
    CHECK(by_hand.element_count() == ~std::uint64_t{0});

    // A header over 64 KiB (many dimensions of long numbers would do; here a long descr) is format 2.0, as numpy
    // writes it, and reads back.
    const std::string long_descr = "|V" + std::string(70'000, '9');
    const std::vector<std::uint64_t> shape{3};
    const std::string header = axds::encode_npy_header(long_descr, false, shape);
    CHECK(header[6] == '\x02');
    CHECK(header.size() % 64 == 0);
    const auto back = axds::parse_npy_header(bytes_of(header), "wide.npy");
    CHECK(back.descr == long_descr);
    CHECK(back.data_offset == header.size());
    CHECK(back.major_version == 2);
}
