#include "jobs/tracker_yaml.hpp"

#include <axds/config/yaml_value.hpp>
#include <catch2/catch.hpp>

#include <cctype>
#include <random>
#include <string>

using axds::job_registry;
using axds::job_state;
using axds::processing_status;

namespace {

/// The fast path's contract: empty, or starting with a letter, digit or '_' and not ending with ':'.
bool fast_path_text(const std::string& text) {
    if (text.empty()) {
        return true;
    }
    const char first = text.front();
    return (std::isalnum(static_cast<unsigned char>(first)) != 0 || first == '_') && text.back() != ':';
}

std::string random_text_once(std::mt19937& rng, bool simple_only);

std::string random_text(std::mt19937& rng, bool simple_only) {
    for (;;) {
        std::string text = random_text_once(rng, simple_only);
        if (!simple_only || fast_path_text(text)) {
            return text;
        }
    }
}

std::string random_text_once(std::mt19937& rng, bool simple_only) {
    static const std::vector<std::string> tricky{"",     "0",   "00",  "08",   "12:30", "1.5",  "1e3",   "null",
                                                 "yes",  "no",  "on",  "true", "~",     "0x1f", "0b101", ".inf",
                                                 "a:b",  "a:",  "-x",  "_x",   "x.y",   "x/y",  "pid:1", "2024-01-01",
                                                 ".nan", "NaN", "1_0", "+1",   "e",     "E5",   "0o7",   "1:2:3"};
    static const std::vector<std::string> complex{"has space", "it's", "line1\nline2", "café", "#x",
                                                  "a: b",      "[x]",  "x ",           "@x",   "\"q\"",
                                                  "tab\there", "*x",   "!x",           "%x",   "---x"};
    const int pick = static_cast<int>(rng() % 10);
    if (pick < 3) {
        return tricky[rng() % tricky.size()];
    }
    if (pick == 3 && !simple_only) {
        return complex[rng() % complex.size()];
    }
    static const std::string alphabet = "abcdefXYZ0123456789_.-:/";
    std::string text;
    const std::size_t length = 1 + rng() % 12;
    for (std::size_t i = 0; i < length; ++i) {
        text += alphabet[rng() % alphabet.size()];
    }
    return text;
}

job_registry random_registry(std::mt19937& rng, bool simple_only) {
    job_registry jobs;
    const std::size_t count = rng() % 6;
    for (std::size_t i = 0; i < count; ++i) {
        job_state job;
        job.job_name = random_text(rng, simple_only);
        job.specifier = random_text(rng, simple_only);
        job.status = static_cast<processing_status>(rng() % 4);
        if (rng() % 2 != 0) {
            job.executor_id = random_text(rng, simple_only);
        }
        if (rng() % 3 == 0) {
            job.error_message = random_text(rng, simple_only);
        }
        if (rng() % 2 != 0) {
            job.started_at = rng() % 3 == 0 ? 0 : 1'795'730'294'535'469ULL + rng();
        }
        if (rng() % 2 != 0) {
            job.completed_at = rng() % 5 == 0 ? UINT64_MAX : 1'795'730'294'600'000ULL + rng();
        }
        std::string id = rng() % 4 == 0 ? std::to_string(rng()) : random_text(rng, simple_only);
        if (id.empty()) {
            id.push_back('x');  // not `id = "x"`: GCC 12 -Wrestrict false positive
        }
        bool duplicate = false;
        for (const auto& [existing, state] : jobs) {
            duplicate = duplicate || existing == id;
        }
        if (!duplicate) {
            jobs.emplace_back(id, std::move(job));
        }
    }
    return jobs;
}

}  // namespace

TEST_CASE("the tracker's fast YAML path writes and reads exactly what libyaml/PyYAML do", "[jobs]") {
    std::mt19937 rng(20261127);
    std::size_t fast_emits = 0;
    std::size_t fast_parses = 0;
    for (int round = 0; round < 3000; ++round) {
        const bool simple_only = round % 2 == 0;
        const job_registry jobs = random_registry(rng, simple_only);
        const std::string general = axds::emit_yaml(axds::detail::encode_tracker_registry(jobs));
        INFO(general);
        // The general path round-trips.
        REQUIRE(axds::detail::decode_tracker_registry(axds::parse_yaml(general), "<test>") == jobs);
        const auto fast = axds::detail::emit_tracker_fast(jobs);
        if (fast) {
            ++fast_emits;
            REQUIRE(*fast == general);  // byte-identical
        }
        const auto parsed = axds::detail::parse_tracker_fast(general);
        if (parsed) {
            ++fast_parses;
            REQUIRE(*parsed == jobs);
        }
        if (simple_only) {
            CHECK(fast.has_value());  // every simple registry takes the fast path both ways
            CHECK(parsed.has_value());
        }
    }
    CHECK(fast_emits > 1500);
    CHECK(fast_parses > 1500);
    // Layouts the fast parser does not know fall back (nullopt), never misread.
    CHECK_FALSE(axds::detail::parse_tracker_fast("jobs: {}\n").has_value());
    CHECK_FALSE(axds::detail::parse_tracker_fast("---\njobs:\n  a:\n    job_name: x\n...\n").has_value());
    CHECK_FALSE(
        axds::detail::parse_tracker_fast("---\njobs:\n  a:\n    job_name: x\n    specifier: ''\n    status: 9\n"
                                         "    executor_id: null\n    error_message: null\n    started_at: null\n"
                                         "    completed_at: null\n...\n")
            .has_value());
}
