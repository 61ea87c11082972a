#include "jobs/tracker_yaml.hpp"

#include "support/temp_dir.hpp"

#include <axds/config/yaml_value.hpp>
#include <axds/error.hpp>
#include <axds/jobs/processing_tracker.hpp>
#include <catch2/catch.hpp>

#include <cctype>
#include <random>
#include <string>
#include <utility>
#include <vector>

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

TEST_CASE("tracker fields of the wrong type or range are reported with the file and the field path",
          "[jobs][hostile]") {
    const axds::test::temp_dir tmp;
    const std::filesystem::path file = tmp.path() / "tracker.yaml";
    const std::string head = "jobs:\n  5a6ab48314d28f6b:\n    job_name: job_a\n";
    const std::string job = "jobs.5a6ab48314d28f6b";
    const std::vector<std::pair<std::string, std::vector<std::string>>> cases{
        {head + "    started_at: 99999999999999999999999\n",
         {job + ".started_at", "99999999999999999999999 (int)", "non-negative integer"}},
        {head + "    status: -5\n", {job + ".status", "not a valid ProcessingStatus", "-5"}},
        {head + "    status: 7\n", {job + ".status", "not a valid ProcessingStatus"}},
        {head + "    status: 18446744073709551615\n", {job + ".status", "not a valid ProcessingStatus"}},
        {head + "    status: RUNNING\n", {job + ".status", "str"}},
        {head + "    status: 1.5\n", {job + ".status", "float"}},
        {head + "    started_at: -5\n", {job + ".started_at", "non-negative", "-5"}},
        {head + "    completed_at: soon\n", {job + ".completed_at", "str"}},
        {head + "    started_at: 1.5\n", {job + ".started_at", "float"}},
        {head + "    specifier: [a, b]\n", {job + ".specifier", "list"}},
        {head + "    executor_id: {a: 1}\n", {job + ".executor_id", "dict"}},
        {"jobs:\n  5a6ab48314d28f6b:\n    job_name: [x]\n", {job + ".job_name", "list"}},
        {"jobs:\n  5a6ab48314d28f6b:\n    specifier: x\n", {job + ".job_name", "no 'job_name' field"}},
        {"jobs:\n  5a6ab48314d28f6b: 3\n", {job, "must be a mapping"}},
        {"jobs: [1, 2]\n", {"'jobs'", "must be a mapping"}},
        // Found by the review of the fuzz harness: 1 and '1' are two YAML keys but one job ID; the next save kept one.
        {"jobs:\n  1:\n    job_name: a\n  '1':\n    job_name: b\n", {"two jobs have the ID '1'"}},
        {"- 1\n", {"must hold a mapping"}},
    };
    for (const auto& [content, fragments] : cases) {
        axds::test::write_file(file, content);
        INFO(content);
        try {
            (void)axds::processing_tracker(file).snapshot();
            FAIL("the tracker loaded");
        } catch (const std::exception& e) {
            const std::string what = e.what();
            INFO(what);
            CHECK_THAT(what, Catch::Matchers::Contains(file.string()));
            for (const auto& fragment : fragments) {
                CHECK_THAT(what, Catch::Matchers::Contains(fragment));
            }
        }
        CHECK(axds::test::read_file(file) == content);  // left untouched
    }
}

TEST_CASE("tracker errors quote at most a bounded excerpt of a hostile value", "[jobs][hostile]") {
    const axds::test::temp_dir tmp;
    const std::filesystem::path file = tmp.path() / "tracker.yaml";
    const std::string long_id(100'000, 'k');
    // An explicit key ("? "): an implicit one may not exceed 1024 characters.
    axds::test::write_file(file, "jobs:\n  ? " + long_id + "\n  : job_name: x\n    status: 9\n");
    try {
        (void)axds::processing_tracker(file).snapshot();
        FAIL("the tracker loaded");
    } catch (const axds::value_error& e) {
        const std::string what = e.what();
        CHECK_THAT(what, Catch::Matchers::Contains(file.string()) &&
                             Catch::Matchers::Contains("not a valid ProcessingStatus"));
        CHECK(what.size() < 1000);
    }
}

TEST_CASE("a string the tracker cannot write names the file and the field", "[jobs][hostile]") {
    const axds::test::temp_dir tmp;
    const std::filesystem::path file = tmp.path() / "tracker.yaml";
    axds::processing_tracker tracker(file);
    const auto ids = tracker.initialize_jobs({{"job", "x"}});
    try {
        tracker.fail_job(ids.at(0), std::string("bad \xFF byte"));
        FAIL("an invalid UTF-8 message was written");
    } catch (const axds::value_error& e) {
        const std::string what = e.what();
        CHECK_THAT(what, Catch::Matchers::Contains(file.string()) && Catch::Matchers::Contains("not valid UTF-8") &&
                             Catch::Matchers::Contains("jobs." + ids.at(0) + ".error_message"));
    }
    CHECK(tracker.get_job_status(ids.at(0)) == processing_status::scheduled);
}

// Issue 21: a transition re-emits only its job's block; the result must be the full emit, byte for byte.
TEST_CASE("patching one job's block of the tracker text gives exactly the full emit", "[jobs]") {
    std::mt19937 rng(20261201);
    int patched = 0;
    for (int round = 0; round < 500; ++round) {
        job_registry jobs = random_registry(rng, true);
        std::vector<std::size_t> starts;
        const auto text = axds::detail::emit_tracker_fast(jobs, &starts);
        REQUIRE(text.has_value());
        if (jobs.empty()) {
            CHECK(starts.empty());
            continue;
        }
        REQUIRE(starts.size() == jobs.size() + 1);
        const std::size_t index = rng() % jobs.size();
        job_state& job = jobs[index].second;
        job.status = static_cast<processing_status>(rng() % 4);
        job.executor_id = rng() % 2 == 0 ? std::optional<std::string>() : random_text(rng, true);
        job.error_message = rng() % 2 == 0 ? std::optional<std::string>() : random_text(rng, true);
        job.started_at = rng() % 2 == 0 ? std::optional<std::uint64_t>() : std::uint64_t{rng()} * 1000003U;
        job.completed_at = rng() % 3 == 0 ? std::optional<std::uint64_t>() : std::uint64_t{rng()};
        std::string patch = *text;
        const bool patched_in_place = axds::detail::patch_tracker_job(patch, starts, jobs, index);
        std::vector<std::size_t> expected_starts;
        const auto full = axds::detail::emit_tracker_fast(jobs, &expected_starts);
        REQUIRE(full.has_value());
        REQUIRE(patched_in_place);
        CHECK(patch == *full);
        CHECK(starts == expected_starts);
        ++patched;
    }
    CHECK(patched > 400);
    // A job the fast layout cannot write refuses the patch (the caller then emits in full).
    job_registry jobs{{"a", job_state{.job_name = "x"}}};
    std::vector<std::size_t> starts;
    const auto text = axds::detail::emit_tracker_fast(jobs, &starts);
    REQUIRE(text.has_value());
    jobs[0].second.error_message = "needs: quoting";
    std::string unpatched = *text;
    const std::vector<std::size_t> before = starts;
    CHECK_FALSE(axds::detail::patch_tracker_job(unpatched, starts, jobs, 0));
    CHECK_FALSE(axds::detail::patch_tracker_job(unpatched, starts, jobs, 1));  // no such job
    CHECK(unpatched == *text);  // a refused patch leaves the text and the offsets as they were
    CHECK(starts == before);
}
