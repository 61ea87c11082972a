#include "cli/json_writer.hpp"

#include "detail/utf8.hpp"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

namespace axds::cli {

namespace {

void append_ascii(std::string& out, unsigned char c) {
    switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        case '\r': out += "\\r"; break;
        default:
            if (c < 0x20) {
                out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
            } else {
                out += static_cast<char>(c);
            }
    }
}

}  // namespace

std::string json_quote(std::string_view text) {
    std::string out = "\"";
    for (std::size_t i = 0; i < text.size();) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x80) {
            append_ascii(out, c);
            ++i;
        } else if (const std::size_t length = axds::detail::utf8_sequence_length(text, i); length != 0) {
            out.append(text.substr(i, length));
            i += length;
        } else {
            out += fmt::format("\\u{:04x}", 0xDC00U + c);  // surrogateescape
            ++i;
        }
    }
    return out + "\"";
}

void json_writer::before_value() {
    if (done_) {
        throw std::logic_error("json_writer: a second value after the complete first one");
    }
    if (levels_.empty()) {
        return;
    }
    if (levels_.back().object) {
        if (!key_pending_) {
            throw std::logic_error("json_writer: a value inside an object without a key");
        }
        key_pending_ = false;
        return;
    }
    if (!levels_.back().empty) {
        out_ += ", ";
    }
    levels_.back().empty = false;
}

json_writer& json_writer::key(std::string_view name) {
    if (levels_.empty() || !levels_.back().object || key_pending_) {
        throw std::logic_error("json_writer: a key outside an object or after another key");
    }
    if (!levels_.back().empty) {
        out_ += ", ";
    }
    levels_.back().empty = false;
    out_ += json_quote(name);
    out_ += ": ";
    key_pending_ = true;
    return *this;
}

void json_writer::open(char bracket, bool object) {
    before_value();
    out_ += bracket;
    levels_.push_back({.object = object});
}

void json_writer::close(char bracket, bool object) {
    if (levels_.empty() || levels_.back().object != object || key_pending_) {
        throw std::logic_error(fmt::format("json_writer: '{}' does not close what is open", bracket));
    }
    out_ += bracket;
    levels_.pop_back();
    done_ = levels_.empty();
}

json_writer& json_writer::begin_object() {
    open('{', true);
    return *this;
}

json_writer& json_writer::end_object() {
    close('}', true);
    return *this;
}

json_writer& json_writer::begin_array() {
    open('[', false);
    return *this;
}

json_writer& json_writer::end_array() {
    close(']', false);
    return *this;
}

json_writer& json_writer::scalar(std::string_view text) {
    before_value();
    out_ += text;
    done_ = levels_.empty();  // a scalar alone is a complete document
    return *this;
}

json_writer& json_writer::value(std::string_view text) {
    return scalar(json_quote(text));
}

json_writer& json_writer::value(bool flag) {
    return scalar(flag ? "true" : "false");
}

json_writer& json_writer::signed_value(std::int64_t number) {
    return scalar(fmt::format("{}", number));
}

json_writer& json_writer::unsigned_value(std::uint64_t number) {
    return scalar(fmt::format("{}", number));
}

json_writer& json_writer::value(double number) {
    return scalar(std::isfinite(number) ? fmt::format("{}", number) : "null");
}

json_writer& json_writer::fixed(double number, int decimals) {
    return scalar(std::isfinite(number) ? fmt::format("{:.{}f}", number, decimals) : "null");
}

json_writer& json_writer::null() {
    return scalar("null");
}

json_writer& json_writer::paths(const std::vector<std::filesystem::path>& list) {
    begin_array();
    for (const auto& path : list) {
        value(path);
    }
    return end_array();
}

const std::string& json_writer::str() const {
    return out_;
}

}  // namespace axds::cli
