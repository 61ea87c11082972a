#pragma once
// Helpers for error messages about YAML content from other machines, private to src/: field paths
// ("jobs.5a6ab48314d28f6b.started_at", "items[2]") built from bounded excerpts (detail::yaml_excerpt) of the keys.

#include <axds/config/yaml_config.hpp>
#include <axds/config/yaml_value.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace axds::detail {

/// A mapping key as a field-path segment: strings as they are (excerpted), other scalars as YAML writes them.
inline std::string yaml_path_segment(const yaml_value& key) {
    switch (key.type()) {
        case yaml_value::kind::string: return yaml_excerpt(key.as_string());
        case yaml_value::kind::null: return "null";
        case yaml_value::kind::boolean: return key.as_bool() ? "true" : "false";
        case yaml_value::kind::integer: return std::to_string(key.as_int64());
        case yaml_value::kind::unsigned_integer: return std::to_string(key.as_uint64());
        case yaml_value::kind::big_integer: return yaml_excerpt(key.integer_text());
        case yaml_value::kind::floating: return yaml_float_text(key.as_double());
        case yaml_value::kind::sequence: return "<list>";
        case yaml_value::kind::mapping: return "<dict>";
    }
    return "?";
}

/// Appends a mapping key (".key", or "key" at the root) or a sequence index ("[3]") to a field path.
inline void yaml_path_append_key(std::string& path, const yaml_value& key) {
    if (!path.empty()) {
        path += '.';
    }
    path += yaml_path_segment(key);
}

inline void yaml_path_append_index(std::string& path, std::size_t index) {
    path += '[';
    path += std::to_string(index);
    path += ']';
}

/// A field path bounded for a message: its last `limit` bytes when longer.
inline std::string yaml_bounded_path(const std::string& path, std::size_t limit = 160) {
    if (path.size() <= limit) {
        return path;
    }
    std::size_t start = path.size() - limit;
    while (start < path.size() && (static_cast<unsigned char>(path[start]) & 0xC0U) == 0x80U) {
        ++start;
    }
    return "..." + path.substr(start);
}

}  // namespace axds::detail
