// Processing tracker documents: the exact fast path and the general libyaml path must agree, and what we write for a
// registry must read back as that registry.

#include "fuzz_target.hpp"

#include "jobs/tracker_yaml.hpp"

#include <axds/config/yaml_value.hpp>

namespace axds::fuzz {
namespace {

const std::filesystem::path file = "fuzz_tracker.yaml";

outcome one_input(std::span<const std::uint8_t> input) {
    const std::string text(reinterpret_cast<const char*>(input.data()), input.size());
    return expect_clean(
        [&] {
            const job_registry jobs = detail::read_tracker_document(text, file);
            if (const auto fast = detail::parse_tracker_fast(text)) {
                const job_registry general = detail::decode_tracker_registry(parse_yaml(text, file.string()), file);
                if (*fast != general) {
                    throw fuzz_failure("the fast tracker parser and the libyaml path read this document differently");
                }
            }
            const std::string written = detail::emit_tracker_document(jobs, file);
            if (detail::read_tracker_document(written, "written tracker") != jobs) {
                throw fuzz_failure("a registry written by emit_tracker_document reads back differently");
            }
        },
        file.string());
}

const registration tracker{{
    .name = "tracker",
    .about = "processing tracker documents: fast path vs libyaml path, write/read round trip",
    .one_input = one_input,
    .dictionary = {"jobs:\n",
                   "  ",
                   "    ",
                   "status: ",
                   "SCHEDULED",
                   "RUNNING",
                   "SUCCEEDED",
                   "FAILED",
                   "executor_id: ",
                   "job_name: ",
                   "specifier: ",
                   "started_at: ",
                   "completed_at: ",
                   "error_message: ",
                   "null",
                   "''",
                   "'",
                   "\"",
                   ": ",
                   "\n",
                   "-",
                   "{}",
                   "[]",
                   "0",
                   "-5",
                   "18446744073709551616",
                   "1.5",
                   "!!int ",
                   "&a ",
                   "*a",
                   "\xc3\xa9",
                   "\xff"},
    .max_length = 4096,
}};

}  // namespace
}  // namespace axds::fuzz
