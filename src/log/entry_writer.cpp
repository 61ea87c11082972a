#include "log/entry_writer.hpp"

#include <axds/core/console.hpp>
#include <axds/core/runtime.hpp>
#include <axds/core/workers.hpp>
#include <axds/error.hpp>
#include <axds/npy/npy_format.hpp>

#include "detail/asio_compat.hpp"
#include "detail/iovec.hpp"
#include "detail/parallel.hpp"
#include "sys/endian.hpp"
#include "sys/error.hpp"
#include "sys/io.hpp"
#include "sys/unique_fd.hpp"
#include "sys/uring.hpp"

#include <asio/buffer.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

namespace axds::detail {

namespace {

// O_EXCL: an entry file that already exists (an earlier run into the same directory, or a second package with the
// same source and time) is never overwritten; the new entry fails instead and is named in the report.
constexpr int entry_open_flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
// The kernel rejects O_CLOEXEC (EINVAL) for an open into a direct descriptor slot, which never reaches exec anyway.
constexpr int direct_open_flags = O_WRONLY | O_CREAT | O_EXCL;
constexpr mode_t entry_mode = 0666;  // like Python's open(..., "wb"): the umask applies

/// Directory that never exists: the fault-injection hook redirects an entry there so its open really fails.
constexpr std::string_view injected_fault_directory = "axds-injected-fault.missing/";

void warn_lost(std::uint64_t lost) {
    if (lost != 0) {
        warn(fmt::format("{} log entries were lost: the executor stopped before the data logger wrote them.", lost));
    }
}

/// The npy header for the last entry length seen; consecutive entries usually share it.
class npy_header_cache {
public:
    const std::string& get(std::uint64_t length) {
        if (length != length_) {
            header_ = encode_npy_u1_header(length);
            length_ = length;
        }
        return header_;
    }

private:
    std::uint64_t length_ = ~std::uint64_t{0};
    std::string header_;
};

/// One entry made ready for writev: its file name, its npy header + 9-byte prefix, and the two iovecs.
struct prepared_entry {
    queued_entry* entry = nullptr;
    std::array<char, 96> name{};
    alignas(64) std::array<std::uint8_t, 192> head{};  // the kernel copies out of it: 64-byte aligned
    std::array<iovec, 2> iov{};
    std::size_t expected = 0;
    int error = 0;  // first errno
    const char* failed_step = nullptr;
    std::int64_t short_write = -1;  // bytes written by a short writev
    bool opened = false;            // the open succeeded: `name` exists on disk from then on
    int unlink_error = -1;          // after a failure: -1 not yet removed, 0 removed, else unlink's errno

    /// `fail` (tests only; empty otherwise) redirects the entry's file into a missing directory when it says so.
    void prepare(queued_entry* e, npy_header_cache& headers, const entry_fault_fn& fail) {
        entry = e;
        error = 0;
        failed_step = nullptr;
        short_write = -1;
        opened = false;
        unlink_error = -1;
        const log_package& p = e->package;
        const std::string& header = headers.get(9 + p.payload.size());
        std::memcpy(head.data(), header.data(), header.size());
        std::size_t at = header.size();
        head[at++] = p.source_id;
        sys::store_le64(head.data() + at, p.acquisition_time);
        at += 8;
        iov[0] = {head.data(), at};
        // writev never writes through the iovec base; the cast only satisfies the C signature.
        iov[1] = {const_cast<std::uint8_t*>(p.payload.data()), p.payload.size()};  // NOLINT
        expected = at + p.payload.size();
        const bool inject = fail && fail(p.file_name());
        const auto result =
            fmt::format_to_n(name.data(), name.size() - 1, "{}{:03d}_{:020d}.npy",
                             inject ? injected_fault_directory : std::string_view{}, p.source_id, p.acquisition_time);
        *result.out = '\0';
    }

    void record(int errno_value, const char* step) {
        if (error == 0) {
            error = errno_value;
            failed_step = step;
        }
    }

    /// True when the entry failed after its file was created and that file is not removed yet: a short or empty
    /// `.npy` must never stay on disk looking like an entry.
    [[nodiscard]] bool needs_removal() const noexcept { return error != 0 && opened && unlink_error != 0; }

    /// Records the outcome of unlinking the partial file (0 or an errno).
    void removed(int errno_value) noexcept { unlink_error = errno_value; }

    [[nodiscard]] std::string error_text() const {
        if (error == 0) {
            return {};
        }
        if (error == EEXIST && !opened) {
            return fmt::format(
                "{} failed: an entry file with this name already exists (from an earlier run into "
                "this directory, or a package with the same source and time); it was left untouched",
                failed_step);
        }
        std::string text =
            short_write >= 0
                ? fmt::format("{} failed: only {} of {} bytes were written", failed_step, short_write, expected)
                : fmt::format("{} failed: {} [errno {}]", failed_step, sys::errno_message(error), error);
        if (unlink_error == 0) {
            text += "; the partial file was removed";
        } else if (unlink_error > 0) {
            text += fmt::format(
                "; removing the partial file failed too (unlink failed: {} [errno {}]): the incomplete "
                "file is still on disk",
                sys::errno_message(unlink_error), unlink_error);
        }
        return text;
    }

    /// Reports the outcome, hands the entry to `recycled` (back to the pool) and returns its charge.
    std::size_t finish(const entry_writer::completion_fn& done, entry_pool::release_batch& recycled) {
        done(*entry, error_text());
        const std::size_t charge = entry->charge;
        recycled.add(entry);
        entry = nullptr;
        return charge;
    }
};

/// Removes the file of an entry that failed after its open (synchronously; the plain writer runs on the CPU pool).
void remove_partial(int directory_fd, prepared_entry& p) noexcept {
    if (p.needs_removal()) {
        p.removed(::unlinkat(directory_fd, p.name.data(), 0) == 0 ? 0 : errno);
    }
}

/// Creates an entry file. A shortage of descriptors (EMFILE, ENFILE: the process or the system has as many files open
/// as it may) is waited out for up to ~1 s, 1 ms doubling, before the entry fails: a shortage that passes within
/// milliseconds must not lose data, and this writer stalling that long is the lesser harm. (The io_uring writer opens
/// into registered slots, which take no descriptor.)
int open_entry(int directory_fd, const char* name) {
    int fd = ::openat(directory_fd, name, entry_open_flags, entry_mode);
    for (auto pause = std::chrono::milliseconds(1);
         fd < 0 && (errno == EMFILE || errno == ENFILE) && pause <= std::chrono::milliseconds(512); pause *= 2) {
        std::this_thread::sleep_for(pause);
        fd = ::openat(directory_fd, name, entry_open_flags, entry_mode);
    }
    return fd;
}

void write_plain(int directory_fd, prepared_entry& p) {
    sys::unique_fd fd(open_entry(directory_fd, p.name.data()));
    if (!fd) {
        p.record(errno, "open");
        return;
    }
    p.opened = true;
    std::array<iovec, 2> iov = p.iov;
    std::size_t done = 0;
    iovec* first = iov.data();
    int count = 2;
    while (done < p.expected) {
        const ssize_t n = sys::retry_eintr([&] { return ::writev(fd.get(), first, count); });
        if (n < 0) {
            p.record(errno, "write");
            break;
        }
        if (n == 0) {
            p.short_write = static_cast<std::int64_t>(done);
            p.record(EIO, "write");
            break;
        }
        done += static_cast<std::size_t>(n);
        advance_iovecs(first, count, static_cast<std::size_t>(n));
    }
    if (const std::error_code error = fd.close_checked()) {
        p.record(error.value(), "close");  // the data may not have reached the disk (Linux closes it even on EINTR)
    }
    remove_partial(directory_fd, p);
}

/// Plain syscalls on the CPU pool: a batch of entries split over `concurrency` tasks.
class plain_entry_writer final : public entry_writer {
public:
    plain_entry_writer(int directory_fd, std::size_t concurrency, entry_pool& pool, entry_fault_fn fail_entry)
        // At most one writer per core: creates in one directory scale across cores (tmpfs, 2 cores: 1.85x one
        // thread), while more threads than cores only add hand-offs. A producer's try_log takes tens of nanoseconds,
        // so sharing the cores with the writers costs it nothing measurable (see ads_bench_data_logger's latency run).
        : entry_writer(pool),
          fail_entry_(std::move(fail_entry)),
          directory_fd_(directory_fd),
          concurrency_(std::min<std::size_t>(concurrency, static_cast<std::size_t>(std::max(1, logical_cpu_count())))),
          limit_(std::max<std::size_t>(concurrency * 16, 512)) {
        batch_.reserve(limit_);
    }

    ~plain_entry_writer() override { warn_lost(abandon()); }

    std::size_t capacity_left() const noexcept override { return limit_ - batch_.size(); }

    void add(queued_entry* entry) override {
        batch_.emplace_back();
        batch_.back().prepare(entry, headers_, fail_entry_);
    }

    bool uses_io_uring() const noexcept override { return false; }

    std::size_t in_flight() const noexcept override { return batch_.size(); }

    asio::awaitable<std::size_t> async_complete_some(const completion_fn& done) override {
        const std::size_t n = batch_.size();
        // Small batches stay on one thread: a hand-off to another pool thread costs more than a few entries.
        const std::size_t tasks = std::clamp<std::size_t>(n / min_entries_per_task, 1, concurrency_);
        std::function<void(std::size_t)> work = [this, n, tasks](std::size_t task) {
            for (std::size_t i = task; i < n; i += tasks) {
                write_plain(directory_fd_, batch_[i]);
            }
        };
        co_await async_parallel_for(tasks, std::move(work));
        std::size_t released = 0;
        entry_pool::release_batch recycled(pool());
        for (auto& p : batch_) {
            released += p.finish(done, recycled);
        }
        batch_.clear();
        co_return released;
    }

    std::uint64_t abandon() noexcept override {
        const std::uint64_t n = batch_.size();
        for (auto& p : batch_) {
            release(p.entry);
        }
        batch_.clear();
        return n;
    }

private:
    static constexpr std::size_t min_entries_per_task = 32;

    entry_fault_fn fail_entry_;
    int directory_fd_;
    std::size_t concurrency_;
    std::size_t limit_;
    std::vector<prepared_entry> batch_;
    npy_header_cache headers_;
};

/// io_uring: per entry a linked chain openat(direct slot) → writev(fixed file) ⇒ close(slot), the close hard-linked
/// so it runs even after a failed write. When the write or the close failed after the open, an unlinkat of the partial
/// file follows once the chain is done. Completions are announced on an eventfd the executor watches.
class uring_entry_writer final : public entry_writer {
public:
    static std::unique_ptr<uring_entry_writer> create(const asio::strand<asio::any_io_executor>& executor,
                                                      int directory_fd, std::size_t concurrency, entry_pool& pool,
                                                      entry_fault_fn fail_entry) {
        auto writer =
            std::unique_ptr<uring_entry_writer>(new uring_entry_writer(executor, directory_fd, concurrency, pool));
        writer->fail_entry_ = std::move(fail_entry);
        if (!writer->init()) {
            return nullptr;
        }
        return writer;
    }

    ~uring_entry_writer() override {
        warn_lost(abandon());
        ring_.retire();  // before the slots' buffers go
    }

    std::size_t capacity_left() const noexcept override { return free_.size(); }

    void add(queued_entry* entry) override {
        const unsigned index = free_.back();
        free_.pop_back();
        slot& s = slots_[index];
        s.entry.prepare(entry, headers_, fail_entry_);
        s.pending = 3;
        ++in_flight_;
        io_uring_sqe* open_sqe = ring_.sqe();
        io_uring_prep_openat_direct(open_sqe, directory_fd_, s.entry.name.data(), direct_open_flags, entry_mode, index);
        open_sqe->flags |= IOSQE_IO_LINK;
        sys::set_tag(open_sqe, index, sys::op::open);
        io_uring_sqe* write_sqe = ring_.sqe();
        io_uring_prep_writev(write_sqe, static_cast<int>(index), s.entry.iov.data(), 2, 0);
        write_sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK;
        sys::set_tag(write_sqe, index, sys::op::write);
        io_uring_sqe* close_sqe = ring_.sqe();
        io_uring_prep_close_direct(close_sqe, index);
        sys::set_tag(close_sqe, index, sys::op::close);
    }

    bool uses_io_uring() const noexcept override { return true; }

    std::size_t in_flight() const noexcept override { return in_flight_; }

    asio::awaitable<std::size_t> async_complete_some(const completion_fn& done) override {
        submit();
        for (;;) {
            std::size_t released = 0;
            const std::size_t finished = reap(done, released);
            if (finished > 0 || in_flight_ == 0) {
                co_return released;
            }
            // The eventfd counts completions; reading it (immediately if already non-zero) is the wake-up.
            std::uint64_t counter = 0;
            auto [ec, n] = co_await events_.async_read_some(asio::buffer(&counter, sizeof counter), nothrow);
            if (ec && ec != asio::error::would_block && ec != asio::error::interrupted) {
                throw_os_error(ec, "Unable to wait for io_uring completions of the data logger.");
            }
            (void)n;
        }
    }

    std::uint64_t abandon() noexcept override {
        if (in_flight_ == 0) {
            return 0;
        }
        // The kernel may still touch the buffers: cancel everything and wait for every completion before freeing.
        if (io_uring_sqe* cancel = io_uring_get_sqe(&ring_.get())) {
            io_uring_prep_cancel64(cancel, 0, IORING_ASYNC_CANCEL_ANY);
            sys::set_tag(cancel, 0, sys::op::aux);
        }
        std::uint64_t lost = 0;
        const auto handle = [this, &lost](const sys::completion& c) {
            if (c.kind == sys::op::aux) {
                return;
            }
            slot& s = slots_[c.index];
            note(s.entry, c);
            if (--s.pending == 0) {
                // Whatever was cancelled after its open leaves a partial file: remove it here, synchronously.
                remove_partial(directory_fd_, s.entry);
                release(s.entry.entry);
                s.entry.entry = nullptr;
                free_.push_back(static_cast<unsigned>(c.index));
                --in_flight_;
                ++lost;
            }
        };
        while (in_flight_ > 0) {
            if (ring_.submit_and_reap(handle)) {
                break;  // ring unusable: leak the buffers rather than free memory the kernel may write
            }
        }
        return lost;
    }

private:
    struct slot {
        prepared_entry entry;
        unsigned pending = 0;
    };

    uring_entry_writer(const asio::strand<asio::any_io_executor>& executor, int directory_fd, std::size_t concurrency,
                       entry_pool& pool)
        : entry_writer(pool),
          ring_(static_cast<unsigned>(concurrency) * 4),
          events_(executor),
          directory_fd_(directory_fd),
          slots_(concurrency) {}

    bool init() {
        const auto slots = static_cast<unsigned>(slots_.size());
        if (!ring_.ready() || io_uring_register_files_sparse(&ring_.get(), slots) != 0) {
            return false;
        }
        // Each open with O_CREAT is punted to an io-wq worker; by default the kernel starts one per request in
        // flight, and they then fight over the directory's lock. One worker per core measured ~25% faster.
        const auto cores = static_cast<unsigned>(std::max(2, logical_cpu_count()));
        std::array<unsigned, 2> workers{cores, cores};                           // bounded, unbounded
        (void)io_uring_register_iowq_max_workers(&ring_.get(), workers.data());  // older kernels: keep their default
        const int efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (efd < 0) {
            return false;
        }
        events_.assign(efd);
        if (io_uring_register_eventfd(&ring_.get(), efd) != 0) {
            return false;
        }
        for (unsigned index = slots; index-- > 0;) {
            free_.push_back(index);
        }
        return true;
    }

    void submit() {
        if (const std::error_code ec = ring_.submit()) {
            throw_os_error(ec, "Unable to submit data logger writes to io_uring.");
        }
    }

    /// Records the completion of one step of an entry: open, writev, close, or the unlink of the partial file.
    static void note(prepared_entry& p, const sys::completion& c) noexcept {
        const int error = c.error().value();
        if (c.kind == sys::op::unlink) {
            p.removed(error);
        } else if (c.kind == sys::op::open && !c.error()) {
            p.opened = true;
        } else if (c.kind == sys::op::open) {
            p.record(error, "open");
        } else if (c.kind == sys::op::write && !c.error() && c.bytes() != p.expected) {
            // A short write completes with the byte count (no errno); it also fails the link, but the close is
            // hard-linked and runs anyway.
            p.short_write = c.res;
            p.record(EIO, "write");
        } else if (c.error()) {
            p.record(error, c.kind == sys::op::write ? "write" : "close");  // after a failed open: already recorded
        }
    }

    std::size_t reap(const completion_fn& done, std::size_t& released) {
        entry_pool::release_batch recycled(pool());
        std::size_t finished = 0;
        bool unlinking = false;
        ring_.reap([&](const sys::completion& c) {
            slot& s = slots_[c.index];
            prepared_entry& p = s.entry;
            note(p, c);
            if (--s.pending > 0) {
                return;
            }
            if (p.needs_removal() && p.unlink_error < 0) {
                // The whole chain is done (the close too): remove the partial file before reporting the entry.
                if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_.get())) {
                    io_uring_prep_unlinkat(sqe, directory_fd_, p.name.data(), 0);
                    sys::set_tag(sqe, c.index, sys::op::unlink);
                    s.pending = 1;  // the unlink's completion finishes the entry
                    unlinking = true;
                    return;
                }
                remove_partial(directory_fd_, p);  // no free submission entry: synchronously
            }
            released += p.finish(done, recycled);
            free_.push_back(static_cast<unsigned>(c.index));
            --in_flight_;
            ++finished;
        });
        if (unlinking) {
            submit();
        }
        return finished;
    }

    sys::uring ring_;
    asio::posix::stream_descriptor events_;
    int directory_fd_;
    std::vector<slot> slots_;
    std::vector<unsigned> free_;
    std::size_t in_flight_ = 0;
    npy_header_cache headers_;
    entry_fault_fn fail_entry_;
};

}  // namespace

entry_list::~entry_list() {
    std::uint64_t lost = 0;
    while (!empty()) {
        pool_->release(pop_front());
        ++lost;
    }
    warn_lost(lost);
}

void entry_list::append_chain(queued_entry* first, queued_entry* last) noexcept {
    if (first == nullptr) {
        return;
    }
    if (back_ == nullptr) {
        front_ = first;
    } else {
        back_->next = first;
    }
    back_ = last;
}

queued_entry* entry_list::pop_front() noexcept {
    queued_entry* entry = front_;
    front_ = entry->next;
    if (front_ == nullptr) {
        back_ = nullptr;
    }
    entry->next = nullptr;
    return entry;
}

std::unique_ptr<entry_writer> make_entry_writer(const asio::strand<asio::any_io_executor>& executor, int directory_fd,
                                                std::size_t concurrency, bool use_io_uring, entry_pool& pool,
                                                entry_fault_fn fail_entry) {
    if (use_io_uring && sys::uring_enabled(sys::uring_feature::direct_descriptors)) {
        if (auto writer = uring_entry_writer::create(executor, directory_fd, concurrency, pool, fail_entry)) {
            return writer;
        }
    }
    return std::make_unique<plain_entry_writer>(directory_fd, concurrency, pool, std::move(fail_entry));
}

}  // namespace axds::detail
