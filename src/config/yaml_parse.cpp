// PyYAML safe_load semantics on top of the libyaml parser PyYAML's CSafeLoader uses: same tokeniser, plus the
// YAML 1.1 implicit resolver of spec §3.5.2 for plain scalars.
#include <axds/config/yaml_value.hpp>

#include <axds/error.hpp>

#include "config/yaml11_patterns.hpp"
#include "config/yaml_diagnostics.hpp"

#include <fmt/format.h>

#include <yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace axds {

namespace {

std::string without_underscores(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        if (c != '_') {
            out.push_back(c);
        }
    }
    return out;
}

/// An unsigned integer of any size in base 10^9 limbs (least significant first): enough arithmetic to turn a YAML
/// integer beyond 64 bits, in any of YAML 1.1's bases, into the decimal text Python would print for it.
class big_decimal {
public:
    void multiply_add(std::uint32_t factor, std::uint32_t addend) {
        std::uint64_t carry = addend;
        for (auto& limb : limbs_) {
            const std::uint64_t value = std::uint64_t{limb} * factor + carry;
            limb = static_cast<std::uint32_t>(value % base);
            carry = value / base;
        }
        while (carry != 0) {
            limbs_.push_back(static_cast<std::uint32_t>(carry % base));
            carry /= base;
        }
    }

    void add_decimal_digits(std::string_view digits) {
        for (const char c : digits) {
            multiply_add(10, static_cast<std::uint32_t>(c - '0'));
        }
    }

    [[nodiscard]] std::size_t digit_count() const noexcept { return limbs_.size() * 9; }

    [[nodiscard]] std::string text() const {
        if (limbs_.empty()) {
            return "0";
        }
        std::string out = std::to_string(limbs_.back());
        for (std::size_t i = limbs_.size() - 1; i-- > 0;) {
            out += fmt::format("{:09d}", limbs_[i]);
        }
        return out;
    }

private:
    static constexpr std::uint64_t base = 1'000'000'000;
    std::vector<std::uint32_t> limbs_;
};

/// The decimal text of a YAML 1.1 integer (sign already removed, underscores too) that does not fit 64 bits; refuses
/// one with more than yaml_max_integer_digits digits (Python cannot read such a document either).
std::string big_integer_text(std::string_view raw, std::string_view text) {
    const auto too_long = [&] {
        throw overflow_error(
            fmt::format("the integer '{}' has more than {} decimal digits, the most Python converts "
                        "(sys.get_int_max_str_digits())",
                        detail::yaml_excerpt(raw), yaml_max_integer_digits));
    };
    big_decimal value;
    const auto digits_in = [&](std::string_view digits, std::uint32_t base) {
        // Each digit of base b adds at most log10(b) < 1.21 decimal digits (b = 16): refuse before the quadratic work.
        if (static_cast<double>(digits.size()) * std::log10(static_cast<double>(base)) >
            static_cast<double>(yaml_max_integer_digits) + 1) {
            too_long();
        }
        for (const char c : digits) {
            value.multiply_add(base,
                               static_cast<std::uint32_t>(c >= '0' && c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10));
        }
    };
    std::string decimal;
    if (text.starts_with("0b")) {
        digits_in(text.substr(2), 2);
    } else if (text.starts_with("0x")) {
        digits_in(text.substr(2), 16);
    } else if (text[0] == '0') {
        digits_in(text.substr(1), 8);
    } else if (text.find(':') != std::string_view::npos) {  // sexagesimal: only the first part may be large
        const auto colon = text.find(':');
        digits_in(text.substr(0, colon), 10);
        std::size_t start = colon + 1;
        while (start <= text.size()) {
            const auto next = text.find(':', start);
            std::uint32_t part = 0;
            for (const char c : text.substr(start, next - start)) {
                part = part * 10 + static_cast<std::uint32_t>(c - '0');
            }
            value.multiply_add(60, part);
            if (next == std::string_view::npos) {
                break;
            }
            start = next + 1;
        }
    } else {  // decimal: the text itself, without leading zeros (there are none: '0…' is octal)
        if (text.size() > yaml_max_integer_digits) {
            too_long();
        }
        return std::string(text);
    }
    decimal = value.text();
    if (decimal.size() > yaml_max_integer_digits) {
        too_long();
    }
    return decimal;
}

/// Parses a YAML 1.1 int (PyYAML construct_yaml_int). Returns nullopt-equivalent via `ok`.
bool parse_int(std::string_view raw, yaml_value& out) {
    if (!detail::yaml11_is_int(raw)) {
        return false;
    }
    std::string text = without_underscores(raw);
    bool negative = false;
    if (!text.empty() && (text[0] == '-' || text[0] == '+')) {
        negative = text[0] == '-';
        text.erase(0, 1);
    }
    std::uint64_t magnitude = 0;

    struct beyond_64_bits {};

    const auto overflow = [] {
        throw beyond_64_bits{};
    };
    const auto accumulate = [&](std::string_view digits, std::uint64_t base) {
        for (const char c : digits) {
            const auto d = static_cast<std::uint64_t>(c >= '0' && c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
            if (__builtin_mul_overflow(magnitude, base, &magnitude) ||
                __builtin_add_overflow(magnitude, d, &magnitude)) {
                overflow();
            }
        }
    };
    try {
        if (text == "0") {
            magnitude = 0;
        } else if (text.starts_with("0b")) {
            accumulate(std::string_view(text).substr(2), 2);
        } else if (text.starts_with("0x")) {
            accumulate(std::string_view(text).substr(2), 16);
        } else if (text[0] == '0') {
            accumulate(std::string_view(text).substr(1), 8);
        } else if (text.find(':') != std::string::npos) {  // sexagesimal: 1:30 == 90
            std::size_t start = 0;
            std::uint64_t total = 0;
            while (start <= text.size()) {
                const auto colon = text.find(':', start);
                magnitude = 0;
                accumulate(std::string_view(text).substr(start, colon - start), 10);
                if (__builtin_mul_overflow(total, 60U, &total) || __builtin_add_overflow(total, magnitude, &total)) {
                    overflow();
                }
                if (colon == std::string::npos) {
                    break;
                }
                start = colon + 1;
            }
            magnitude = total;
        } else {
            accumulate(text, 10);
        }
        if (negative) {
            constexpr auto limit = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) + 1;
            if (magnitude > limit) {
                overflow();
            }
            out = yaml_value(magnitude == limit ? std::numeric_limits<std::int64_t>::min()
                                                : -static_cast<std::int64_t>(magnitude));
        } else {
            out = yaml_value(static_cast<std::uint64_t>(magnitude));
        }
    } catch (const beyond_64_bits&) {
        // Python's int is unbounded: keep the exact value (as decimal text, as Python prints it).
        const std::string decimal = big_integer_text(raw, text);
        out = yaml_value::from_integer_text(negative ? "-" + decimal : decimal);
    }
    return true;
}

/// Python's float() of unsigned decimal text ("123", "1.5", "1.0e+400", "0.5e-9"): from_chars, except that a value
/// beyond double range is an infinity or a zero as Python gives it (from_chars leaves its output untouched then).
double decimal_to_double(std::string_view text) {
    double value = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    (void)ptr;
    if (ec != std::errc::result_out_of_range) {
        return value;
    }
    // Out of range: the decimal exponent of the first significant digit tells overflow (> 0) from underflow.
    const auto e_at = text.find_first_of("eE");
    const std::string_view mantissa = text.substr(0, e_at);
    std::int64_t exponent = 0;
    if (e_at != std::string_view::npos) {
        std::string_view digits = text.substr(e_at + 1);
        const bool negative = !digits.empty() && digits.front() == '-';
        if (!digits.empty() && (digits.front() == '-' || digits.front() == '+')) {
            digits.remove_prefix(1);
        }
        for (const char c : digits) {
            exponent = std::min<std::int64_t>(exponent * 10 + (c - '0'), std::int64_t{1} << 40);
        }
        exponent = negative ? -exponent : exponent;
    }
    const auto dot = std::min(mantissa.find('.'), mantissa.size());
    const auto first = mantissa.find_first_of("123456789");
    if (first == std::string_view::npos) {
        return 0.0;
    }
    const auto position =
        first < dot ? static_cast<std::int64_t>(dot - first - 1) : -static_cast<std::int64_t>(first - dot);
    return position + exponent > 0 ? std::numeric_limits<double>::infinity() : 0.0;
}

bool parse_float(std::string_view raw, yaml_value& out) {
    if (!detail::yaml11_is_float(raw)) {
        return false;
    }
    std::string text = without_underscores(raw);
    double sign = 1.0;
    if (!text.empty() && (text[0] == '-' || text[0] == '+')) {
        sign = text[0] == '-' ? -1.0 : 1.0;
        text.erase(0, 1);
    }
    std::string lower = text;
    for (char& c : lower) {
        c = static_cast<char>(c | 0x20);
    }
    if (lower == ".inf") {
        out = yaml_value(sign * std::numeric_limits<double>::infinity());
        return true;
    }
    if (lower == ".nan") {
        out = yaml_value(std::numeric_limits<double>::quiet_NaN());
        return true;
    }
    if (text.find(':') != std::string::npos) {  // sexagesimal float: 1:30.5 == 90.5
        double total = 0;
        std::size_t start = 0;
        while (true) {
            const auto colon = text.find(':', start);
            total = total * 60 + decimal_to_double(std::string_view(text).substr(start, colon - start));
            if (colon == std::string::npos) {
                break;
            }
            start = colon + 1;
        }
        out = yaml_value(sign * total);
        return true;
    }
    out = yaml_value(sign * decimal_to_double(text));
    return true;
}

/// spec §3.5.2 resolver, constructing the value a safe load would produce. Timestamps stay strings.
yaml_value resolve_plain(std::string text) {
    if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") {
        return {};
    }
    static const std::map<std::string, bool, std::less<>> booleans = {
        {"yes", true},    {"Yes", true},    {"YES", true},    {"true", true}, {"True", true}, {"TRUE", true},
        {"on", true},     {"On", true},     {"ON", true},     {"no", false},  {"No", false},  {"NO", false},
        {"false", false}, {"False", false}, {"FALSE", false}, {"off", false}, {"Off", false}, {"OFF", false}};
    if (const auto it = booleans.find(text); it != booleans.end()) {
        return {it->second};
    }
    yaml_value out;
    if (parse_int(text, out) || parse_float(text, out)) {
        return out;
    }
    return {std::move(text)};
}

class parser {
public:
    parser(std::string_view text, std::string_view source)
        : source_(source),
          text_(text),
          size_(text.size()),
          budget_(std::max<std::uint64_t>(yaml_min_alias_node_budget, text.size())) {
        if (yaml_parser_initialize(&parser_) == 0) {
            throw std::bad_alloc();
        }
        // libyaml asserts on a null input pointer, which an empty string_view may carry.
        const char* bytes = text.data() != nullptr ? text.data() : "";
        yaml_parser_set_input_string(&parser_, reinterpret_cast<const unsigned char*>(bytes), text.size());
    }

    parser(const parser&) = delete;
    parser& operator=(const parser&) = delete;

    ~parser() { yaml_parser_delete(&parser_); }

    yaml_value document() {
        expect(YAML_STREAM_START_EVENT);
        event_holder first;
        next(first);
        if (first.event.type == YAML_STREAM_END_EVENT) {
            return {};  // empty stream: safe_load returns None
        }
        if (first.event.type != YAML_DOCUMENT_START_EVENT) {
            fail_at(first.event, "expected the start of a document");
        }
        event_holder start;
        next(start);
        if (start.event.type == YAML_DOCUMENT_END_EVENT) {
            expect_stream_end();
            return {};
        }
        yaml_value root = node(start);
        expect(YAML_DOCUMENT_END_EVENT);
        expect_stream_end();
        return root;
    }

private:
    struct event_holder {
        yaml_event_t event{};
        event_holder() = default;
        event_holder(const event_holder&) = delete;
        event_holder& operator=(const event_holder&) = delete;

        ~event_holder() { yaml_event_delete(&event); }
    };

    /// An anchored node, kept for its aliases, and its weight (see charge()).
    struct anchored {
        yaml_value value;
        std::uint64_t weight = 0;
        std::size_t height = 0;  ///< collection levels inside the node (0 for a scalar)
    };

    /// One step of the path from the root to the node being built: a mapping key or a sequence index.
    struct step {
        const yaml_value* key = nullptr;  ///< nullptr for a sequence item
        std::size_t index = 0;
    };

    void next(event_holder& holder) {
        if (yaml_parser_parse(&parser_, &holder.event) == 0) {
            const char* problem = parser_.problem != nullptr ? parser_.problem : "malformed YAML";
            if (parser_.error == YAML_READER_ERROR) {
                // The reader (bad UTF-8, a control character) sets no mark, only the byte offset: line and column
                // are counted here (they read "line 1, column 1" wherever the byte was).
                const std::size_t offset = std::min(parser_.problem_offset, text_.size());
                const std::string_view before = text_.substr(0, offset);
                const std::size_t line_start = before.rfind('\n');
                throw yaml_error(fmt::format(
                    "Unable to parse the YAML document {}: {} (byte {:#04x}) at line {}, column {} (byte offset {}).",
                    source_, problem, parser_.problem_value & 0xFF, std::count(before.begin(), before.end(), '\n') + 1,
                    offset - (line_start == std::string_view::npos ? 0 : line_start + 1) + 1, offset));
            }
            throw yaml_error(fmt::format("Unable to parse the YAML document {}: {} at line {}, column {}.", source_,
                                         problem, parser_.problem_mark.line + 1, parser_.problem_mark.column + 1));
        }
    }

    void expect(yaml_event_type_t type) {
        event_holder holder;
        next(holder);
        if (holder.event.type != type) {
            fail_at(holder.event, "unexpected content");
        }
    }

    /// One document per file, as PyYAML's safe_load requires: a second one (two files concatenated, text after `...`)
    /// would otherwise be dropped by the next rewrite of the file.
    void expect_stream_end() {
        event_holder holder;
        next(holder);
        if (holder.event.type != YAML_STREAM_END_EVENT) {
            fail_at(holder.event,
                    "expected a single document in the stream, but found another document (only the first would be "
                    "read, and the others lost when the file is written again)",
                    false);
        }
    }

    /// The field path of the node being built ("jobs.5a6ab48314d28f6b.started_at", "items[2]"), bounded.
    [[nodiscard]] std::string path() const {
        std::string out;
        for (const step& s : path_) {
            if (s.key != nullptr) {
                detail::yaml_path_append_key(out, *s.key);
            } else {
                detail::yaml_path_append_index(out, s.index);
            }
        }
        return detail::yaml_bounded_path(out);
    }

    /// "Unable to parse the YAML document <source>: <what>[ in the field '<path>'] at line L, column C."
    [[nodiscard]] std::string located(const yaml_event_t& event, std::string_view what, bool with_path = true) const {
        const std::string where = with_path && !path_.empty() ? fmt::format(" in the field '{}'", path()) : "";
        return fmt::format("Unable to parse the YAML document {}: {}{} at line {}, column {}.", source_, what, where,
                           event.start_mark.line + 1, event.start_mark.column + 1);
    }

    [[noreturn]] void fail_at(const yaml_event_t& event, std::string_view what, bool with_path = true) const {
        throw yaml_error(located(event, what, with_path));
    }

    /// Anchors and aliases copy subtrees: an alias inserts a copy of its anchor's node, and every anchor keeps a copy
    /// for its aliases. Each copy is charged its weight (one per node, plus one per 64 bytes of scalar text) against
    /// a budget of max(1,000,000, document bytes), so an alias bomb is refused before it is built.
    void charge(const yaml_event_t& event, std::uint64_t weight, std::string_view what) {
        if (weight > budget_ - copied_) {
            fail_at(event, fmt::format("{} would make the anchors and aliases copy more than {} nodes, the limit for "
                                       "this {}-byte document (an alias bomb?)",
                                       what, budget_, size_));
        }
        copied_ += weight;
    }

    void remember(const yaml_event_t& event, const yaml_char_t* anchor, const yaml_value& value, std::uint64_t weight) {
        if (anchor != nullptr) {
            const auto* name = reinterpret_cast<const char*>(anchor);
            charge(event, weight, fmt::format("keeping the anchor '&{}'", detail::yaml_excerpt(name)));
            anchors_[name] = anchored{value, weight, height_};
        }
    }

    void enter(const yaml_event_t& event) {
        if (++depth_ > yaml_max_nesting_depth) {
            fail_at(event,
                    fmt::format("the collections nest more than {} levels deep (the limit for any document)",
                                yaml_max_nesting_depth),
                    false);
        }
    }

    yaml_value node(const event_holder& holder) {
        const yaml_event_t& event = holder.event;
        const std::uint64_t built_before = built_;
        switch (event.type) {
            case YAML_ALIAS_EVENT: return alias_node(event);
            case YAML_SCALAR_EVENT: return scalar_node(event, built_before);
            case YAML_SEQUENCE_START_EVENT: return sequence_node(event, built_before);
            case YAML_MAPPING_START_EVENT: return mapping_node(event, built_before);
            default: fail_at(event, "unexpected content");
        }
    }

    /// A copy of the anchor's node, charged against the copy budget.
    yaml_value alias_node(const yaml_event_t& event) {
        const auto* name = reinterpret_cast<const char*>(event.data.alias.anchor);
        const auto it = anchors_.find(name);
        if (it == anchors_.end()) {
            fail_at(event, "found an undefined alias");
        }
        // The copy nests its anchor's levels inside the ones around the alias: the depth limit holds for the value
        // built, not only for the text (an anchor 500 deep used 500 deep would be 1000 levels).
        if (depth_ + it->second.height > yaml_max_nesting_depth) {
            fail_at(event,
                    fmt::format("the alias '*{}' puts its anchor's {} levels of collections inside {}: they nest more "
                                "than {} levels deep (the limit for any document)",
                                detail::yaml_excerpt(name), it->second.height, depth_, yaml_max_nesting_depth),
                    false);
        }
        charge(event, it->second.weight, fmt::format("expanding the alias '*{}'", detail::yaml_excerpt(name)));
        built_ += it->second.weight;
        height_ = it->second.height;
        return it->second.value;
    }

    yaml_value scalar_node(const yaml_event_t& event, std::uint64_t built_before) {
        const auto& scalar = event.data.scalar;
        std::string text(reinterpret_cast<const char*>(scalar.value), scalar.length);
        built_ += 1 + scalar.length / yaml_scalar_bytes_per_node;
        yaml_value value;
        const std::string tag = scalar.tag != nullptr ? reinterpret_cast<const char*>(scalar.tag) : "";
        try {
            if (tag.empty() || tag == "!") {
                value = scalar.plain_implicit != 0 && scalar.style == YAML_PLAIN_SCALAR_STYLE
                            ? resolve_plain(std::move(text))
                            : yaml_value(std::move(text));
            } else {
                value = tagged_scalar(event, tag, std::move(text));
            }
        } catch (const overflow_error& e) {
            throw overflow_error(located(event, e.what()));
        }
        height_ = 0;
        remember(event, scalar.anchor, value, built_ - built_before);
        return value;
    }

    yaml_value sequence_node(const yaml_event_t& event, std::uint64_t built_before) {
        enter(event);
        ++built_;
        yaml_value::sequence items;
        std::size_t inner = 0;
        path_.push_back({});
        while (true) {
            event_holder child;
            next(child);
            if (child.event.type == YAML_SEQUENCE_END_EVENT) {
                break;
            }
            path_.back().index = items.size();
            items.push_back(node(child));
            inner = std::max(inner, height_);
        }
        path_.pop_back();
        --depth_;
        height_ = inner + 1;
        yaml_value value(std::move(items));
        remember(event, event.data.sequence_start.anchor, value, built_ - built_before);
        return value;
    }

    yaml_value mapping_node(const yaml_event_t& event, std::uint64_t built_before) {
        enter(event);
        ++built_;
        // PyYAML's flatten_mapping: the entries of `<<` merge keys come first (for a list of mappings, the last
        // mapping's entries first, so earlier mappings win), then the mapping's own entries.
        std::vector<yaml_mapping_entry> merged;
        std::vector<yaml_mapping_entry> own;
        std::size_t inner = 0;
        while (true) {
            event_holder key_event;
            next(key_event);
            if (key_event.event.type == YAML_MAPPING_END_EVENT) {
                break;
            }
            yaml_value key = node(key_event);
            if (key.type() == yaml_value::kind::sequence || key.type() == yaml_value::kind::mapping) {
                fail_at(key_event.event, "found an unhashable key");
            }
            event_holder value_event;
            next(value_event);
            path_.push_back({&key, 0});
            yaml_value item = node(value_event);
            path_.pop_back();
            inner = std::max(inner, height_);
            if (is_merge_key(key_event.event)) {
                merge_into(merged, item, value_event.event);
            } else {
                own.push_back({std::move(key), std::move(item)});
            }
        }
        --depth_;
        height_ = inner + 1;
        yaml_value value(without_duplicates(merged, own));
        remember(event, event.data.mapping_start.anchor, value, built_ - built_before);
        return value;
    }

    /// The merged entries, then the own ones; a later duplicate key replaces the earlier entry's value in place, as
    /// a Python dict does. Keys are looked up in a hash index (a linear search made large documents quadratic):
    /// strings by their text, other scalars by kind and value, with the same equality as yaml_value's operator==.
    static yaml_value::mapping without_duplicates(std::vector<yaml_mapping_entry>& merged,
                                                  std::vector<yaml_mapping_entry>& own) {
        yaml_value::mapping entries;
        entries.reserve(merged.size() + own.size());
        std::unordered_map<std::string, std::size_t> string_keys;
        std::unordered_map<std::string, std::size_t> other_keys;
        for (auto* list : {&merged, &own}) {
            for (auto& [key, item] : *list) {
                auto& index = key.type() == yaml_value::kind::string ? string_keys : other_keys;
                const auto [at, inserted] = index.try_emplace(
                    key.type() == yaml_value::kind::string ? key.as_string() : scalar_identity(key), entries.size());
                if (!inserted) {
                    entries[at->second].value = std::move(item);
                } else {
                    entries.push_back({std::move(key), std::move(item)});
                }
            }
        }
        return entries;
    }

    /// A `<<` key as PyYAML's resolver reads it: plain and untagged, or tagged !!merge.
    static bool is_merge_key(const yaml_event_t& event) {
        if (event.type != YAML_SCALAR_EVENT) {
            return false;
        }
        const auto& scalar = event.data.scalar;
        const std::string_view text(reinterpret_cast<const char*>(scalar.value), scalar.length);
        if (scalar.tag != nullptr) {
            return std::string_view(reinterpret_cast<const char*>(scalar.tag)) == "tag:yaml.org,2002:merge";
        }
        return text == "<<" && scalar.plain_implicit != 0 && scalar.style == YAML_PLAIN_SCALAR_STYLE;
    }

    /// Appends what a `<<` value merges (PyYAML flatten_mapping): a mapping's entries, or for a list of mappings each
    /// one's entries, last mapping first.
    void merge_into(std::vector<yaml_mapping_entry>& merged, const yaml_value& value, const yaml_event_t& event) {
        if (value.type() == yaml_value::kind::mapping) {
            const auto& entries = value.as_mapping();
            merged.insert(merged.end(), entries.begin(), entries.end());
            return;
        }
        if (value.type() != yaml_value::kind::sequence) {
            fail_at(event, fmt::format("expected a mapping or list of mappings for merging, but found a {}",
                                       value.python_type_name()));
        }
        const auto& items = value.as_sequence();
        for (auto it = items.rbegin(); it != items.rend(); ++it) {
            if (it->type() != yaml_value::kind::mapping) {
                fail_at(event, fmt::format("expected a mapping for merging, but found a {}", it->python_type_name()));
            }
            merged.insert(merged.end(), it->as_mapping().begin(), it->as_mapping().end());
        }
    }

    /// A non-string scalar key's identity: equal exactly when yaml_value's operator== says so (all NaNs are one
    /// key, 0.0 and -0.0 are one key, 1 and 1.0 are two).
    static std::string scalar_identity(const yaml_value& key) {
        switch (key.type()) {
            case yaml_value::kind::null: return "n";
            case yaml_value::kind::boolean: return key.as_bool() ? "b1" : "b0";
            case yaml_value::kind::integer: return "i" + std::to_string(key.as_int64());
            case yaml_value::kind::unsigned_integer: return "u" + std::to_string(key.as_uint64());
            case yaml_value::kind::big_integer: return "B" + key.integer_text();
            case yaml_value::kind::floating: {
                const double d = key.as_double();
                if (std::isnan(d)) {
                    return "fnan";
                }
                return "f" + fmt::format("{}", d == 0.0 ? 0.0 : d);
            }
            default: return "?";
        }
    }

    yaml_value tagged_scalar(const yaml_event_t& event, const std::string& tag, std::string text) {
        constexpr std::string_view prefix = "tag:yaml.org,2002:";
        const std::string_view name =
            std::string_view(tag).starts_with(prefix) ? std::string_view(tag).substr(prefix.size()) : "";
        yaml_value out;
        if (name == "str") {
            return {std::move(text)};
        }
        if (name == "null") {
            return {};
        }
        if (name == "merge") {  // the `<<` key spelled with its tag: the mapping merges its value
            return {std::move(text)};
        }
        if (name == "bool") {
            const yaml_value v = resolve_plain(text);
            if (v.type() == yaml_value::kind::boolean) {
                return v;
            }
        } else if (name == "int") {
            if (parse_int(text, out)) {
                return out;
            }
        } else if (name == "float") {
            if (parse_float(text, out)) {
                return yaml_value(out.as_double());
            }
            // PyYAML's construct_yaml_float: float() of the text, so a decimal integer of any size is a float.
            const std::string plain = without_underscores(text);
            const std::string_view digits =
                !plain.empty() && (plain[0] == '-' || plain[0] == '+') ? std::string_view(plain).substr(1) : plain;
            if (detail::yaml11_all_decimal(digits)) {
                return yaml_value((plain[0] == '-' ? -1.0 : 1.0) * decimal_to_double(digits));
            }
            if (parse_int(text, out)) {
                return yaml_value(out.as_double());
            }
        } else {
            fail_at(event,
                    fmt::format("could not determine a constructor for the tag '{}'", detail::yaml_excerpt(tag)));
        }
        fail_at(event, fmt::format("the value '{}' does not match its tag '{}'", detail::yaml_excerpt(text),
                                   detail::yaml_excerpt(tag)));
    }

    yaml_parser_t parser_{};
    std::string source_;
    std::string_view text_;  ///< the document (the caller's, alive while this parser is)
    std::size_t size_;
    std::uint64_t budget_;  ///< the limit on copied_: max(yaml_min_alias_node_budget, document bytes)
    std::map<std::string, anchored, std::less<>> anchors_;
    std::vector<step> path_;
    std::size_t depth_ = 0;
    std::size_t height_ = 0;    // collection levels inside the node node() returned last
    std::uint64_t built_ = 0;   ///< weight of every node built so far, literal or copied
    std::uint64_t copied_ = 0;  ///< weight of the copies made for anchors and aliases
};

}  // namespace

yaml_value parse_yaml(std::string_view text, std::string_view source_name) {
    parser p(text, source_name);
    return p.document();
}

}  // namespace axds
