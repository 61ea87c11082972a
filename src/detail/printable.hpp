#pragma once
// Names read from files (zip member names, keys) shown in error messages: a hostile or damaged name may hold NUL,
// newlines or terminal escapes, or run to 64 KiB. printable() keeps text readable and the message whole (a NUL would
// cut what() short before it names the file).

#include <fmt/format.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace axds::detail {

/// `text` with control bytes (< 0x20, 0x7F) and backslashes as \xNN escapes, cut to `limit` bytes plus "…".
[[nodiscard]] inline std::string printable(std::string_view text, std::size_t limit = 200) {
    std::string out;
    out.reserve(text.size() < limit ? text.size() : limit);
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (out.size() >= limit) {
            out += "…";
            break;
        }
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x20 || c == 0x7F || c == '\\') {
            out += fmt::format("\\x{:02x}", c);
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

}  // namespace axds::detail
