#pragma once

#include <axds/config/ordered_map.hpp>
#include <axds/config/yaml_value.hpp>

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

// YAML configuration files shared with the Python library's YamlConfig (spec §3).
//
// A struct opts in by declaring its fields once, next to the struct (found by argument-dependent lookup):
//
//     struct acquisition_config {
//         std::string name = "rig";
//         std::optional<std::filesystem::path> output;
//         std::map<std::string, int> channels;
//     };
//     AXDS_YAML_FIELDS(acquisition_config, name, output, channels)
//
// or, for renamed, required or excluded fields, with a function returning a tuple of axds::yaml_field:
//
//     constexpr auto yaml_fields(axds::type_tag<acquisition_config>) {
//         return std::tuple{axds::yaml_field("name", &acquisition_config::name, axds::yaml_required),
//                           axds::yaml_field("source_path", &acquisition_config::source_path, axds::yaml_exclude)};
//     }
//
// Enums are written as Python writes an enum member's value: a string for enums that declare their names with
// AXDS_YAML_ENUM_NAMES (StrEnum), their integer value otherwise (IntEnum).
// Supported field types: bool, integers, floating point, std::string, std::filesystem::path, enums, std::optional,
// std::vector, std::array (Python tuples), axds::ordered_map and std::map (keys: string, path, enum or integer),
// std::variant (enum alternatives are tried first, as the Python loader does for `Color | str`), nested declared
// structs, and axds::yaml_value for free-form content.
//
// Key order: a Python dict keeps its insertion order, and so does axds::ordered_map (keys load in document order and
// are written back in that order, so files saved by either language do not churn). std::map sorts its keys: a file
// written by Python with keys `x, y, "with space"` comes back from a std::map field as `"with space", x, y`. Use
// ordered_map for dict fields shared with Python.
//
// Integers: Python's int is unbounded. A value beyond 64 bits loads into a yaml_value field (or any key the struct
// does not declare) exactly and is written back unchanged; only a typed integer field refuses it (type_error naming
// the file, the field and the value).

namespace axds {

template <typename T>
struct type_tag {
    using type = T;
};

/// Field flag: never written; on load the struct's `restore_excluded_fields(path)` member, if any, restores it
/// (spec §3.1 YAML_EXCLUDE_METADATA and restore_excluded_fields).
inline constexpr unsigned yaml_exclude = 1U;
/// Field flag: loading fails with missing_value_error when the document lacks the field (a Python field without a
/// default). Other absent fields keep the struct's default member value.
inline constexpr unsigned yaml_required = 2U;

/// One declared field: its YAML key, the member it maps to, and flags.
template <typename C, typename M>
struct yaml_field_ref {
    std::string_view name;
    M C::*member;
    unsigned flags = 0;
};

template <typename C, typename M>
constexpr yaml_field_ref<C, M> yaml_field(std::string_view name, M C::*member, unsigned flags = 0) {
    return {name, member, flags};
}

/// A struct whose fields were declared with AXDS_YAML_FIELDS or a yaml_fields(type_tag<T>) function.
template <typename T>
concept yaml_struct = requires {
    yaml_fields(type_tag<T>{});
};

/// An enum written by name (Python StrEnum), declared with AXDS_YAML_ENUM_NAMES or a yaml_enum_names function
/// returning pairs of (enumerator, name).
template <typename E>
concept yaml_named_enum = std::is_enum_v<E> && requires {
    yaml_enum_names(type_tag<E>{});
};

/// An enum written as its integer value (Python IntEnum) whose valid enumerators are declared with
/// AXDS_YAML_ENUM_VALUES or a yaml_enum_values function, so loading rejects other integers. Integer enums without
/// the declaration accept any integer of the underlying type.
template <typename E>
concept yaml_valued_enum = std::is_enum_v<E> && requires {
    yaml_enum_values(type_tag<E>{});
};

namespace detail {

/// Where a conversion is happening, for error messages: the file and the field path ("inner.color", "items[2]").
struct yaml_context {
    const std::filesystem::path* file;
    std::string where;

    [[nodiscard]] yaml_context field(std::string_view name) const {
        return {file, where.empty() ? std::string(name) : where + "." + std::string(name)};
    }

    [[nodiscard]] yaml_context item(std::size_t index) const {
        return {file, where + "[" + std::to_string(index) + "]"};
    }

    [[nodiscard]] yaml_context key(const std::string& key_text) const { return {file, where + "[" + key_text + "]"}; }
};

[[noreturn]] void throw_yaml_field_error(const yaml_context& context, std::string_view problem);
[[noreturn]] void throw_yaml_missing_field(const yaml_context& context);
[[noreturn]] void throw_yaml_enum_value(std::string_view enum_value, std::string_view problem);
std::string yaml_key_text(const yaml_value& key);
/// At most `limit` bytes of `text` (cut at a UTF-8 character boundary), then "... (<size> bytes)": how error
/// messages quote a value from a file, so a hostile 10 MB value never makes a 10 MB message.
std::string yaml_excerpt(std::string_view text, std::size_t limit = 64);

/// spec §3.3/§3.6 step 1: the last suffix must be exactly .yaml or .yml.
void check_yaml_suffix(const std::filesystem::path& file, bool writing);
/// spec §3.3 steps 2-5: mkdir -p, temp file (0600) + fsync + rename; the previous file survives any failure.
void write_yaml_file(const std::filesystem::path& file, const yaml_value& document);
/// spec §3.6 steps 2-3: read, parse (yaml_error), require a top-level mapping (value_error).
yaml_value read_yaml_file(const std::filesystem::path& file);

template <typename T>
struct is_optional : std::false_type {};

template <typename T>
struct is_optional<std::optional<T>> : std::true_type {};

template <typename T>
struct is_vector : std::false_type {};

template <typename T, typename A>
struct is_vector<std::vector<T, A>> : std::true_type {};

template <typename T>
struct is_std_array : std::false_type {};

template <typename T, std::size_t N>
struct is_std_array<std::array<T, N>> : std::true_type {};

template <typename T>
struct is_map : std::false_type {};

template <typename K, typename V, typename C, typename A>
struct is_map<std::map<K, V, C, A>> : std::true_type {};

template <typename K, typename V>
struct is_map<ordered_map<K, V>> : std::true_type {};

template <typename T>
struct is_variant : std::false_type {};

template <typename... Ts>
struct is_variant<std::variant<Ts...>> : std::true_type {};

template <typename T>
inline constexpr bool unsupported_yaml_type = false;

template <typename T>
yaml_value encode_yaml(const T& value);

template <typename T>
void decode_yaml(const yaml_value& node, T& out, const yaml_context& context);

template <typename E>
yaml_value encode_enum(E value) {
    if constexpr (yaml_named_enum<E>) {
        for (const auto& [enumerator, name] : yaml_enum_names(type_tag<E>{})) {
            if (enumerator == value) {
                return yaml_value(std::string(name));
            }
        }
        throw_yaml_enum_value(std::to_string(static_cast<std::int64_t>(value)), "has no declared name");
    } else {
        return yaml_value(static_cast<std::underlying_type_t<E>>(value));
    }
}

template <typename E>
void decode_enum(const yaml_value& node, E& out, const yaml_context& context) {
    if constexpr (yaml_named_enum<E>) {
        if (node.type() != yaml_value::kind::string) {
            throw_yaml_field_error(context, std::string("expected one of the enum's names, but got ") +
                                                std::string(node.python_type_name()));
        }
        std::string names;
        for (const auto& [enumerator, name] : yaml_enum_names(type_tag<E>{})) {
            if (name == node.as_string()) {
                out = enumerator;
                return;
            }
            names += names.empty() ? "'" : ", '";
            names += std::string(name) + "'";
        }
        throw_yaml_field_error(
            context, "'" + yaml_excerpt(node.as_string()) + "' is not a valid value; expected one of " + names);
    } else {
        using underlying = std::underlying_type_t<E>;
        underlying raw{};
        decode_yaml(node, raw, context);
        out = static_cast<E>(raw);
        if constexpr (yaml_valued_enum<E>) {
            for (const E valid : yaml_enum_values(type_tag<E>{})) {
                if (valid == out) {
                    return;
                }
            }
            throw_yaml_field_error(
                context, std::to_string(static_cast<std::int64_t>(raw)) + " is not a valid value of the enum");
        }
    }
}

template <typename T>
yaml_value encode_yaml(const T& value) {
    if constexpr (std::is_same_v<T, yaml_value>) {
        return value;
    } else if constexpr (std::is_same_v<T, bool> || std::is_arithmetic_v<T>) {
        return yaml_value(value);
    } else if constexpr (std::is_same_v<T, std::string>) {
        return yaml_value(value);
    } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
        return yaml_value(value.generic_string());  // spec §3.2: POSIX form
    } else if constexpr (std::is_enum_v<T>) {
        return encode_enum(value);
    } else if constexpr (is_optional<T>::value) {
        return value ? encode_yaml(*value) : yaml_value();
    } else if constexpr (is_vector<T>::value || is_std_array<T>::value) {
        yaml_value::sequence items;
        items.reserve(value.size());
        for (const auto& item : value) {
            items.push_back(encode_yaml(item));
        }
        return yaml_value(std::move(items));
    } else if constexpr (is_map<T>::value) {
        yaml_value::mapping entries;
        for (const auto& [key, item] : value) {
            entries.push_back({encode_yaml(key), encode_yaml(item)});
        }
        return yaml_value(std::move(entries));
    } else if constexpr (is_variant<T>::value) {
        return std::visit([](const auto& alternative) { return encode_yaml(alternative); }, value);
    } else if constexpr (yaml_struct<T>) {
        yaml_value::mapping entries;
        std::apply(
            [&](const auto&... fields) {
                const auto add = [&](const auto& field) {
                    if ((field.flags & yaml_exclude) == 0) {
                        entries.push_back({yaml_value(std::string(field.name)), encode_yaml(value.*(field.member))});
                    }
                };
                (add(fields), ...);
            },
            yaml_fields(type_tag<T>{}));
        return yaml_value(std::move(entries));
    } else {
        static_assert(unsupported_yaml_type<T>,
                      "axds YAML: unsupported field type; declare nested structs with AXDS_YAML_FIELDS");
    }
}

template <typename T>
void decode_number(const yaml_value& node, T& out, const yaml_context& context) {
    using kind = yaml_value::kind;
    if constexpr (std::is_floating_point_v<T>) {
        if (node.type() != kind::floating && !node.is_integer()) {
            throw_yaml_field_error(context, "expected a number, but got " + std::string(node.python_type_name()));
        }
        if (node.type() == kind::big_integer) {
            const double value = std::strtod(node.integer_text().c_str(), nullptr);
            if (!std::isfinite(value) || std::abs(value) > static_cast<double>(std::numeric_limits<T>::max())) {
                throw_yaml_field_error(context, "the integer " + yaml_excerpt(node.integer_text()) +
                                                    " is too large for a floating-point number");
            }
        }
        out = static_cast<T>(node.as_double());
    } else {
        if (!node.is_integer()) {
            throw_yaml_field_error(context, "expected an integer, but got " + std::string(node.python_type_name()));
        }
        if (node.type() == kind::big_integer) {  // beyond 64 bits: no C++ integer field holds it
            throw_yaml_field_error(context, "the integer " + yaml_excerpt(node.integer_text()) +
                                                " is out of range (it does not fit in 64 bits)");
        }
        if (node.type() == kind::unsigned_integer) {  // above INT64_MAX
            const std::uint64_t raw = node.as_uint64();
            if constexpr (std::is_signed_v<T>) {
                throw_yaml_field_error(context, "the integer " + std::to_string(raw) + " is out of range");
            } else if (raw > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) {
                throw_yaml_field_error(context, "the integer " + std::to_string(raw) + " is out of range");
            }
            out = static_cast<T>(raw);
            return;
        }
        const std::int64_t raw = node.as_int64();
        if (!std::in_range<T>(raw)) {
            throw_yaml_field_error(context, "the integer " + std::to_string(raw) + " is out of range");
        }
        out = static_cast<T>(raw);
    }
}

template <typename Variant>
inline constexpr bool variant_has_integer = false;

template <typename... Ts>
inline constexpr bool variant_has_integer<std::variant<Ts...>> =
    ((std::is_integral_v<Ts> && !std::is_same_v<Ts, bool>) || ...);

template <typename Variant, std::size_t I = 0>
bool decode_variant_pass(const yaml_value& node, Variant& out, const yaml_context& context, bool enums) {
    if constexpr (I == std::variant_size_v<Variant>) {
        return false;
    } else {
        using alternative = std::variant_alternative_t<I, Variant>;
        // An integer never falls back to a floating-point alternative when the variant has an integer one: a value
        // the integer type cannot hold (beyond its range, or beyond 64 bits) would come back rounded, where Python's
        // `int | float` keeps the exact int.
        constexpr bool float_after_int = std::is_floating_point_v<alternative> && variant_has_integer<Variant>;
        if (std::is_enum_v<alternative> == enums && !(float_after_int && node.is_integer())) {
            try {
                alternative value{};
                decode_yaml(node, value, context);
                out = std::move(value);
                return true;
            } catch (const std::exception&) {  // try the next alternative, as the Python loader does
            }
        }
        return decode_variant_pass<Variant, I + 1>(node, out, context, enums);
    }
}

template <typename T>
void decode_yaml(const yaml_value& node, T& out, const yaml_context& context) {
    if constexpr (std::is_same_v<T, yaml_value>) {
        out = node;
    } else if constexpr (std::is_same_v<T, bool>) {
        if (node.type() != yaml_value::kind::boolean) {
            throw_yaml_field_error(context, "expected a boolean, but got " + std::string(node.python_type_name()));
        }
        out = node.as_bool();
    } else if constexpr (std::is_arithmetic_v<T>) {
        decode_number(node, out, context);
    } else if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, std::filesystem::path>) {
        if (node.type() != yaml_value::kind::string) {
            throw_yaml_field_error(context, "expected a string, but got " + std::string(node.python_type_name()));
        }
        out = T(node.as_string());
    } else if constexpr (std::is_enum_v<T>) {
        decode_enum(node, out, context);
    } else if constexpr (is_optional<T>::value) {
        if (node.is_null()) {
            out.reset();
        } else {
            typename T::value_type value{};
            decode_yaml(node, value, context);
            out = std::move(value);
        }
    } else if constexpr (is_vector<T>::value || is_std_array<T>::value) {
        if (node.type() != yaml_value::kind::sequence) {
            throw_yaml_field_error(context, "expected a list, but got " + std::string(node.python_type_name()));
        }
        const auto& items = node.as_sequence();
        if constexpr (is_std_array<T>::value) {
            if (items.size() != out.size()) {
                throw_yaml_field_error(context, "expected a list of " + std::to_string(out.size()) +
                                                    " items, but got " + std::to_string(items.size()));
            }
        } else {
            out.clear();
            out.resize(items.size());
        }
        for (std::size_t i = 0; i < items.size(); ++i) {
            decode_yaml(items[i], out[i], context.item(i));
        }
    } else if constexpr (is_map<T>::value) {
        if (node.type() != yaml_value::kind::mapping) {
            throw_yaml_field_error(context, "expected a mapping, but got " + std::string(node.python_type_name()));
        }
        out.clear();
        for (const auto& entry : node.as_mapping()) {
            const auto entry_context = context.key(yaml_key_text(entry.key));
            typename T::key_type key{};
            decode_yaml(entry.key, key, entry_context);
            typename T::mapped_type value{};
            decode_yaml(entry.value, value, entry_context);
            out.insert_or_assign(std::move(key), std::move(value));
        }
    } else if constexpr (is_variant<T>::value) {
        if (!decode_variant_pass(node, out, context, true) && !decode_variant_pass(node, out, context, false)) {
            if (node.is_integer()) {
                throw_yaml_field_error(context, "no alternative of the field's type holds the integer " +
                                                    yaml_excerpt(node.integer_text()) +
                                                    " (out of range of its integer types)");
            }
            throw_yaml_field_error(context, "no alternative of the field's type accepts a value of type " +
                                                std::string(node.python_type_name()));
        }
    } else if constexpr (yaml_struct<T>) {
        if (node.type() != yaml_value::kind::mapping) {
            throw_yaml_field_error(context, "expected a mapping, but got " + std::string(node.python_type_name()));
        }
        std::apply(
            [&](const auto&... fields) {
                const auto load = [&](const auto& field) {
                    if ((field.flags & yaml_exclude) != 0) {
                        return;
                    }
                    const yaml_value* child = node.find(field.name);
                    if (child == nullptr) {
                        if ((field.flags & yaml_required) != 0) {
                            throw_yaml_missing_field(context.field(field.name));
                        }
                        return;  // keep the default member value
                    }
                    decode_yaml(*child, out.*(field.member), context.field(field.name));
                };
                (load(fields), ...);
            },
            yaml_fields(type_tag<T>{}));
    } else {
        static_assert(unsupported_yaml_type<T>,
                      "axds YAML: unsupported field type; declare nested structs with AXDS_YAML_FIELDS");
    }
}

}  // namespace detail

/// The YAML tree the Python library's _serialize_value would produce for `value` (spec §3.2).
template <yaml_struct T>
[[nodiscard]] yaml_value to_yaml_value(const T& value) {
    return detail::encode_yaml(value);
}

/// Writes `value` to `file` as the Python library's YamlConfig.to_yaml does (spec §3.3-§3.5): byte-identical
/// document, parent directories created, written atomically (temp file + fsync + rename) with mode 0600.
/// @throws value_error if the file does not end in .yaml/.yml (anchor: "must end in the '.yaml' or '.yml'
/// extension") or a string is not UTF-8 (naming the file and the field); os_error family if it cannot be written (the
/// previous file is kept and no temp file remains).
template <yaml_struct T>
void to_yaml(const T& value, const std::filesystem::path& file) {
    detail::check_yaml_suffix(file, true);
    detail::write_yaml_file(file, detail::encode_yaml(value));
}

/// Loads a `T` from a YAML file written by either library (spec §3.6). Absent fields keep their default values
/// (yaml_required ones fail), unknown keys are ignored, excluded fields are restored by
/// `T::restore_excluded_fields(file)` when T has it.
/// @throws value_error (wrong suffix; top-level not a mapping, naming the Python type), file_not_found_error,
/// yaml_error (malformed YAML, nesting deeper than yaml_max_nesting_depth, an alias bomb: see parse_yaml; naming the
/// file and the line), overflow_error (an integer beyond 64 bits, naming the file, the field and the line), type_error
/// (a field of the wrong type, naming the file and the field), missing_value_error (a required field is absent).
template <yaml_struct T>
[[nodiscard]] T from_yaml(const std::filesystem::path& file) {
    detail::check_yaml_suffix(file, false);
    const yaml_value document = detail::read_yaml_file(file);
    T value{};
    detail::decode_yaml(document, value, detail::yaml_context{&file, {}});
    if constexpr (requires(T & t, const std::filesystem::path& p) { t.restore_excluded_fields(p); }) {
        value.restore_excluded_fields(file);
    }
    return value;
}

}  // namespace axds

// Field-list macros: AXDS_YAML_FIELDS(Type, a, b, c) declares fields a, b, c of Type under their own names;
// AXDS_YAML_ENUM_NAMES(Enum, red, green) writes Enum::red as "red"; AXDS_YAML_ENUM_VALUES(Enum, low, high) lists the
// valid enumerators of an integer-valued enum. Use them in the type's namespace.
#define AXDS_DETAIL_PARENS ()
#define AXDS_DETAIL_EXPAND(...) AXDS_DETAIL_EXPAND3(AXDS_DETAIL_EXPAND3(AXDS_DETAIL_EXPAND3(__VA_ARGS__)))
#define AXDS_DETAIL_EXPAND3(...) AXDS_DETAIL_EXPAND2(AXDS_DETAIL_EXPAND2(AXDS_DETAIL_EXPAND2(__VA_ARGS__)))
#define AXDS_DETAIL_EXPAND2(...) AXDS_DETAIL_EXPAND1(AXDS_DETAIL_EXPAND1(AXDS_DETAIL_EXPAND1(__VA_ARGS__)))
#define AXDS_DETAIL_EXPAND1(...) __VA_ARGS__
#define AXDS_DETAIL_FOR_EACH(macro, type, ...) \
    __VA_OPT__(AXDS_DETAIL_EXPAND(AXDS_DETAIL_FOR_EACH_HELPER(macro, type, __VA_ARGS__)))
#define AXDS_DETAIL_FOR_EACH_HELPER(macro, type, first, ...) \
    macro(type, first) __VA_OPT__(, AXDS_DETAIL_FOR_EACH_AGAIN AXDS_DETAIL_PARENS(macro, type, __VA_ARGS__))
#define AXDS_DETAIL_FOR_EACH_AGAIN() AXDS_DETAIL_FOR_EACH_HELPER
#define AXDS_DETAIL_YAML_FIELD(type, name) ::axds::yaml_field(#name, &type::name)
#define AXDS_DETAIL_YAML_ENUM_NAME(type, name) std::pair<type, std::string_view>(type::name, #name)
#define AXDS_DETAIL_YAML_ENUM_VALUE(type, name) type::name

#define AXDS_YAML_FIELDS(Type, ...)                                                         \
    [[maybe_unused]] constexpr auto yaml_fields(::axds::type_tag<Type> /*unused*/) {        \
        return std::tuple{AXDS_DETAIL_FOR_EACH(AXDS_DETAIL_YAML_FIELD, Type, __VA_ARGS__)}; \
    }

#define AXDS_YAML_ENUM_NAMES(Enum, ...)                                                         \
    [[maybe_unused]] constexpr auto yaml_enum_names(::axds::type_tag<Enum> /*unused*/) {        \
        return std::array{AXDS_DETAIL_FOR_EACH(AXDS_DETAIL_YAML_ENUM_NAME, Enum, __VA_ARGS__)}; \
    }

#define AXDS_YAML_ENUM_VALUES(Enum, ...)                                                         \
    [[maybe_unused]] constexpr auto yaml_enum_values(::axds::type_tag<Enum> /*unused*/) {        \
        return std::array{AXDS_DETAIL_FOR_EACH(AXDS_DETAIL_YAML_ENUM_VALUE, Enum, __VA_ARGS__)}; \
    }
