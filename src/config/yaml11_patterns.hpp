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

}  // namespace axds::detail
