// YAML documents (configs and everything read with parse_yaml): nesting, anchors and aliases, scalars of every
// YAML 1.1 type.

#include "fuzz_target.hpp"

#include <axds/config/yaml_value.hpp>

namespace axds::fuzz {
namespace {

constexpr std::string_view source = "fuzz_config.yaml";

outcome one_input(std::span<const std::uint8_t> input) {
    const std::string_view text(reinterpret_cast<const char*>(input.data()), input.size());
    return expect_clean(
        [&] {
            const yaml_value value = parse_yaml(text, source);
            // What we emit for a value we accepted must parse back to text we emit identically (values are not
            // compared directly: NaN is not equal to itself).
            const std::string emitted = emit_yaml(value);
            const yaml_value again = parse_yaml(emitted, "emitted YAML");
            if (emit_yaml(again) != emitted) {
                throw fuzz_failure("emit_yaml(parse_yaml(emit_yaml(v))) differs from emit_yaml(v)");
            }
        },
        source);
}

const registration yaml{{
    .name = "yaml",
    .about = "YAML documents: nesting, anchors/aliases, YAML 1.1 scalars, emit/parse round trip",
    .one_input = one_input,
    .dictionary = {"&a ",
                   "*a",
                   "&b [",
                   "*b, ",
                   "[",
                   "]",
                   "{",
                   "}",
                   "- ",
                   ": ",
                   "? ",
                   "!!str ",
                   "!!int ",
                   "!!float ",
                   "!!binary ",
                   "!!python/tuple ",
                   "!!set ",
                   "<<: ",
                   "---\n",
                   "...\n",
                   "%YAML 1.1\n",
                   "%TAG ! tag:x,",
                   "'",
                   "\"",
                   "\\x",
                   "\\u00e9",
                   "|\n",
                   ">-\n",
                   "  ",
                   "\n",
                   "#",
                   "0x1F",
                   "0o17",
                   "0b101",
                   "1_000",
                   "190:20:30",
                   ".inf",
                   "-.Inf",
                   ".NaN",
                   "~",
                   "null",
                   "yes",
                   "No",
                   "on",
                   "OFF",
                   "1e3",
                   "6.8523015e+5",
                   "2001-12-14t21:59:43.10-05:00",
                   "\t",
                   "\xef\xbb\xbf",
                   "\xc3\xa9",
                   "\xf0\x9f\x90\x8d",
                   "\xff"},
    .max_length = 4096,
}};

}  // namespace
}  // namespace axds::fuzz
