#include <axds/config/yaml_value.hpp>

#include "support/matchers.hpp"
#include "support/pyyaml.hpp"
#include "support/temp_dir.hpp"

#include <axds/error.hpp>
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

using axds::yaml_value;
using axds::test::message_contains;

namespace {

yaml_value::mapping one(std::string key, yaml_value value) {
    return {axds::yaml_mapping_entry{yaml_value(std::move(key)), std::move(value)}};
}

}  // namespace

TEST_CASE("yaml_float_text writes Python's float repr as PyYAML represents it", "[config]") {
    CHECK(axds::yaml_float_text(3.0) == "3.0");
    CHECK(axds::yaml_float_text(0.1) == "0.1");
    CHECK(axds::yaml_float_text(0.5) == "0.5");
    CHECK(axds::yaml_float_text(-0.0) == "-0.0");
    CHECK(axds::yaml_float_text(1e-07) == "1.0e-07");
    CHECK(axds::yaml_float_text(1e-05) == "1.0e-05");
    CHECK(axds::yaml_float_text(0.0001) == "0.0001");
    CHECK(axds::yaml_float_text(1e17) == "1.0e+17");
    CHECK(axds::yaml_float_text(1e16) == "1.0e+16");
    CHECK(axds::yaml_float_text(1e15) == "1000000000000000.0");
    CHECK(axds::yaml_float_text(1.2345678901234568e+17) == "1.2345678901234568e+17");
    CHECK(axds::yaml_float_text(1.5e300) == "1.5e+300");
    CHECK(axds::yaml_float_text(std::numeric_limits<double>::quiet_NaN()) == ".nan");
    CHECK(axds::yaml_float_text(std::numeric_limits<double>::infinity()) == ".inf");
    CHECK(axds::yaml_float_text(-std::numeric_limits<double>::infinity()) == "-.inf");
}

TEST_CASE("yaml11_plain_is_not_string matches the spec's verified quoting examples", "[config]") {
    for (const char* quoted : {"123",
                               "1.5",
                               "true",
                               "yes",
                               "Yes",
                               "ON",
                               "null",
                               "Null",
                               "~",
                               "",
                               "0x1F",
                               "+12",
                               "1_000",
                               "12:30",
                               ".5",
                               "1.",
                               "+.inf",
                               ".NaN",
                               "2024-01-01",
                               "=",
                               "<<",
                               "0012345670123456",
                               "0b01101001010110",
                               "123\n",
                               "2024-01-01 10:00:00"}) {
        INFO(quoted);
        CHECK(axds::yaml11_plain_is_not_string(quoted));
    }
    for (const char* plain : {"0o17", "1e10", "1.5e3", "nUll", "n", "0089123412341234", ".", "hello", "y", "1.5.3"}) {
        INFO(plain);
        CHECK_FALSE(axds::yaml11_plain_is_not_string(plain));
    }
}

TEST_CASE("emit_yaml reproduces the spec's verified document byte for byte", "[config]") {
    yaml_value::mapping inner;
    inner.push_back({"path", "/default"});
    inner.push_back({"color", "red"});
    yaml_value::mapping doc;
    doc.push_back({"name", "caf\xC3\xA9 \xC3\xBC"});
    doc.push_back({"count", 3});
    doc.push_back({"ratio", 0.5});
    doc.push_back({"flag", true});
    doc.push_back({"maybe", nullptr});
    doc.push_back({"p", "relative/dir"});
    doc.push_back({"pl", yaml_value::sequence{"/a", "b/c"}});
    doc.push_back({"tup", yaml_value::sequence{1, 2}});
    doc.push_back({"c", "green"});
    doc.push_back({"pr", 3});
    doc.push_back({"inner", inner});
    doc.push_back({"m", one("/x", 1)});
    doc.push_back({"em", yaml_value::mapping{}});
    doc.push_back({"el", yaml_value::sequence{}});
    doc.push_back({"multiline", "line1\nline2\n"});
    const std::string expected =
        "---\nname: \"caf\\xE9 \\xFC\"\ncount: 3\nratio: 0.5\nflag: true\nmaybe: null\np: relative/dir\npl:\n- /a\n- "
        "b/c\ntup:\n- 1\n- 2\nc: green\npr: 3\ninner:\n  path: /default\n  color: red\nm:\n  /x: 1\nem: {}\nel: []\n"
        "multiline: 'line1\n\n  line2\n\n  '\n...\n";
    CHECK(axds::emit_yaml(yaml_value(doc)) == expected);
}

TEST_CASE("emit_yaml is byte-identical to PyYAML's CDumper on tricky scalars", "[config][python]") {
    const std::vector<std::string> strings = {"plain",
                                              "123",
                                              "1.5",
                                              "yes",
                                              "No",
                                              "off",
                                              "null",
                                              "~",
                                              "",
                                              "0x1F",
                                              "+12",
                                              "1_000",
                                              "12:30",
                                              ".5",
                                              "1.",
                                              "+.inf",
                                              ".NaN",
                                              "2024-01-01",
                                              "=",
                                              "<<",
                                              "0012345670123456",
                                              "0b01101001010110",
                                              "0o17",
                                              "1e10",
                                              "nUll",
                                              "0089123412341234",
                                              ".",
                                              "it's",
                                              "a\nb",
                                              "a\n\nb",
                                              "trailing ",
                                              " leading",
                                              "tab\there",
                                              "cr\rhere",
                                              "- dash",
                                              "-dash",
                                              "key: value",
                                              "a #comment",
                                              "#hash",
                                              "[x]",
                                              "{y}",
                                              "a, b",
                                              "?q",
                                              ":colon",
                                              "x:y",
                                              "&a",
                                              "*b",
                                              "!tag",
                                              "|pipe",
                                              ">fold",
                                              "'quote",
                                              "\"dq",
                                              "%pct",
                                              "@at",
                                              "`tick",
                                              "---",
                                              "...",
                                              "caf\xC3\xA9",
                                              "\xC2\xA0nbsp",
                                              "\xEF\xBB\xBFx",
                                              "\xF0\x9F\x98\x80",
                                              "a\x01"
                                              "b",
                                              "bell\a",
                                              "nel\xC2\x85",
                                              "ls\xE2\x80\xA8",
                                              std::string(199, 'a') + " b c",
                                              "word " + std::string(250, 'w') + " end",
                                              "many words " + std::string(60, ' ') + " spaced",
                                              "line\n with space",
                                              "line \nx",
                                              "\nstarts",
                                              "ends\n",
                                              "multi\nline\ntext\n",
                                              "café naïve",
                                              "\\backslash",
                                              "back\\slash\"quote\"",
                                              "2024-01-01 10:00:00",
                                              std::string(50, 'x') + "\n" + std::string(250, 'y')};
    yaml_value::mapping doc;
    yaml_value::sequence items;
    for (std::size_t i = 0; i < strings.size(); ++i) {
        doc.push_back({"k" + std::to_string(i), strings[i]});
        items.push_back(strings[i]);
    }
    doc.push_back({"as_list", items});
    yaml_value::mapping keyed;
    for (const auto& s : strings) {
        if (s.find('\n') == std::string::npos && s.size() < 100) {
            keyed.push_back({s, 1});
        }
    }
    doc.push_back({"as_keys", keyed});
    doc.push_back({"floats", yaml_value::sequence{0.1, 1e-07, 1e17, -0.0, 3.0, 2.5e-300, 123456.789,
                                                  std::numeric_limits<double>::infinity(), 1e16, 1e15}});
    doc.push_back({"ints", yaml_value::sequence{0, -1, std::numeric_limits<std::int64_t>::min(),
                                                std::numeric_limits<std::uint64_t>::max()}});
    doc.push_back({"nested", yaml_value::sequence{yaml_value::sequence{1, yaml_value::sequence{2, 3}},
                                                  yaml_value(one("a", one("b", yaml_value::sequence{}))),
                                                  yaml_value::mapping{}}});
    doc.push_back({"bools", yaml_value::sequence{true, false, nullptr}});
    doc.push_back({yaml_value(7), "int key"});
    doc.push_back({yaml_value(true), "bool key"});
    const std::string ours = axds::emit_yaml(yaml_value(doc));
    CHECK(ours == axds::test::pyyaml_redump_text(ours));
}

TEST_CASE("emit_yaml rejects invalid UTF-8 and non-scalar keys", "[config]") {
    CHECK_THROWS_MATCHES(axds::emit_yaml(yaml_value(one("k", "bad\xFF"))), axds::value_error,
                         message_contains("not valid UTF-8"));
    yaml_value::mapping bad_key;
    bad_key.push_back({yaml_value::sequence{1}, 2});
    CHECK_THROWS_AS(axds::emit_yaml(yaml_value(bad_key)), axds::value_error);
}

TEST_CASE("parse_yaml resolves plain scalars with YAML 1.1 rules as PyYAML's safe loader does", "[config]") {
    const auto doc = axds::parse_yaml(
        "a: yes\nb: Off\nc: 0x1F\nd: 017\ne: 0b101\nf: 1:30\ng: 1_000\nh: .inf\ni: -.INF\nj: .nan\nk: ~\nl: null\n"
        "m: '123'\nn: \"yes\"\no: !!str 42\np: 1.5\nq: 1e10\nr: 2024-01-01\ns: +12\nt: 1.0e+17\nu: 0o17\nv:\n"
        "w: 18446744073709551615\nx: -9223372036854775808\ny: !!float 3\nz: 1:30.5\n");
    const auto get = [&](const char* key) {
        return *doc.find(key);
    };
    CHECK(get("a") == yaml_value(true));
    CHECK(get("b") == yaml_value(false));
    CHECK(get("c") == yaml_value(31));
    CHECK(get("d") == yaml_value(15));
    CHECK(get("e") == yaml_value(5));
    CHECK(get("f") == yaml_value(90));
    CHECK(get("g") == yaml_value(1000));
    CHECK(get("h") == yaml_value(std::numeric_limits<double>::infinity()));
    CHECK(get("i") == yaml_value(-std::numeric_limits<double>::infinity()));
    CHECK(std::isnan(get("j").as_double()));
    CHECK(get("k").is_null());
    CHECK(get("l").is_null());
    CHECK(get("m") == yaml_value("123"));
    CHECK(get("n") == yaml_value("yes"));
    CHECK(get("o") == yaml_value("42"));
    CHECK(get("p") == yaml_value(1.5));
    CHECK(get("q") == yaml_value("1e10"));        // YAML 1.1 needs a sign in the exponent
    CHECK(get("r") == yaml_value("2024-01-01"));  // timestamps stay strings
    CHECK(get("s") == yaml_value(12));
    CHECK(get("t") == yaml_value(1e17));
    CHECK(get("u") == yaml_value("0o17"));
    CHECK(get("v").is_null());
    CHECK(get("w") == yaml_value(std::numeric_limits<std::uint64_t>::max()));
    CHECK(get("x") == yaml_value(std::numeric_limits<std::int64_t>::min()));
    CHECK(get("y") == yaml_value(3.0));
    CHECK(get("z") == yaml_value(90.5));
}

TEST_CASE("parse_yaml handles empty documents, anchors, duplicates and multi-line strings", "[config]") {
    CHECK(axds::parse_yaml("").is_null());
    CHECK(axds::parse_yaml("---\n...\n").is_null());
    CHECK(axds::parse_yaml("- 1\n- 2\n").type() == yaml_value::kind::sequence);
    const auto doc = axds::parse_yaml("base: &b {x: 1}\ncopy: *b\ndup: 1\ndup: 2\ntext: 'line1\n\n  line2\n\n  '\n");
    CHECK(*doc.find("copy") == yaml_value(one("x", 1)));
    CHECK(*doc.find("dup") == yaml_value(2));
    CHECK(*doc.find("text") == yaml_value("line1\nline2\n"));
    CHECK(doc.as_mapping().size() == 4);
}

TEST_CASE("parse_yaml reports malformed YAML with the source name and position", "[config]") {
    CHECK_THROWS_MATCHES(axds::parse_yaml("a: [1, 2\nb: 3\n", "broken.yaml"), axds::yaml_error,
                         message_contains("broken.yaml"));
    CHECK_THROWS_MATCHES(axds::parse_yaml("a: *missing\n", "x.yaml"), axds::yaml_error, message_contains("line 1"));
    CHECK_THROWS_AS(axds::parse_yaml("a: !!int notanumber\n"), axds::yaml_error);
    // Integers beyond 64 bits load (see the big-integer tests); one past Python's 4300-digit limit does not.
    CHECK_THROWS_MATCHES(axds::parse_yaml("a: 1" + std::string(4300, '0') + "\n", "long.yaml"), axds::overflow_error,
                         message_contains("long.yaml") && message_contains("line 1") && message_contains("4300"));
}

TEST_CASE("emit_yaml and parse_yaml round-trip every kind of value", "[config]") {
    yaml_value::mapping doc;
    doc.push_back({"s", "0012"});
    doc.push_back({"i", -42});
    doc.push_back({"u", std::numeric_limits<std::uint64_t>::max()});
    doc.push_back({"f", 1e-300});
    doc.push_back({"b", false});
    doc.push_back({"n", nullptr});
    doc.push_back({"l", yaml_value::sequence{"a", 1, 2.5, yaml_value::sequence{}}});
    doc.push_back({yaml_value(3), "int key"});
    const yaml_value original(doc);
    CHECK(axds::parse_yaml(axds::emit_yaml(original)) == original);
}
