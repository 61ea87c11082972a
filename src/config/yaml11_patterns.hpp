#pragma once
// The YAML 1.1 implicit resolvers of PyYAML (spec §3.5.2), shared by the emitter's quoting decision and the parser's
// plain-scalar construction so both always agree. Private to src/config/.
//
// The regular expressions below are the specification; the matchers (yaml11_int_match, yaml11_float_match,
// yaml11_timestamp_match) implement them by hand, in one pass without recursion: libstdc++'s std::regex recurses once
// per character, so a 100 KB number-like scalar from a hostile file overflowed the stack. A test checks that the
// matchers and the expressions agree.

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

inline const std::regex& yaml11_timestamp_pattern() {
    static const std::regex pattern(
        "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|"
        "[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \\t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9]"
        "(?:\\.[0-9]*)?(?:[ \\t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?");
    return pattern;
}

inline bool yaml11_matches(std::string_view text, const std::regex& pattern) {
    return std::regex_match(text.begin(), text.end(), pattern);
}

inline bool yaml11_all_decimal(std::string_view text) {
    return !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
}

namespace yaml11 {

inline bool digit(char c) {
    return c >= '0' && c <= '9';
}

/// Every character of `text` is in `set` (true for empty text).
inline bool only(std::string_view text, std::string_view set) {
    return text.find_first_not_of(set) == std::string_view::npos;
}

inline std::string_view unsigned_part(std::string_view text) {
    return !text.empty() && (text[0] == '-' || text[0] == '+') ? text.substr(1) : text;
}

/// `(?::[0-5]?[0-9])+` over all of `text`.
inline bool sexagesimal_groups(std::string_view text) {
    if (text.empty()) {
        return false;
    }
    while (!text.empty()) {
        if (text[0] != ':') {
            return false;
        }
        text.remove_prefix(1);
        const std::string_view group = text.substr(0, text.find(':'));
        const bool one = group.size() == 1 && digit(group[0]);
        const bool two = group.size() == 2 && group[0] >= '0' && group[0] <= '5' && digit(group[1]);
        if (!one && !two) {
            return false;
        }
        text.remove_prefix(group.size());
    }
    return true;
}

/// `(?:[eE][-+][0-9]+)?` over all of `text`.
inline bool optional_exponent(std::string_view text) {
    return text.empty() || (text.size() >= 3 && (text[0] == 'e' || text[0] == 'E') &&
                            (text[1] == '-' || text[1] == '+') && yaml11_all_decimal(text.substr(2)));
}

}  // namespace yaml11

/// yaml11_int_pattern(), matched by hand.
inline bool yaml11_int_match(std::string_view text) {
    using namespace yaml11;
    const std::string_view body = unsigned_part(text);
    if (body.empty()) {
        return false;
    }
    if (body.starts_with("0b")) {
        return body.size() > 2 && only(body.substr(2), "01_");
    }
    if (body.starts_with("0x")) {
        return body.size() > 2 && only(body.substr(2), "0123456789abcdefABCDEF_");
    }
    if (body[0] == '0') {  // 0 or 0[0-7_]+
        return only(body.substr(1), "01234567_");
    }
    if (body[0] < '1' || body[0] > '9') {
        return false;
    }
    const auto colon = body.find(':');
    if (!only(body.substr(1, colon == std::string_view::npos ? std::string_view::npos : colon - 1), "0123456789_")) {
        return false;
    }
    return colon == std::string_view::npos || sexagesimal_groups(body.substr(colon));
}

/// yaml11_float_pattern(), matched by hand.
inline bool yaml11_float_match(std::string_view text) {
    using namespace yaml11;
    if (!text.empty() && text[0] == '.') {  // the unsigned alternatives starting with '.'
        const std::string_view rest = text.substr(1);
        if (rest == "nan" || rest == "NaN" || rest == "NAN" || rest == "inf" || rest == "Inf" || rest == "INF") {
            return true;
        }
        if (rest.empty() || !digit(rest[0])) {
            return false;
        }
        const auto end = rest.find_first_not_of("0123456789_");
        return end == std::string_view::npos || optional_exponent(rest.substr(end));
    }
    const std::string_view body = unsigned_part(text);
    if (body == ".inf" || body == ".Inf" || body == ".INF") {
        return true;
    }
    if (body.empty() || !digit(body[0])) {
        return false;
    }
    const auto head_end = body.find_first_not_of("0123456789_");
    if (head_end == std::string_view::npos) {
        return false;  // every remaining alternative has a '.'
    }
    if (body[head_end] == '.') {  // [0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?
        const std::string_view rest = body.substr(head_end + 1);
        const auto end = rest.find_first_not_of("0123456789_");
        return end == std::string_view::npos || optional_exponent(rest.substr(end));
    }
    if (body[head_end] == ':') {  // [0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
        const auto dot = body.find('.', head_end);
        return dot != std::string_view::npos && sexagesimal_groups(body.substr(head_end, dot - head_end)) &&
               only(body.substr(dot + 1), "0123456789_");
    }
    return false;
}

/// yaml11_timestamp_pattern(), matched by hand.
inline bool yaml11_timestamp_match(std::string_view text) {
    using namespace yaml11;
    std::size_t at = 0;
    const auto take_digit = [&] {
        if (at < text.size() && digit(text[at])) {
            ++at;
            return true;
        }
        return false;
    };
    const auto take = [&](char c) {
        if (at < text.size() && text[at] == c) {
            ++at;
            return true;
        }
        return false;
    };
    const auto blank = [&] {
        return at < text.size() && (text[at] == ' ' || text[at] == '\t');
    };
    if (!(take_digit() && take_digit() && take_digit() && take_digit() && take('-') && take_digit())) {
        return false;
    }
    if (text.size() == 10 && digit(text[6]) && text[7] == '-' && digit(text[8]) && digit(text[9])) {
        return true;  // yyyy-mm-dd
    }
    take_digit();
    if (!(take('-') && take_digit())) {
        return false;
    }
    take_digit();
    if (!take('T') && !take('t')) {
        if (!blank()) {
            return false;
        }
        while (blank()) {
            ++at;
        }
    }
    if (!take_digit()) {
        return false;
    }
    take_digit();
    if (!(take(':') && take_digit() && take_digit() && take(':') && take_digit() && take_digit())) {
        return false;
    }
    if (take('.')) {
        while (take_digit()) {
        }
    }
    if (at == text.size()) {
        return true;
    }
    while (blank()) {
        ++at;
    }
    if (take('Z')) {
        return at == text.size();
    }
    if (!take('-') && !take('+')) {
        return false;
    }
    if (!take_digit()) {
        return false;
    }
    take_digit();
    if (take(':') && !(take_digit() && take_digit())) {
        return false;
    }
    return at == text.size();
}

/// Whether `text` is a YAML 1.1 int, with shortcuts for the common cases: an int starts with a sign or a digit, and
/// a run of decimal digits is an int unless it is a 0-prefixed non-octal run.
inline bool yaml11_is_int(std::string_view text) {
    if (text.empty() || std::string_view("-+0123456789").find(text[0]) == std::string_view::npos) {
        return false;
    }
    if (yaml11_all_decimal(text)) {
        return text[0] != '0' || text.size() == 1 || text.find_first_not_of("01234567") == std::string_view::npos;
    }
    return yaml11_int_match(text);
}

/// Whether `text` is a YAML 1.1 float: it starts with a sign, a digit or '.', and every alternative has a '.'.
inline bool yaml11_is_float(std::string_view text) {
    if (text.empty() || std::string_view("-+.0123456789").find(text[0]) == std::string_view::npos ||
        text.find('.') == std::string_view::npos) {
        return false;
    }
    return yaml11_float_match(text);
}

}  // namespace axds::detail
