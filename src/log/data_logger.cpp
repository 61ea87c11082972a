#include <axds/log/data_logger.hpp>

#include <axds/core/console.hpp>
#include <axds/core/runtime.hpp>
#include <axds/core/workers.hpp>
#include <axds/error.hpp>
#include <axds/npy/npy_format.hpp>
#include <axds/npy/npz_archive.hpp>

#include "detail/asio_compat.hpp"
#include "detail/fault_hooks.hpp"
#include "log/archive_stream.hpp"
#include "log/entry_pool.hpp"
#include "log/entry_writer.hpp"
#include "sys/unique_fd.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_future.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace axds {

namespace {

using detail::queued_entry;

constexpr int max_workers = 256;  ///< entry writes in flight at most
constexpr std::size_t min_queue_capacity = 4096;
/// Queue nodes populated when a logger is made (1 MiB; fewer when its queue cannot hold that many entries).
constexpr std::size_t initial_pool_nodes = 16384;
/// Payload buffers kept for reuse by queue nodes, at most (bytes; also at most the queue's capacity): what the queue
/// held at its fullest stays with the logger, so producers refilling their package do not allocate (with 64 MiB,
/// three quarters of the 1 MiB payloads of a full 256 MiB queue were freed and allocated again, faults included).
constexpr std::size_t max_retained_payload_bytes = std::size_t{1024} << 20U;

/// The most entries a queue of `capacity` bytes can hold at once: each is charged at least entry_bookkeeping_bytes,
/// plus the one package larger than the bound that an empty queue still takes.
std::size_t max_queued_entries(std::size_t capacity) noexcept {
    return capacity / detail::entry_bookkeeping_bytes + 1;
}

enum class run_state { stopped, running, stopping };

/// The §6.5 warning, with what actually went wrong instead of a process exit code: the entries that did not reach
/// the disk and the streaming archives that could not be finished, each said only when there are some.
std::string incomplete_data_warning(const std::string& name, const data_logger_report& report) {
    std::string what;
    if (report.entries_failed != 0) {
        what = fmt::format("{} of the submitted log entries did not reach the disk", report.entries_failed);
    }
    if (!report.unfinished_archives.empty()) {
        std::string files;
        for (const auto& working : report.unfinished_archives) {
            files += (files.empty() ? "" : ", ") + working.string();
        }
        what += fmt::format(
            "{}{} streaming archive(s) could not be finished ({}); every member they hold is on disk "
            "in that working file, and async_assemble_log_archives finishes it once the cause is "
            "removed",
            what.empty() ? "" : "; ", report.unfinished_archives.size(), files);
    }
    return fmt::format(
        "Unable to confirm that the {} DataLogger saved all buffered data. {} (first failure: {}). Treat the data this "
        "logger recorded as incomplete.",
        name, what, report.first_error);
}

}  // namespace

struct data_logger::impl : std::enable_shared_from_this<impl> {
    using report_channel = detail::channel<data_logger_report>;

    impl(asio::any_io_executor executor, std::filesystem::path directory, std::string instance_name,
         data_logger_options opts)
        : strand(asio::make_strand(std::move(executor))),
          output_directory(std::move(directory)),
          name(std::move(instance_name)),
          options(opts),
          pool(max_queued_entries(opts.queue_capacity_bytes), initial_pool_nodes,
               std::min(opts.queue_capacity_bytes, max_retained_payload_bytes)),
          wake(strand, 1),
          idle_timer(strand) {}

    ~impl() {
        // Whatever is still queued can no longer be written: say so, loudly, then free it.
        std::size_t lost = 0;
        queued_entry* entry = head.exchange(nullptr);
        while (entry != nullptr) {
            queued_entry* next = entry->next;
            pool.release(entry);
            entry = next;
            ++lost;
        }
        if (lost != 0) {
            warn(fmt::format(
                "The {} DataLogger was destroyed with {} queued log entries that were never written. Start the "
                "logger (or stop it and let the executor run until the stop completes) before destroying it.",
                name, lost));
        }
    }

    asio::strand<asio::any_io_executor> strand;
    std::filesystem::path output_directory;
    std::string name;
    data_logger_options options;
    detail::entry_fault_fn fail_entry;  ///< tests only (detail::data_logger_test_access); empty otherwise
    detail::archive_stream_writer::directory_sync_fault_fn fail_directory_sync;  ///< tests only, as fail_entry
    /// The directories the constructor created (the log directory, missing parents): the streaming writer makes
    /// their names durable (see archive_stream_writer).
    std::vector<std::filesystem::path> created_directories;

    // The queue: a lock-free stack producers push onto; the writer takes all of it at once and reverses it. Its
    // nodes come from `pool` (pre-faulted, grown and recycled by the writer), so that pushing neither allocates nor
    // faults on fresh memory.
    detail::entry_pool pool;
    std::atomic<queued_entry*> head{nullptr};
    std::atomic<std::size_t> bytes{0};
    std::atomic<bool> writer_sleeping{false};
    detail::channel<bool> wake;
    asio::steady_timer idle_timer;  ///< wakes the idle writer when a time-based sync is due

    // Producers waiting for space.
    std::atomic<std::uint32_t> space_generation{0};
    std::atomic<int> thread_waiters{0};
    std::atomic<int> async_waiters{0};
    std::mutex waiters_mutex;
    std::vector<std::shared_ptr<detail::channel<bool>>> async_waiting;

    // Lifecycle.
    std::mutex lifecycle_mutex;
    run_state state = run_state::stopped;
    std::vector<std::shared_ptr<report_channel>> stop_waiters;
    std::atomic<bool> stop_requested{false};
    std::atomic<bool> is_alive{false};

    [[nodiscard]] bool try_reserve(std::size_t charge) noexcept {
        std::size_t current = bytes.load();
        for (;;) {
            if (current != 0 && current + charge > options.queue_capacity_bytes) {
                return false;
            }
            if (bytes.compare_exchange_weak(current, current + charge)) {
                return true;
            }
        }
    }

    void push(queued_entry* entry) noexcept {
        queued_entry* old = head.load(std::memory_order_relaxed);
        do {
            entry->next = old;
        } while (!head.compare_exchange_weak(old, entry, std::memory_order_seq_cst, std::memory_order_relaxed));
        wake_writer();
    }

    void wake_writer() noexcept {
        if (writer_sleeping.load() && writer_sleeping.exchange(false)) {
            wake.try_send(asio::error_code{}, true);
        }
    }

    /// Called by the writer after it released `charge` bytes.
    void notify_space() {
        if (thread_waiters.load() > 0) {
            space_generation.fetch_add(1);
            space_generation.notify_all();
        }
        if (async_waiters.load() > 0) {
            std::vector<std::shared_ptr<detail::channel<bool>>> waiting;
            {
                const std::lock_guard lock(waiters_mutex);
                waiting.swap(async_waiting);
                async_waiters.store(0);
            }
            for (auto& waiter : waiting) {
                waiter->try_send(asio::error_code{}, true);
            }
        }
    }

    /// Queues `package`, whose `charge` was reserved. Only a heap allocation (the pool momentarily empty) can throw;
    /// the reservation is then given back and the package is not moved from.
    void enqueue(log_package&& package, std::size_t charge) {
        queued_entry* entry = nullptr;
        try {
            entry = pool.acquire();
        } catch (...) {
            bytes.fetch_sub(charge);
            notify_space();
            throw;
        }
        entry->charge = charge;
        // A large payload's CRC-32 on the producer's thread, while the bytes it just wrote are in its cache: one
        // read of the payload less for the streaming writer, which is the bound at large payloads (issue 19).
        if (options.layout == log_layout::archives && package.payload.size() >= detail::payload_crc_bytes) {
            entry->set_payload_crc(crc32(package.payload));
        }
        entry->package.source_id = package.source_id;
        entry->package.acquisition_time = package.acquisition_time;
        // The producer gets the buffer the node kept from an earlier message (empty, capacity kept; none for a fresh
        // node): refilling the same package then needs no allocation (entry_pool).
        entry->package.payload.swap(package.payload);
        push(entry);
    }

    /// Moves the whole queue, oldest first, to the end of `backlog`.
    void take_all(detail::entry_list& backlog) noexcept {
        queued_entry* taken = head.exchange(nullptr, std::memory_order_acquire);
        queued_entry* const newest = taken;  // last once reversed
        queued_entry* reversed = nullptr;
        while (taken != nullptr) {
            queued_entry* next = taken->next;
            taken->next = reversed;
            reversed = taken;
            taken = next;
        }
        backlog.append_chain(reversed, newest);
    }

    /// Counts what is still queued (only the writer removes entries, so walking the stack is safe when no writer
    /// runs).
    [[nodiscard]] std::uint64_t count_queued() const noexcept {
        std::uint64_t n = 0;
        for (const queued_entry* e = head.load(std::memory_order_acquire); e != nullptr; e = e->next) {
            ++n;
        }
        return n;
    }

    void start();
    void request_stop(const std::shared_ptr<report_channel>& waiter);
    static asio::awaitable<void> run_writer(std::shared_ptr<impl> self, int directory_fd);
    asio::awaitable<void> write_until_stopped(detail::entry_writer& writer, data_logger_report& report);
    void finish_run(data_logger_report report);
};

void data_logger::impl::start() {
    const std::lock_guard lock(lifecycle_mutex);
    if (state == run_state::running) {
        return;
    }
    if (state == run_state::stopping) {
        throw runtime_error(fmt::format(
            "Unable to start the {} DataLogger: it is still stopping. Start it again after async_stop() returns.",
            name));
    }
    sys::unique_fd fd(::open(output_directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) {
        throw_errno(errno, fmt::format("Unable to start the {} DataLogger: its output directory {} cannot be opened.",
                                       name, output_directory.string()));
    }
    // One writer per directory: a second logger (in any process) would collide on entry names and lose its entries
    // after its producers were told they were accepted. The lock goes with the descriptor when the run ends.
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        throw runtime_error(fmt::format(
            "Unable to start the {} DataLogger: another data logger (or an assembly) is using its output directory "
            "{}. Two loggers in one directory would collide on entry names; use another name or output directory.",
            name, output_directory.string()));
    }
    stop_requested.store(false);
    is_alive.store(true);
    state = run_state::running;
    asio::co_spawn(strand, run_writer(shared_from_this(), fd.release()), asio::detached);
}

void data_logger::impl::request_stop(const std::shared_ptr<report_channel>& waiter) {
    {
        const std::lock_guard lock(lifecycle_mutex);
        if (state == run_state::stopped) {
            if (waiter) {
                data_logger_report empty;
                empty.entries_left_queued = count_queued();
                waiter->try_send(asio::error_code{}, std::move(empty));
            }
            return;
        }
        if (waiter) {
            stop_waiters.push_back(waiter);
        }
        state = run_state::stopping;
    }
    stop_requested.store(true);
    wake_writer();
}

asio::awaitable<void> data_logger::impl::run_writer(std::shared_ptr<impl> self, int directory_fd) {
    // Never throws: every failure ends up in the report that the stop returns.
    sys::unique_fd directory(directory_fd);
    data_logger_report report;
    {
        std::unique_ptr<detail::entry_writer> writer;
        detail::archive_stream_writer* stream = nullptr;
        try {
            if (self->options.layout == log_layout::archives) {
                auto streaming = std::make_unique<detail::archive_stream_writer>(
                    self->output_directory, directory_fd, self->options, self->pool, self->created_directories,
                    self->fail_directory_sync);
                stream = streaming.get();
                writer = std::move(streaming);
            } else {
                writer = detail::make_entry_writer(self->strand, directory_fd,
                                                   static_cast<std::size_t>(self->options.workers),
                                                   self->options.use_io_uring, self->pool, self->fail_entry);
            }
            report.used_io_uring = writer->uses_io_uring();
            co_await self->write_until_stopped(*writer, report);
            if (stream != nullptr) {
                co_await stream->async_finish(report);  // central directories, fsync, rename into place
            }
        } catch (const std::exception& e) {
            // Only a broken ring or an allocation failure gets here; what could not be written is counted by the
            // writer's destructor below.
            if (report.first_error.empty()) {
                report.first_error = fmt::format("writer failed: {}", e.what());
            }
            ++report.entries_failed;
        }
        if (writer) {
            const std::uint64_t abandoned = writer->abandon();
            report.entries_failed += abandoned;
        }
    }
    directory.reset();  // releases the directory's lock before the stop is reported
    self->finish_run(std::move(report));
}

asio::awaitable<void> data_logger::impl::write_until_stopped(detail::entry_writer& writer, data_logger_report& report) {
    detail::entry_list backlog(pool);
    bool final_take_done = false;
    auto on_done = [&](queued_entry& entry, const std::string& error) {
        if (error.empty()) {
            ++report.entries_written;
            return;
        }
        ++report.entries_failed;
        std::string file = entry.package.file_name();
        if (report.first_error.empty()) {
            report.first_error = fmt::format("{}: {}", file, error);
            // Said at once, not only at stop: a recording that has started to lose data (a full disk) must not look
            // fine for hours. Once per run; the report at stop counts and names every entry that failed.
            warn(
                fmt::format("The {} DataLogger could not write the log entry {} to {} ({}). Producers' packages are "
                            "still accepted, but this and every later entry that fails is lost; each is named in "
                            "the report at stop.",
                            name, file, output_directory.string(), error));
        }
        report.failed_entries.push_back(std::move(file));
        is_alive.store(false);
    };
    const detail::entry_writer::completion_fn completion = on_done;
    for (;;) {
        pool.replenish();  // pre-faults more nodes here, off the producers' path, while many are in use
        if (backlog.empty() && !final_take_done) {
            const bool stopping = stop_requested.load();
            take_all(backlog);
            final_take_done = stopping;  // everything submitted before the stop is now in the backlog
        }
        while (!backlog.empty() && writer.capacity_left() > 0) {
            writer.add(backlog.pop_front());
        }
        if (writer.in_flight() > 0) {
            const std::size_t released = co_await writer.async_complete_some(completion);
            bytes.fetch_sub(released);
            notify_space();
            continue;
        }
        if (!backlog.empty()) {
            continue;
        }
        if (final_take_done) {
            co_return;
        }
        if (stop_requested.load()) {
            continue;  // one more take, then drain
        }
        writer_sleeping.store(true);
        if (head.load() != nullptr || stop_requested.load()) {
            writer_sleeping.store(false);
            continue;
        }
        const std::optional<std::chrono::steady_clock::time_point> deadline = writer.idle_deadline();
        if (deadline) {  // a time-based sync is due while idle: the timer wakes the writer like a new entry does
            idle_timer.expires_at(*deadline);
            idle_timer.async_wait([weak = weak_from_this()](const asio::error_code& error) {
                if (auto self = weak.lock(); self && !error) {
                    self->wake_writer();
                }
            });
        }
        auto [ec, ignored] = co_await wake.async_receive(detail::nothrow);
        (void)ec;
        (void)ignored;
        writer_sleeping.store(false);
        if (deadline) {
            idle_timer.cancel();
            if (std::chrono::steady_clock::now() >= *deadline) {
                co_await writer.async_on_idle_deadline();
            }
        }
    }
}

void data_logger::impl::finish_run(data_logger_report report) {
    report.entries_left_queued = count_queued();
    if (!report.clean()) {
        warn(incomplete_data_warning(name, report));
    }
    std::vector<std::shared_ptr<report_channel>> waiters;
    {
        const std::lock_guard lock(lifecycle_mutex);
        state = run_state::stopped;
        is_alive.store(false);
        waiters.swap(stop_waiters);
    }
    for (auto& waiter : waiters) {
        waiter->try_send(asio::error_code{}, report);
    }
}

data_logger::data_logger(asio::any_io_executor executor, std::filesystem::path output_directory,
                         std::string instance_name, data_logger_options options) {
    if (instance_name.empty() || instance_name.find('/') != std::string::npos ||
        instance_name.find('\0') != std::string::npos) {
        throw value_error(fmt::format(
            "Unable to create a DataLogger named '{}': the instance name must be a non-empty file name without '/' "
            "or NUL characters.",
            instance_name));
    }
    const int automatic = resolve_workers_option(options.workers, "data_logger_options::workers");  // refuses < 0
    options.workers = options.workers == 0 ? automatic : std::min(options.workers, max_workers);
    options.queue_capacity_bytes = std::max(options.queue_capacity_bytes, min_queue_capacity);
    auto directory = output_directory / (instance_name + log_directory_suffix);
    std::error_code ec;
    std::vector<std::filesystem::path> created;  // innermost first
    for (auto level = directory; !level.empty() && !std::filesystem::exists(level, ec); level = level.parent_path()) {
        // Absolute: the parents are opened later (first sync, stop), when the working directory may have changed.
        std::error_code absolute_error;
        const auto absolute = std::filesystem::absolute(level, absolute_error);
        created.push_back(absolute_error ? level : absolute);
        if (level == level.parent_path()) {
            break;
        }
    }
    std::filesystem::create_directories(directory, ec);
    if (ec || !std::filesystem::is_directory(directory)) {
        const std::error_code code = ec ? ec : std::make_error_code(std::errc::not_a_directory);
        throw_os_error(code, fmt::format("Unable to create the output directory {} of the {} DataLogger: {}.",
                                         directory.string(), instance_name, code.message()));
    }
    impl_ = std::make_shared<impl>(std::move(executor), std::move(directory), std::move(instance_name), options);
    impl_->created_directories = std::move(created);
}

void detail::data_logger_test_access::fail_entries(data_logger& logger,
                                                   std::function<bool(std::string_view file_name)> fail) {
    logger.impl_->fail_entry = std::move(fail);
}

void detail::data_logger_test_access::fail_directory_syncs(
    data_logger& logger, std::function<bool(const std::filesystem::path& directory)> fail) {
    logger.impl_->fail_directory_sync = std::move(fail);
}

detail::data_logger_test_access::pool_counts detail::data_logger_test_access::pool_stats(data_logger& logger) {
    detail::entry_pool& pool = logger.impl_->pool;
    return {.populated = pool.populated(),
            .max_nodes = pool.max_nodes(),
            .heap_nodes = pool.heap_nodes(),
            .free_nodes = pool.free_nodes()};
}

data_logger::~data_logger() {
    if (impl_) {
        impl_->request_stop(nullptr);  // the writer holds impl_ until it has drained
    }
}

void data_logger::start() {
    impl_->start();
}

asio::awaitable<void> data_logger::async_start() {
    impl_->start();
    co_return;
}

asio::awaitable<data_logger_report> data_logger::async_stop() {
    const auto self = impl_;
    auto waiter = std::make_shared<impl::report_channel>(self->strand, 1);
    self->request_stop(waiter);
    auto [ec, report] = co_await waiter->async_receive(detail::nothrow);
    if (ec) {
        throw_os_error(ec, fmt::format("Unable to stop the {} DataLogger.", self->name));
    }
    co_return std::move(report);
}

data_logger_report data_logger::stop() {
    const asio::any_io_executor inner = impl_->strand.get_inner_executor();
    const auto* io_executor = inner.target<asio::io_context::executor_type>();
    if (impl_->strand.running_in_this_thread() || (io_executor != nullptr && io_executor->running_in_this_thread())) {
        throw runtime_error(fmt::format(
            "data_logger::stop() was called for the {} DataLogger from its own executor, where it could never "
            "finish; co_await async_stop() instead.",
            impl_->name));
    }
    auto future = asio::co_spawn(impl_->strand, async_stop(), asio::use_future);
    return future.get();
}

bool data_logger::try_log(log_package&& package) {
    const std::size_t charge = package.payload.size() + detail::entry_bookkeeping_bytes;
    if (!impl_->try_reserve(charge)) {
        return false;
    }
    impl_->enqueue(std::move(package), charge);
    return true;
}

void data_logger::log(const log_package& package) {
    log_package copy = package;
    log(std::move(copy));
}

void data_logger::log(log_package&& package) {
    const std::size_t charge = package.payload.size() + detail::entry_bookkeeping_bytes;
    impl& self = *impl_;
    while (!self.try_reserve(charge)) {
        const std::uint32_t generation = self.space_generation.load();
        self.thread_waiters.fetch_add(1);
        if (self.try_reserve(charge)) {
            self.thread_waiters.fetch_sub(1);
            break;
        }
        self.space_generation.wait(generation);
        self.thread_waiters.fetch_sub(1);
    }
    self.enqueue(std::move(package), charge);
}

asio::awaitable<void> data_logger::async_log(log_package package) {
    const auto self = impl_;
    const std::size_t charge = package.payload.size() + detail::entry_bookkeeping_bytes;
    while (!self->try_reserve(charge)) {
        auto executor = co_await asio::this_coro::executor;
        auto waiter = std::make_shared<detail::channel<bool>>(executor, 1);
        {
            const std::lock_guard lock(self->waiters_mutex);
            self->async_waiting.push_back(waiter);
            self->async_waiters.fetch_add(1);
        }
        if (self->try_reserve(charge)) {
            break;  // the registration is dropped at the next notify
        }
        auto [ec, ignored] = co_await waiter->async_receive(detail::nothrow);
        (void)ec;
        (void)ignored;
    }
    self->enqueue(std::move(package), charge);
}

asio::awaitable<void> data_logger::async_log(std::uint8_t source_id, std::uint64_t acquisition_time,
                                             std::vector<std::uint8_t> payload) {
    // Not a coroutine: the package is built outside any co_await expression, then owned by the returned awaitable.
    return async_log(
        log_package{.source_id = source_id, .acquisition_time = acquisition_time, .payload = std::move(payload)});
}

void data_logger::log_onset(std::uint8_t source_id) {
    log(make_onset_package(source_id, utc_now_us()));
}

asio::awaitable<void> data_logger::async_log_onset(std::uint8_t source_id) {
    log_package onset = make_onset_package(source_id, utc_now_us());
    co_await async_log(std::move(onset));
}

bool data_logger::alive() const noexcept {
    return impl_->is_alive.load();
}

const std::string& data_logger::name() const noexcept {
    return impl_->name;
}

const std::filesystem::path& data_logger::output_directory() const noexcept {
    return impl_->output_directory;
}

std::size_t data_logger::queued_bytes() const noexcept {
    return impl_->bytes.load();
}

const data_logger_options& data_logger::options() const noexcept {
    return impl_->options;
}

std::string data_logger::describe() const {
    bool started = false;
    {
        const std::lock_guard lock(impl_->lifecycle_mutex);
        started = impl_->state == run_state::running;
    }
    return fmt::format("DataLogger(name={}, output_directory={}, thread_count={}, queue_capacity={} bytes, started={})",
                       impl_->name, impl_->output_directory.string(), impl_->options.workers,
                       impl_->options.queue_capacity_bytes, started ? "True" : "False");
}

}  // namespace axds
