#include <axds/npy/npy_format.hpp>

#include <axds/error.hpp>

#include "detail/printable.hpp"
#include "npy/npy_fast.hpp"
#include "sys/endian.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cstring>

namespace axds {

namespace {

constexpr std::size_t growth_axis_max_digits = 21;  // numpy.lib.format.GROWTH_AXIS_MAX_DIGITS
constexpr std::size_t array_align = 64;             // numpy.lib.format.ARRAY_ALIGN

std::string shape_repr(std::span<const std::uint64_t> shape) {
    if (shape.empty()) {
        return "()";
    }
    if (shape.size() == 1) {
        return fmt::format("({},)", shape[0]);
    }
    std::string out = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        out += (i == 0 ? "" : ", ") + std::to_string(shape[i]);
    }
    return out + ")";
}

[[noreturn]] void header_error(std::string_view source, std::size_t offset, std::string_view problem) {
    throw value_error(
        fmt::format("Unable to read the .npy data of {}: {} (at byte offset {}).", source, problem, offset));
}

/// A tiny parser for the Python dict literal numpy writes.
class dict_parser {
public:
    dict_parser(std::string_view text, std::size_t base, std::string_view source)
        : text_(text), base_(base), source_(source) {}

    npy_header parse() {
        npy_header out;
        bool seen_descr = false;
        bool seen_order = false;
        bool seen_shape = false;
        skip_space();
        expect('{');
        while (true) {
            skip_space();
            if (peek() == '}') {
                ++pos_;
                break;
            }
            const std::string key = string_literal();
            skip_space();
            expect(':');
            skip_space();
            if (key == "descr") {
                if (peek() != '\'' && peek() != '"') {
                    fail("the 'descr' field is not a simple dtype string (structured dtypes are not supported)");
                }
                out.descr = string_literal();
                seen_descr = true;
            } else if (key == "fortran_order") {
                if (text_.substr(pos_).starts_with("True")) {
                    out.fortran_order = true;
                    pos_ += 4;
                } else if (text_.substr(pos_).starts_with("False")) {
                    pos_ += 5;
                } else {
                    fail("the 'fortran_order' field must be True or False");
                }
                seen_order = true;
            } else if (key == "shape") {
                out.shape = tuple();
                seen_shape = true;
            } else {
                fail(fmt::format("unexpected key '{}' in the header dictionary", detail::printable(key)));
            }
            skip_space();
            if (peek() == ',') {
                ++pos_;
                continue;
            }
            skip_space();
            expect('}');
            break;
        }
        if (!seen_descr || !seen_order || !seen_shape) {
            fail("the header dictionary must hold the keys 'descr', 'fortran_order' and 'shape'");
        }
        // numpy evaluates the header as a Python literal: only padding may follow the dictionary.
        while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n')) {
            ++pos_;
        }
        if (pos_ != text_.size()) {
            fail("unexpected text after the header dictionary");
        }
        return out;
    }

private:
    [[noreturn]] void fail(std::string_view problem) const { header_error(source_, base_ + pos_, problem); }

    [[nodiscard]] char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }

    void skip_space() {
        while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t')) {
            ++pos_;
        }
    }

    void expect(char c) {
        if (peek() != c) {
            fail(fmt::format("expected '{}' in the header dictionary", c));
        }
        ++pos_;
    }

    std::string string_literal() {
        const char quote = peek();
        if (quote != '\'' && quote != '"') {
            fail("expected a quoted string in the header dictionary");
        }
        const auto end = text_.find(quote, pos_ + 1);
        if (end == std::string_view::npos) {
            fail("unterminated string in the header dictionary");
        }
        std::string out(text_.substr(pos_ + 1, end - pos_ - 1));
        pos_ = end + 1;
        return out;
    }

    std::vector<std::uint64_t> tuple() {
        expect('(');
        std::vector<std::uint64_t> out;
        bool comma = false;  // after the last item: "(5)" is the int 5 in Python, not a tuple
        std::uint64_t elements = 1;
        bool overflow = false;
        while (true) {
            skip_space();
            if (peek() == ')') {
                if (out.size() == 1 && !comma) {
                    fail("the 'shape' field must be a tuple: a single dimension needs a trailing comma, as in (5,)");
                }
                if (overflow) {
                    fail("the 'shape' field holds more elements than fit in 64 bits");
                }
                ++pos_;
                return out;
            }
            if (out.size() == npy_max_dimensions) {
                fail(fmt::format("the 'shape' field has more than {} dimensions, the most numpy supports",
                                 npy_max_dimensions));
            }
            if (peek() == '0' && pos_ + 1 < text_.size() && text_[pos_ + 1] >= '0' && text_[pos_ + 1] <= '9') {
                fail("the 'shape' field holds an integer with a leading zero, which Python does not read");
            }
            std::uint64_t value = 0;
            const char* begin = text_.data() + pos_;
            const char* end = text_.data() + text_.size();
            auto [ptr, ec] = std::from_chars(begin, end, value);
            if (ec != std::errc() || ptr == begin) {
                fail("the 'shape' field must be a tuple of non-negative integers");
            }
            pos_ += static_cast<std::size_t>(ptr - begin);
            if (peek() == 'L') {  // Python 2 long suffix, still accepted by numpy
                ++pos_;
            }
            out.push_back(value);
            overflow = __builtin_mul_overflow(elements, value, &elements) || overflow;
            skip_space();
            comma = peek() == ',';
            if (comma) {
                ++pos_;
            } else if (peek() != ')') {
                fail("the 'shape' field must be a tuple of non-negative integers");
            }
        }
    }

    std::string_view text_;
    std::size_t base_;
    std::string_view source_;
    std::size_t pos_ = 0;
};

}  // namespace

std::uint64_t npy_header::element_count() const noexcept {
    std::uint64_t count = 1;
    for (const auto dim : shape) {
        if (__builtin_mul_overflow(count, dim, &count)) {
            return ~std::uint64_t{0};  // only for a header built by hand: parse_npy_header refuses such shapes
        }
    }
    return count;
}

std::size_t npy_header::item_size() const noexcept {
    if (descr.size() < 3) {
        return 0;
    }
    std::size_t size = 0;
    const auto [ptr, ec] = std::from_chars(descr.data() + 2, descr.data() + descr.size(), size);
    if (ec != std::errc() || ptr != descr.data() + descr.size()) {
        return 0;
    }
    return descr[1] == 'U' ? size * 4 : size;  // '<U3': three UCS-4 characters, 12 bytes
}

std::string encode_npy_header(std::string_view descr, bool fortran_order, std::span<const std::uint64_t> shape) {
    std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': {}, 'shape': {}, }}", descr,
                                   fortran_order ? "True" : "False", shape_repr(shape));
    if (!shape.empty()) {
        const auto growth_dim = fortran_order ? shape.back() : shape.front();
        const std::size_t digits = std::to_string(growth_dim).size();
        if (digits < growth_axis_max_digits) {
            dict.append(growth_axis_max_digits - digits, ' ');
        }
    }
    // Format 1.0 (uint16 length) when the header fits, else 2.0 (uint32 length), as numpy's _wrap_header chooses.
    const auto padded_length = [&](std::size_t prefix) {
        const std::size_t unpadded = prefix + dict.size() + 1;
        return dict.size() + (array_align - (unpadded % array_align)) + 1;
    };
    const bool wide = padded_length(npy_magic.size() + 2 + 2) > 0xFFFF;
    const std::size_t prefix = npy_magic.size() + 2 + (wide ? 4 : 2);  // magic, version, length
    const std::size_t unpadded = prefix + dict.size() + 1;
    const std::size_t padding = array_align - (unpadded % array_align);
    dict.append(padding, ' ');
    dict.push_back('\n');
    const std::size_t length = dict.size();
    std::string out(npy_magic);
    out.push_back(wide ? '\x02' : '\x01');
    out.push_back('\x00');
    if (wide) {
        sys::append_le32(out, static_cast<std::uint32_t>(length));
    } else {
        sys::append_le16(out, static_cast<std::uint16_t>(length));
    }
    return out + dict;
}

std::string encode_npy_u1_header(std::uint64_t length) {
    const std::uint64_t shape[1] = {length};
    return encode_npy_header("|u1", false, shape);
}

npy_header parse_npy_header(std::span<const std::uint8_t> bytes, std::string_view source) {
    if (bytes.size() < 10) {
        header_error(source, bytes.size(), "the data is too short to hold a .npy header");
    }
    if (std::memcmp(bytes.data(), npy_magic.data(), npy_magic.size()) != 0) {
        header_error(source, 0, "the data does not start with the .npy magic string");
    }
    npy_header out;
    out.major_version = bytes[6];
    out.minor_version = bytes[7];
    std::size_t length = 0;
    std::size_t prefix = 0;
    if (out.major_version == 1) {
        length = sys::load_le16(bytes.data() + 8);
        prefix = 10;
    } else if (out.major_version == 2 || out.major_version == 3) {
        if (bytes.size() < 12) {
            header_error(source, bytes.size(), "the data is too short to hold a .npy header");
        }
        length = sys::load_le32(bytes.data() + 8);
        prefix = 12;
    } else {
        header_error(source, 6,
                     fmt::format("unsupported .npy format version {}.{}", out.major_version, out.minor_version));
    }
    if (length > bytes.size() - prefix) {
        header_error(
            source, 8,
            fmt::format("the header length {} runs past the end of the data ({} bytes)", length, bytes.size()));
    }
    const std::string_view text(reinterpret_cast<const char*>(bytes.data() + prefix), length);
    dict_parser parser(text, prefix, source);
    npy_header parsed = parser.parse();
    parsed.major_version = out.major_version;
    parsed.minor_version = out.minor_version;
    parsed.data_offset = prefix + length;
    return parsed;
}

namespace detail {

std::size_t npy_canonical_u1_offset(std::span<const std::uint8_t> bytes) noexcept {
    // The explicit length matters: the prefix holds NUL bytes, where a plain literal's string_view would end.
    static constexpr char prefix_bytes[] =
        "\x93NUMPY\x01\x00\x76\x00{'descr': '|u1', 'fortran_order': False, 'shape': (";
    static constexpr std::string_view prefix(prefix_bytes, sizeof prefix_bytes - 1);
    constexpr std::size_t data_offset = 128;
    if (bytes.size() < data_offset || std::memcmp(bytes.data(), prefix.data(), prefix.size()) != 0 ||
        bytes[data_offset - 1] != '\n') {
        return 0;
    }
    std::size_t pos = prefix.size();
    std::uint64_t length = 0;
    const std::size_t digits_start = pos;
    while (pos < data_offset && bytes[pos] >= '0' && bytes[pos] <= '9') {
        length = length * 10 + (bytes[pos] - '0');
        ++pos;
    }
    // No digits, more than fit 64 bits, or a leading zero (Python refuses "(03,)"; the generic parser says so).
    if (pos == digits_start || pos - digits_start > 19 || (bytes[digits_start] == '0' && pos - digits_start > 1) ||
        pos + 5 > data_offset || std::memcmp(bytes.data() + pos, ",), }", 5) != 0) {
        return 0;
    }
    for (pos += 5; pos < data_offset - 1; ++pos) {
        if (bytes[pos] != ' ') {
            return 0;
        }
    }
    return length == bytes.size() - data_offset ? data_offset : 0;
}

}  // namespace detail

std::span<const std::uint8_t> npy_u1_payload(std::span<const std::uint8_t> bytes, std::string_view source) {
    if (const std::size_t offset = detail::npy_canonical_u1_offset(bytes); offset != 0) {
        return bytes.subspan(offset);
    }
    const npy_header header = parse_npy_header(bytes, source);
    if (header.descr != "|u1" && header.descr != "<u1" && header.descr != ">u1" && header.descr != "u1") {
        header_error(
            source, 0,
            fmt::format("expected a uint8 array ('|u1'), but the dtype is '{}'", detail::printable(header.descr)));
    }
    if (header.shape.size() != 1) {
        header_error(source, 0,
                     fmt::format("expected a 1-D array, but the shape has {} dimensions", header.shape.size()));
    }
    const std::size_t available = bytes.size() - header.data_offset;
    if (header.shape[0] != available) {
        header_error(source, header.data_offset,
                     fmt::format("the header declares {} bytes of data, but {} follow it", header.shape[0], available));
    }
    return bytes.subspan(header.data_offset);
}

}  // namespace axds
