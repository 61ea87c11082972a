// axds tracker show|summary|reset|retry FILE: a processing tracker (the Python library's YAML job registry).

#include "cli/command.hpp"
#include "cli/json_writer.hpp"

#include <axds/config/yaml_value.hpp>
#include <axds/error.hpp>
#include <axds/jobs/processing_tracker.hpp>

#include <fmt/format.h>

#include <fstream>
#include <iterator>
#include <memory>

#include <sys/stat.h>

namespace axds::cli {

namespace {

namespace fs = std::filesystem;

struct tracker_settings {
    std::string file;
    bool create = false;  // reset, retry
    bool force = false;   // reset: even RUNNING jobs
    bool json = false;    // show, summary
};

/// The CLI never treats a file that is not a processing tracker as one: `reset`/`retry` would replace it with an
/// empty tracker (the Python library, ignoring unknown keys, would). A tracker is a regular file holding a YAML
/// mapping with a `jobs` entry, or an empty file. Without `create`, a path that require_existing found (it does not
/// follow a symbolic link) must also lead to a file: a dangling link (a tracker on a share not mounted yet) read as
/// an empty tracker, and reset/retry created its target.
void require_tracker_file(const fs::path& path, bool create) {
    if (!check_tracker_file(path, create, true)) {
        return;  // missing: --create makes it, require_existing refused it otherwise
    }
    const auto refuse = [&](std::string_view why) {
        throw axds::value_error(
            fmt::format("The file '{}' is not a processing tracker: {}. It was left untouched.", path.string(), why));
    };
    std::ifstream in(path, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
        return;
    }
    const axds::yaml_value document = axds::parse_yaml(text, path.string());
    if (document.type() != axds::yaml_value::kind::mapping || document.find("jobs") == nullptr) {
        refuse("it holds no 'jobs' entry");
    }
}

/// The tracker of `settings.file`, after the checks every tracker subcommand makes.
axds::processing_tracker open_tracker(const tracker_settings& settings) {
    if (!settings.create) {
        require_existing(settings.file, "processing tracker file", false);
    }
    require_tracker_file(settings.file, settings.create);
    // Checked before anything touches the disk: the tracker's lock file would otherwise be left beside a path that
    // could never be a tracker, and the library's message is the Python dataclass wording.
    if (const std::string suffix = fs::path(settings.file).extension().string();
        suffix != ".yaml" && suffix != ".yml") {
        throw axds::value_error(
            fmt::format("The processing tracker file '{}' must end in .yaml or .yml.", settings.file));
    }
    return axds::processing_tracker(settings.file);
}

}  // namespace

void tracker_counts_json(json_writer& json, const axds::tracker_summary& summary) {
    const auto& c = summary.summary;
    json.key("summary")
        .begin_object()
        .field("total", c.total)
        .field("succeeded", c.succeeded)
        .field("failed", c.failed)
        .field("running", c.running)
        .field("scheduled", c.scheduled)
        .end_object()
        .field("status", axds::tracker_status_value(summary.status));
}

std::string tracker_counts_line(const axds::tracker_summary& summary) {
    const auto& c = summary.summary;
    return fmt::format("{} jobs: {} succeeded, {} failed, {} running, {} scheduled; status {}", c.total, c.succeeded,
                       c.failed, c.running, c.scheduled, axds::tracker_status_value(summary.status));
}

namespace {

void print_tracker_json(const axds::tracker_summary& summary) {
    json_writer json;
    json.begin_object().key("jobs").begin_array();
    for (const auto& [id, job] : summary.jobs) {
        json.begin_object()
            .field("job_id", id)
            .field("job_name", job.job_name)
            .field("specifier", job.specifier)
            .field("status", axds::processing_status_name(job.status))
            .field("executor_id", job.executor_id)
            .field("started_at", job.started_at)
            .field("completed_at", job.completed_at)
            .field("error_message", job.error_message)
            .end_object();
    }
    json.end_array();
    tracker_counts_json(json, summary);
    json.end_object();
    fmt::print("{}\n", json.str());
}

void print_tracker(const axds::tracker_summary& summary) {
    for (const auto& [id, job] : summary.jobs) {
        // Job names, specifiers and messages come from the file (other programs write it): printed escaped.
        fmt::print("{}  {:<9}  {}{}{}{}\n", printable(id), axds::processing_status_name(job.status),
                   printable(job.job_name), job.specifier.empty() ? "" : " (" + printable(job.specifier) + ")",
                   job.executor_id ? " on " + printable(*job.executor_id) : "",
                   job.error_message ? ": " + printable(*job.error_message) : "");
    }
    fmt::print("{}\n", tracker_counts_line(summary));
}

/// show (every job and the summary) and summary (`with_jobs` false: the counts only).
int run_show(const tracker_settings& settings, bool with_jobs) {
    auto result = open_tracker(settings).summarize();
    if (!with_jobs) {
        result.jobs.clear();
    }
    if (settings.json) {
        print_tracker_json(result);
    } else {
        print_tracker(result);
    }
    return 0;
}

int run_reset(const tracker_settings& settings) {
    const std::size_t removed = open_tracker(settings).remove_all_jobs(settings.force);
    fmt::print("{} jobs removed\n", removed);
    return 0;
}

int run_retry(const tracker_settings& settings) {
    const auto ids = open_tracker(settings).retry_failed_jobs();
    fmt::print("{} failed jobs rescheduled\n", ids.size());
    return 0;
}

/// A tracker subcommand with its FILE, and --create or --json.
std::shared_ptr<tracker_settings> add_tracker_subcommand(CLI::App& tracker, CLI::App*& sub, const std::string& name,
                                                         const std::string& description, bool creates) {
    auto settings = std::make_shared<tracker_settings>();
    sub = tracker.add_subcommand(name, description);
    sub->add_option("FILE", settings->file, "Tracker YAML file")->required();
    if (creates) {
        sub->add_flag("--create", settings->create, "Create the tracker file (and its directory) if it does not exist");
    } else {
        add_json_flag(*sub, settings->json);
    }
    return settings;
}

}  // namespace

void add_tracker(CLI::App& app, command_list& commands) {
    auto* tracker = app.add_subcommand("tracker", "Inspect or reset a processing tracker");
    tracker->require_subcommand(1);
    CLI::App* sub = nullptr;
    auto show = add_tracker_subcommand(*tracker, sub, "show", "Every job and the summary", false);
    commands.push_back({sub, [show](const context&) {
                            return run_show(*show, true);
                        }});
    auto summary = add_tracker_subcommand(*tracker, sub, "summary", "Counts and status", false);
    commands.push_back({sub, [summary](const context&) {
                            return run_show(*summary, false);
                        }});
    auto reset =
        add_tracker_subcommand(*tracker, sub, "reset", "Remove every job (refused while one is RUNNING)", true);
    sub->add_flag("--force", reset->force,
                  "Remove RUNNING jobs too (their executors then fail to record their end: only for executors known "
                  "to be gone)");
    commands.push_back({sub, [reset](const context&) {
                            return run_reset(*reset);
                        }});
    auto retry = add_tracker_subcommand(*tracker, sub, "retry", "Reschedule failed jobs", true);
    commands.push_back({sub, [retry](const context&) {
                            return run_retry(*retry);
                        }});
}

}  // namespace axds::cli
