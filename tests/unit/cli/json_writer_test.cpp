// The CLI's JSON writer: escaping (control characters, quotes, backslash, bytes that are not UTF-8) and layout.

#include "cli/json_writer.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>

using axds::cli::json_quote;
using axds::cli::json_writer;
using namespace std::string_literals;

TEST_CASE("json_quote escapes quotes and backslashes and names newline tab and carriage return", "[cli][json]") {
    CHECK(json_quote("") == R"("")");
    CHECK(json_quote("plain text") == R"("plain text")");
    CHECK(json_quote(R"(say "hi")") == R"("say \"hi\"")");
    CHECK(json_quote(R"(C:\dir\)") == R"("C:\\dir\\")");
    CHECK(json_quote("a\nb\tc\rd") == R"("a\nb\tc\rd")");
}

TEST_CASE("json_quote writes the other control characters as lowercase u00XX escapes", "[cli][json]") {
    CHECK(json_quote("\x01\x1f") == R"("\u0001\u001f")");
    CHECK(json_quote("\b\f") == R"("\u0008\u000c")");  // no short forms: the same bytes as before the writer
    CHECK(json_quote("nul:"s + '\0' + "end") == R"("nul:\u0000end")");
    CHECK(json_quote("\x7f") == "\"\x7f\"");  // DEL is not a JSON control character
}

TEST_CASE("json_quote keeps valid UTF-8 and writes each invalid byte as the surrogate escape udcXX", "[cli][json]") {
    CHECK(json_quote("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    CHECK(json_quote("name\xff") == R"("name\udcff")");
    CHECK(json_quote("\xc3") == R"("\udcc3")");                                // truncated sequence
    CHECK(json_quote("\xc0\xaf") == R"("\udcc0\udcaf")");                      // overlong '/'
    CHECK(json_quote("\xed\xa0\x80") == R"("\udced\udca0\udc80")");            // an encoded surrogate is not UTF-8
    CHECK(json_quote("\xf4\x90\x80\x80") == R"("\udcf4\udc90\udc80\udc80")");  // beyond U+10FFFF
    CHECK(json_quote("\xe2\x82x") == R"("\udce2\udc82x")");  // the bytes after a broken sequence are read again
}

TEST_CASE("json_writer lays out nested objects and arrays as Python's json.dumps does", "[cli][json]") {
    json_writer json;
    json.begin_object()
        .field("name", "a\"b")
        .key("list")
        .begin_array()
        .value(1)
        .value(-2)
        .begin_object()
        .field("inner", true)
        .end_object()
        .begin_array()
        .end_array()
        .null()
        .end_array()
        .key("empty")
        .begin_object()
        .end_object()
        .field("flag", false)
        .end_object();
    CHECK(json.str() == R"({"name": "a\"b", "list": [1, -2, {"inner": true}, [], null], "empty": {}, "flag": false})");
}

TEST_CASE("json_writer escapes keys and writes paths optionals and numbers", "[cli][json]") {
    json_writer json;
    json.begin_object()
        .field("k\"\n", std::string("v\xfe"))
        .key("paths")
        .paths({std::filesystem::path("/a\"b"), std::filesystem::path("/c\xff")})
        .field("none", std::optional<std::string>())
        .field("some", std::optional<std::uint64_t>(7))
        .field("max", std::numeric_limits<std::uint64_t>::max())
        .field("min", std::numeric_limits<std::int64_t>::min())
        .field("mean", 4.0)
        .field("half", 0.5)
        .field("nan", std::nan(""))
        .key("seconds")
        .fixed(1.23456, 3)
        .key("inf")
        .fixed(std::numeric_limits<double>::infinity(), 3)
        .end_object();
    CHECK(json.str() == R"({"k\"\n": "v\udcfe", "paths": ["/a\"b", "/c\udcff"], "none": null, "some": 7, )"
                        R"("max": 18446744073709551615, "min": -9223372036854775808, "mean": 4, "half": 0.5, )"
                        R"("nan": null, "seconds": 1.235, "inf": null})");
}

TEST_CASE("json_writer writes a lone scalar and an empty array", "[cli][json]") {
    json_writer text;
    text.value("x");
    CHECK(text.str() == R"("x")");
    json_writer list;
    list.paths({});
    CHECK(list.str() == "[]");
}

TEST_CASE("json_writer refuses output that would not be JSON", "[cli][json]") {
    json_writer no_key;
    no_key.begin_object();
    CHECK_THROWS_AS(no_key.value(1), std::logic_error);
    json_writer key_in_array;
    key_in_array.begin_array();
    CHECK_THROWS_AS(key_in_array.key("k"), std::logic_error);
    json_writer mismatched;
    mismatched.begin_object();
    CHECK_THROWS_AS(mismatched.end_array(), std::logic_error);
    json_writer dangling_key;
    dangling_key.begin_object().key("k");
    CHECK_THROWS_AS(dangling_key.end_object(), std::logic_error);
    json_writer second;
    second.begin_object().end_object();
    CHECK_THROWS_AS(second.value(true), std::logic_error);
}
