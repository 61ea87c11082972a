#pragma once
// The JSON the axds tool prints with --json: one small writer, so that every subcommand escapes the same way.

#include <concepts>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace axds::cli {

/// `text` as a JSON string literal, quotes included. `"` `\` and the control characters are escaped (`\n` `\t` `\r`
/// by name, the others as `\u00XX`); valid UTF-8 is kept as it is. Bytes that are not part of a valid UTF-8 sequence
/// (paths are bytes on Linux) become the lone surrogate `\udcXX`, Python's `surrogateescape`, so that
/// `os.fsencode(json.loads(out)[...])` gives back the exact bytes.
[[nodiscard]] std::string json_quote(std::string_view text);

/// Writes one JSON value (usually an object) into a string, in Python's `json.dumps` layout: `", "` between items
/// and `": "` after keys, all on one line. Inside an object every value follows a key(); misuse throws
/// std::logic_error.
///
///     json_writer json;
///     json.begin_object().field("files", 3).key("paths").paths(list).end_object();
///     fmt::print("{}\n", json.str());
class json_writer {
public:
    json_writer& begin_object();
    json_writer& end_object();
    json_writer& begin_array();
    json_writer& end_array();
    json_writer& key(std::string_view name);

    json_writer& value(std::string_view text);

    json_writer& value(const char* text) { return value(std::string_view(text)); }

    json_writer& value(const std::string& text) { return value(std::string_view(text)); }

    json_writer& value(const std::filesystem::path& path) { return value(std::string_view(path.native())); }

    json_writer& value(bool flag);

    json_writer& value(std::integral auto number) {
        return number < 0 ? signed_value(static_cast<std::int64_t>(number))
                          : unsigned_value(static_cast<std::uint64_t>(number));
    }

    /// The shortest text that reads back as the same double (4.0 is written 4); null for NaN and infinities.
    json_writer& value(double number);
    /// `number` with exactly `decimals` digits after the point (the "seconds" of a result); null if not finite.
    json_writer& fixed(double number, int decimals);
    json_writer& null();

    template <typename T>
    json_writer& value(const std::optional<T>& maybe) {
        return maybe ? value(*maybe) : null();
    }

    /// An array of paths.
    json_writer& paths(const std::vector<std::filesystem::path>& list);

    /// key(name).value(v)
    template <typename T>
    json_writer& field(std::string_view name, const T& v) {
        key(name);
        return value(v);
    }

    /// The text written so far; complete once every object and array is closed.
    [[nodiscard]] const std::string& str() const;

private:
    struct level {
        bool object = false;
        bool empty = true;
    };

    json_writer& scalar(std::string_view text);
    json_writer& signed_value(std::int64_t number);
    json_writer& unsigned_value(std::uint64_t number);
    void before_value();
    void open(char bracket, bool object);
    void close(char bracket, bool object);

    std::string out_;
    std::vector<level> levels_;
    bool key_pending_ = false;
    bool done_ = false;
};

}  // namespace axds::cli
