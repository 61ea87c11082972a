#pragma once
// The processing tracker's YAML document (spec §4.4), private to src/: the general libyaml path and an exact fast
// path for the common case (every string "simple"), byte-identical to what PyYAML's CDumper writes.

#include <axds/config/yaml_value.hpp>
#include <axds/jobs/processing_tracker.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace axds::detail {

/// The `{jobs: {...}}` tree of a registry (general path).
[[nodiscard]] yaml_value encode_tracker_registry(const job_registry& jobs);
/// The registry of a parsed tracker document; errors name `file` (general path).
[[nodiscard]] job_registry decode_tracker_registry(const yaml_value& document, const std::filesystem::path& file);

/// The document text without libyaml when every key and string is simple (letters, digits, `_ . - : /`, no
/// leading indicator); nullopt otherwise.
/// With `starts`: where each job's block begins, then where the blocks end (jobs.size() + 1 offsets; none for an
/// empty registry).
[[nodiscard]] std::optional<std::string> emit_tracker_fast(const job_registry& jobs,
                                                           std::vector<std::size_t>* starts = nullptr);
/// Appends one job's block as emit_tracker_fast writes it; false (with `out` partly appended) when the fast layout
/// does not apply.
[[nodiscard]] bool append_tracker_job(std::string& out, const std::string& id, const job_state& job);
/// Re-emits job `index`'s block in place in `text` (emit_tracker_fast's output for a registry that differed from
/// `jobs` at most in that job, block offsets `starts`) and updates `starts`: only the text after the block moves, no
/// copy of the document. False, with `text` and `starts` untouched, when the fast layout does not apply.
[[nodiscard]] bool patch_tracker_job(std::string& text, std::vector<std::size_t>& starts, const job_registry& jobs,
                                     std::size_t index);
/// Parses a document laid out exactly as emit_tracker_fast (and PyYAML) writes it; nullopt for anything else.
[[nodiscard]] std::optional<job_registry> parse_tracker_fast(std::string_view text);

/// Fast path when it applies, else the general one; errors (a string that is not UTF-8) name `file` and the field.
[[nodiscard]] std::string emit_tracker_document(const job_registry& jobs, const std::filesystem::path& file);
[[nodiscard]] job_registry read_tracker_document(const std::string& text, const std::filesystem::path& file);

}  // namespace axds::detail
