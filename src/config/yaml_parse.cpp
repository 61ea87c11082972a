// PyYAML safe_load semantics on top of the libyaml parser PyYAML's CSafeLoader uses: same tokeniser, plus the
// YAML 1.1 implicit resolver of spec §3.5.2 for plain scalars.
#include <axds/config/yaml_value.hpp>

#include <axds/error.hpp>

#include "config/yaml11_patterns.hpp"

#include <fmt/format.h>

#include <yaml.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <unordered_map>

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
    const auto overflow = [&] {
        throw overflow_error(fmt::format("the integer '{}' does not fit in 64 bits", raw));
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
    return true;
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
            total = total * 60 + std::stod(text.substr(start, colon - start));
            if (colon == std::string::npos) {
                break;
            }
            start = colon + 1;
        }
        out = yaml_value(sign * total);
        return true;
    }
    double value = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() && ec != std::errc::result_out_of_range) {
        return false;
    }
    (void)ptr;
    out = yaml_value(sign * value);
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
    parser(std::string_view text, std::string_view source) : source_(source) {
        if (yaml_parser_initialize(&parser_) == 0) {
            throw std::bad_alloc();
        }
        yaml_parser_set_input_string(&parser_, reinterpret_cast<const unsigned char*>(text.data()), text.size());
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
            return {};
        }
        yaml_value root = node(start);
        expect(YAML_DOCUMENT_END_EVENT);
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

    void next(event_holder& holder) {
        if (yaml_parser_parse(&parser_, &holder.event) == 0) {
            throw yaml_error(fmt::format("Unable to parse the YAML document {}: {} at line {}, column {}.", source_,
                                         parser_.problem != nullptr ? parser_.problem : "malformed YAML",
                                         parser_.problem_mark.line + 1, parser_.problem_mark.column + 1));
        }
    }

    void expect(yaml_event_type_t type) {
        event_holder holder;
        next(holder);
        if (holder.event.type != type) {
            fail_at(holder.event, "unexpected content");
        }
    }

    [[noreturn]] void fail_at(const yaml_event_t& event, std::string_view what) const {
        throw yaml_error(fmt::format("Unable to parse the YAML document {}: {} at line {}, column {}.", source_, what,
                                     event.start_mark.line + 1, event.start_mark.column + 1));
    }

    void remember(const yaml_char_t* anchor, const yaml_value& value) {
        if (anchor != nullptr) {
            anchors_[reinterpret_cast<const char*>(anchor)] = value;
        }
    }

    yaml_value node(const event_holder& holder) {
        const yaml_event_t& event = holder.event;
        switch (event.type) {
            case YAML_ALIAS_EVENT: {
                const auto it = anchors_.find(reinterpret_cast<const char*>(event.data.alias.anchor));
                if (it == anchors_.end()) {
                    fail_at(event, "found an undefined alias");
                }
                return it->second;
            }
            case YAML_SCALAR_EVENT: {
                const auto& scalar = event.data.scalar;
                std::string text(reinterpret_cast<const char*>(scalar.value), scalar.length);
                yaml_value value;
                const std::string tag = scalar.tag != nullptr ? reinterpret_cast<const char*>(scalar.tag) : "";
                if (tag.empty() || tag == "!") {
                    value = scalar.plain_implicit != 0 && scalar.style == YAML_PLAIN_SCALAR_STYLE
                                ? resolve_plain(std::move(text))
                                : yaml_value(std::move(text));
                } else {
                    value = tagged_scalar(event, tag, std::move(text));
                }
                remember(scalar.anchor, value);
                return value;
            }
            case YAML_SEQUENCE_START_EVENT: {
                yaml_value::sequence items;
                while (true) {
                    event_holder child;
                    next(child);
                    if (child.event.type == YAML_SEQUENCE_END_EVENT) {
                        break;
                    }
                    items.push_back(node(child));
                }
                yaml_value value(std::move(items));
                remember(event.data.sequence_start.anchor, value);
                return value;
            }
            case YAML_MAPPING_START_EVENT: {
                yaml_value::mapping entries;
                std::unordered_map<std::string, std::size_t> string_keys;
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
                    yaml_value item = node(value_event);
                    // Later duplicates replace earlier ones, as a Python dict does. String keys (nearly all) are
                    // looked up in a hash index: a linear search made large documents quadratic.
                    if (key.type() == yaml_value::kind::string) {
                        const auto [at, inserted] = string_keys.try_emplace(key.as_string(), entries.size());
                        if (!inserted) {
                            entries[at->second].value = std::move(item);
                        } else {
                            entries.push_back({std::move(key), std::move(item)});
                        }
                        continue;
                    }
                    const auto same = std::find_if(entries.begin(), entries.end(),
                                                   [&](const yaml_mapping_entry& e) { return e.key == key; });
                    if (same != entries.end()) {
                        same->value = std::move(item);
                    } else {
                        entries.push_back({std::move(key), std::move(item)});
                    }
                }
                yaml_value value(std::move(entries));
                remember(event.data.mapping_start.anchor, value);
                return value;
            }
            default: fail_at(event, "unexpected content");
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
            if (parse_float(text, out) || parse_int(text, out)) {
                return yaml_value(out.as_double());
            }
        } else {
            fail_at(event, fmt::format("could not determine a constructor for the tag '{}'", tag));
        }
        fail_at(event, fmt::format("the value '{}' does not match its tag '{}'", text, tag));
    }

    yaml_parser_t parser_{};
    std::string source_;
    std::map<std::string, yaml_value, std::less<>> anchors_;
};

}  // namespace

yaml_value parse_yaml(std::string_view text, std::string_view source_name) {
    parser p(text, source_name);
    return p.document();
}

}  // namespace axds
