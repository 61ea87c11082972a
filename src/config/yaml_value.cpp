#include <axds/config/yaml_value.hpp>

#include <axds/error.hpp>

#include "config/yaml11_patterns.hpp"

#include <axds/config/yaml_config.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace axds {

namespace {

[[noreturn]] void throw_kind(const yaml_value& value, std::string_view expected) {
    throw type_error(fmt::format("expected {}, but got {}", expected, value.python_type_name()));
}

}  // namespace

std::string_view yaml_value::python_type_name() const noexcept {
    switch (type()) {
        case kind::null: return "NoneType";
        case kind::boolean: return "bool";
        case kind::integer:
        case kind::unsigned_integer:
        case kind::big_integer: return "int";
        case kind::floating: return "float";
        case kind::string: return "str";
        case kind::sequence: return "list";
        case kind::mapping: return "dict";
    }
    return "unknown";
}

bool yaml_value::as_bool() const {
    if (const auto* b = std::get_if<bool>(&data_)) {
        return *b;
    }
    throw_kind(*this, "a boolean");
}

std::int64_t yaml_value::as_int64() const {
    if (const auto* i = std::get_if<std::int64_t>(&data_)) {
        return *i;
    }
    if (std::holds_alternative<std::uint64_t>(data_)) {
        throw overflow_error(
            fmt::format("expected an integer that fits in 64 signed bits, but got {}", std::get<std::uint64_t>(data_)));
    }
    if (const auto* big = std::get_if<yaml_big_integer>(&data_)) {
        throw overflow_error(fmt::format("the integer {} does not fit in 64 bits", detail::yaml_excerpt(big->decimal)));
    }
    throw_kind(*this, "an integer");
}

std::uint64_t yaml_value::as_uint64() const {
    if (const auto* u = std::get_if<std::uint64_t>(&data_)) {
        return *u;
    }
    if (const auto* i = std::get_if<std::int64_t>(&data_)) {
        if (*i < 0) {
            throw overflow_error(fmt::format("expected a non-negative integer, but got {}", *i));
        }
        return static_cast<std::uint64_t>(*i);
    }
    if (const auto* big = std::get_if<yaml_big_integer>(&data_)) {
        throw overflow_error(fmt::format("the integer {} does not fit in 64 bits", detail::yaml_excerpt(big->decimal)));
    }
    throw_kind(*this, "an integer");
}

double yaml_value::as_double() const {
    if (const auto* d = std::get_if<double>(&data_)) {
        return *d;
    }
    if (const auto* i = std::get_if<std::int64_t>(&data_)) {
        return static_cast<double>(*i);
    }
    if (const auto* u = std::get_if<std::uint64_t>(&data_)) {
        return static_cast<double>(*u);
    }
    if (const auto* big = std::get_if<yaml_big_integer>(&data_)) {
        // strtod rounds a decimal string to the nearest double, as Python's float(int) does.
        const double value = std::strtod(big->decimal.c_str(), nullptr);
        if (std::isinf(value)) {
            throw overflow_error(
                fmt::format("int too large to convert to float: {}", detail::yaml_excerpt(big->decimal)));
        }
        return value;
    }
    throw_kind(*this, "a number");
}

std::string yaml_value::integer_text() const {
    if (const auto* i = std::get_if<std::int64_t>(&data_)) {
        return std::to_string(*i);
    }
    if (const auto* u = std::get_if<std::uint64_t>(&data_)) {
        return std::to_string(*u);
    }
    if (const auto* big = std::get_if<yaml_big_integer>(&data_)) {
        return big->decimal;
    }
    throw_kind(*this, "an integer");
}

yaml_value yaml_value::from_integer_text(std::string_view decimal) {
    const bool negative = decimal.starts_with('-');
    const std::string_view digits = negative ? decimal.substr(1) : decimal;
    if (digits.empty() || (digits.size() > 1 && digits[0] == '0') ||
        digits.find_first_not_of("0123456789") != std::string_view::npos || (negative && digits == "0")) {
        throw value_error(
            fmt::format("'{}' is not an integer in decimal (an optional '-' and digits without leading "
                        "zeros)",
                        detail::yaml_excerpt(decimal)));
    }
    if (digits.size() > yaml_max_integer_digits) {
        throw value_error(fmt::format("the integer {} has {} digits, more than the {} Python converts",
                                      detail::yaml_excerpt(decimal), digits.size(), yaml_max_integer_digits));
    }
    std::uint64_t magnitude = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), magnitude);
    if (ec == std::errc() && end == digits.data() + digits.size()) {
        constexpr auto limit = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) + 1;
        if (!negative) {
            return yaml_value(magnitude);
        }
        if (magnitude <= limit) {
            return yaml_value(magnitude == limit ? std::numeric_limits<std::int64_t>::min()
                                                 : -static_cast<std::int64_t>(magnitude));
        }
    }
    return yaml_value(yaml_big_integer{std::string(decimal)});
}

const std::string& yaml_value::as_string() const {
    if (const auto* s = std::get_if<std::string>(&data_)) {
        return *s;
    }
    throw_kind(*this, "a string");
}

const yaml_value::sequence& yaml_value::as_sequence() const {
    if (const auto* s = std::get_if<sequence>(&data_)) {
        return *s;
    }
    throw_kind(*this, "a sequence");
}

yaml_value::sequence& yaml_value::as_sequence() {
    if (auto* s = std::get_if<sequence>(&data_)) {
        return *s;
    }
    throw_kind(*this, "a sequence");
}

const yaml_value::mapping& yaml_value::as_mapping() const {
    if (const auto* m = std::get_if<mapping>(&data_)) {
        return *m;
    }
    throw_kind(*this, "a mapping");
}

yaml_value::mapping& yaml_value::as_mapping() {
    if (auto* m = std::get_if<mapping>(&data_)) {
        return *m;
    }
    throw_kind(*this, "a mapping");
}

const yaml_value* yaml_value::find(std::string_view key) const {
    for (const auto& entry : as_mapping()) {
        if (entry.key.type() == kind::string && entry.key.as_string() == key) {
            return &entry.value;
        }
    }
    return nullptr;
}

bool operator==(const yaml_value& a, const yaml_value& b) {
    if (a.data_.index() != b.data_.index()) {
        return false;
    }
    if (const auto* x = std::get_if<double>(&a.data_)) {
        const double y = std::get<double>(b.data_);
        return *x == y || (std::isnan(*x) && std::isnan(y));  // .nan == .nan for document comparison
    }
    return a.data_ == b.data_;
}

// spec §3.5.2: the YAML 1.1 implicit resolvers of PyYAML, applied to the whole text. Python's `$` also matches
// before one final "\n", so the text is tried with such a newline removed as well.
bool yaml11_plain_is_not_string(std::string_view text) {
    // The YAML 1.1 resolvers of PyYAML: bool and null words, '<<' / '=', int, float and timestamp. Literal sets
    // and shortcuts first; the hand-written matchers of yaml11_patterns.hpp only where one can still match.
    static constexpr std::array<std::string_view, 25> words{
        "yes", "Yes", "YES", "no",  "No",  "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on",
        "On",  "ON",  "off", "Off", "OFF", "~",  "null", "Null", "NULL", "",      "<<",    "="};
    const auto matches = [&](std::string_view candidate) {
        if (std::find(words.begin(), words.end(), candidate) != words.end()) {
            return true;
        }
        if (detail::yaml11_is_int(candidate) || detail::yaml11_is_float(candidate)) {
            return true;
        }
        return candidate.size() >= 8 && candidate[4] == '-' && detail::yaml11_all_decimal(candidate.substr(0, 4)) &&
               detail::yaml11_timestamp_match(candidate);
    };
    if (matches(text)) {
        return true;
    }
    return !text.empty() && text.back() == '\n' && matches(text.substr(0, text.size() - 1));
}

std::string yaml_float_text(double value) {
    if (std::isnan(value)) {
        return ".nan";
    }
    if (std::isinf(value)) {
        return value > 0 ? ".inf" : "-.inf";
    }
    std::array<char, 64> buffer{};
    // Shortest round-trip digits first, in scientific form, to learn the decimal exponent.
    const auto scientific =
        std::to_chars(buffer.data(), buffer.data() + buffer.size(), value, std::chars_format::scientific);
    std::string text(buffer.data(), scientific.ptr);
    const auto e_at = text.find('e');
    const int exponent = std::stoi(text.substr(e_at + 1));
    if (exponent < -4 || exponent >= 16) {
        if (text.find('.') == std::string::npos) {
            text.insert(e_at, ".0");  // PyYAML: "1e-07" → "1.0e-07"
        }
        return text;
    }
    const auto fixed = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value, std::chars_format::fixed);
    text.assign(buffer.data(), fixed.ptr);
    if (text.find('.') == std::string::npos) {
        text += ".0";
    }
    return text;
}

}  // namespace axds
