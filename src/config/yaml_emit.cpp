// spec §3.4/§3.5: YAML documents byte-identical to PyYAML's CDumper. We drive the same libyaml emitter with the
// same events and options, so style choice, quoting, escaping and line folding are libyaml's own.
#include <axds/config/yaml_config.hpp>
#include <axds/config/yaml_value.hpp>

#include <axds/error.hpp>

#include "config/yaml_diagnostics.hpp"
#include "config/yaml_files.hpp"

#include <fmt/format.h>

#include <yaml.h>

#include <memory>
#include <string>
#include <vector>

namespace axds {

namespace {

constexpr const char* str_tag = "tag:yaml.org,2002:str";

/// Strict UTF-8 validation (libyaml would refuse the document with a less helpful message).
bool valid_utf8(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        const auto c = static_cast<unsigned char>(text[i]);
        std::size_t extra = 0;
        std::uint32_t code = 0;
        if (c < 0x80) {
            ++i;
            continue;
        }
        if ((c & 0xE0U) == 0xC0) {
            extra = 1;
            code = c & 0x1FU;
        } else if ((c & 0xF0U) == 0xE0) {
            extra = 2;
            code = c & 0x0FU;
        } else if ((c & 0xF8U) == 0xF0) {
            extra = 3;
            code = c & 0x07U;
        } else {
            return false;
        }
        if (i + extra >= text.size()) {
            return false;
        }
        for (std::size_t k = 1; k <= extra; ++k) {
            const auto next = static_cast<unsigned char>(text[i + k]);
            if ((next & 0xC0U) != 0x80) {
                return false;
            }
            code = (code << 6U) | (next & 0x3FU);
        }
        const bool overlong =
            (extra == 1 && code < 0x80) || (extra == 2 && code < 0x800) || (extra == 3 && code < 0x10000);
        if (overlong || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
            return false;
        }
        i += extra + 1;
    }
    return true;
}

class emitter {
public:
    /// `destination`: the file the document is for, named in errors (empty: none).
    explicit emitter(std::string destination) : destination_(std::move(destination)) {
        if (yaml_emitter_initialize(&emitter_) == 0) {
            throw std::bad_alloc();
        }
        yaml_emitter_set_output(&emitter_, &emitter::write_handler, &output_);
        yaml_emitter_set_canonical(&emitter_, 0);
        yaml_emitter_set_unicode(&emitter_, 0);  // allow_unicode=False: non-ASCII is escaped
        yaml_emitter_set_indent(&emitter_, 2);   // the library asks for 10; libyaml clamps to 2 (spec §3.4)
        yaml_emitter_set_width(&emitter_, 200);
        yaml_emitter_set_break(&emitter_, YAML_LN_BREAK);
    }

    emitter(const emitter&) = delete;
    emitter& operator=(const emitter&) = delete;

    ~emitter() { yaml_emitter_delete(&emitter_); }

    std::string document(const yaml_value& root) {
        yaml_event_t event;
        yaml_stream_start_event_initialize(&event, YAML_UTF8_ENCODING);
        emit(event);
        yaml_document_start_event_initialize(&event, nullptr, nullptr, nullptr, 0);  // explicit "---"
        emit(event);
        node(root, false);
        yaml_document_end_event_initialize(&event, 0);  // explicit "..."
        emit(event);
        yaml_stream_end_event_initialize(&event);
        emit(event);
        if (yaml_emitter_flush(&emitter_) == 0) {
            fail();
        }
        return std::move(output_);
    }

private:
    static int write_handler(void* data, unsigned char* buffer, size_t size) {
        static_cast<std::string*>(data)->append(reinterpret_cast<const char*>(buffer), size);
        return 1;
    }

    [[noreturn]] void fail() const { fail(emitter_.problem != nullptr ? emitter_.problem : "unknown libyaml error"); }

    /// "Unable to emit the YAML document[ for <file>]: <problem>[ (in the field '<path>')]."
    [[noreturn]] void fail(std::string_view problem) const {
        std::string path;
        for (const step& s : path_) {
            if (s.key != nullptr) {
                detail::yaml_path_append_key(path, *s.key);
            } else {
                detail::yaml_path_append_index(path, s.index);
            }
        }
        throw value_error(fmt::format("Unable to emit the YAML document{}: {}{}.",
                                      destination_.empty() ? "" : " for " + destination_, problem,
                                      path.empty() ? "" : " (in the field '" + detail::yaml_bounded_path(path) + "')"));
    }

    void emit(yaml_event_t& event) {
        if (yaml_emitter_emit(&emitter_, &event) == 0) {
            fail();
        }
    }

    void scalar(const std::string& text, bool is_string) {
        yaml_event_t event;
        // PyYAML: implicit = (plain text resolves to the node's tag, quoted text resolves to str).
        const int plain_implicit = is_string ? (yaml11_plain_is_not_string(text) ? 0 : 1) : 1;
        const int quoted_implicit = is_string ? 1 : 0;
        auto* tag = is_string ? reinterpret_cast<yaml_char_t*>(const_cast<char*>(str_tag)) : nullptr;
        if (yaml_scalar_event_initialize(
                &event, nullptr, tag, reinterpret_cast<yaml_char_t*>(const_cast<char*>(text.data())),
                static_cast<int>(text.size()), plain_implicit, quoted_implicit, YAML_ANY_SCALAR_STYLE) == 0) {
            throw std::bad_alloc();
        }
        emit(event);
    }

    void node(const yaml_value& value, bool is_key) {
        using kind = yaml_value::kind;
        yaml_event_t event;
        switch (value.type()) {
            case kind::null: scalar("null", false); return;
            case kind::boolean: scalar(value.as_bool() ? "true" : "false", false); return;
            case kind::integer: scalar(std::to_string(value.as_int64()), false); return;
            case kind::unsigned_integer: scalar(std::to_string(value.as_uint64()), false); return;
            case kind::big_integer: scalar(value.integer_text(), false); return;
            case kind::floating: scalar(yaml_float_text(value.as_double()), false); return;
            case kind::string:
                if (!valid_utf8(value.as_string())) {
                    fail(fmt::format("the string '{}' is not valid UTF-8 text",
                                     detail::yaml_excerpt(value.as_string())));
                }
                scalar(value.as_string(), true);
                return;
            case kind::sequence:
                if (is_key) {
                    fail("a mapping key must be a scalar, not a list");
                }
                yaml_sequence_start_event_initialize(&event, nullptr, nullptr, 1, YAML_BLOCK_SEQUENCE_STYLE);
                emit(event);
                path_.push_back({});
                for (const auto& item : value.as_sequence()) {
                    node(item, false);
                    ++path_.back().index;
                }
                path_.pop_back();
                yaml_sequence_end_event_initialize(&event);
                emit(event);
                return;
            case kind::mapping:
                if (is_key) {
                    fail("a mapping key must be a scalar, not a dict");
                }
                yaml_mapping_start_event_initialize(&event, nullptr, nullptr, 1, YAML_BLOCK_MAPPING_STYLE);
                emit(event);
                for (const auto& entry : value.as_mapping()) {
                    node(entry.key, true);
                    path_.push_back({&entry.key, 0});
                    node(entry.value, false);
                    path_.pop_back();
                }
                yaml_mapping_end_event_initialize(&event);
                emit(event);
                return;
        }
    }

    /// One step of the path from the root to the node being written: a mapping key or a sequence index.
    struct step {
        const yaml_value* key = nullptr;  ///< nullptr for a sequence item
        std::size_t index = 0;
    };

    yaml_emitter_t emitter_{};
    std::string output_;
    std::string destination_;
    std::vector<step> path_;
};

}  // namespace

std::string emit_yaml(const yaml_value& value) {
    emitter e{std::string()};
    return e.document(value);
}

namespace detail {

std::string emit_yaml_for_file(const yaml_value& document, const std::filesystem::path& file) {
    emitter e(file.string());
    return e.document(document);
}

}  // namespace detail

}  // namespace axds
