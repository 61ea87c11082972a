#include "jobs/tracker_yaml.hpp"

#include <axds/config/yaml_config.hpp>
#include <axds/error.hpp>

#include "config/yaml_diagnostics.hpp"
#include "config/yaml_files.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <set>
#include <unordered_set>
#include <vector>

namespace fs = std::filesystem;

namespace axds::detail {

namespace {

yaml_value optional_text(const std::optional<std::string>& text) {
    return text ? yaml_value(*text) : yaml_value(nullptr);
}

yaml_value optional_time(const std::optional<std::uint64_t>& time) {
    return time ? yaml_value(*time) : yaml_value(nullptr);
}

}  // namespace

yaml_value encode_tracker_registry(const job_registry& jobs) {
    yaml_value::mapping entries;
    entries.reserve(jobs.size());
    for (const auto& [id, job] : jobs) {
        yaml_value::mapping fields;
        fields.push_back({"job_name", job.job_name});
        fields.push_back({"specifier", job.specifier});
        fields.push_back({"status", static_cast<int>(job.status)});
        fields.push_back({"executor_id", optional_text(job.executor_id)});
        fields.push_back({"error_message", optional_text(job.error_message)});
        fields.push_back({"started_at", optional_time(job.started_at)});
        fields.push_back({"completed_at", optional_time(job.completed_at)});
        entries.push_back({id, std::move(fields)});
    }
    yaml_value::mapping document;
    document.push_back({"jobs", std::move(entries)});
    return document;
}

namespace {

/// A scalar's text as the job fields keep it (a number or a boolean where a string belongs becomes its YAML text).
std::string scalar_text(const yaml_value& value) {
    switch (value.type()) {
        case yaml_value::kind::string: return value.as_string();
        case yaml_value::kind::null: return "null";
        case yaml_value::kind::boolean: return value.as_bool() ? "true" : "false";
        case yaml_value::kind::integer: return std::to_string(value.as_int64());
        case yaml_value::kind::unsigned_integer: return std::to_string(value.as_uint64());
        case yaml_value::kind::big_integer: return value.integer_text();
        case yaml_value::kind::floating: return yaml_float_text(value.as_double());
        default: return {};  // collections are refused before
    }
}

/// A value as an error message shows it: "-5 (int)", "'RUNNING' (str)", "a list", bounded.
std::string shown(const yaml_value& value) {
    switch (value.type()) {
        case yaml_value::kind::sequence: return "a list";
        case yaml_value::kind::mapping: return "a dict";
        case yaml_value::kind::string: return fmt::format("'{}' (str)", yaml_excerpt(value.as_string()));
        default: return fmt::format("{} ({})", yaml_excerpt(scalar_text(value)), value.python_type_name());
    }
}

/// Decodes one job's fields; every problem names the file and the field ("jobs.<id>.started_at").
class job_decoder {
public:
    job_decoder(const fs::path& file, const yaml_value& key) : file_(file), job_path_("jobs") {
        yaml_path_append_key(job_path_, key);
    }

    [[noreturn]] void fail(std::string_view field, std::string_view problem) const {
        throw value_error(fmt::format("Unable to load the processing tracker file '{}': the field '{}' {}.",
                                      file_.string(), field.empty() ? job_path_ : job_path_ + "." + std::string(field),
                                      problem));
    }

    [[nodiscard]] const std::string& job_path() const noexcept { return job_path_; }

    /// A text field: absent or null gives nullopt; a scalar its text; a collection is refused.
    [[nodiscard]] std::optional<std::string> text(const yaml_value& job, std::string_view field) const {
        const yaml_value* node = job.find(field);
        if (node == nullptr || node->is_null()) {
            return std::nullopt;
        }
        if (node->type() == yaml_value::kind::sequence || node->type() == yaml_value::kind::mapping) {
            fail(field, fmt::format("must hold a string, but it holds {}", shown(*node)));
        }
        return scalar_text(*node);
    }

    [[nodiscard]] processing_status status(const yaml_value& job) const {
        const yaml_value* node = job.find("status");
        if (node == nullptr || node->is_null()) {
            return processing_status::scheduled;
        }
        if (node->type() != yaml_value::kind::integer || node->as_int64() < 0 || node->as_int64() > 3) {
            fail("status",
                 fmt::format("holds {}, which is not a valid ProcessingStatus (an integer 0-3)", shown(*node)));
        }
        return static_cast<processing_status>(node->as_int64());
    }

    /// A time field: null or a non-negative integer (UTC microseconds).
    [[nodiscard]] std::optional<std::uint64_t> time(const yaml_value& job, std::string_view field) const {
        const yaml_value* node = job.find(field);
        if (node == nullptr || node->is_null()) {
            return std::nullopt;
        }
        if (node->type() == yaml_value::kind::unsigned_integer ||
            (node->type() == yaml_value::kind::integer && node->as_int64() >= 0)) {
            return node->as_uint64();
        }
        fail(field,
             fmt::format("must hold a UTC time in microseconds (a non-negative integer) or null, but it holds {}",
                         shown(*node)));
    }

private:
    const fs::path& file_;
    std::string job_path_;
};

}  // namespace

job_registry decode_tracker_registry(const yaml_value& document, const fs::path& file) {
    if (document.type() != yaml_value::kind::mapping) {
        throw value_error(fmt::format(
            "Unable to load the processing tracker file '{}': it must hold a mapping with a 'jobs' entry, but it "
            "holds a {}.",
            file.string(), document.python_type_name()));
    }
    job_registry jobs;
    const yaml_value* root = document.find("jobs");
    if (root == nullptr || root->is_null()) {
        return jobs;
    }
    if (root->type() != yaml_value::kind::mapping) {
        throw value_error(fmt::format(
            "Unable to load the processing tracker file '{}': its 'jobs' entry must be a mapping of job IDs to job "
            "states, but it is a {}.",
            file.string(), root->python_type_name()));
    }
    std::unordered_set<std::string> seen;
    for (const auto& [key, value] : root->as_mapping()) {
        const job_decoder decode(file, key);
        if (value.type() != yaml_value::kind::mapping) {
            decode.fail("", fmt::format("must be a mapping of job fields, but it is a {}", value.python_type_name()));
        }
        job_state job;
        auto name = decode.text(value, "job_name");
        if (!name) {
            throw missing_value_error(
                fmt::format("Unable to load the processing tracker file '{}': the job '{}' has no 'job_name' field "
                            "('{}.job_name'), which every job state requires.",
                            file.string(), yaml_excerpt(scalar_text(key)), decode.job_path()));
        }
        job.job_name = std::move(*name);
        job.specifier = decode.text(value, "specifier").value_or("");
        job.status = decode.status(value);
        job.executor_id = decode.text(value, "executor_id");
        job.error_message = decode.text(value, "error_message");
        job.started_at = decode.time(value, "started_at");
        job.completed_at = decode.time(value, "completed_at");
        std::string id = scalar_text(key);
        // Keys of different YAML types can spell one ID (1 and '1'): two jobs would share it, and the next save would
        // silently keep only one of them.
        if (!seen.insert(id).second) {
            throw value_error(
                fmt::format("Unable to load the processing tracker file '{}': two jobs have the ID '{}' "
                            "(keys of different YAML types, such as 1 and '1'). Give each job a unique "
                            "ID.",
                            file.string(), yaml_excerpt(id)));
        }
        jobs.emplace_back(std::move(id), std::move(job));
    }
    return jobs;
}

namespace {

/// A string PyYAML writes plain (or, when YAML 1.1 would read it as another type, single-quoted) without any
/// escaping or folding: letters, digits and `_ . - : /`, starting with a letter, digit or '_', no trailing ':'.
bool simple_text(std::string_view text) {
    if (text.empty() || text.back() == ':') {
        return false;
    }
    const char first = text.front();
    if (!((first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z') || (first >= '0' && first <= '9') ||
          first == '_')) {
        return false;
    }
    // A table, not find_first_not_of (one memchr over the 67-character set per character: the profile's top entry).
    static constexpr auto allowed = [] {
        std::array<bool, 256> table{};
        for (const char c : std::string_view("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:/")) {
            table[static_cast<unsigned char>(c)] = true;
        }
        return table;
    }();
    return std::all_of(text.begin(), text.end(), [](char c) { return allowed[static_cast<unsigned char>(c)]; });
}

/// yaml11_plain_is_not_string for simple text, without its word list and matchers where they cannot match: every
/// YAML 1.1 bool, null, int, float, timestamp, merge or value scalar starts with a digit, a sign, '.', '~', '<', '='
/// or the first letter of a bool or null word (y n t f o, either case).
bool simple_plain_is_not_string(std::string_view text) {
    if (text.empty()) {
        return true;
    }
    constexpr std::string_view could_start = "0123456789+-.~<=yYnNtTfFoO";
    return could_start.find(text.front()) != std::string_view::npos && yaml11_plain_is_not_string(text);
}

/// Appends the scalar as PyYAML would; false when the fast path does not know how.
bool append_string(std::string& out, std::string_view text) {
    if (text.empty()) {
        out += "''";
        return true;
    }
    if (!simple_text(text)) {
        return false;
    }
    if (simple_plain_is_not_string(text)) {
        out += '\'';
        out += text;
        out += '\'';
    } else {
        out += text;
    }
    return true;
}

void append_number(std::string& out, std::optional<std::uint64_t> value) {
    if (value) {
        std::array<char, 20> digits{};
        const auto end = std::to_chars(digits.begin(), digits.end(), *value).ptr;
        out.append(digits.data(), end);
    } else {
        out += "null";
    }
}

bool append_optional(std::string& out, const std::optional<std::string>& text) {
    if (!text) {
        out += "null";
        return true;
    }
    return append_string(out, *text);
}

/// One scalar of the fast layout: `''`, `'simple'` or plain simple text that YAML reads as a string.
std::optional<std::string> string_value(std::string_view raw) {
    if (raw == "''") {
        return std::string();
    }
    if (raw.size() >= 2 && raw.front() == '\'' && raw.back() == '\'') {
        const std::string_view inner = raw.substr(1, raw.size() - 2);
        if (simple_text(inner)) {
            return std::string(inner);
        }
        return std::nullopt;
    }
    if (simple_text(raw) && !simple_plain_is_not_string(raw)) {
        return std::string(raw);
    }
    return std::nullopt;
}

std::optional<std::uint64_t> decimal_value(std::string_view raw) {
    if (raw.empty() || raw.size() > 20 || (raw.size() > 1 && raw[0] == '0')) {
        return std::nullopt;
    }
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(raw.data(), raw.data() + raw.size(), value);
    if (error != std::errc() || end != raw.data() + raw.size()) {
        return std::nullopt;
    }
    return value;
}

/// Consumes `expected` + value + '\n' from `text` at `at`; returns the value text.
std::optional<std::string_view> field(std::string_view text, std::size_t& at, std::string_view expected) {
    if (text.substr(at, expected.size()) != expected) {
        return std::nullopt;
    }
    const std::size_t start = at + expected.size();
    const std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) {
        return std::nullopt;
    }
    at = end + 1;
    return text.substr(start, end - start);
}

/// True when two jobs share an ID: one sort of views, no per-job allocation.
bool has_duplicate_id(const job_registry& jobs) {
    std::vector<std::string_view> ids;
    ids.reserve(jobs.size());
    for (const auto& entry : jobs) {
        ids.emplace_back(entry.first);
    }
    std::sort(ids.begin(), ids.end());
    return std::adjacent_find(ids.begin(), ids.end()) != ids.end();
}

}  // namespace

bool append_tracker_job(std::string& out, const std::string& id, const job_state& job) {
    out += "  ";
    if (id.empty() || !append_string(out, id)) {
        return false;
    }
    out += ":\n    job_name: ";
    if (!append_string(out, job.job_name)) {
        return false;
    }
    out += "\n    specifier: ";
    if (!append_string(out, job.specifier)) {
        return false;
    }
    out += "\n    status: ";
    out += static_cast<char>('0' + (static_cast<int>(job.status) & 3));  // 0-3
    out += "\n    executor_id: ";
    if (!append_optional(out, job.executor_id)) {
        return false;
    }
    out += "\n    error_message: ";
    if (!append_optional(out, job.error_message)) {
        return false;
    }
    out += "\n    started_at: ";
    append_number(out, job.started_at);
    out += "\n    completed_at: ";
    append_number(out, job.completed_at);
    out += '\n';
    return true;
}

std::optional<std::string> emit_tracker_fast(const job_registry& jobs, std::vector<std::size_t>* starts) {
    if (starts != nullptr) {
        starts->clear();
    }
    if (jobs.empty()) {
        return std::string("---\njobs: {}\n...\n");
    }
    std::string out = "---\njobs:\n";
    out.reserve(jobs.size() * 220);
    if (starts != nullptr) {
        starts->reserve(jobs.size() + 1);
    }
    for (const auto& [id, job] : jobs) {
        if (starts != nullptr) {
            starts->push_back(out.size());
        }
        if (!append_tracker_job(out, id, job)) {
            return std::nullopt;
        }
    }
    if (starts != nullptr) {
        starts->push_back(out.size());
    }
    out += "...\n";
    return out;
}

bool patch_tracker_job(std::string& text, std::vector<std::size_t>& starts, const job_registry& jobs,
                       std::size_t index) {
    if (index >= jobs.size() || starts.size() != jobs.size() + 1 || starts.back() > text.size()) {
        return false;
    }
    std::string block;
    block.reserve(starts[index + 1] - starts[index] + 64);
    if (!append_tracker_job(block, jobs[index].first, jobs[index].second)) {
        return false;
    }
    const std::size_t old_end = starts[index + 1];
    const std::size_t new_end = starts[index] + block.size();
    text.replace(starts[index], old_end - starts[index], block);  // moves only the text after the block
    for (std::size_t k = index + 1; k < starts.size(); ++k) {
        starts[k] = starts[k] - old_end + new_end;
    }
    return true;
}

std::optional<job_registry> parse_tracker_fast(std::string_view text) {
    if (text == "---\njobs: {}\n...\n") {
        return job_registry{};
    }
    constexpr std::string_view head = "---\njobs:\n";
    constexpr std::string_view tail = "...\n";
    if (!text.starts_with(head) || !text.ends_with(tail)) {
        return std::nullopt;
    }
    job_registry jobs;
    jobs.reserve(text.size() / 160);  // a job's block takes ~160-250 bytes
    std::size_t at = head.size();
    const std::size_t end = text.size() - tail.size();
    while (at < end) {
        if (text.substr(at, 2) != "  " || text[at + 2] == ' ') {
            return std::nullopt;
        }
        const std::size_t colon = text.find(":\n", at + 2);
        if (colon == std::string_view::npos) {
            return std::nullopt;
        }
        auto id = string_value(text.substr(at + 2, colon - at - 2));
        at = colon + 2;
        if (!id || id->empty()) {
            return std::nullopt;
        }
        const auto name = field(text, at, "    job_name: ");
        const auto spec = field(text, at, "    specifier: ");
        const auto status = field(text, at, "    status: ");
        const auto executor = field(text, at, "    executor_id: ");
        const auto error = field(text, at, "    error_message: ");
        const auto started = field(text, at, "    started_at: ");
        const auto completed = field(text, at, "    completed_at: ");
        if (!name || !spec || !status || !executor || !error || !started || !completed) {
            return std::nullopt;
        }
        job_state job;
        auto name_text = string_value(*name);
        auto spec_text = string_value(*spec);
        const auto code = decimal_value(*status);
        if (!name_text || !spec_text || !code || *code > 3) {
            return std::nullopt;
        }
        job.job_name = std::move(*name_text);
        job.specifier = std::move(*spec_text);
        job.status = static_cast<processing_status>(*code);
        for (const auto& [raw, target] :
             {std::pair{*executor, &job.executor_id}, std::pair{*error, &job.error_message}}) {
            if (raw != "null") {
                auto value = string_value(raw);
                if (!value) {
                    return std::nullopt;
                }
                *target = std::move(*value);
            }
        }
        for (const auto& [raw, target] :
             {std::pair{*started, &job.started_at}, std::pair{*completed, &job.completed_at}}) {
            if (raw != "null") {
                const auto value = decimal_value(raw);
                if (!value) {
                    return std::nullopt;
                }
                *target = *value;
            }
        }
        jobs.emplace_back(std::move(*id), std::move(job));
    }
    if (at != end || has_duplicate_id(jobs)) {
        return std::nullopt;  // the general path reports a repeated key
    }
    return jobs;
}

std::string emit_tracker_document(const job_registry& jobs, const fs::path& file) {
    if (auto fast = emit_tracker_fast(jobs)) {
        return std::move(*fast);
    }
    return emit_yaml_for_file(encode_tracker_registry(jobs), file);
}

job_registry read_tracker_document(const std::string& text, const fs::path& file) {
    if (auto fast = parse_tracker_fast(text)) {
        return std::move(*fast);
    }
    return decode_tracker_registry(parse_yaml(text, file.string()), file);
}

}  // namespace axds::detail
