#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace axds {

class yaml_value;

/// One key/value pair of a YAML mapping. Keys may be any scalar (YAML allows `1: a`), kept in document order.
struct yaml_mapping_entry;

/// An integer beyond 64 bits, as Python's unbounded int holds it: its decimal text ("-36893488147419103232"), kept
/// exactly so a document round-trips byte for byte. Made by parse_yaml and yaml_value::from_integer_text only (a
/// number that fits 64 bits is never a big integer).
struct yaml_big_integer {
    std::string decimal;

    friend bool operator==(const yaml_big_integer&, const yaml_big_integer&) = default;
};

/// Longest integer (in decimal digits) parse_yaml reads: Python's own limit for converting an integer string
/// (sys.get_int_max_str_digits(), 4300 by default), past which PyYAML cannot load the document either.
inline constexpr std::size_t yaml_max_integer_digits = 4300;

/// A YAML node as the Python library sees it after PyYAML's safe loader: null, bool, int, float, str, list or dict
/// (spec §3). Integers hold int64, uint64 above INT64_MAX, or a yaml_big_integer beyond 64 bits (Python ints are
/// unbounded: such a value loads, compares and emits exactly; only a typed field that needs 64 bits refuses it).
/// Mappings keep insertion order.
///
/// Thread safety: a const yaml_value may be read from any thread.
class yaml_value {
public:
    using sequence = std::vector<yaml_value>;
    using mapping = std::vector<yaml_mapping_entry>;
    enum class kind { null, boolean, integer, unsigned_integer, floating, string, sequence, mapping, big_integer };

    yaml_value() = default;

    yaml_value(std::nullptr_t) {}  // NOLINT(google-explicit-constructor)

    yaml_value(bool b) : data_(b) {}  // NOLINT(google-explicit-constructor)

    template <std::integral I>

    requires(!std::is_same_v<I, bool>) yaml_value(I i) {  // NOLINT(google-explicit-constructor)
        if constexpr (std::is_signed_v<I>) {
            data_ = static_cast<std::int64_t>(i);
        } else if (static_cast<std::uint64_t>(i) <= static_cast<std::uint64_t>(INT64_MAX)) {
            data_ = static_cast<std::int64_t>(i);  // one representation per number: int64 when it fits
        } else {
            data_ = static_cast<std::uint64_t>(i);
        }
    }

    template <std::floating_point F>
    yaml_value(F f) : data_(static_cast<double>(f)) {}  // NOLINT(google-explicit-constructor)

    yaml_value(std::string s) : data_(std::move(s)) {}  // NOLINT(google-explicit-constructor)

    yaml_value(const char* s) : data_(std::string(s)) {}  // NOLINT(google-explicit-constructor)

    yaml_value(sequence s) : data_(std::move(s)) {}  // NOLINT(google-explicit-constructor)

    yaml_value(mapping m) : data_(std::move(m)) {}  // NOLINT(google-explicit-constructor)

    /// The integer spelled by `decimal` ("-12", "18446744073709551617"): int64 or uint64 when it fits, else a
    /// yaml_big_integer. @throws value_error if the text is not an optional '-' and decimal digits without leading
    /// zeros, or holds more than yaml_max_integer_digits digits.
    [[nodiscard]] static yaml_value from_integer_text(std::string_view decimal);

    [[nodiscard]] kind type() const noexcept { return static_cast<kind>(data_.index()); }

    [[nodiscard]] bool is_null() const noexcept { return type() == kind::null; }

    [[nodiscard]] bool is_integer() const noexcept {
        return type() == kind::integer || type() == kind::unsigned_integer || type() == kind::big_integer;
    }

    /// The Python type name of this value after a safe load ("NoneType", "bool", "int", "float", "str", "list",
    /// "dict"), used in error messages exactly as the Python library words them.
    [[nodiscard]] std::string_view python_type_name() const noexcept;

    // Checked accessors: each throws type_error ("expected <what>, but got <python type>") on a kind mismatch.
    [[nodiscard]] bool as_bool() const;
    [[nodiscard]] std::int64_t as_int64() const;    ///< overflow_error for a uint64 or big integer out of range
    [[nodiscard]] std::uint64_t as_uint64() const;  ///< overflow_error for a negative or big integer
    /// Accepts ints as Python's float(int) does (rounded to nearest; overflow_error "int too large to convert to
    /// float" beyond the double range).
    [[nodiscard]] double as_double() const;
    /// The decimal text of an integer of any size. @throws type_error for other kinds.
    [[nodiscard]] std::string integer_text() const;
    [[nodiscard]] const std::string& as_string() const;
    [[nodiscard]] const sequence& as_sequence() const;
    [[nodiscard]] const mapping& as_mapping() const;
    [[nodiscard]] sequence& as_sequence();
    [[nodiscard]] mapping& as_mapping();

    /// The value under string key `key` of a mapping, or nullptr when absent.
    [[nodiscard]] const yaml_value* find(std::string_view key) const;

    friend bool operator==(const yaml_value& a, const yaml_value& b);

private:
    std::variant<std::monostate, bool, std::int64_t, std::uint64_t, double, std::string, sequence, mapping,
                 yaml_big_integer>
        data_;

    explicit yaml_value(yaml_big_integer big) : data_(std::move(big)) {}
};

struct yaml_mapping_entry {
    yaml_value key;
    yaml_value value;

    friend bool operator==(const yaml_mapping_entry&, const yaml_mapping_entry&) = default;
};

/// Emits `value` as one YAML document byte-identical to PyYAML's CDumper output with the Python library's options
/// (spec §3.4/§3.5): `---`/`...` framing, 2-space block indentation, width 200, ASCII-only with escapes, strings
/// quoted whenever YAML 1.1 would read them as something else, Python's float repr.
/// @throws value_error if a string is not valid UTF-8 or a key is not a scalar, naming the field.
[[nodiscard]] std::string emit_yaml(const yaml_value& value);

/// Hostile-input limits of parse_yaml (and so of from_yaml and the processing tracker), for files from other
/// machines and failing disks. Collections may nest at most yaml_max_nesting_depth levels (the top-level collection
/// is level 1): the parser recurses once per level, and a 60 KB file of 30,000 levels overflowed the stack (it
/// crashes PyYAML's CSafeLoader too). 512 is above what the Python library can read itself: yaml.safe_load raises
/// RecursionError beyond about 494 levels (Python's default recursion limit), and real configs nest a few levels.
inline constexpr std::size_t yaml_max_nesting_depth = 512;
/// Aliases are expanded into copies (PyYAML shares one object instead), so an alias bomb ("billion laughs": a few
/// hundred bytes, 9 levels of 9 aliases) would build 387 million nodes. Every copy is charged its weight: one per node,
/// plus one per yaml_scalar_bytes_per_node bytes of scalar text; both an alias (the copy it inserts) and an anchor (the
/// copy kept for its aliases) are charged. A document of N bytes may copy at most
/// max(yaml_min_alias_node_budget, N) weight: up to a million nodes (30-40 MB) for any file, and for a larger file
/// at most one copied node per byte, which at most doubles the nodes its text spells out. Legitimate uses (shared
/// defaults, repeated lists) stay far below.
inline constexpr std::uint64_t yaml_min_alias_node_budget = 1'000'000;
inline constexpr std::size_t yaml_scalar_bytes_per_node = 64;

/// Parses the first document of `text` with PyYAML safe_load semantics (libyaml parser, YAML 1.1 resolver:
/// yes/no/on/off booleans, 0x/0o-less octal/0b/sexagesimal integers, `.inf`/`.nan`, `~`/`null`). Anchors and
/// aliases are resolved; timestamps stay strings. An empty document gives null.
/// @throws yaml_error naming `source_name`, with line and column (and the field path where it helps, such as
/// `jobs.5a6ab48314d28f6b.status`), for malformed YAML, for nesting deeper than yaml_max_nesting_depth and for
/// anchors and aliases that would copy more than the budget above; overflow_error, worded the same way, for an
/// integer of more than yaml_max_integer_digits decimal digits (integers beyond 64 bits load as yaml_big_integer).
[[nodiscard]] yaml_value parse_yaml(std::string_view text, std::string_view source_name = "<string>");

/// True if a plain (unquoted) scalar with this text would be read by YAML 1.1 (PyYAML) as something other than a
/// string (spec §3.5.2); such strings must be quoted.
[[nodiscard]] bool yaml11_plain_is_not_string(std::string_view text);

/// Python's repr() of a float as PyYAML's representer writes it (spec §3.5.2): `.nan`, `.inf`, `-.inf`, shortest
/// round-trip digits, scientific iff the exponent is < -4 or >= 16, and `1.0e-07` rather than `1e-07`.
[[nodiscard]] std::string yaml_float_text(double value);

}  // namespace axds
