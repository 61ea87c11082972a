#include <axds/config/yaml_config.hpp>

#include "support/matchers.hpp"
#include "support/pyyaml.hpp"
#include "support/temp_dir.hpp"

#include <axds/error.hpp>
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <sys/stat.h>

namespace fs = std::filesystem;
using axds::test::message_contains;
using axds::test::read_file;
using axds::test::temp_dir;
using axds::test::write_file;

namespace cfg {

enum class color { red, green, blue };
AXDS_YAML_ENUM_NAMES(color, red, green, blue)

enum class priority : int { low = 1, medium = 2, high = 3 };  // an IntEnum: written as its integer
AXDS_YAML_ENUM_VALUES(priority, low, medium, high)

struct inner {
    fs::path path = "/default";
    color tint = color::red;
};

constexpr auto yaml_fields(axds::type_tag<inner> /*unused*/) {
    return std::tuple{axds::yaml_field("path", &inner::path), axds::yaml_field("color", &inner::tint)};
}

struct simple {
    std::string name = "test";
    int count = 1;
    double ratio = 0.25;
    bool flag = false;
};
AXDS_YAML_FIELDS(simple, name, count, ratio, flag)

struct nested {
    std::map<std::string, int> settings;
    std::vector<std::string> items;
    std::optional<std::map<std::string, int>> maybe_dict;
    std::optional<std::vector<int>> maybe_list;
};
AXDS_YAML_FIELDS(nested, settings, items, maybe_dict, maybe_list)

struct paths {
    fs::path root = "/data";
    std::optional<fs::path> maybe;
    std::vector<fs::path> many;
    std::array<int, 3> tup{1, 2, 3};
    std::vector<fs::path> path_tuple;
    std::array<int, 0> empty_tuple{};
};
AXDS_YAML_FIELDS(paths, root, maybe, many, tup, path_tuple, empty_tuple)

struct enums {
    color c = color::green;
    std::optional<color> maybe_color;
    priority pr = priority::high;
    inner in;
    std::variant<color, std::string> color_or_text = color::red;
    std::variant<std::string, color> text_or_color = std::string("x");
    std::variant<int, priority> int_or_priority = 0;
};
AXDS_YAML_FIELDS(enums, c, maybe_color, pr, in, color_or_text, text_or_color, int_or_priority)

struct keyed {
    std::map<fs::path, int> by_path;
    std::map<color, std::string> by_color;
    std::map<std::string, int> by_string;
    std::map<int, std::string> by_int;
};
AXDS_YAML_FIELDS(keyed, by_path, by_color, by_string, by_int)

struct with_excluded {
    int value = 7;
    fs::path source_path;

    void restore_excluded_fields(const fs::path& file) { source_path = file; }
};

constexpr auto yaml_fields(axds::type_tag<with_excluded> /*unused*/) {
    return std::tuple{axds::yaml_field("value", &with_excluded::value),
                      axds::yaml_field("source_path", &with_excluded::source_path, axds::yaml_exclude)};
}

struct free_form {
    std::string kind = "x";
    axds::yaml_value extra;  // whatever the document holds, kept as a tree
};
AXDS_YAML_FIELDS(free_form, kind, extra)

struct required_field {
    std::string id;
    int other = 0;
};

constexpr auto yaml_fields(axds::type_tag<required_field> /*unused*/) {
    return std::tuple{axds::yaml_field("id", &required_field::id, axds::yaml_required),
                      axds::yaml_field("other", &required_field::other)};
}

struct spec_example {
    std::string name;
    int count = 0;
    double ratio = 0;
    bool flag = false;
    std::optional<std::string> maybe;
    fs::path p;
    std::vector<fs::path> pl;
    std::array<int, 2> tup{};
    color c = color::red;
    priority pr = priority::low;
    inner in;
    std::map<fs::path, int> m;
    std::map<std::string, int> em;
    std::vector<int> el;
    std::string multiline;
    std::string secret = "never written";
};

constexpr auto yaml_fields(axds::type_tag<spec_example> /*unused*/) {
    using s = spec_example;
    return std::tuple{axds::yaml_field("name", &s::name),
                      axds::yaml_field("count", &s::count),
                      axds::yaml_field("ratio", &s::ratio),
                      axds::yaml_field("flag", &s::flag),
                      axds::yaml_field("maybe", &s::maybe),
                      axds::yaml_field("p", &s::p),
                      axds::yaml_field("pl", &s::pl),
                      axds::yaml_field("tup", &s::tup),
                      axds::yaml_field("c", &s::c),
                      axds::yaml_field("pr", &s::pr),
                      axds::yaml_field("inner", &s::in),
                      axds::yaml_field("m", &s::m),
                      axds::yaml_field("em", &s::em),
                      axds::yaml_field("el", &s::el),
                      axds::yaml_field("multiline", &s::multiline),
                      axds::yaml_field("secret", &s::secret, axds::yaml_exclude)};
}

spec_example make_spec_example() {
    spec_example e;
    e.name = "caf\xC3\xA9 \xC3\xBC";
    e.count = 3;
    e.ratio = 0.5;
    e.flag = true;
    e.p = "relative/dir";
    e.pl = {"/a", "b/c"};
    e.tup = {1, 2};
    e.c = color::green;
    e.pr = priority::high;
    e.in = inner{"/default", color::red};
    e.m = {{"/x", 1}};
    e.multiline = "line1\nline2\n";
    return e;
}

}  // namespace cfg

namespace {

/// Loads `file` with PyYAML's safe loader and prints repr() of the result.
std::string python_repr(const fs::path& file) {
    const auto result = axds::test::run_python(
        "import sys, yaml\nprint(repr(yaml.safe_load(open(sys.argv[1], encoding='utf-8'))), end='')", {file.string()});
    REQUIRE(result.exit_code == 0);
    return result.output;
}

}  // namespace

// upstream: yaml_config_test.py::test_to_yaml_simple
// upstream: yaml_config_test.py::test_to_yaml_yml_extension
// upstream: yaml_config_test.py::test_default_values
TEST_CASE("to_yaml writes .yaml and .yml files that PyYAML reads back with the same values", "[config][python]") {
    temp_dir tmp;
    const cfg::simple value{.name = "experiment", .count = 42, .ratio = 0.1, .flag = true};
    for (const char* name : {"simple.yaml", "simple.yml"}) {
        const fs::path file = tmp.path() / name;
        axds::to_yaml(value, file);
        REQUIRE(fs::file_size(file) > 0);
        CHECK(python_repr(file) == "{'name': 'experiment', 'count': 42, 'ratio': 0.1, 'flag': True}");
        const auto back = axds::from_yaml<cfg::simple>(file);
        CHECK(back.name == "experiment");
        CHECK(back.count == 42);
        CHECK(back.ratio == 0.1);
        CHECK(back.flag);
    }
    axds::to_yaml(cfg::simple{}, tmp.path() / "defaults.yaml");
    CHECK(python_repr(tmp.path() / "defaults.yaml") == "{'name': 'test', 'count': 1, 'ratio': 0.25, 'flag': False}");
}

// upstream: yaml_config_test.py::test_to_yaml_nested
TEST_CASE("to_yaml writes nested dicts and lists, including empty ones", "[config][python]") {
    temp_dir tmp;
    cfg::nested value;
    value.settings = {{"a", 1}, {"b", 2}};
    value.items = {"x", "y"};
    axds::to_yaml(value, tmp.path() / "nested.yaml");
    CHECK(python_repr(tmp.path() / "nested.yaml") ==
          "{'settings': {'a': 1, 'b': 2}, 'items': ['x', 'y'], 'maybe_dict': None, 'maybe_list': None}");
    value.settings.clear();
    value.items.clear();
    value.maybe_dict.emplace();
    value.maybe_list.emplace();
    axds::to_yaml(value, tmp.path() / "empty.yaml");
    CHECK(read_file(tmp.path() / "empty.yaml") ==
          "---\nsettings: {}\nitems: []\nmaybe_dict: {}\nmaybe_list: []\n...\n");
    const auto back = axds::from_yaml<cfg::nested>(tmp.path() / "empty.yaml");
    CHECK(back.maybe_dict.has_value());
    CHECK(back.maybe_list.has_value());
}

// upstream: yaml_config_test.py::test_to_yaml_invalid_extension
// upstream: yaml_config_test.py::test_from_yaml_invalid_extension
TEST_CASE("to_yaml and from_yaml reject paths without a .yaml or .yml suffix", "[config]") {
    temp_dir tmp;
    const fs::path bad = tmp.path() / "config.txt";
    CHECK_THROWS_MATCHES(
        axds::to_yaml(cfg::simple{}, bad), axds::value_error,
        Catch::Matchers::Message("Unable to write the dataclass instance to a .yaml file using the provided file path. "
                                 "The 'file_path' argument must end in the '.yaml' or '.yml' extension, but got " +
                                 bad.string() + "."));
    CHECK_FALSE(fs::exists(bad));
    write_file(bad, "name: x\n");
    CHECK_THROWS_MATCHES(axds::from_yaml<cfg::simple>(bad), axds::value_error,
                         Catch::Matchers::Message("Unable to create the dataclass instance using the data from a .yaml "
                                                  "file. The 'file_path' argument must end in the '.yaml' or '.yml' "
                                                  "extension, but got " +
                                                  bad.string() + "."));
    for (const char* name : {"upper.YAML", ".yaml", "x.yaml.bak"}) {
        INFO(name);
        CHECK_THROWS_MATCHES(axds::to_yaml(cfg::simple{}, tmp.path() / name), axds::value_error,
                             message_contains("must end in the '.yaml' or '.yml' extension"));
    }
}

// upstream: yaml_config_test.py::test_from_yaml_plain_dump
TEST_CASE("from_yaml loads documents written by a plain yaml.dump, with null for optional containers", "[config]") {
    temp_dir tmp;
    const fs::path file = tmp.path() / "plain.yaml";
    write_file(file, "items:\n- x\nmaybe_dict: null\nmaybe_list: null\nsettings:\n  a: 1\n");
    const auto value = axds::from_yaml<cfg::nested>(file);
    CHECK(value.items == std::vector<std::string>{"x"});
    CHECK(value.settings == std::map<std::string, int>{{"a", 1}});
    CHECK_FALSE(value.maybe_dict.has_value());
    CHECK_FALSE(value.maybe_list.has_value());
}

// upstream: yaml_config_test.py::test_from_yaml_non_mapping
TEST_CASE("from_yaml requires a top-level mapping and names the Python type it found", "[config]") {
    temp_dir tmp;
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"", "NoneType"}, {"- 1\n- 2\n- 3\n", "list"}, {"42\n", "int"}, {"just text\n", "str"}};
    for (const auto& [content, type_name] : cases) {
        const fs::path file = tmp.path() / "bad.yaml";
        write_file(file, content);
        CHECK_THROWS_MATCHES(axds::from_yaml<cfg::simple>(file), axds::value_error,
                             Catch::Matchers::Message(
                                 "Unable to create the dataclass instance using the data from the " + file.string() +
                                 " .yaml file. The file must contain a top-level mapping, but got " + type_name + "."));
    }
}

TEST_CASE("from_yaml reports a missing file, malformed YAML, a wrong type and a missing required field", "[config]") {
    temp_dir tmp;
    CHECK_THROWS_MATCHES(axds::from_yaml<cfg::simple>(tmp.path() / "absent.yaml"), axds::file_not_found_error,
                         message_contains("absent.yaml"));

    const fs::path broken = tmp.path() / "broken.yaml";
    write_file(broken, "name: [unclosed\ncount: 1\n");
    CHECK_THROWS_MATCHES(axds::from_yaml<cfg::simple>(broken), axds::yaml_error, message_contains("broken.yaml"));

    const fs::path wrong = tmp.path() / "wrong.yaml";
    write_file(wrong, "name: ok\ncount: notanint\n");
    CHECK_THROWS_MATCHES(axds::from_yaml<cfg::simple>(wrong), axds::type_error,
                         message_contains("wrong.yaml") && message_contains("'count'") &&
                             message_contains("expected an integer, but got str"));
    write_file(wrong, "in:\n  color: purple\n");
    CHECK_THROWS_MATCHES(axds::from_yaml<cfg::enums>(wrong), axds::type_error,
                         message_contains("'in.color'") && message_contains("'purple' is not a valid value"));
    write_file(wrong, "many: [a, 3]\n");
    CHECK_THROWS_MATCHES(axds::from_yaml<cfg::paths>(wrong), axds::type_error, message_contains("'many[1]'"));
    write_file(wrong, "tup: [1, 2]\n");
    CHECK_THROWS_MATCHES(axds::from_yaml<cfg::paths>(wrong), axds::type_error,
                         message_contains("expected a list of 3 items, but got 2"));
    write_file(wrong, "count: 99999999999\n");
    CHECK_THROWS_MATCHES(axds::from_yaml<cfg::simple>(wrong), axds::type_error, message_contains("out of range"));

    const fs::path missing = tmp.path() / "missing.yaml";
    write_file(missing, "other: 3\n");
    CHECK_THROWS_MATCHES(axds::from_yaml<cfg::required_field>(missing), axds::missing_value_error,
                         message_contains("missing value for field \"id\"") && message_contains("missing.yaml"));
    write_file(missing, "id: abc\n");
    CHECK(axds::from_yaml<cfg::required_field>(missing).id == "abc");
}

TEST_CASE("from_yaml ignores unknown keys and keeps defaults for absent fields", "[config]") {
    temp_dir tmp;
    const fs::path file = tmp.path() / "partial.yaml";
    write_file(file, "count: 5\nunknown_key: [1, 2]\n");
    const auto value = axds::from_yaml<cfg::simple>(file);
    CHECK(value.count == 5);
    CHECK(value.name == "test");
    CHECK(value.ratio == 0.25);
}

// upstream: yaml_config_test.py::test_path_round_trip
// upstream: yaml_config_test.py::test_optional_path_none_round_trip
// upstream: yaml_config_test.py::test_tuple_round_trip
TEST_CASE("paths, optional paths, path lists and tuples round-trip as strings and lists", "[config][python]") {
    temp_dir tmp;
    const fs::path file = tmp.path() / "paths.yaml";
    cfg::paths value{.root = "/data/root",
                     .maybe = fs::path("rel/x"),
                     .many = {"/a", "b/c"},
                     .tup = {4, 5, 6},
                     .path_tuple = {"/p", "q"}};
    axds::to_yaml(value, file);
    CHECK(python_repr(file) ==
          "{'root': '/data/root', 'maybe': 'rel/x', 'many': ['/a', 'b/c'], 'tup': [4, 5, 6], 'path_tuple': ['/p', "
          "'q'], 'empty_tuple': []}");
    auto back = axds::from_yaml<cfg::paths>(file);
    CHECK(back.root == fs::path("/data/root"));
    CHECK(back.maybe == fs::path("rel/x"));
    CHECK(back.many == std::vector<fs::path>{"/a", "b/c"});
    CHECK(back.tup == std::array<int, 3>{4, 5, 6});
    CHECK(back.path_tuple == std::vector<fs::path>{"/p", "q"});

    value.maybe.reset();
    axds::to_yaml(value, file);
    CHECK(read_file(file).find("maybe: null\n") != std::string::npos);
    back = axds::from_yaml<cfg::paths>(file);
    CHECK_FALSE(back.maybe.has_value());
}

// upstream: yaml_config_test.py::test_str_enum_round_trip
// upstream: yaml_config_test.py::test_int_enum_round_trip
// upstream: yaml_config_test.py::test_nested_dataclass_with_path_and_enum
// upstream: yaml_config_test.py::test_union_enum_fallback
TEST_CASE("enums are written as their values and restored, unions try enums first", "[config][python]") {
    temp_dir tmp;
    const fs::path file = tmp.path() / "enums.yaml";
    cfg::enums value{.c = cfg::color::green,
                     .maybe_color = cfg::color::blue,
                     .pr = cfg::priority::high,
                     .in = {"/nested", cfg::color::blue},
                     .color_or_text = std::string("custom_method"),
                     .text_or_color = cfg::color::red,
                     .int_or_priority = 99};
    axds::to_yaml(value, file);
    CHECK(python_repr(file) ==
          "{'c': 'green', 'maybe_color': 'blue', 'pr': 3, 'in': {'path': '/nested', 'color': 'blue'}, "
          "'color_or_text': 'custom_method', 'text_or_color': 'red', 'int_or_priority': 99}");
    const auto back = axds::from_yaml<cfg::enums>(file);
    CHECK(back.c == cfg::color::green);
    CHECK(back.maybe_color == cfg::color::blue);
    CHECK(back.pr == cfg::priority::high);
    CHECK(back.in.path == fs::path("/nested"));
    CHECK(back.in.tint == cfg::color::blue);
    CHECK(std::get<std::string>(back.color_or_text) == "custom_method");
    CHECK(std::get<cfg::color>(back.text_or_color) == cfg::color::red);  // "red" → Color.RED even for str | Color
    CHECK(std::get<int>(back.int_or_priority) == 99);

    write_file(file, "int_or_priority: 3\nmaybe_color: null\ncolor_or_text: not_a_color\n");
    const auto fallback = axds::from_yaml<cfg::enums>(file);
    CHECK(std::get<cfg::priority>(fallback.int_or_priority) == cfg::priority::high);
    CHECK_FALSE(fallback.maybe_color.has_value());
    CHECK(std::get<std::string>(fallback.color_or_text) == "not_a_color");

    write_file(file, "pr: 7\n");
    CHECK_THROWS_MATCHES(axds::from_yaml<cfg::enums>(file), axds::type_error,
                         message_contains("7 is not a valid value of the enum"));
}

// upstream: yaml_config_test.py::test_mapping_keys_round_trip
// upstream: yaml_config_test.py::test_serialize_path_dict_keys
TEST_CASE("mapping keys of path, enum, string and int types round-trip", "[config][python]") {
    temp_dir tmp;
    const fs::path file = tmp.path() / "keys.yaml";
    const cfg::keyed value{.by_path = {{"/a/b", 1}},
                           .by_color = {{cfg::color::red, "warm"}},
                           .by_string = {{"plain", 2}},
                           .by_int = {{1, "one"}, {20, "twenty"}}};
    axds::to_yaml(value, file);
    CHECK(python_repr(file) ==
          "{'by_path': {'/a/b': 1}, 'by_color': {'red': 'warm'}, 'by_string': {'plain': 2}, 'by_int': {1: 'one', 20: "
          "'twenty'}}");
    const auto back = axds::from_yaml<cfg::keyed>(file);
    CHECK(back.by_path == value.by_path);
    CHECK(back.by_color == value.by_color);
    CHECK(back.by_string == value.by_string);
    CHECK(back.by_int == value.by_int);
}

// upstream: yaml_config_test.py::test_excluded_field
TEST_CASE("an excluded field is never written and is restored from the file path on load", "[config]") {
    temp_dir tmp;
    const fs::path file = tmp.path() / "excluded.yaml";
    axds::to_yaml(cfg::with_excluded{.value = 7, .source_path = "/somewhere/else"}, file);
    CHECK(read_file(file) == "---\nvalue: 7\n...\n");
    const auto back = axds::from_yaml<cfg::with_excluded>(file);
    CHECK(back.value == 7);
    CHECK(back.source_path == file);
}

// upstream: yaml_config_test.py::test_failed_dump_preserves_previous_file
TEST_CASE("a failed write keeps the previous file byte-identical and leaves no temp file", "[config]") {
    temp_dir tmp;
    const fs::path file = tmp.path() / "keep.yaml";
    axds::to_yaml(cfg::simple{.name = "original"}, file);
    const std::string before = read_file(file);

    // Serialisation failure (invalid UTF-8): nothing touches the disk.
    CHECK_THROWS_AS(axds::to_yaml(cfg::simple{.name = "bad\xFF"}, file), axds::value_error);
    // Failure after the temp file exists: the destination is a non-empty directory, so rename fails.
    const fs::path blocked = tmp.path() / "blocked.yaml";
    write_file(blocked / "inside.txt", "x");
    CHECK_THROWS_AS(axds::to_yaml(cfg::simple{}, blocked), axds::os_error);
    CHECK(fs::is_directory(blocked));

    CHECK(read_file(file) == before);
    for (const auto& entry : fs::directory_iterator(tmp.path())) {
        INFO(entry.path());
        CHECK(entry.path().extension() != ".tmp");
    }
}

TEST_CASE("to_yaml creates parent directories and writes mode 0600 whatever the umask", "[config]") {
    temp_dir tmp;
    const fs::path file = tmp.path() / "a" / "b.1" / "config.yaml";
    const mode_t old_mask = ::umask(0);
    axds::to_yaml(cfg::simple{}, file);
    ::umask(old_mask);

    struct stat st {};

    REQUIRE(::stat(file.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(fs::is_directory(tmp.path() / "a" / "b.1"));
}

// upstream: yaml_config_test.py::test_utf8_document_loads_regardless_of_locale
TEST_CASE("a UTF-8 document with non-ASCII text loads correctly", "[config]") {
    temp_dir tmp;
    const fs::path file = tmp.path() / "utf8.yaml";
    write_file(file, "---\nname: caf\xC3\xA9 na\xC3\xAFve\n...\n");
    CHECK(axds::from_yaml<cfg::simple>(file).name == "caf\xC3\xA9 na\xC3\xAFve");
}

TEST_CASE("the spec's example document is reproduced byte for byte and read back", "[config]") {
    temp_dir tmp;
    const fs::path golden = fs::path(AXDS_TEST_DATA_DIR) / "python_layout_example.yaml";
    const fs::path file = tmp.path() / "example.yaml";
    axds::to_yaml(cfg::make_spec_example(), file);
    CHECK(read_file(file) == read_file(golden));

    const auto loaded = axds::from_yaml<cfg::spec_example>(golden);
    const auto expected = cfg::make_spec_example();
    CHECK(loaded.name == expected.name);
    CHECK(loaded.multiline == expected.multiline);
    CHECK(loaded.pl == expected.pl);
    CHECK(loaded.c == cfg::color::green);
    CHECK(loaded.pr == cfg::priority::high);
    CHECK(loaded.m == expected.m);
    CHECK(loaded.secret == "never written");
}

TEST_CASE("files written by the Python library's dumper load with the expected values", "[config][python]") {
    temp_dir tmp;
    const fs::path file = tmp.path() / "from_python.yaml";
    axds::test::pyyaml_write(file,
                             "{'name': 'it\\'s \"q\" caf\\u00e9', 'count': 12, 'ratio': 1e-07, 'flag': False,"
                             " 'extra': {'nested': [1, 2]}}");
    const auto value = axds::from_yaml<cfg::simple>(file);
    CHECK(value.name == "it's \"q\" caf\xC3\xA9");
    CHECK(value.count == 12);
    CHECK(value.ratio == 1e-07);
    CHECK_FALSE(value.flag);
}

// upstream: yaml_config_test.py::test_unresolvable_annotations_yield_no_hooks
// (C++: a field of type yaml_value takes any content unchanged, so unknown shapes never break loading)
TEST_CASE("a yaml_value field keeps arbitrary content and writes it back unchanged", "[config]") {
    temp_dir tmp;
    const fs::path file = tmp.path() / "free.yaml";
    write_file(file, "kind: k\nextra:\n  list: [1, two, 3.5, null]\n  map: {yes: on}\n");
    const auto value = axds::from_yaml<cfg::free_form>(file);
    CHECK(value.kind == "k");
    const auto& list = value.extra.find("list")->as_sequence();
    REQUIRE(list.size() == 4);
    CHECK(list[1] == axds::yaml_value("two"));
    CHECK(list[3].is_null());
    CHECK(value.extra.find("map")->as_mapping().front().key == axds::yaml_value(true));
    axds::to_yaml(value, file);
    CHECK(read_file(file) ==
          "---\nkind: k\nextra:\n  list:\n  - 1\n  - two\n  - 3.5\n  - null\n  map:\n    true: true\n...\n");
}
