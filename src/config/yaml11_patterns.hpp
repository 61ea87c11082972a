#pragma once
// The YAML 1.1 implicit resolvers of PyYAML (spec §3.5.2), shared by the emitter's quoting decision and the parser's
// plain-scalar construction so both always agree. Private to src/config/.

#include <regex>
#include <string_view>

namespace axds::detail {

inline const std::regex& yaml11_int_pattern() {
    static const std::regex pattern(
        "[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+");
    return pattern;
}

inline const std::regex& yaml11_float_pattern() {
    static const std::regex pattern(
        "[-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+][0-9]+)?|\\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|"
        "[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\\.[0-9_]*|[-+]?\\.(?:inf|Inf|INF)|\\.(?:nan|NaN|NAN)");
    return pattern;
}

inline bool yaml11_matches(std::string_view text, const std::regex& pattern) {
    return std::regex_match(text.begin(), text.end(), pattern);
}

inline bool yaml11_all_decimal(std::string_view text) {
    return !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
}

/// yaml11_int_pattern() without the regex for the common cases (std::regex costs microseconds per call). Exact: an
/// int starts with a sign or a digit; without a 0b/0x prefix it holds only digits, '_' and ':'; a run of decimal
/// digits is an int unless it is a 0-prefixed non-octal run.
inline bool yaml11_is_int(std::string_view text) {
    if (text.empty() || std::string_view("-+0123456789").find(text[0]) == std::string_view::npos) {
        return false;
    }
    if (yaml11_all_decimal(text)) {
        return text[0] != '0' || text.size() == 1 || text.find_first_not_of("01234567") == std::string_view::npos;
    }
    const std::string_view body = text[0] == '-' || text[0] == '+' ? text.substr(1) : text;
    if (!body.starts_with("0x") && !body.starts_with("0b") &&
        body.find_first_not_of("0123456789_:") != std::string_view::npos) {
        return false;
    }
    return yaml11_matches(text, yaml11_int_pattern());
}

/// yaml11_float_pattern() with the same kind of exact shortcuts: a float starts with a sign, a digit or '.', and
/// every alternative contains a '.'.
inline bool yaml11_is_float(std::string_view text) {
    if (text.empty() || std::string_view("-+.0123456789").find(text[0]) == std::string_view::npos ||
        text.find('.') == std::string_view::npos) {
        return false;
    }
    return yaml11_matches(text, yaml11_float_pattern());
}

}  // namespace axds::detail
