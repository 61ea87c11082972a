// Hostile YAML ([hostile]): files from other machines and failing disks. Deeply nested collections, alias bombs
// ("billion laughs") and anchors nested around a large collection must give a clear yaml_error naming the file and
// the line, quickly and in bounded memory, through every loader that builds a yaml_value tree (parse_yaml,
// from_yaml, the processing tracker). Each load runs in a forked child with a bounded address space, so a crash or a
// runaway allocation fails the test instead of the test program.
#include <axds/config/yaml_config.hpp>
#include <axds/config/yaml_value.hpp>
#include <axds/error.hpp>
#include <axds/jobs/processing_tracker.hpp>

#include "config/yaml11_patterns.hpp"
#include "support/bounded_child.hpp"
#include "support/matchers.hpp"
#include "support/pyyaml.hpp"
#include "support/temp_dir.hpp"

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define AXDS_YAML_HOSTILE_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define AXDS_YAML_HOSTILE_SANITIZED 1
#endif
#endif

namespace fs = std::filesystem;
using axds::yaml_value;
using Catch::Matchers::Contains;

namespace hostile_yaml {

struct document {
    axds::yaml_value a;
    axds::yaml_value b;
};

AXDS_YAML_FIELDS(document, a, b)

struct typed_inner {
    std::vector<std::int64_t> deep;
};

AXDS_YAML_FIELDS(typed_inner, deep)

struct typed_document {
    typed_inner a;
};

AXDS_YAML_FIELDS(typed_document, a)

}  // namespace hostile_yaml

namespace {

using axds::test::run_bounded;
using outcome = axds::test::bounded_outcome;

/// The three loaders that build a yaml_value tree from a file.
struct loader {
    const char* name;
    std::function<void(const fs::path&)> load;
};

std::vector<loader> loaders() {
    return {
        {"parse_yaml",
         [](const fs::path& file) {
             (void)axds::parse_yaml(axds::test::read_file(file), file.string());
         }},
        {"from_yaml",
         [](const fs::path& file) {
             (void)axds::from_yaml<hostile_yaml::document>(file);
         }},
        {"processing_tracker",
         [](const fs::path& file) {
             (void)axds::processing_tracker(file).snapshot();
         }},
    };
}

#ifndef AXDS_YAML_HOSTILE_SANITIZED
constexpr long memory_bound_kib = 200L * 1024;  // 200 MiB of peak RSS growth
constexpr double time_bound_seconds = 10.0;
#else
constexpr long memory_bound_kib = 600L * 1024;  // ASan's redzones and quarantine roughly triple it
// An unoptimised ASan build takes up to ~10 s for one 2 MB alias bomb on an idle 2-vCPU VM (1.3 s optimised).
constexpr double time_bound_seconds = 30.0;
#endif

/// Every loader refuses `content` with a yaml_error naming the file and each of `fragments`, quickly and in bounded
/// memory.
void check_refused(const std::string& content, const std::vector<std::string>& fragments) {
    const axds::test::temp_dir tmp;
    const fs::path file = tmp.path() / "hostile.yaml";
    axds::test::write_file(file, content);
    for (const auto& entry : loaders()) {
        INFO("loader: " << entry.name << ", document of " << content.size() << " bytes");
        const outcome result = run_bounded([&] { entry.load(file); });
        INFO("child: " << result.kind << ": " << result.message.substr(0, 2000));
        CHECK(result.exited_normally);
        CHECK(result.kind == "yaml_error");
        CHECK_THAT(result.message, Contains(file.string()));
        for (const auto& fragment : fragments) {
            CHECK_THAT(result.message, Contains(fragment));
        }
        CHECK(result.message.size() < 2000);  // bounded: no echo of the document
        CHECK(result.seconds < time_bound_seconds);
        CHECK(result.rss_growth_kib < memory_bound_kib);
    }
}

std::string repeated(std::string_view piece, std::size_t count) {
    std::string out;
    out.reserve(piece.size() * count);
    for (std::size_t i = 0; i < count; ++i) {
        out += piece;
    }
    return out;
}

/// `levels` lines `<prefix>K: &<prefix>K [*<prefix>J, ...]` of `width` aliases each (K = b, c, ...) over a first
/// line `<prefix>a: &<prefix>a ["lol", ...]` of `width` strings: width^levels strings once expanded.
std::string alias_bomb(std::size_t levels, std::size_t width, std::string_view prefix = "") {
    const auto name = [&](std::size_t level) {
        return std::string(prefix) + static_cast<char>('a' + level);
    };
    std::string out = name(0) + ": &" + name(0) + " [";
    for (std::size_t i = 0; i < width; ++i) {
        out += i == 0 ? "\"lol\"" : ",\"lol\"";
    }
    out += "]\n";
    for (std::size_t level = 1; level < levels; ++level) {
        out += name(level) + ": &" + name(level) + " [";
        for (std::size_t i = 0; i < width; ++i) {
            out += (i == 0 ? "*" : ",*") + name(level - 1);
        }
        out += "]\n";
    }
    return out;
}

}  // namespace

TEST_CASE("deeply nested YAML is refused with the file and line without exhausting the stack", "[config][hostile]") {
    // 30,000 nested flow sequences (the 60 KB file that overflowed the stack), flow mappings and block sequences.
    check_refused("a: " + std::string(30000, '[') + std::string(30000, ']') + "\n", {"line 1", "512"});
    check_refused("a: " + repeated("{a: ", 30000) + "1" + std::string(30000, '}') + "\n", {"line 1", "512"});
    check_refused("a:\n  " + repeated("- ", 30000) + "x\n", {"line 2", "512"});
    check_refused("a: " + std::string(513, '[') + std::string(513, ']') + "\n", {"line 1", "512"});
}

TEST_CASE("nesting up to the documented depth limit still loads", "[config][hostile]") {
    const std::string deepest = std::string(512, '[') + std::string(512, ']');
    const yaml_value value = axds::parse_yaml(deepest, "deep.yaml");
    std::size_t depth = 0;
    for (const yaml_value* at = &value; at != nullptr;) {
        ++depth;
        const auto& items = at->as_sequence();
        at = items.empty() ? nullptr : &items.front();
    }
    CHECK(depth == 512);
    CHECK_THROWS_AS(axds::parse_yaml("[" + deepest + "]", "deep.yaml"), axds::yaml_error);
    // The same as PyYAML at a depth its Python serializer can still dump.
    const std::string nested = "a: " + repeated("{k: [", 100) + "1" + repeated("]}", 100) + "\n";
    CHECK(axds::emit_yaml(axds::parse_yaml(nested)) == axds::test::pyyaml_redump_text(nested));
}

TEST_CASE("alias bombs are refused with the file and line in bounded memory", "[config][hostile]") {
    // The classic 9 x 9 "billion laughs" (a 361-byte file that used 4 GB before crashing; PyYAML shares the lists).
    const std::string classic = alias_bomb(9, 9);
    CHECK(classic.size() < 400);
    check_refused(classic, {"line ", "alias", "nodes"});
    // A wider and deeper one, padded to 2 MB so the size-relative budget is larger than the 1,000,000 floor.
    check_refused("pad: [" + repeated("0,", 1'000'000) + "0]\n" + alias_bomb(12, 64, "z"), {"line 5", "nodes"});
    // One long string copied by aliases: a scalar's text counts against the budget too.
    check_refused("s: &s \"" + std::string(256 * 1024, 'x') + "\"\nl: [" + repeated("*s,", 4000) + "*s]\n",
                  {"line 2", "nodes"});
    // Anchors nested around a large collection: every anchor keeps a copy of what it encloses.
    std::string nested_anchors = "a: ";
    for (int level = 0; level < 500; ++level) {
        nested_anchors += "&x" + std::to_string(level) + " [";
    }
    check_refused(nested_anchors + "[" + repeated("0,", 200'000) + "0]" + std::string(500, ']') + "\n",
                  {"line 1", "nodes"});
}

TEST_CASE("the alias bomb's exact position is reported", "[config][hostile]") {
    try {
        (void)axds::parse_yaml(alias_bomb(9, 9), "bomb.yaml");
        FAIL("the alias bomb loaded");
    } catch (const axds::yaml_error& e) {
        const std::string what = e.what();
        CHECK_THAT(what, Contains("Unable to parse the YAML document bomb.yaml"));
        CHECK_THAT(what, Contains("line 6"));
    }
}

// Found by a hostile-user run: a byte that is not UTF-8 (or a control character) deep in a file was reported "at
// line 1, column 1": libyaml's reader gives only its byte offset, from which the line and column are now counted.
TEST_CASE("a byte that is not UTF-8 is reported at its own line and column", "[config][hostile]") {
    const std::string document = "a: 1\nb: 2\nc: 3\nd: \"x\xff\xfey\"\n";
    CHECK_THROWS_MATCHES(axds::parse_yaml(document, "bad.yaml"), axds::yaml_error,
                         axds::test::message_contains("Unable to parse the YAML document bad.yaml") &&
                             axds::test::message_contains("(byte 0xff) at line 4, column 6 (byte offset 20)"));
    CHECK_THROWS_MATCHES(axds::parse_yaml("x: 1\ny: \x01\n", "control.yaml"), axds::yaml_error,
                         axds::test::message_contains("at line 2, column 4 (byte offset 8)"));
}

TEST_CASE("legitimate anchors and aliases load as PyYAML loads them", "[config][hostile]") {
    const std::string document =
        "defaults: &defaults {retries: 3, paths: [/a, /b], nested: &inner {x: 1}}\n"
        "first: *defaults\n"
        "second: {copy: *defaults, inner: *inner, name: &name job}\n"
        "names: [*name, *name, &n2 other, *n2]\n"
        "*name : aliased key\n"
        "list: &list [1, 2.5, null, true, 'text']\n"
        "lists: [*list, *list, [*list]]\n";
    const yaml_value parsed = axds::parse_yaml(document, "aliases.yaml");
    CHECK(*parsed.find("first") == *parsed.find("defaults"));
    CHECK(*parsed.find("job") == yaml_value("aliased key"));
    CHECK(axds::emit_yaml(parsed) == axds::test::pyyaml_redump_text(document));
    // A large but legitimate expansion: 500 copies of a 1,001-node list (~500,000 nodes) loads.
    const std::string big = "base: &b [" + repeated("1,", 1000) + "1]\ncopies: [" + repeated("*b,", 499) + "*b]\n";
    const outcome result = run_bounded([&] {
        const yaml_value loaded = axds::parse_yaml(big, "big.yaml");
        if (loaded.find("copies")->as_sequence().size() != 500 ||
            loaded.find("copies")->as_sequence()[499].as_sequence().size() != 1001) {
            throw std::runtime_error("wrong expansion");
        }
    });
    INFO(result.kind << ": " << result.message);
    CHECK(result.exited_normally);
    CHECK(result.kind == "no error");
    CHECK(result.seconds < time_bound_seconds);
    CHECK(result.rss_growth_kib < memory_bound_kib);
}

TEST_CASE("huge numbers and long scalars give bounded errors naming the file and field and line", "[config][hostile]") {
    const std::string digits(100'000, '9');
    try {
        (void)axds::parse_yaml("outer:\n  list: [1, {value: " + digits + "}]\n", "numbers.yaml");
        FAIL("a 100,000-digit integer loaded");
    } catch (const axds::overflow_error& e) {
        const std::string what = e.what();
        CHECK_THAT(what, Contains("numbers.yaml") && Contains("more than 4300 decimal digits") &&
                             Contains("outer.list[1].value") && Contains("line 2"));
        CHECK(what.size() < 1000);
    }
    // Floats beyond double range are infinities (Python's float()), never an exception or 0.
    const yaml_value floats = axds::parse_yaml("big: 1.0e+400\nsmall: -1.0e-400\nsexagesimal: " + digits +
                                               ":30.5\ntagged: !!float " + std::string(30, '9') + "\n");
    CHECK(floats.find("big")->as_double() == std::numeric_limits<double>::infinity());
    CHECK(floats.find("small")->as_double() == 0.0);
    CHECK(std::signbit(floats.find("small")->as_double()));
    CHECK(floats.find("sexagesimal")->as_double() == std::numeric_limits<double>::infinity());
    CHECK(floats.find("tagged")->as_double() == 1e30);
}

TEST_CASE("long plain scalars are resolved without a regex that recurses per character", "[config][hostile]") {
    // libstdc++'s std::regex recurses once per character: a 100 KB number-like scalar overflowed the stack, when
    // loading and when writing (the emitter asks the same YAML 1.1 resolver whether a string needs quotes).
    const std::string zeros(200'000, '0');
    const std::string long_float = "1" + zeros + ".5";
    const std::string long_int = "1_" + zeros;
    const std::string long_time = "2024-01-01 12:00:00." + zeros;
    const outcome loaded = run_bounded([&] {
        const yaml_value doc =
            axds::parse_yaml("f: " + long_float + "\nt: " + long_time + "\ni: " + long_int + "\n", "long.yaml");
        if (doc.find("f")->as_double() != std::numeric_limits<double>::infinity() ||
            doc.find("t")->as_string() != long_time) {
            throw std::runtime_error("wrong values");
        }
    });
    INFO(loaded.kind << ": " << loaded.message.substr(0, 500));
    CHECK(loaded.exited_normally);
    CHECK(loaded.kind == "overflow_error");  // the long int does not fit in 64 bits: a clear error, no crash
    CHECK_THAT(loaded.message, Contains("long.yaml") && Contains("line 3") && Contains("'i'"));
    const outcome emitted = run_bounded([&] {
        for (const std::string& text : {long_float, long_int, long_time}) {
            const std::string document = axds::emit_yaml(yaml_value(text));
            if (document != "--- '" + text + "'\n...\n" || axds::parse_yaml(document).as_string() != text) {
                throw std::runtime_error("not quoted: " + document.substr(0, 40));
            }
        }
    });
    INFO(emitted.kind << ": " << emitted.message.substr(0, 500));
    CHECK(emitted.exited_normally);
    CHECK(emitted.kind == "no error");
}

TEST_CASE("a tracker holding long number-like strings is written and read back", "[jobs][hostile]") {
    const axds::test::temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    const std::string message = "1" + std::string(200'000, '0') + ".5";
    const outcome result = run_bounded([&] {
        axds::processing_tracker tracker(file);
        const auto ids = tracker.initialize_jobs({{"job", "x"}});
        tracker.fail_job(ids.at(0), message);
        if (axds::processing_tracker(file).get_job_info(ids.at(0)).error_message != message) {
            throw std::runtime_error("the message changed");
        }
    });
    INFO(result.kind << ": " << result.message.substr(0, 500));
    CHECK(result.exited_normally);
    CHECK(result.kind == "no error");
}

TEST_CASE("alias bombs and deep nesting in a tracker file are refused by name", "[jobs][hostile]") {
    const axds::test::temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    for (const std::string& content : {"jobs: {}\n" + alias_bomb(9, 9), "jobs: " + std::string(30000, '{') + "\n"}) {
        axds::test::write_file(file, content);
        const outcome result = run_bounded([&] { (void)axds::processing_tracker(file).get_summary(); });
        INFO(result.kind << ": " << result.message.substr(0, 500));
        CHECK(result.exited_normally);
        CHECK(result.kind == "yaml_error");
        CHECK_THAT(result.message, Contains(file.string()) && Contains("line "));
        CHECK(result.seconds < time_bound_seconds);
        CHECK(result.rss_growth_kib < memory_bound_kib);
        CHECK(axds::test::read_file(file) == content);  // left untouched
    }
}

TEST_CASE("from_yaml and to_yaml errors name the file and the field", "[config][hostile]") {
    using axds::test::message_contains;
    const axds::test::temp_dir tmp;
    const fs::path file = tmp.path() / "config.yaml";
    axds::test::write_file(file, "a:\n  deep: [1, 99999999999999999999999]\n");
    // A field typed int64 cannot hold it: the error names the file, the field and the value. (A yaml_value field
    // keeps it exactly: see yaml_value_test.)
    CHECK_THROWS_MATCHES(axds::from_yaml<hostile_yaml::typed_document>(file), axds::type_error,
                         message_contains(file.string()) && message_contains("does not fit in 64 bits") &&
                             message_contains("a.deep[1]") && message_contains("99999999999999999999999"));
    CHECK(axds::from_yaml<hostile_yaml::document>(file).a.find("deep")->as_sequence()[1].integer_text() ==
          "99999999999999999999999");
    hostile_yaml::document bad;
    bad.b = yaml_value::mapping{{"inner", yaml_value::sequence{"ok", "bad \xFF byte"}}};
    CHECK_THROWS_MATCHES(
        axds::to_yaml(bad, file), axds::value_error,
        message_contains(file.string()) && message_contains("not valid UTF-8") && message_contains("b.inner[1]"));
}

TEST_CASE("the hand-written YAML 1.1 matchers agree with the resolver's regular expressions", "[config][hostile]") {
    using namespace axds::detail;
    const auto agree = [](const std::string& text) {
        INFO("text: '" << text << "'");
        CHECK(yaml11_int_match(text) == yaml11_matches(text, yaml11_int_pattern()));
        CHECK(yaml11_is_int(text) == yaml11_matches(text, yaml11_int_pattern()));
        CHECK(yaml11_float_match(text) == yaml11_matches(text, yaml11_float_pattern()));
        CHECK(yaml11_is_float(text) == yaml11_matches(text, yaml11_float_pattern()));
        CHECK(yaml11_timestamp_match(text) == yaml11_matches(text, yaml11_timestamp_pattern()));
    };
    // Every string of up to 3 characters over the characters the patterns care about.
    const std::string alphabet = "0179_:.-+eEbxaFinfNTZ \t";
    std::vector<std::string> strings{""};
    for (std::size_t length = 1, begin = 0; length <= 3; ++length) {
        const std::size_t end = strings.size();
        for (std::size_t i = begin; i < end; ++i) {
            for (const char c : alphabet) {
                strings.push_back(strings[i] + c);
            }
        }
        begin = end;
    }
    for (const auto& text : strings) {
        agree(text);
    }
    // Random sequences of the patterns' pieces, and mutations of valid numbers and timestamps.
    const std::vector<std::string> pieces{"0",   "1",  "9",  "12", "60", "5",    "_",    ":",   ":3",    ":59",
                                          ":60", ".",  "e",  "E",  "e+", "e-5",  "E+12", "+",   "-",     "0x",
                                          "0b",  "fA", "10", "07", "08", "inf",  "Inf",  "nan", "NAN",   ".inf",
                                          "T",   "t",  " ",  "\t", "Z",  "2024", "-01",  "-1",  "12:30", ":00"};
    const std::vector<std::string> valid{"1_000",
                                         "0b1010",
                                         "0x_1F",
                                         "017",
                                         "-190:20:30",
                                         "+685_230",
                                         "1.5",
                                         "-1.0e+17",
                                         ".5e-3",
                                         "1:30.5",
                                         "+.inf",
                                         ".NaN",
                                         "2001-12-14",
                                         "2001-12-14t21:59:43.10-05:00",
                                         "2001-12-14 21:59:43.10 Z",
                                         "2001-1-4T1:59:43",
                                         "2001-12-14\t\t21:59:43+5"};
    std::mt19937 rng(20260107);
    for (int round = 0; round < 100'000; ++round) {
        std::string text;
        if (round % 2 == 0) {
            const std::size_t count = 1 + rng() % 6;
            for (std::size_t i = 0; i < count; ++i) {
                text += pieces[rng() % pieces.size()];
            }
        } else {
            text = valid[rng() % valid.size()];
            const std::size_t edits = rng() % 3;
            for (std::size_t i = 0; i < edits && !text.empty(); ++i) {
                const std::size_t at = rng() % text.size();
                const char c = alphabet[rng() % alphabet.size()];
                switch (rng() % 3) {
                    case 0: text.erase(at, 1); break;
                    case 1: text.insert(text.begin() + static_cast<std::ptrdiff_t>(at), c); break;
                    default: text[at] = c;
                }
            }
        }
        agree(text);
    }
    for (const auto& text : valid) {
        CHECK((yaml11_is_int(text) || yaml11_is_float(text) || yaml11_timestamp_match(text)));
    }
}

// Found by the fuzz harness (tests/fuzz, target yaml): an empty string_view may carry a null pointer, and libyaml's
// yaml_parser_set_input_string asserts on one (abort), where an empty document must load as null like PyYAML's "".
// Found by a hostile-user run: only the first document of a stream was read, so a rewrite of the file (a tracker's
// next update, a config saved back) dropped the others. PyYAML's safe_load refuses a second document
// ("expected a single document in the stream"); so does axds, naming the file and the line of the second one.
TEST_CASE("a second YAML document is refused by name, as PyYAML's safe_load refuses it", "[config][hostile]") {
    using axds::test::message_contains;
    const std::vector<std::pair<std::string, int>> streams = {
        {"a: 1\n---\nb: 2\n", 2}, {"---\na: 1\n...\n---\nb: 2\n", 4}, {"---\n...\n---\n", 3}, {"--- 1\n--- 2\n", 2}};
    for (const auto& [text, line] : streams) {
        INFO(text);
        CHECK_THROWS_MATCHES(axds::parse_yaml(text, "two.yaml"), axds::yaml_error,
                             message_contains("two.yaml") && message_contains("expected a single document") &&
                                 message_contains(fmt::format("at line {},", line)));
    }
    // One document, with or without its end marker and comments after it, still loads.
    for (const std::string text : {"a: 1\n...\n", "---\na: 1\n...\n# done\n", "a: 1\n\n\n", "---\n...\n"}) {
        INFO(text);
        CHECK_NOTHROW(axds::parse_yaml(text, "one.yaml"));
    }
}

TEST_CASE("an empty string_view with a null pointer parses as an empty document", "[config][hostile]") {
    const outcome out = run_bounded([] {
        const axds::yaml_value value = axds::parse_yaml(std::string_view{}, "empty.yaml");
        if (!value.is_null()) {
            throw std::runtime_error("not null");
        }
    });
    INFO(out.message);
    CHECK(out.exited_normally);
    CHECK(out.kind == "no error");
}

// Found by the review of the fuzz harness: the nesting limit counted only the levels the text spells out. An alias
// pastes its anchor's levels inside the ones around it, so a chain of anchors (each 500 deep, each holding the
// previous one) built a value thousands of levels deep from a few KB: the copies recursed past the stack
// (AddressSanitizer: stack-overflow), and a 1,500-level value loaded that axds itself then refused to read back.
TEST_CASE("aliases count toward the nesting limit with the depth of their anchors", "[config][hostile]") {
    std::string chain = "a0: &a0 " + std::string(500, '[') + std::string(500, ']') + "\n";
    for (int i = 1; i < 44; ++i) {
        chain += fmt::format("a{}: &a{} {}*a{}{}\n", i, i, std::string(500, '['), i - 1, std::string(500, ']'));
    }
    const outcome out = run_bounded([&] { (void)axds::parse_yaml(chain, "chain.yaml"); });
    INFO(out.kind << ": " << out.message.substr(0, 400));
    CHECK(out.exited_normally);
    CHECK(out.kind == "yaml_error");
    CHECK_THAT(out.message,
               Contains("chain.yaml") && Contains("*a0") && Contains("line 2") && Contains("more than 512 levels"));
    // Within the limit an alias still loads: 400 levels of anchor inside 100.
    const std::string fits = "a: &x " + std::string(400, '[') + std::string(400, ']') +
                             "\nb: " + std::string(100, '[') + "*x" + std::string(100, ']') + "\n";
    const axds::yaml_value value = axds::parse_yaml(fits, "fits.yaml");
    CHECK(axds::parse_yaml(axds::emit_yaml(value)) == value);
}
