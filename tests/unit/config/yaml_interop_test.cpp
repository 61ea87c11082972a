// YAML configs shared with the Python library, both directions (issue 18 items 1-2): integers beyond 64 bits (Python
// ints are unbounded) and dict key order (Python dicts keep insertion order). Files Python writes load and re-emit
// byte-identically; files axds writes load in Python with equal values and the same key order.

#include <axds/config/ordered_map.hpp>
#include <axds/config/yaml_config.hpp>
#include <axds/config/yaml_value.hpp>

#include "support/matchers.hpp"
#include "support/pyyaml.hpp"
#include "support/temp_dir.hpp"

#include <axds/error.hpp>
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

namespace fs = std::filesystem;
using axds::yaml_value;
using axds::test::message_contains;
using axds::test::temp_dir;

namespace interop {

struct big_fields {
    std::string name;
    std::int64_t count = 0;
    yaml_value n;
    yaml_value neg;
    yaml_value nested;
};

AXDS_YAML_FIELDS(big_fields, name, count, n, neg, nested)

struct name_only {
    std::string name;
};

AXDS_YAML_FIELDS(name_only, name)

struct typed_n {
    std::int64_t n = 0;
};

AXDS_YAML_FIELDS(typed_n, n)

struct unsigned_n {
    std::uint64_t n = 0;
};

AXDS_YAML_FIELDS(unsigned_n, n)

struct float_n {
    double n = 0;
};

AXDS_YAML_FIELDS(float_n, n)

struct ordered_fields {
    axds::ordered_map<std::string, int> weights;
    axds::ordered_map<fs::path, int> paths;
};

AXDS_YAML_FIELDS(ordered_fields, weights, paths)

struct sorted_fields {
    std::map<std::string, int> weights;
    std::map<fs::path, int> paths;
};

AXDS_YAML_FIELDS(sorted_fields, weights, paths)

}  // namespace interop

namespace {

/// What PyYAML's safe_load reads from `file`, as repr() (dict order included).
std::string python_repr(const fs::path& file) {
    const auto result = axds::test::run_python(
        "import sys, yaml\nprint(repr(yaml.safe_load(open(sys.argv[1], encoding='utf-8'))), end='')", {file.string()});
    REQUIRE(result.exit_code == 0);
    return result.output;
}

}  // namespace

TEST_CASE("integers beyond 64 bits written by Python load and re-emit byte-identically", "[config][python]") {
    temp_dir tmp;
    const fs::path file = tmp.path() / "big.yaml";
    axds::test::pyyaml_write(
        file, "{'name': 'rig', 'count': 3, 'n': 2**64 + 1, 'neg': -(2**70), 'nested': {'big': [10**30, 1]}}");
    const std::string written = axds::test::read_file(file);
    REQUIRE_THAT(written, Catch::Matchers::Contains("n: 18446744073709551617"));

    // A struct that does not declare the big keys loads (unknown keys are ignored, not resolved into 64 bits).
    CHECK(axds::from_yaml<interop::name_only>(file).name == "rig");

    // yaml_value fields keep them exactly, and the file written back is the file Python wrote.
    const auto loaded = axds::from_yaml<interop::big_fields>(file);
    CHECK(loaded.n.type() == yaml_value::kind::big_integer);
    CHECK(loaded.n.integer_text() == "18446744073709551617");
    CHECK(loaded.neg.integer_text() == "-1180591620717411303424");
    CHECK(loaded.nested.find("big")->as_sequence()[0].integer_text() == "1000000000000000000000000000000");
    const fs::path again = tmp.path() / "again.yaml";
    axds::to_yaml(loaded, again);
    CHECK(axds::test::read_file(again) == written);
    CHECK(axds::emit_yaml(axds::parse_yaml(written)) == written);
    CHECK(python_repr(again) == python_repr(file));
}

TEST_CASE("a typed field refuses an integer it cannot hold naming the file and field and value", "[config][python]") {
    temp_dir tmp;
    const fs::path file = tmp.path() / "typed.yaml";
    axds::test::pyyaml_write(file, "{'n': 2**64 + 1}");
    CHECK_THROWS_MATCHES(axds::from_yaml<interop::typed_n>(file), axds::type_error,
                         message_contains(file.string()) && message_contains("'n'") &&
                             message_contains("18446744073709551617") && message_contains("does not fit in 64 bits"));
    CHECK_THROWS_MATCHES(
        axds::from_yaml<interop::unsigned_n>(file), axds::type_error,
        message_contains(file.string()) && message_contains("'n'") && message_contains("18446744073709551617"));
    // A float field takes it as Python's float(int) does (nearest double)...
    CHECK(axds::from_yaml<interop::float_n>(file).n == 18446744073709551617.0);
    axds::test::pyyaml_write(file, "{'n': 2**70}");
    CHECK(axds::from_yaml<interop::float_n>(file).n == 1180591620717411303424.0);
    // ...unless it is beyond the double range (Python: "int too large to convert to float").
    axds::test::pyyaml_write(file, "{'n': 10**400}");
    CHECK_THROWS_MATCHES(axds::from_yaml<interop::float_n>(file), axds::type_error,
                         message_contains(file.string()) && message_contains("'n'") &&
                             message_contains("too large for a floating-point number"));
    CHECK_THROWS_AS(axds::parse_yaml("n: 1" + std::string(400, '0')).find("n")->as_double(), axds::overflow_error);
}

TEST_CASE("integers beyond 64 bits in every YAML 1.1 base read as Python reads them", "[config][python]") {
    temp_dir tmp;
    const fs::path file = tmp.path() / "bases.yaml";
    const std::string source =
        "hex: 0x1_0000_0000_0000_0000_0\n"
        "octal: 0777777777777777777777777777\n"
        "binary: 0b11111111111111111111111111111111111111111111111111111111111111111\n"
        "sexagesimal: 99999999999999999999:59:30\n"
        "negative: -9223372036854775809\n"
        "min64: -9223372036854775808\n"
        "max64: 18446744073709551615\n"
        "plus: +18_446_744_073_709_551_616\n"
        "key_big: {340282366920938463463374607431768211456: a}\n";
    axds::test::write_file(file, source);
    // PyYAML's own reading, re-dumped with the Python library's options, against ours.
    const yaml_value value = axds::parse_yaml(source, "bases.yaml");
    CHECK(axds::emit_yaml(value) == axds::test::pyyaml_redump(file));
    CHECK(value.find("min64")->type() == yaml_value::kind::integer);
    CHECK(value.find("max64")->type() == yaml_value::kind::unsigned_integer);
    CHECK(value.find("negative")->type() == yaml_value::kind::big_integer);
    CHECK(value == axds::parse_yaml(axds::emit_yaml(value)));
}

TEST_CASE("integers up to Python's 4300-digit limit load and longer ones are refused by name", "[config][python]") {
    temp_dir tmp;
    const fs::path file = tmp.path() / "digits.yaml";
    const std::string longest = "9" + std::string(4299, '7');
    axds::test::write_file(file, "n: " + longest + "\n");
    CHECK(axds::parse_yaml(axds::test::read_file(file)).find("n")->integer_text() == longest);
    const auto python_loads = [&] {
        return axds::test::run_python("import sys, yaml\nyaml.safe_load(open(sys.argv[1]))", {file.string()})
                   .exit_code == 0;
    };
    CHECK(python_loads());
    axds::test::write_file(file, "\nn: " + longest + "1\n");
    CHECK_FALSE(python_loads());  // Python's int() refuses it too
    CHECK_THROWS_MATCHES(axds::parse_yaml(axds::test::read_file(file), "digits.yaml"), axds::overflow_error,
                         message_contains("digits.yaml") && message_contains("line 2") &&
                             message_contains("more than 4300 decimal digits"));
    // Hex digits are checked before the (quadratic) conversion: a 100 KB hex literal is refused at once.
    CHECK_THROWS_AS(axds::parse_yaml("n: 0x" + std::string(100'000, 'f')), axds::overflow_error);
    CHECK_THROWS_AS(yaml_value::from_integer_text("0012"), axds::value_error);
    CHECK_THROWS_AS(yaml_value::from_integer_text("-0"), axds::value_error);
    CHECK(yaml_value::from_integer_text("-9223372036854775808").type() == yaml_value::kind::integer);
    CHECK(yaml_value::from_integer_text("18446744073709551616").type() == yaml_value::kind::big_integer);
}

TEST_CASE("ordered_map fields keep the document's key order both ways and std::map sorts", "[config][python]") {
    temp_dir tmp;
    const fs::path file = tmp.path() / "order.yaml";
    axds::test::pyyaml_write(file, "{'weights': {'x': 1, 'y': 2, 'with space': 3}, 'paths': {'/a/b': 2, 'rel': 1}}");
    const std::string written = axds::test::read_file(file);

    const auto loaded = axds::from_yaml<interop::ordered_fields>(file);
    std::vector<std::string> keys;
    for (const auto& [key, value] : loaded.weights) {
        keys.push_back(key);
    }
    CHECK(keys == std::vector<std::string>{"x", "y", "with space"});
    CHECK(loaded.paths.begin()->first == fs::path("/a/b"));
    const fs::path again = tmp.path() / "again.yaml";
    axds::to_yaml(loaded, again);
    CHECK(axds::test::read_file(again) == written);
    CHECK(python_repr(again) == "{'weights': {'x': 1, 'y': 2, 'with space': 3}, 'paths': {'/a/b': 2, 'rel': 1}}");

    // std::map: the same values, sorted keys (documented).
    const auto sorted = axds::from_yaml<interop::sorted_fields>(file);
    const fs::path sorted_file = tmp.path() / "sorted.yaml";
    axds::to_yaml(sorted, sorted_file);
    CHECK(python_repr(sorted_file) == "{'weights': {'with space': 3, 'x': 1, 'y': 2}, 'paths': {'rel': 1, '/a/b': 2}}");
}

TEST_CASE("ordered_map keeps insertion order like a Python dict", "[config]") {
    axds::ordered_map<std::string, int> map{{"b", 1}, {"a", 2}};
    map["c"] = 3;
    map.insert_or_assign("b", 10);  // an existing key keeps its position
    std::vector<std::pair<std::string, int>> items(map.begin(), map.end());
    CHECK(items == std::vector<std::pair<std::string, int>>{{"b", 10}, {"a", 2}, {"c", 3}});
    CHECK(map.erase("a"));
    CHECK_FALSE(map.erase("a"));
    CHECK(map.at("c") == 3);
    CHECK(map.find("a") == map.end());
    CHECK_THROWS_AS(map.at("a"), std::out_of_range);
    const axds::ordered_map<std::string, int> reversed{{"c", 3}, {"b", 10}};
    CHECK(map == reversed);  // equality ignores order, as dict equality does
    map["a"] = 1;
    CHECK(std::prev(map.end())->first == "a");
}

// Found by the review of the fuzz harness: PyYAML's safe_load merges `<<` keys (YAML 1.1 merge); axds kept `<<` as an
// ordinary key. Each document must load as PyYAML loads it (compared through the Python library's dumper).
TEST_CASE("merge keys load as PyYAML merges them", "[config][python]") {
    temp_dir tmp;
    const std::vector<std::string> documents{
        "base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\n",
        "a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc:\n  <<: [*a, *b]\n  w: 0\n",
        "a: &a {x: 1}\nc:\n  w: 0\n  <<: *a\n  x: 5\n",
        "a: &a {x: 1, n: &n {p: 1}}\nb: &b {<<: *a, y: 2}\nc: {<<: *b, z: 3}\n",
        "a: &a {x: 1}\nc: {!!merge <<: *a, '<<': literal}\n",
        "a: &a {x: 1}\nb: &b {x: 2}\nc: {<<: *a, <<: *b}\n",
        "c: {<<: {k: inline}}\n",
    };
    for (const auto& document : documents) {
        INFO(document);
        const fs::path file = tmp.path() / "merge.yaml";
        axds::test::write_file(file, document);
        CHECK(axds::emit_yaml(axds::parse_yaml(document)) == axds::test::pyyaml_redump(file));
    }
    for (const std::string bad : {"c: {<<: 5}\n", "c: {<<: [{a: 1}, 2]}\n"}) {
        INFO(bad);
        const fs::path file = tmp.path() / "bad_merge.yaml";
        axds::test::write_file(file, bad);
        CHECK(
            axds::test::run_python("import sys, yaml\nyaml.safe_load(open(sys.argv[1]))", {file.string()}).exit_code !=
            0);
        CHECK_THROWS_MATCHES(axds::parse_yaml(bad, "bad_merge.yaml"), axds::yaml_error,
                             message_contains("bad_merge.yaml") && message_contains("for merging"));
    }
}

namespace interop {

struct number_variant {
    std::variant<std::int64_t, double> v;
};

AXDS_YAML_FIELDS(number_variant, v)

}  // namespace interop

// Found by the review of issue 18: a variant with an integer and a floating-point alternative took an integer beyond
// 64 bits as a rounded double (written back as 1.8446744073709552e+19), where Python's `int | float` keeps the int.
TEST_CASE("an integer beyond the integer alternatives of a variant is refused and never rounded", "[config]") {
    temp_dir tmp;
    const fs::path file = tmp.path() / "variant.yaml";
    axds::test::write_file(file, "v: 18446744073709551616\n");
    CHECK_THROWS_MATCHES(axds::from_yaml<interop::number_variant>(file), axds::type_error,
                         message_contains(file.string()) && message_contains("'v'") &&
                             message_contains("holds the integer 18446744073709551616"));
    axds::test::write_file(file, "v: 9223372036854775808\n");  // uint64: beyond int64 too
    CHECK_THROWS_AS(axds::from_yaml<interop::number_variant>(file), axds::type_error);
    axds::test::write_file(file, "v: 5\n");
    CHECK(std::get<std::int64_t>(axds::from_yaml<interop::number_variant>(file).v) == 5);
    axds::test::write_file(file, "v: 1.5\n");
    CHECK(std::get<double>(axds::from_yaml<interop::number_variant>(file).v) == 1.5);
}

// Found by the same review: iterating an ordered_map gave mutable keys, and changing one broke the lookup index.
TEST_CASE("ordered_map iteration cannot change keys", "[config]") {
    axds::ordered_map<std::string, int> map{{"a", 1}};
    static_assert(std::is_const_v<std::remove_reference_t<decltype((map.begin()->first))>>);
    static_assert(std::is_const_v<std::remove_reference_t<decltype((map.begin()->second))>>);
    map.at("a") = 2;
    map["b"] = 3;
    CHECK(map.at("a") == 2);
    CHECK(map.contains("b"));
}
