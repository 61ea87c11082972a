#include <axds/jobs/processing_tracker.hpp>

#include <axds/config/yaml_config.hpp>
#include <axds/config/yaml_value.hpp>
#include <axds/core/clock.hpp>
#include <axds/core/console.hpp>
#include <axds/error.hpp>
#include <axds/fs/walk.hpp>

#include "config/yaml_files.hpp"
#include "detail/cpu_work.hpp"
#include "jobs/tracker_yaml.hpp"
#include "sys/atomic_file.hpp"
#include "sys/error.hpp"
#include "sys/io.hpp"
#include "sys/unique_fd.hpp"

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <set>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace axds {

namespace {

constexpr std::array<std::string_view, 4> status_names{"SCHEDULED", "RUNNING", "SUCCEEDED", "FAILED"};

/// An exclusive BSD flock on the lock file, held while the object lives (spec §4.2). The lock file stays on disk.
class file_lock {
public:
    /// Opens (creating it and its parent directories) the lock file; does not lock yet.
    explicit file_lock(const fs::path& lock_path) : path_(lock_path) {
        fd_.reset(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644));
        if (!fd_ && errno == ENOENT && lock_path.has_parent_path()) {  // parents only when missing
            std::error_code ec;
            fs::create_directories(lock_path.parent_path(), ec);
            fd_.reset(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644));
        }
        if (!fd_) {
            const int error = errno;
            throw_errno(error, fmt::format("Unable to open the lock file '{}': {}.", lock_path.string(),
                                           sys::errno_message(error)));
        }
    }

    file_lock(const file_lock&) = delete;
    file_lock& operator=(const file_lock&) = delete;

    ~file_lock() {
        if (locked_) {
            ::flock(fd_.get(), LOCK_UN);
        }
    }

    /// One non-blocking attempt.
    bool try_lock() {
        if (sys::retry_eintr([this] { return ::flock(fd_.get(), LOCK_EX | LOCK_NB); }) == 0) {
            locked_ = true;
            return true;
        }
        if (errno == EWOULDBLOCK) {
            return false;
        }
        const int error = errno;
        throw_errno(error, fmt::format("Unable to lock '{}': {}.", path_.string(), sys::errno_message(error)));
    }

    /// The Python library's message (filelock's Timeout), then what it means.
    [[noreturn]] void throw_timeout(std::chrono::milliseconds waited) const {
        throw timeout_error(fmt::format(
            "The file lock '{}' could not be acquired. Another process held it for the whole {:.1f} s this one "
            "waited (the tracker's lock_timeout): a worker still writing the tracker, or one stopped while it held "
            "the lock (a lock of a process that ended is released by the system).",
            path_.string(), static_cast<double>(waited.count()) / 1000.0));
    }

private:
    fs::path path_;
    sys::unique_fd fd_;
    bool locked_ = false;
};

/// Poll delays while the lock is busy: 1 ms doubling to 8 ms. (Python's filelock polls every 50 ms; a shorter cap
/// keeps a busy tracker fair to C++ waiters, and flock has no blocking form with a timeout.)
std::chrono::milliseconds next_delay(std::chrono::milliseconds delay) {
    return std::min(delay * 2, std::chrono::milliseconds(8));
}

std::string joined(const std::vector<std::string>& items) {
    return fmt::format("{}", fmt::join(items, ", "));
}

std::vector<std::string> ids_of(const job_registry& jobs) {
    std::vector<std::string> ids;
    ids.reserve(jobs.size());
    for (const auto& [id, state] : jobs) {
        ids.push_back(id);
    }
    return ids;
}

job_registry::iterator find_job(job_registry& jobs, std::string_view id) {
    return std::find_if(jobs.begin(), jobs.end(), [id](const auto& entry) { return entry.first == id; });
}

job_state& require_job(job_registry& jobs, std::string_view id, std::string_view action, const fs::path& file) {
    const auto it = find_job(jobs, id);
    if (it == jobs.end()) {
        throw value_error(fmt::format(
            "The job with ID '{}' cannot be {} using the processing tracker at '{}', as this tracker instance is not "
            "configured to track it. Currently tracked job IDs: {}.",
            id, action, file.string(), joined(ids_of(jobs))));
    }
    return it->second;
}

void clear_progress(job_state& job) {
    job.status = processing_status::scheduled;
    job.executor_id.reset();
    job.error_message.reset();
    job.started_at.reset();
    job.completed_at.reset();
}

job_counts count_jobs(const job_registry& jobs) {
    job_counts counts;
    counts.total = jobs.size();
    for (const auto& [id, job] : jobs) {
        switch (job.status) {
            case processing_status::scheduled: ++counts.scheduled; break;
            case processing_status::running: ++counts.running; break;
            case processing_status::succeeded: ++counts.succeeded; break;
            case processing_status::failed: ++counts.failed; break;
        }
    }
    return counts;
}

/// summarize()'s result for these jobs.
tracker_summary summary_of(job_registry jobs) {
    tracker_summary result;
    result.summary = count_jobs(jobs);
    result.status = processing_tracker::resolve_status(result.summary);
    result.jobs = std::move(jobs);
    return result;
}

std::vector<std::string> ids_with_status(const job_registry& jobs, processing_status status) {
    std::vector<std::string> ids;
    for (const auto& [id, job] : jobs) {
        if (job.status == status) {
            ids.push_back(id);
        }
    }
    return ids;
}

std::string render_job(const job_key& job) {
    return job.second.empty() ? job.first : fmt::format("{} ({})", job.first, job.second);
}

}  // namespace

std::string_view processing_status_name(processing_status status) noexcept {
    return status_names[static_cast<std::size_t>(status) & 3U];
}

processing_status parse_processing_status(std::string_view name) {
    for (std::size_t i = 0; i < status_names.size(); ++i) {
        if (status_names[i] == name) {
            return static_cast<processing_status>(i);
        }
    }
    throw key_error(fmt::format("'{}' is not a ProcessingStatus member name (expected one of {}).", name,
                                fmt::join(status_names, ", ")));
}

std::string_view tracker_status_value(tracker_status status) noexcept {
    switch (status) {
        case tracker_status::not_started: return "not_started";
        case tracker_status::in_progress: return "in_progress";
        case tracker_status::processing: return "processing";
        case tracker_status::completed: return "completed";
        case tracker_status::failed: return "failed";
    }
    return "in_progress";
}

namespace {

/// A tracker reached through a symbolic link is the link's target: every writer then replaces the same file and
/// locks the same lock file (a link and its target were two trackers, each job run once per name).
/// A link whose target does not exist yet (a tracker to be created) leads there too: followed link by link, since
/// weakly_canonical stops at a dangling link and the first write would replace the link with a file of its own.
fs::path resolve_tracker_link(fs::path path) {
    std::error_code ec;
    if (!fs::is_symlink(fs::symlink_status(path, ec))) {
        return path;
    }
    fs::path at = path;
    for (int hops = 0; hops < 40 && fs::is_symlink(fs::symlink_status(at, ec)); ++hops) {  // 40: Linux's own limit
        const fs::path target = fs::read_symlink(at, ec);
        if (ec) {
            return path;
        }
        at = target.is_absolute() ? target : at.parent_path() / target;
    }
    fs::path resolved = fs::weakly_canonical(at, ec);
    return ec ? path : resolved;
}

}  // namespace

processing_tracker::processing_tracker(fs::path file_path, tracker_options options)
    : file_path_(resolve_tracker_link(std::move(file_path))), options_(options) {
    lock_path_ = file_path_;
    lock_path_ += ".lock";
}

std::string processing_tracker::generate_job_id(std::string_view job_name, std::string_view specifier) {
    if (job_name.find(':') != std::string_view::npos || specifier.find(':') != std::string_view::npos) {
        throw value_error(fmt::format(
            "Unable to generate the identifier for the job '{}' with the specifier '{}'. The job name and the "
            "specifier must not contain the ':' character, as it joins them inside the hashed identifier string.",
            job_name, specifier));
    }
    const std::string text = specifier.empty() ? std::string(job_name) : fmt::format("{}:{}", job_name, specifier);
    return fmt::format("{:016x}", XXH64(text.data(), text.size(), 0));
}

std::vector<processing_tracker> processing_tracker::discover(const fs::path& root_directory,
                                                             std::string_view tracker_name) {
    std::vector<processing_tracker> trackers;
    for (auto& path : discover_marker_files(root_directory, tracker_name)) {
        trackers.emplace_back(std::move(path));
    }
    return trackers;
}

tracker_status processing_tracker::resolve_status(const job_counts& c) noexcept {
    if (c.failed > 0) {
        return tracker_status::failed;
    }
    if (c.total > 0 && c.succeeded == c.total) {
        return tracker_status::completed;
    }
    if (c.running > 0) {
        return tracker_status::processing;
    }
    if (c.total > 0 && c.scheduled == c.total) {
        return tracker_status::not_started;
    }
    return tracker_status::in_progress;
}

std::string processing_tracker::resolve_executor_id() {
    struct source {
        const char* scheme;
        std::vector<const char*> variables;
        const char* required = nullptr;
    };

    const std::array<source, 8> sources{{
        {"slurm", {"SLURM_JOB_ID", "SLURM_JOBID"}},
        {"pbs", {"PBS_JOBID"}},
        {"lsf", {"LSB_JOBID"}},
        {"oar", {"OAR_JOB_ID"}},
        {"sge", {"JOB_ID"}, "SGE_ROOT"},
        {"hpcpack", {"CCP_JOBID"}},
        {"azurebatch", {"AZ_BATCH_JOB_ID"}},
        {"awsbatch", {"AWS_BATCH_JOB_ID"}},
    }};
    for (const auto& s : sources) {
        if (s.required != nullptr && std::getenv(s.required) == nullptr) {  // NOLINT(concurrency-mt-unsafe)
            continue;
        }
        for (const char* variable : s.variables) {
            const char* value = std::getenv(variable);  // NOLINT(concurrency-mt-unsafe)
            if (value != nullptr && *value != '\0') {
                return fmt::format("{}:{}", s.scheme, value);
            }
        }
    }
    return fmt::format("pid:{}", ::getpid());
}

job_key processing_tracker::resolve_job(std::string_view job_id, const std::vector<job_key>& universe) const {
    if (universe.empty()) {
        throw value_error(fmt::format(
            "Unable to resolve the job with ID '{}' against the job universe of the processing tracker at '{}'. The "
            "'universe' argument must name at least one job, but an empty list was provided.",
            job_id, file_path_.string()));
    }
    std::vector<std::string> ids;
    for (const auto& job : universe) {
        std::string id = generate_job_id(job.first, job.second);
        if (id == job_id) {
            return job;
        }
        ids.push_back(std::move(id));
    }
    std::sort(ids.begin(), ids.end());
    throw value_error(fmt::format(
        "Unable to resolve the job with ID '{}' against the job universe of the processing tracker at '{}'. The "
        "identifier must name a job the pipeline could produce, but the universe holds only the jobs with IDs: {}.",
        job_id, file_path_.string(), joined(ids)));
}

namespace {

/// Reads the tracker file into `text` (a buffer kept by the tracker, so a transition neither allocates nor zeroes a
/// fresh one); false when the file does not exist. One open, one fstat and one read when the read returns exactly
/// the size fstat gave (the file is replaced whole, never grown in place; anything else takes the general reader).
bool read_tracker_text(const fs::path& file, std::string& text) {
    sys::unique_fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        if (errno == ENOENT) {
            return false;
        }
        text = detail::read_yaml_text(file);  // the shared reader names the file and the error
        return true;
    }

    struct stat st {};

    if (::fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode)) {
        const auto size = static_cast<std::size_t>(st.st_size);
        text.resize(size + 1);  // one byte more shows a file that grew meanwhile; only growth is zero-filled
        const ssize_t got = sys::retry_eintr([&] { return ::read(fd.get(), text.data(), size + 1); });
        if (got >= 0 && static_cast<std::size_t>(got) == size) {
            text.resize(size);
            return true;
        }
    }
    fd.reset();
    text = detail::read_yaml_text(file);
    return true;
}

}  // namespace

void processing_tracker::transact(load_mode mode, bool save, const operation& op) {
    const bool exists = read_tracker_text(file_path_, read_buffer_);
    const std::string* text = exists ? &read_buffer_ : nullptr;
    const bool unchanged = text && written_text_current_ && *text == written_text_;
    written_text_current_ = false;  // until the next save: the operation edits jobs_
    touched_.reset();
    if (text && !unchanged) {
        jobs_ = detail::read_tracker_document(*text, file_path_);
    } else if (!text && mode == load_mode::create) {
        detail::check_yaml_suffix(file_path_, true);
        write_text(detail::emit_tracker_document(jobs_, file_path_));
    }
    // The operation edits jobs_ in place (no copy of the registry per transition); if it or the save fails, jobs_
    // goes back to what the file holds (or, without a file, to what it was).
    std::optional<job_registry> before;
    if (!text) {
        before = jobs_;
    }
    try {
        op(jobs_);
        if (save) {
            detail::check_yaml_suffix(file_path_, true);
            save_jobs(unchanged);
        }
    } catch (...) {
        jobs_ = text ? detail::read_tracker_document(*text, file_path_) : std::move(*before);
        throw;
    }
}

void processing_tracker::save_jobs(bool unchanged) {
    // Only a text the fast layout wrote parses back to exactly these jobs: only then may the next transition trust it.
    if (unchanged && touched_ && detail::patch_tracker_job(written_text_, written_starts_, jobs_, *touched_)) {
        write_text(written_text_);
        written_text_current_ = true;
        return;
    }
    std::optional<std::string> fast = detail::emit_tracker_fast(jobs_, &written_starts_);
    if (!fast) {
        write_text(detail::emit_tracker_document(jobs_, file_path_));
        return;
    }
    write_text(*fast);
    written_text_ = std::move(*fast);
    written_text_current_ = true;
}

void processing_tracker::write_text(const std::string& text) {
    if (!sync_directory_) {
        sync_directory_ = sys::directory_needs_sync(file_path_);  // once: the directory's file system stays put
    }
    detail::write_yaml_text(file_path_, text, *sync_directory_);
}

void processing_tracker::locked(load_mode mode, bool save, const operation& op) {
    // Reads take no lock: every writer (this library's and the Python library's) replaces the file atomically, so an
    // unlocked read sees one whole version. Readers therefore never wait behind busy workers (flock has no fairness),
    // and a user who may read the tracker but not write its directory (the lock file) can still inspect it.
    if (lock_held_ || (mode == load_mode::no_create && !save)) {
        transact(mode, save, op);
        return;
    }
    file_lock lock(lock_path_);
    const auto deadline = std::chrono::steady_clock::now() + options_.lock_timeout;
    auto delay = std::chrono::milliseconds(1);
    while (!lock.try_lock()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            lock.throw_timeout(std::chrono::duration_cast<std::chrono::milliseconds>(options_.lock_timeout));
        }
        std::this_thread::sleep_for(delay);
        delay = next_delay(delay);
    }
    transact(mode, save, op);
}

asio::awaitable<void> processing_tracker::async_with_lock(std::function<void()> call) {
    auto lock = std::make_shared<file_lock>(lock_path_);
    const auto deadline = std::chrono::steady_clock::now() + options_.lock_timeout;
    auto delay = std::chrono::milliseconds(1);
    asio::steady_timer timer(co_await asio::this_coro::executor);
    while (!lock->try_lock()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            lock->throw_timeout(std::chrono::duration_cast<std::chrono::milliseconds>(options_.lock_timeout));
        }
        timer.expires_after(delay);
        co_await timer.async_wait(asio::use_awaitable);
        delay = next_delay(delay);
    }
    auto work = [this, call = std::move(call), lock] {
        lock_held_ = true;
        try {
            call();
        } catch (...) {
            lock_held_ = false;
            throw;
        }
        lock_held_ = false;
    };
    co_await detail::async_run_cpu(std::move(work));
}

template <typename Call>
asio::awaitable<std::invoke_result_t<Call&>> processing_tracker::async_locked(Call& call) {
    using result_type = std::invoke_result_t<Call&>;
    if constexpr (std::is_void_v<result_type>) {
        std::function<void()> run = [&call] {
            call();
        };
        co_await async_with_lock(std::move(run));
    } else {
        std::optional<result_type> result;
        std::function<void()> run = [&call, &result] {
            result.emplace(call());
        };
        co_await async_with_lock(std::move(run));
        co_return std::move(*result);
    }
}

asio::awaitable<std::vector<std::string>> processing_tracker::async_initialize_jobs(std::vector<job_key> jobs) {
    auto call = [&] {
        return initialize_jobs(jobs);
    };
    co_return co_await async_locked(call);
}

asio::awaitable<std::vector<std::string>> processing_tracker::async_align_jobs(
    std::vector<job_key> jobs, std::optional<std::vector<job_key>> universe) {
    auto call = [&] {
        return align_jobs(jobs, universe);
    };
    co_return co_await async_locked(call);
}

asio::awaitable<void> processing_tracker::async_start_job(std::string job_id, std::optional<std::string> executor_id) {
    auto call = [&] {
        start_job(job_id, std::move(executor_id));
    };
    co_await async_locked(call);
}

asio::awaitable<void> processing_tracker::async_complete_job(std::string job_id) {
    auto call = [&] {
        complete_job(job_id);
    };
    co_await async_locked(call);
}

asio::awaitable<void> processing_tracker::async_fail_job(std::string job_id, std::optional<std::string> error_message) {
    auto call = [&] {
        fail_job(job_id, std::move(error_message));
    };
    co_await async_locked(call);
}

asio::awaitable<processing_status> processing_tracker::async_get_job_status(std::string job_id) {
    auto call = [&] {
        return get_job_status(job_id);
    };
    co_return co_await async_locked(call);
}

asio::awaitable<job_state> processing_tracker::async_get_job_info(std::string job_id) {
    auto call = [&] {
        return get_job_info(job_id);
    };
    co_return co_await async_locked(call);
}

asio::awaitable<job_registry> processing_tracker::async_snapshot() {
    std::error_code ec;
    if (!fs::is_regular_file(file_path_, ec)) {
        co_return job_registry{};  // like snapshot(): no lock file is created
    }
    auto call = [&] {
        return snapshot();
    };
    co_return co_await async_locked(call);
}

asio::awaitable<tracker_summary> processing_tracker::async_summarize() {
    job_registry jobs = co_await async_snapshot();
    co_return summary_of(std::move(jobs));
}

asio::awaitable<std::vector<std::pair<std::string, job_key>>> processing_tracker::async_find_jobs(
    std::optional<std::string> job_name, std::optional<std::string> specifier) {
    auto call = [&] {
        return find_jobs(job_name, specifier);
    };
    co_return co_await async_locked(call);
}

asio::awaitable<std::vector<std::string>> processing_tracker::async_get_jobs_by_status(processing_status status) {
    auto call = [&] {
        return get_jobs_by_status(status);
    };
    co_return co_await async_locked(call);
}

asio::awaitable<std::vector<std::pair<processing_status, std::size_t>>> processing_tracker::async_get_summary() {
    auto call = [&] {
        return get_summary();
    };
    co_return co_await async_locked(call);
}

asio::awaitable<bool> processing_tracker::async_complete() {
    auto call = [&] {
        return complete();
    };
    co_return co_await async_locked(call);
}

asio::awaitable<bool> processing_tracker::async_encountered_error() {
    auto call = [&] {
        return encountered_error();
    };
    co_return co_await async_locked(call);
}

asio::awaitable<std::vector<std::string>> processing_tracker::async_reset_jobs(std::vector<std::string> job_ids) {
    auto call = [&] {
        return reset_jobs(job_ids);
    };
    co_return co_await async_locked(call);
}

asio::awaitable<std::vector<std::string>> processing_tracker::async_retry_failed_jobs() {
    auto call = [&] {
        return retry_failed_jobs();
    };
    co_return co_await async_locked(call);
}

asio::awaitable<void> processing_tracker::async_reset() {
    auto call = [&] {
        reset();
    };
    co_await async_locked(call);
}

std::vector<std::string> processing_tracker::initialize_jobs(const std::vector<job_key>& jobs) {
    std::vector<std::string> ids;
    locked(load_mode::create, true, [&](job_registry& registry) {
        for (const auto& [name, spec] : jobs) {
            std::string id = generate_job_id(name, spec);
            if (find_job(registry, id) == registry.end()) {
                registry.emplace_back(id, job_state{.job_name = name, .specifier = spec});
            } else {
                warn(fmt::format(
                    "Job '{}' with specifier '{}' (ID: {}) already exists in the tracker. Skipping duplicate entry.",
                    name, spec, id));
            }
            ids.push_back(std::move(id));
        }
    });
    return ids;
}

std::vector<std::string> processing_tracker::align_jobs(const std::vector<job_key>& jobs,
                                                        const std::optional<std::vector<job_key>>& universe) {
    if (jobs.empty()) {
        throw value_error(fmt::format(
            "Unable to align the processing tracker at '{}' with the requested jobs. The 'jobs' argument must name at "
            "least one job, but an empty list was provided.",
            file_path_.string()));
    }
    const std::vector<job_key>& all = universe ? *universe : jobs;
    std::set<std::string> universe_ids;
    for (const auto& [name, spec] : all) {
        universe_ids.insert(generate_job_id(name, spec));
    }
    std::vector<std::string> ids;
    std::vector<std::string> outside;
    for (const auto& job : jobs) {
        ids.push_back(generate_job_id(job.first, job.second));
        if (universe_ids.count(ids.back()) == 0) {
            outside.push_back(render_job(job));
        }
    }
    if (!outside.empty()) {
        std::sort(outside.begin(), outside.end());
        throw value_error(fmt::format(
            "Unable to align the processing tracker at '{}' with the requested jobs. Every requested job must belong "
            "to the job universe, but these jobs are absent from it: {}.",
            file_path_.string(), joined(outside)));
    }
    locked(load_mode::create, true, [&](job_registry& registry) {
        std::vector<std::string> foreign;
        for (const auto& [id, job] : registry) {
            if (universe_ids.count(id) == 0) {
                foreign.push_back(id);
            }
        }
        if (!foreign.empty()) {
            std::sort(foreign.begin(), foreign.end());
            std::vector<std::string> quoted;
            for (const auto& id : foreign) {
                quoted.push_back(fmt::format("'{}'", id));
            }
            warn(fmt::format(
                "The processing tracker at '{}' contains {} job entries that are not part of the current job universe. "
                "Discarding them and preserving every in-universe job. Discarded job IDs: [{}].",
                file_path_.string(), foreign.size(), joined(quoted)));
            std::erase_if(registry, [&](const auto& entry) { return universe_ids.count(entry.first) == 0; });
        }
        for (std::size_t i = 0; i < jobs.size(); ++i) {
            if (find_job(registry, ids[i]) == registry.end()) {
                registry.emplace_back(ids[i], job_state{.job_name = jobs[i].first, .specifier = jobs[i].second});
            }
        }
    });
    return ids;
}

void processing_tracker::start_job(std::string_view job_id, std::optional<std::string> executor_id) {
    std::string executor = executor_id ? std::move(*executor_id) : resolve_executor_id();
    locked(load_mode::create, true, [&](job_registry& registry) {
        job_state& job = require_job(registry, job_id, "marked as running", file_path_);
        touched_ = static_cast<std::size_t>(find_job(registry, job_id) - registry.begin());
        job.status = processing_status::running;
        job.error_message.reset();
        job.completed_at.reset();
        job.executor_id = executor;
        job.started_at = utc_now_us();
    });
}

void processing_tracker::complete_job(std::string_view job_id) {
    locked(load_mode::create, true, [&](job_registry& registry) {
        job_state& job = require_job(registry, job_id, "marked as complete", file_path_);
        touched_ = static_cast<std::size_t>(find_job(registry, job_id) - registry.begin());
        job.status = processing_status::succeeded;
        job.error_message.reset();
        job.completed_at = utc_now_us();
    });
}

void processing_tracker::fail_job(std::string_view job_id, std::optional<std::string> error_message) {
    locked(load_mode::create, true, [&](job_registry& registry) {
        job_state& job = require_job(registry, job_id, "marked as failed", file_path_);
        touched_ = static_cast<std::size_t>(find_job(registry, job_id) - registry.begin());
        job.status = processing_status::failed;
        job.error_message = error_message;
        job.completed_at = utc_now_us();
    });
}

processing_status processing_tracker::get_job_status(std::string_view job_id) {
    processing_status status{};
    locked(load_mode::no_create, false, [&](job_registry& registry) {
        status = require_job(registry, job_id, "queried (status)", file_path_).status;
    });
    return status;
}

job_state processing_tracker::get_job_info(std::string_view job_id) {
    job_state state;
    locked(load_mode::no_create, false,
           [&](job_registry& registry) { state = require_job(registry, job_id, "queried (state)", file_path_); });
    return state;
}

job_registry processing_tracker::snapshot() {
    std::error_code ec;
    if (!fs::is_regular_file(file_path_, ec)) {
        return {};
    }
    job_registry copy;
    locked(load_mode::no_create, false, [&](job_registry& registry) { copy = registry; });
    return copy;
}

tracker_summary processing_tracker::summarize() {
    return summary_of(snapshot());
}

std::vector<std::pair<std::string, job_key>> processing_tracker::find_jobs(
    const std::optional<std::string>& job_name, const std::optional<std::string>& specifier) {
    std::vector<std::pair<std::string, job_key>> found;
    locked(load_mode::no_create, false, [&](job_registry& registry) {
        for (const auto& [id, job] : registry) {
            const bool name_ok = !job_name || job.job_name.find(*job_name) != std::string::npos;
            const bool spec_ok = !specifier || job.specifier.find(*specifier) != std::string::npos;
            if (name_ok && spec_ok) {
                found.emplace_back(id, job_key{job.job_name, job.specifier});
            }
        }
    });
    return found;
}

std::vector<std::string> processing_tracker::get_jobs_by_status(processing_status status) {
    std::vector<std::string> ids;
    locked(load_mode::no_create, false, [&](job_registry& registry) { ids = ids_with_status(registry, status); });
    return ids;
}

std::vector<std::string> processing_tracker::get_jobs_by_status(std::string_view status_name) {
    return get_jobs_by_status(parse_processing_status(status_name));
}

std::vector<std::pair<processing_status, std::size_t>> processing_tracker::get_summary() {
    job_counts counts;
    locked(load_mode::no_create, false, [&](job_registry& registry) { counts = count_jobs(registry); });
    return {{processing_status::scheduled, counts.scheduled},
            {processing_status::running, counts.running},
            {processing_status::succeeded, counts.succeeded},
            {processing_status::failed, counts.failed}};
}

bool processing_tracker::complete() {
    bool result = false;
    locked(load_mode::no_create, false, [&](job_registry& registry) {
        const job_counts counts = count_jobs(registry);
        result = counts.total > 0 && counts.succeeded == counts.total;
    });
    return result;
}

bool processing_tracker::encountered_error() {
    bool result = false;
    locked(load_mode::no_create, false, [&](job_registry& registry) { result = count_jobs(registry).failed > 0; });
    return result;
}

std::vector<std::string> processing_tracker::reset_jobs(const std::vector<std::string>& job_ids) {
    std::vector<std::string> reset_ids;
    locked(load_mode::create, true, [&](job_registry& registry) {
        std::set<std::string> unknown(job_ids.begin(), job_ids.end());
        for (const auto& [id, job] : registry) {
            unknown.erase(id);
        }
        if (!unknown.empty()) {
            throw value_error(fmt::format(
                "Unable to reset the jobs of the processing tracker at '{}': it is not configured to track the jobs "
                "with IDs {}. Currently tracked job IDs: {}.",
                file_path_.string(), joined({unknown.begin(), unknown.end()}), joined(ids_of(registry))));
        }
        const std::set<std::string> wanted(job_ids.begin(), job_ids.end());
        for (auto& [id, job] : registry) {
            if (wanted.count(id) != 0) {
                clear_progress(job);
                reset_ids.push_back(id);
            }
        }
    });
    return reset_ids;
}

std::vector<std::string> processing_tracker::retry_failed_jobs() {
    std::vector<std::string> reset_ids;
    locked(load_mode::create, true, [&](job_registry& registry) {
        for (auto& [id, job] : registry) {
            if (job.status == processing_status::failed) {
                clear_progress(job);
                reset_ids.push_back(id);
            }
        }
    });
    return reset_ids;
}

void processing_tracker::reset() {
    locked(load_mode::create, true, [](job_registry& registry) { registry.clear(); });
}

std::size_t processing_tracker::remove_all_jobs(bool even_running) {
    std::size_t removed = 0;
    locked(load_mode::create, true, [&](job_registry& registry) {
        std::vector<std::string> running;
        std::size_t running_count = 0;
        for (const auto& [id, job] : registry) {
            if (job.status == processing_status::running && ++running_count <= 10) {  // the message stays short
                running.push_back(fmt::format("{} ({})", id, job.executor_id.value_or("no executor recorded")));
            }
        }
        if (running_count > running.size()) {
            running.push_back(fmt::format("and {} more", running_count - running.size()));
        }
        if (running_count != 0 && !even_running) {
            throw value_error(fmt::format(
                "Unable to remove the jobs of the processing tracker at '{}': {} job(s) are RUNNING: {}. Their "
                "executors could not record their end. Wait for them, reclaim them if their executors are gone, or "
                "remove them anyway (--force).",
                file_path_.string(), running_count, joined(running)));
        }
        removed = registry.size();
        registry.clear();
    });
    return removed;
}

// ---- Job runner support (job_runner.hpp) ----

std::optional<std::pair<std::string, job_state>> processing_tracker::claim_next_job(std::string executor_id) {
    std::optional<std::pair<std::string, job_state>> claimed;
    std::error_code ec;
    if (!fs::is_regular_file(file_path_, ec)) {
        return claimed;  // nothing to claim; no lock file is created
    }
    // Save only when a job was claimed: an unlocked peek first keeps idle workers from rewriting the file.
    if (!lock_held_ && ids_with_status(snapshot(), processing_status::scheduled).empty()) {
        return claimed;
    }
    locked(load_mode::no_create, true, [&](job_registry& registry) {
        const auto it = std::find_if(registry.begin(), registry.end(), [](const auto& entry) {
            return entry.second.status == processing_status::scheduled;
        });
        if (it == registry.end()) {
            return;
        }
        job_state& job = it->second;
        job.status = processing_status::running;
        job.error_message.reset();
        job.completed_at.reset();
        job.executor_id = executor_id;
        job.started_at = utc_now_us();
        claimed.emplace(it->first, job);
    });
    return claimed;
}

asio::awaitable<std::optional<std::pair<std::string, job_state>>> processing_tracker::async_claim_next_job(
    std::string executor_id) {
    std::optional<std::pair<std::string, job_state>> claimed;
    std::error_code ec;
    if (!fs::is_regular_file(file_path_, ec)) {
        co_return claimed;
    }
    std::function<bool()> peek = [this] {
        return !ids_with_status(snapshot(), processing_status::scheduled).empty();
    };
    const bool any = co_await detail::async_run_cpu(std::move(peek));
    if (!any) {
        co_return claimed;
    }
    auto call = [&] {
        return claim_next_job(executor_id);
    };
    co_return co_await async_locked(call);
}

void processing_tracker::update_jobs(const std::function<void(job_registry& jobs)>& op) {
    locked(load_mode::create, true, op);
}

asio::awaitable<void> processing_tracker::async_update_jobs(std::function<void(job_registry& jobs)> op) {
    auto call = [&] {
        update_jobs(op);
    };
    co_await async_locked(call);
}

}  // namespace axds
