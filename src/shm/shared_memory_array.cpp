#include <axds/shm/shared_memory_array.hpp>

#include "shm/futex_ring.hpp"
#include "shm/lock_spin.hpp"
#include "sys/error.hpp"
#include "sys/io.hpp"
#include "sys/unique_fd.hpp"

#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/error.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <thread>
#include <unordered_map>

#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

namespace axds {

namespace {

constexpr std::uint64_t control_magic = 0x31595241'53445841ULL;  // "AXDSARY1" little-endian
constexpr std::uint32_t control_version = 1;
constexpr std::size_t max_dimensions = 8;

/// After the data, at a 64-byte aligned offset. The magic is written last by the creator.
struct control_block {
    std::atomic<std::uint64_t> magic;
    std::uint32_t version;
    std::uint32_t dtype;
    std::uint32_t ndim;
    std::uint32_t element_size;
    std::array<std::uint64_t, max_dimensions> shape;
    pthread_mutex_t mutex;
};

std::size_t control_offset(std::size_t nbytes) {
    return (nbytes + 63) / 64 * 64;
}

std::string shape_text(const std::vector<std::size_t>& shape) {
    if (shape.size() == 1) {
        return fmt::format("({},)", shape[0]);
    }
    return fmt::format("({})", fmt::join(shape, ", "));
}

/// The mutex word with FUTEX_WAITERS set: its holder's unlock then wakes a futex waiter.
int with_waiters_bit(int value) noexcept {
    return static_cast<int>(static_cast<unsigned>(value) | FUTEX_WAITERS);
}

/// Waits for the robust mutex of one mapped control block to change hands, for async_lock (no polling).
///
/// The mutex word is glibc's futex word (`__data.__lock`: the holder's TID | FUTEX_WAITERS | FUTEX_OWNER_DIED). A
/// waiting async_lock registers a request; one thread per connected segment (started on the first wait, it exits
/// after idling for idle_linger) sets FUTEX_WAITERS on the word, as a blocked pthread_mutex_lock would, so the
/// holder's unlock wakes it, and sleeps in futex_waitv on that word and a private control word (new deadlines,
/// shutdown). When the word changes it posts every pending request to its executor, where the coroutine retries
/// pthread_mutex_trylock: the lock is always taken by the thread that will release it, so the robust list (holder
/// killed: the kernel sets FUTEX_OWNER_DIED and wakes a waiter, the next trylock reports EOWNERDEAD) and glibc's
/// ownership check work unchanged. A wake the thread consumed is never lost for glibc's own waiters: a coroutine that
/// takes the lock after a wait sets FUTEX_WAITERS on it (its unlock wakes the next sleeper), one that fails re-queues
/// (the thread sets the bit on the new holder), a cancelled request and a wake with no request pass it on.
class mutex_waiter {
public:
    struct request {
        virtual ~request() = default;
        /// Posts the awaiting operation's completion to its executor; called exactly once.
        virtual void complete(std::error_code error) = 0;
        std::chrono::steady_clock::time_point deadline;
    };

    explicit mutex_waiter(int* word) : word_(word) {}

    mutex_waiter(const mutex_waiter&) = delete;
    mutex_waiter& operator=(const mutex_waiter&) = delete;

    ~mutex_waiter() { shutdown(); }

    void add(const std::shared_ptr<request>& r) {
        std::unique_lock lock(mutex_);
        if (stopped_) {
            lock.unlock();
            r->complete({});  // disconnected meanwhile: the retry reports it
            return;
        }
        requests_.push_back(r);
        if (!running_) {
            if (thread_.joinable()) {
                thread_.join();  // it decided to exit (idle) and has nothing left to do
            }
            running_ = true;
            thread_ = std::thread([this] { run(); });
        }
        wake_thread();
        idle_.notify_one();
    }

    /// Removes `r` if still pending (then the caller owns its completion) and passes on any wake it consumed.
    bool cancel(const request* r) {
        {
            const std::lock_guard lock(mutex_);
            const auto it =
                std::find_if(requests_.begin(), requests_.end(), [r](const auto& p) { return p.get() == r; });
            if (it == requests_.end()) {
                return false;
            }
            requests_.erase(it);
            wake_thread();
        }
        futex_wake(word_, 1, false);
        return true;
    }

    /// Stops the thread (before the mapping goes) and completes every pending request; they retry and see why.
    void shutdown() noexcept {
        std::vector<std::shared_ptr<request>> pending;
        std::thread thread;
        {
            const std::lock_guard lock(mutex_);
            stopped_ = true;
            pending.swap(requests_);
            thread.swap(thread_);
            wake_thread();
            idle_.notify_one();
        }
        if (thread.joinable()) {
            thread.join();
        }
        for (const auto& r : pending) {
            r->complete({});
        }
    }

    /// Number of waiter threads alive (0 or 1), for tests.
    [[nodiscard]] bool thread_running() {
        const std::lock_guard lock(mutex_);
        return running_;
    }

private:
    static constexpr auto idle_linger = std::chrono::milliseconds(50);

    static long futex_wake(int* word, int count, bool private_word) noexcept {
        return ::syscall(SYS_futex, word, private_word ? FUTEX_WAKE_PRIVATE : FUTEX_WAKE, count, nullptr, nullptr, 0);
    }

    /// Under mutex_: a new epoch on the control word interrupts the thread's futex_waitv.
    void wake_thread() noexcept {
        std::atomic_ref<int>(control_).fetch_add(1, std::memory_order_release);
        futex_wake(&control_, 1, true);
    }

    [[nodiscard]] std::chrono::steady_clock::time_point earliest_deadline() const {
        auto earliest = std::chrono::steady_clock::time_point::max();
        for (const auto& r : requests_) {
            earliest = std::min(earliest, r->deadline);
        }
        return earliest;
    }

    /// One sleep on {mutex word == value, control word == epoch} until `deadline`: true if it was woken or a word
    /// had changed, false on the deadline.
    bool sleep(int value, int epoch, std::chrono::steady_clock::time_point deadline) const noexcept;

    /// Under `lock`: posts the requests to retry (all, or only those past their deadline).
    void complete(std::unique_lock<std::mutex>& lock, bool only_expired);

    void run();

    int* word_;
    int control_ = 0;  ///< private futex word: epoch bumped by wake_thread()
    std::mutex mutex_;
    std::condition_variable idle_;
    std::vector<std::shared_ptr<request>> requests_;
    std::thread thread_;
    bool running_ = false;
    bool stopped_ = false;
};

bool mutex_waiter::sleep(int value, int epoch, std::chrono::steady_clock::time_point deadline) const noexcept {
    std::array<futex_waitv, 2> waits{};
    waits[0].uaddr = reinterpret_cast<std::uintptr_t>(word_);  // NOLINT: the kernel takes addresses as integers
    waits[0].val = static_cast<std::uint32_t>(value);
    waits[0].flags = FUTEX_32;  // shared: the holder's glibc wakes it through the mapping
    waits[1].uaddr = reinterpret_cast<std::uintptr_t>(&control_);  // NOLINT
    waits[1].val = static_cast<std::uint32_t>(epoch);
    waits[1].flags = FUTEX_32 | FUTEX_PRIVATE_FLAG;
    timespec until{};
    const bool bounded = deadline != std::chrono::steady_clock::time_point::max();
    if (bounded) {
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
        until.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
        until.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    }
    const long rc =
        ::syscall(SYS_futex_waitv, waits.data(), waits.size(), 0, bounded ? &until : nullptr, CLOCK_MONOTONIC);
    if (rc >= 0 || errno == EAGAIN || errno == EINTR) {
        return true;
    }
    if (errno == ETIMEDOUT) {
        return false;
    }
    // futex_waitv refused (ENOSYS before Linux 5.16, or a seccomp filter): the mutex word alone in 1 ms slices (new
    // deadlines and shutdown are seen at the next slice); if even that is refused, a plain 1 ms sleep, never a spin.
    const timespec slice{0, 1'000'000};
    const long single = ::syscall(SYS_futex, word_, FUTEX_WAIT, value, &slice, nullptr, 0);
    if (single != 0 && errno != ETIMEDOUT && errno != EAGAIN && errno != EINTR) {
        ::nanosleep(&slice, nullptr);
    }
    return single == 0 || std::chrono::steady_clock::now() < deadline;
}

void mutex_waiter::complete(std::unique_lock<std::mutex>& lock, bool only_expired) {
    std::vector<std::shared_ptr<request>> ready;
    if (only_expired) {
        const auto now = std::chrono::steady_clock::now();
        const auto expired = std::stable_partition(requests_.begin(), requests_.end(),
                                                   [now](const auto& r) { return r->deadline > now; });
        ready.assign(std::make_move_iterator(expired), std::make_move_iterator(requests_.end()));
        requests_.erase(expired, requests_.end());
    } else {
        ready.swap(requests_);
    }
    lock.unlock();
    for (const auto& r : ready) {
        r->complete({});
    }
    lock.lock();
}

void mutex_waiter::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        if (stopped_) {
            break;
        }
        if (requests_.empty()) {
            if (!idle_.wait_for(lock, idle_linger, [this] { return stopped_ || !requests_.empty(); })) {
                break;  // idle: exit; add() starts a new thread
            }
            continue;
        }
        const int epoch = std::atomic_ref<int>(control_).load(std::memory_order_acquire);
        const auto deadline = earliest_deadline();
        std::atomic_ref<int> word(*word_);
        int value = word.load(std::memory_order_acquire);
        if (value == 0 || (static_cast<unsigned>(value) & FUTEX_OWNER_DIED) != 0) {
            complete(lock, false);  // free (or its holder died): the coroutines' trylock takes or repairs it
            continue;
        }
        if ((static_cast<unsigned>(value) & FUTEX_WAITERS) == 0 &&
            !word.compare_exchange_strong(value, with_waiters_bit(value))) {
            continue;  // changed hands meanwhile: look again
        }
        value = with_waiters_bit(value);
        lock.unlock();
        const bool woken = sleep(value, epoch, deadline);
        lock.lock();
        if (!woken) {
            complete(lock, true);  // past a deadline: those coroutines make their last try and time out
        } else if (std::atomic_ref<int>(control_).load(std::memory_order_acquire) == epoch) {
            if (requests_.empty()) {
                futex_wake(word_, 1, false);  // the wake was meant for someone: pass it on
            }
            complete(lock, false);
        }
    }
    running_ = false;
}

/// The completion of one wait: holds the awaiting operation's handler and the work that keeps its executor running.
template <typename Handler>
class mutex_wait_request final : public mutex_waiter::request {
public:
    explicit mutex_wait_request(Handler handler)
        : handler_(std::move(handler)), work_(asio::make_work_guard(asio::get_associated_executor(handler_))) {}

    void complete(std::error_code error) override {
        auto executor = work_.get_executor();
        asio::post(executor, [handler = std::move(handler_), error]() mutable { handler(error); });
        work_.reset();
    }

private:
    Handler handler_;
    asio::executor_work_guard<asio::associated_executor_t<Handler>> work_;
};

/// co_await-able: completes when the mutex word changed, the deadline passed or the segment disconnected (all with
/// success: the caller retries), or with operation_aborted when cancelled.
template <typename Token>
auto async_wait_for_mutex(const std::shared_ptr<mutex_waiter>& waiter, std::chrono::steady_clock::time_point deadline,
                          Token&& token) {
    return asio::async_initiate<Token, void(std::error_code)>(
        [](auto handler, std::shared_ptr<mutex_waiter> w, std::chrono::steady_clock::time_point until) {
            using handler_type = std::decay_t<decltype(handler)>;
            auto slot = asio::get_associated_cancellation_slot(handler);
            auto r = std::make_shared<mutex_wait_request<handler_type>>(std::move(handler));
            r->deadline = until;
            if (slot.is_connected()) {
                slot.assign([weak = std::weak_ptr<mutex_waiter::request>(r), w](asio::cancellation_type type) {
                    const auto pending = weak.lock();
                    if (type != asio::cancellation_type::none && pending && w->cancel(pending.get())) {
                        pending->complete(asio::error::operation_aborted);
                    }
                });
            }
            w->add(r);
        },
        token, waiter, deadline);
}

}  // namespace

struct shm_lock_guard::state {
    std::string name;
    shm_dtype dtype{};
    std::size_t element_size = 0;
    std::vector<std::size_t> shape;
    std::size_t count = 0;
    std::size_t nbytes = 0;
    std::size_t total = 0;
    sys::unique_fd fd;
    void* map = nullptr;
    bool owner = false;
    std::atomic<int> held_locks{0};
    bool foreign = false;  ///< attach_python: no control block, the buffer is exactly nbytes
    shm_lock_kind lock_kind = shm_lock_kind::robust_mutex;
    std::string semaphore_name;                ///< POSIX name ("/mp-…") of a named_semaphore lock
    sem_t* semaphore = nullptr;                ///< open while connected
    std::shared_ptr<mutex_waiter> waiter;      ///< async_lock's wait on the robust mutex, while mapped (fallback)
    std::shared_ptr<detail::futex_ring> ring;  ///< async_lock's io_uring futex wait, while mapped (when usable)
    shm_byte_order byte_order = shm_byte_order::native;
    bool swap = false;

    state() = default;
    state(const state&) = delete;
    state& operator=(const state&) = delete;

    ~state() { unmap(); }

    [[nodiscard]] control_block* control() const {
        return reinterpret_cast<control_block*>(static_cast<char*>(map) + control_offset(nbytes));  // NOLINT
    }

    void unmap() noexcept {
        if (waiter) {
            waiter->shutdown();  // its thread sleeps on the mapped mutex word
            waiter.reset();
        }
        if (ring) {
            ring->shutdown();  // so do its queued futex waits
            ring.reset();
        }
        if (semaphore != nullptr) {
            ::sem_close(semaphore);
            semaphore = nullptr;
        }
        if (map != nullptr) {
            ::munmap(map, total);
            map = nullptr;
        }
        fd.reset();
    }
};

namespace {

using segment_state = shm_lock_guard::state;

/// Process-wide: buffer name → the object that owns (will unlink) it (spec §5.3).
std::mutex registry_mutex;

std::unordered_map<std::string, std::weak_ptr<segment_state>>& owners() {
    static std::unordered_map<std::string, std::weak_ptr<segment_state>> map;
    return map;
}

std::string posix_name(const std::string& name) {
    return "/" + name;
}

void map_buffer(segment_state& s) {
    s.map = ::mmap(nullptr, s.total, PROT_READ | PROT_WRITE, MAP_SHARED, s.fd.get(), 0);
    if (s.map == MAP_FAILED) {
        s.map = nullptr;
        const int error = errno;
        throw_errno(error, fmt::format("Unable to map the '{}' SharedMemoryArray buffer: {}.", s.name,
                                       sys::errno_message(error)));
    }
    if (!s.foreign) {
        s.waiter = std::make_shared<mutex_waiter>(&s.control()->mutex.__data.__lock);
        if (sys::uring_enabled(axds::sys::uring_feature::futex_wait)) {
            s.ring = std::make_shared<detail::futex_ring>(&s.control()->mutex.__data.__lock);
        }
    }
}

/// pthread_mutex_lock-family result → guard (EOWNERDEAD: make consistent and tell the caller).
bool handle_lock_result(int rc, pthread_mutex_t* mutex, const std::string& name) {
    if (rc == 0) {
        return false;
    }
    if (rc == EOWNERDEAD) {
        pthread_mutex_consistent(mutex);
        return true;
    }
    throw_errno(rc, fmt::format("Unable to lock the '{}' SharedMemoryArray: {}.", name, sys::errno_message(rc)));
}

/// numpy's str() of a non-native dtype: ">u8", ">f4", "<i2".
std::string dtype_typestr(shm_dtype dtype, std::size_t element_size, shm_byte_order order) {
    const char kind = dtype == shm_dtype::float32 || dtype == shm_dtype::float64 ? 'f'
                      : dtype == shm_dtype::boolean                              ? 'b'
                      : static_cast<std::uint32_t>(dtype) % 2 == 1               ? 'i'
                                                                                 : 'u';
    return fmt::format("{}{}{}", order == shm_byte_order::big ? '>' : '<', kind, element_size);
}

std::string semaphore_path(const std::string& posix) {
    return "/dev/shm/sem." + posix.substr(1);
}

/// The array's dtype as numpy prints it: by name when native ("uint64"), by type string otherwise (">u8").
std::string datatype_text(const shm_lock_guard::state& s) {
    return s.swap ? dtype_typestr(s.dtype, s.element_size, s.byte_order) : std::string(shm_dtype_name(s.dtype));
}

/// Blocks for the array's lock; true if a dead holder's robust mutex was repaired.
bool acquire_lock(segment_state& s) {
    switch (s.lock_kind) {
        case shm_lock_kind::robust_mutex: {
            control_block* control = s.control();
            return handle_lock_result(pthread_mutex_lock(&control->mutex), &control->mutex, s.name);
        }
        case shm_lock_kind::named_semaphore:
            if (sys::retry_eintr([&s] { return ::sem_wait(s.semaphore); }) != 0) {
                const int error = errno;
                throw_errno(error, fmt::format("Unable to lock the '{}' SharedMemoryArray: sem_wait on its "
                                               "semaphore {} failed: {}.",
                                               s.name, s.semaphore_name, sys::errno_message(error)));
            }
            return false;
        case shm_lock_kind::none: break;
    }
    return false;
}

/// One try: std::nullopt when another holder has the lock, else the dead-holder flag.
std::optional<bool> try_acquire_lock(segment_state& s) {
    switch (s.lock_kind) {
        case shm_lock_kind::robust_mutex: {
            control_block* control = s.control();
            const int rc = pthread_mutex_trylock(&control->mutex);
            if (rc == EBUSY) {
                return std::nullopt;
            }
            return handle_lock_result(rc, &control->mutex, s.name);
        }
        case shm_lock_kind::named_semaphore:
            if (sys::retry_eintr([&s] { return ::sem_trywait(s.semaphore); }) != 0) {
                if (errno == EAGAIN) {
                    return std::nullopt;
                }
                const int error = errno;
                throw_errno(error, fmt::format("Unable to lock the '{}' SharedMemoryArray: sem_trywait on its "
                                               "semaphore {} failed: {}.",
                                               s.name, s.semaphore_name, sys::errno_message(error)));
            }
            return false;
        case shm_lock_kind::none: break;
    }
    return false;
}

void release_lock(segment_state& s) noexcept {
    switch (s.lock_kind) {
        case shm_lock_kind::robust_mutex:
            if (s.map != nullptr) {
                pthread_mutex_unlock(&s.control()->mutex);
            }
            break;
        case shm_lock_kind::named_semaphore:
            if (s.semaphore != nullptr) {
                ::sem_post(s.semaphore);
            }
            break;
        case shm_lock_kind::none: break;
    }
}

/// The explicit lock calls on an array attached unlocked.
void require_lock(const segment_state& s) {
    if (s.lock_kind == shm_lock_kind::none) {
        throw runtime_error(fmt::format(
            "Unable to lock the '{}' SharedMemoryArray: it was attached with attach_python(..., {{.unlocked = true}}), "
            "so it has no lock. Attach it with the semaphore of its Python multiprocessing.Lock "
            "(shm_python_options::semaphore) to lock it.",
            s.name));
    }
}

}  // namespace

std::string_view shm_dtype_name(shm_dtype dtype) noexcept {
    switch (dtype) {
        case shm_dtype::int8: return "int8";
        case shm_dtype::uint8: return "uint8";
        case shm_dtype::int16: return "int16";
        case shm_dtype::uint16: return "uint16";
        case shm_dtype::int32: return "int32";
        case shm_dtype::uint32: return "uint32";
        case shm_dtype::int64: return "int64";
        case shm_dtype::uint64: return "uint64";
        case shm_dtype::float32: return "float32";
        case shm_dtype::float64: return "float64";
        case shm_dtype::boolean: return "bool";
    }
    return "unknown";
}

shm_lock_guard::shm_lock_guard(shm_lock_guard&& other) noexcept
    : state_(std::move(other.state_)), previous_owner_died_(other.previous_owner_died_) {}

shm_lock_guard& shm_lock_guard::operator=(shm_lock_guard&& other) noexcept {
    if (this != &other) {
        unlock();
        state_ = std::move(other.state_);
        previous_owner_died_ = other.previous_owner_died_;
    }
    return *this;
}

shm_lock_guard::~shm_lock_guard() {
    unlock();
}

void shm_lock_guard::unlock() noexcept {
    if (state_) {
        release_lock(*state_);
        state_->held_locks.fetch_sub(1);
        state_.reset();
    }
}

shared_memory_segment::shared_memory_segment(std::string name, shm_dtype dtype, std::size_t element_size,
                                             std::vector<std::size_t> shape)
    : state_(std::make_shared<segment_state>()) {
    if (name.empty() || name.size() > 250 || name.find('/') != std::string::npos ||
        name.find('\0') != std::string::npos) {
        throw value_error(fmt::format(
            "Unable to use '{}' as a SharedMemoryArray name: it must be 1-250 characters without '/' or NUL.", name));
    }
    std::size_t count = shape.empty() ? 0 : 1;
    bool overflow = false;
    for (const std::size_t extent : shape) {
        overflow = __builtin_mul_overflow(count, extent, &count) || overflow;
    }
    const bool empty = shape.empty() || std::find(shape.begin(), shape.end(), std::size_t{0}) != shape.end();
    // Every byte offset (and the control block after the data) must fit a signed index: that bounds the element count.
    std::size_t nbytes = 0;
    if (!empty && (overflow || __builtin_mul_overflow(count, element_size, &nbytes) ||
                   nbytes > static_cast<std::size_t>(PTRDIFF_MAX) / 2)) {
        throw value_error(fmt::format(
            "Unable to create the '{}' SharedMemoryArray object: the shape {} is too large. Its element count times "
            "the {}-byte element size does not fit in the address space.",
            name, shape_text(shape), element_size));
    }
    if (empty) {
        throw value_error(fmt::format(
            "Unable to create the '{}' SharedMemoryArray object: 'size' must be a positive number different from "
            "zero, but the shape {} holds no elements.",
            name, shape.empty() ? std::string("()") : shape_text(shape)));
    }
    if (shape.size() > max_dimensions) {
        throw value_error(
            fmt::format("Unable to create the '{}' SharedMemoryArray object: at most {} dimensions are "
                        "supported, but the shape has {}.",
                        name, max_dimensions, shape.size()));
    }
    auto& s = *state_;
    s.name = std::move(name);
    s.dtype = dtype;
    s.element_size = element_size;
    s.shape = std::move(shape);
    s.count = count;
    s.nbytes = count * element_size;
    s.total = control_offset(s.nbytes) + sizeof(control_block);
}

shared_memory_segment::shared_memory_segment(shared_memory_segment&&) noexcept = default;

shared_memory_segment& shared_memory_segment::operator=(shared_memory_segment&& other) noexcept {
    if (this != &other) {
        if (state_) {
            if (state_->owner) {
                destroy();
            } else if (state_->held_locks.load() == 0) {
                state_->unmap();  // else the last guard's release unmaps it (the state's destructor)
            }
        }
        state_ = std::move(other.state_);
    }
    return *this;
}

shared_memory_segment::~shared_memory_segment() {
    if (!state_) {
        return;  // moved from
    }
    if (state_->owner) {
        destroy();
    } else if (state_->held_locks.load() == 0) {
        state_->unmap();  // else the last guard's release unmaps it (the state's destructor)
    }
}

const std::string& shared_memory_segment::name() const noexcept {
    return state_->name;
}

const std::vector<std::size_t>& shared_memory_segment::shape() const noexcept {
    return state_->shape;
}

std::size_t shared_memory_segment::size() const noexcept {
    return state_->count;
}

shm_dtype shared_memory_segment::dtype() const noexcept {
    return state_->dtype;
}

bool shared_memory_segment::is_connected() const noexcept {
    return state_->map != nullptr;
}

bool shared_memory_segment::owns_buffer() const noexcept {
    return state_->owner;
}

shm_lock_kind shared_memory_segment::lock_kind() const noexcept {
    return state_->lock_kind;
}

shm_byte_order shared_memory_segment::byte_order() const noexcept {
    return state_->byte_order;
}

bool shared_memory_segment::swaps_bytes() const noexcept {
    return state_->swap;
}

void shared_memory_segment::configure_python(const shm_python_options& options) {
    auto& s = *state_;
    if (options.semaphore.empty() == !options.unlocked) {
        throw value_error(fmt::format(
            "Unable to attach to the '{}' SharedMemoryArray made by Python: {}. Give the name of the semaphore of the "
            "Python multiprocessing.Lock that guards it (shm_python_options::semaphore, Python's "
            "lock._semlock.name), or set shm_python_options::unlocked to access it without a lock.",
            s.name,
            options.unlocked ? "both a semaphore and 'unlocked' were given"
                             : "no lock was chosen (neither a semaphore nor 'unlocked')"));
    }
    if (!options.unlocked) {
        std::string posix = options.semaphore.front() == '/' ? options.semaphore : "/" + options.semaphore;
        // glibc maps "/x" to /dev/shm/sem.x: one path component, NAME_MAX minus "sem.".
        if (posix.size() < 2 || posix.size() > 252 || posix.find('/', 1) != std::string::npos ||
            posix.find('\0') != std::string::npos) {
            throw value_error(
                fmt::format("Unable to use '{}' as the semaphore of the '{}' SharedMemoryArray: a POSIX "
                            "semaphore name is 1-251 characters after an optional leading '/', without "
                            "another '/' or NUL.",
                            options.semaphore, s.name));
        }
        s.semaphore_name = std::move(posix);
        s.lock_kind = shm_lock_kind::named_semaphore;
    } else {
        s.lock_kind = shm_lock_kind::none;
    }
    s.foreign = true;
    s.total = s.nbytes;
    s.byte_order = options.byte_order;
    const shm_byte_order resolved =
        options.byte_order == shm_byte_order::native
            ? (std::endian::native == std::endian::big ? shm_byte_order::big : shm_byte_order::little)
            : options.byte_order;
    const shm_byte_order host = std::endian::native == std::endian::big ? shm_byte_order::big : shm_byte_order::little;
    s.swap = s.element_size > 1 && resolved != host;
}

void shared_memory_segment::throw_non_native_view() const {
    throw value_error(fmt::format(
        "Unable to give a live view of the '{}' SharedMemoryArray: its elements are stored in {}-endian byte order "
        "({}), not this machine's, so a view would show byte-swapped values. Use get/set/read/write, which convert.",
        state_->name, state_->byte_order == shm_byte_order::big ? "big" : "little",
        dtype_typestr(state_->dtype, state_->element_size, state_->byte_order)));
}

void shared_memory_segment::create_buffer(const void* initial, bool exists_ok) {
    auto& s = *state_;
    const std::string shm_name = posix_name(s.name);
    s.fd.reset(::shm_open(shm_name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
    if (!s.fd && errno == EEXIST) {
        if (!exists_ok) {
            throw file_exists_error(
                std::make_error_code(std::errc::file_exists),
                fmt::format("Unable to create the '{}' SharedMemoryArray object, as an object with this name already "
                            "exists. If this method is called from a child process, use the connect() method "
                            "instead to connect to the existing buffer. To clean-up the buffer left over from a "
                            "previous runtime, run this method with the 'exists_ok' flag set to True.",
                            s.name));
        }
        {
            // The superseded owner in this process must not unlink the replacement when it is destroyed.
            const std::lock_guard lock(registry_mutex);
            if (const auto previous = owners()[s.name].lock()) {
                previous->owner = false;
            }
        }
        if (::shm_unlink(shm_name.c_str()) != 0 && errno != ENOENT) {
            const int error = errno;  // e.g. EACCES: another user's buffer in /dev/shm (sticky): say so, not "in use"
            throw_errno(error, fmt::format("Unable to recreate the '{}' SharedMemoryArray object: the existing buffer "
                                           "/dev/shm{} cannot be removed: {}.",
                                           s.name, shm_name, sys::errno_message(error)));
        }
        s.fd.reset(::shm_open(shm_name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
        if (!s.fd && errno == EEXIST) {
            throw file_exists_error(
                std::make_error_code(std::errc::file_exists),
                fmt::format("Unable to recreate the '{}' SharedMemoryArray object, as the shared memory buffer with "
                            "this name is still held by an open handle. Disconnect every SharedMemoryArray instance "
                            "connected to this buffer, then call this method again.",
                            s.name));
        }
    }
    if (!s.fd) {
        const int error = errno;
        throw_errno(error, fmt::format("Unable to create the '{}' SharedMemoryArray buffer: {}.", s.name,
                                       sys::errno_message(error)));
    }
    try {
        if (::ftruncate(s.fd.get(), static_cast<off_t>(s.total)) != 0) {
            const int error = errno;
            throw_errno(error, fmt::format("Unable to size the '{}' SharedMemoryArray buffer to {} bytes: {}.", s.name,
                                           s.total, sys::errno_message(error)));
        }
        map_buffer(s);
        std::memcpy(s.map, initial, s.nbytes);
        control_block* control = s.control();
        control->version = control_version;
        control->dtype = static_cast<std::uint32_t>(s.dtype);
        control->ndim = static_cast<std::uint32_t>(s.shape.size());
        control->element_size = static_cast<std::uint32_t>(s.element_size);
        for (std::size_t i = 0; i < s.shape.size(); ++i) {
            control->shape[i] = s.shape[i];
        }
        pthread_mutexattr_t attributes;
        pthread_mutexattr_init(&attributes);
        pthread_mutexattr_setpshared(&attributes, PTHREAD_PROCESS_SHARED);
        pthread_mutexattr_setrobust(&attributes, PTHREAD_MUTEX_ROBUST);
        const int rc = pthread_mutex_init(&control->mutex, &attributes);
        pthread_mutexattr_destroy(&attributes);
        if (rc != 0) {
            throw_errno(rc, fmt::format("Unable to initialize the lock of the '{}' SharedMemoryArray.", s.name));
        }
        control->magic.store(control_magic, std::memory_order_release);
    } catch (...) {
        s.unmap();
        ::shm_unlink(shm_name.c_str());  // leave the name free (spec §5.4 step 3)
        throw;
    }
    s.owner = true;
    const std::lock_guard lock(registry_mutex);
    owners()[s.name] = state_;
}

namespace {

/// connect() for attach_python: the size must be exactly nbytes; opens the named semaphore.
void connect_python_buffer(segment_state& s, std::size_t size) {
    if (size != s.nbytes) {
        throw value_error(fmt::format(
            "Unable to connect to the '{}' SharedMemoryArray buffer made by Python: it holds {} bytes, but a {} array "
            "of shape {} holds exactly {}. The buffer was made for another shape or element type.{}",
            s.name, size, datatype_text(s), shape_text(s.shape), s.nbytes,
            size == control_offset(s.nbytes) + sizeof(control_block)
                ? " Its size is that of an axds buffer of this array (data and control block): attach it with "
                  "attach()."
                : ""));
    }
    map_buffer(s);
    if (s.lock_kind == shm_lock_kind::named_semaphore) {
        s.semaphore = ::sem_open(s.semaphore_name.c_str(), 0);
        if (s.semaphore == SEM_FAILED) {
            s.semaphore = nullptr;
            const int error = errno;
            throw_errno(
                error,
                fmt::format("Unable to open the semaphore {} ({}) that guards the '{}' SharedMemoryArray: {}. "
                            "It must be the name of a live Python multiprocessing.Lock (lock._semlock.name) "
                            "made from a 'spawn' or 'forkserver' context; a 'fork' context Lock is unlinked "
                            "as soon as it is made.",
                            s.semaphore_name, semaphore_path(s.semaphore_name), s.name, sys::errno_message(error)));
        }
    }
}

}  // namespace

void shared_memory_segment::connect() {
    auto& s = *state_;
    if (s.map != nullptr) {
        return;
    }
    s.fd.reset(::shm_open(posix_name(s.name).c_str(), O_RDWR | O_CLOEXEC, 0));
    if (!s.fd) {
        const int error = errno;
        throw_errno(error, fmt::format("Unable to connect to the '{}' SharedMemoryArray buffer: {}.", s.name,
                                       sys::errno_message(error)));
    }
    try {
        struct stat st {};

        if (::fstat(s.fd.get(), &st) != 0) {
            const int error = errno;
            throw_errno(error, fmt::format("Unable to connect to the '{}' SharedMemoryArray buffer: fstat failed: {}.",
                                           s.name, sys::errno_message(error)));
        }
        const auto size = static_cast<std::size_t>(st.st_size);
        if (s.foreign) {
            connect_python_buffer(s, size);
            return;
        }
        if (size < s.total) {
            throw value_error(fmt::format(
                "Unable to connect to the '{}' SharedMemoryArray buffer: it holds {} bytes, but a {} array of shape {} "
                "with its control block needs {}. The buffer was made for another array or by another library.{}",
                s.name, size, shm_dtype_name(s.dtype), shape_text(s.shape), s.total,
                size == s.nbytes ? " Its size is exactly the array's: if Python's SharedMemoryArray made it, attach "
                                   "with attach_python()."
                                 : ""));
        }
        map_buffer(s);
        const control_block* control = s.control();
        std::vector<std::size_t> stored_shape;
        for (std::uint32_t i = 0; i < std::min<std::uint32_t>(control->ndim, max_dimensions); ++i) {
            stored_shape.push_back(static_cast<std::size_t>(control->shape[i]));
        }
        if (control->magic.load(std::memory_order_acquire) != control_magic || control->version != control_version) {
            throw value_error(fmt::format(
                "Unable to connect to the '{}' SharedMemoryArray buffer: it has no axds control block (not created by "
                "axds, or its creator has not finished initializing it).",
                s.name));
        }
        if (control->dtype != static_cast<std::uint32_t>(s.dtype) || stored_shape != s.shape) {
            throw value_error(fmt::format(
                "Unable to connect to the '{}' SharedMemoryArray buffer: it holds a {} array of shape {}, not the "
                "requested {} array of shape {}.",
                s.name, shm_dtype_name(static_cast<shm_dtype>(control->dtype)), shape_text(stored_shape),
                shm_dtype_name(s.dtype), shape_text(s.shape)));
        }
    } catch (...) {
        s.unmap();
        throw;
    }
}

void shared_memory_segment::disconnect() {
    auto& s = *state_;
    if (s.held_locks.load() != 0) {
        throw runtime_error(fmt::format(
            "Unable to disconnect the '{}' SharedMemoryArray while a lock guard or locked view of it is alive.",
            s.name));
    }
    s.unmap();
}

void shared_memory_segment::destroy() {
    auto& s = *state_;
    if (s.held_locks.load() == 0) {
        s.unmap();
    }
    ::shm_unlink(posix_name(s.name).c_str());  // a missing buffer is fine
    if (s.owner) {
        s.owner = false;
        const std::lock_guard lock(registry_mutex);
        const auto it = owners().find(s.name);
        if (it != owners().end() && it->second.lock() == state_) {
            owners().erase(it);
        }
    }
}

shm_lock_guard shared_memory_segment::lock() {
    (void)data(access::view);
    require_lock(*state_);
    const bool died = acquire_lock(*state_);
    state_->held_locks.fetch_add(1);
    return {state_, died};
}

std::optional<shm_lock_guard> shared_memory_segment::lock_for_view() {
    if (state_->lock_kind == shm_lock_kind::none) {
        return std::nullopt;
    }
    return lock();
}

void shared_memory_segment::lock_raw() {
    (void)acquire_lock(*state_);
}

void shared_memory_segment::unlock_raw() noexcept {
    release_lock(*state_);
}

std::optional<shm_lock_guard> shared_memory_segment::try_lock() {
    (void)data(access::view);
    require_lock(*state_);
    const std::optional<bool> died = try_acquire_lock(*state_);
    if (!died) {
        return std::nullopt;
    }
    state_->held_locks.fetch_add(1);
    return shm_lock_guard(state_, *died);
}

bool shared_memory_segment::break_lock() {
    (void)data(access::view);
    auto& s = *state_;
    if (s.lock_kind != shm_lock_kind::named_semaphore) {
        return false;
    }
    int value = 0;
    if (::sem_getvalue(s.semaphore, &value) != 0) {
        const int error = errno;
        throw_errno(error, fmt::format("Unable to read the semaphore {} of the '{}' SharedMemoryArray: {}.",
                                       s.semaphore_name, s.name, sys::errno_message(error)));
    }
    if (value > 0) {
        return false;
    }
    if (::sem_post(s.semaphore) != 0) {
        const int error = errno;
        throw_errno(error, fmt::format("Unable to release the semaphore {} of the '{}' SharedMemoryArray: {}.",
                                       s.semaphore_name, s.name, sys::errno_message(error)));
    }
    return true;
}

std::optional<shm_lock_guard> shared_memory_segment::lock_for(std::chrono::nanoseconds timeout) {
    // try-lock with a short backoff rather than pthread_mutex_timedlock: the sanitizers' timedlock interceptor does
    // not understand EOWNERDEAD (dead holder), their trylock one does; hand-over still takes well under 1 ms.
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    auto delay = std::chrono::microseconds(20);
    for (;;) {
        std::optional<shm_lock_guard> guard = try_lock();
        if (guard || std::chrono::steady_clock::now() >= deadline) {
            return guard;
        }
        std::this_thread::sleep_for(delay);
        delay = std::min(delay * 2, std::chrono::microseconds(1000));
    }
}

namespace {

/// Sets FUTEX_WAITERS on a held robust mutex word, as a blocked pthread_mutex_lock does, so that its holder's
/// unlock (or the kernel, if the holder dies) wakes a futex waiter: the value a futex wait must expect, or nullopt
/// when the word is free or its holder died (the caller tries the lock again at once).
std::optional<std::uint32_t> announce_waiter(int* word) noexcept {
    std::atomic_ref<int> lock_word(*word);
    int value = lock_word.load(std::memory_order_acquire);
    for (;;) {
        const auto bits = static_cast<unsigned>(value);
        if (value == 0 || (bits & FUTEX_OWNER_DIED) != 0) {
            return std::nullopt;
        }
        if ((bits & FUTEX_WAITERS) != 0) {
            return bits;
        }
        if (lock_word.compare_exchange_weak(value, with_waiters_bit(value), std::memory_order_acq_rel)) {
            return static_cast<std::uint32_t>(with_waiters_bit(value));
        }
    }
}

[[noreturn]] void throw_lock_timeout(const segment_state& s, std::chrono::nanoseconds timeout) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
    if (s.lock_kind == shm_lock_kind::named_semaphore) {
        throw timeout_error(fmt::format(
            "Unable to lock the '{}' SharedMemoryArray within {} ms: its semaphore {} ({}) is still held. A "
            "POSIX semaphore is not robust: if the process holding it was killed, it stays locked for ever. "
            "Once sure that no live process holds it, reset it with break_lock() (in Python: "
            "lock.release()) from ONE process only: every waiter that breaks it adds a holder.",
            s.name, ms, s.semaphore_name, semaphore_path(s.semaphore_name)));
    }
    throw timeout_error(fmt::format("Unable to lock the '{}' SharedMemoryArray within {} ms.", s.name, ms));
}

}  // namespace

asio::awaitable<shm_lock_guard> shared_memory_segment::async_lock(std::optional<std::chrono::nanoseconds> timeout) {
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = timeout ? start + *timeout : std::chrono::steady_clock::time_point::max();
    if (state_->lock_kind == shm_lock_kind::named_semaphore) {
        co_return co_await async_lock_semaphore(deadline, timeout.value_or(std::chrono::nanoseconds(0)));
    }
    bool waited = false;
    bool spun = false;
    for (;;) {
        std::optional<shm_lock_guard> guard = try_lock();
        if (!guard && !spun) {
            // Once before each sleep: a waiter resumed a few microseconds after the holder's unlock would otherwise
            // keep losing the lock to a holder that takes it again at once, and sleep again (issue 21).
            spun = true;
            const auto until = std::min(deadline, std::chrono::steady_clock::now() + detail::lock_spin_budget);
            guard =
                detail::spin_for_lock(&state_->control()->mutex.__data.__lock, until, [this] { return try_lock(); });
        }
        if (guard) {
            if (waited) {
                // Keep glibc's waiters chain: the wake this wait consumed may have been the only one.
                std::atomic_ref<int>(state_->control()->mutex.__data.__lock)
                    .fetch_or(static_cast<int>(FUTEX_WAITERS), std::memory_order_relaxed);
            }
            co_return std::move(*guard);
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            throw_lock_timeout(*state_, *timeout);
        }
        const std::shared_ptr<detail::futex_ring> ring = state_->ring;
        if (ring && ring->usable()) {
            const std::optional<std::uint32_t> expected = announce_waiter(&state_->control()->mutex.__data.__lock);
            if (!expected) {
                continue;  // free, or its holder died: try again at once (no new spin)
            }
            co_await detail::async_futex_wait(ring, *expected, deadline, asio::use_awaitable);
        } else {
            const std::shared_ptr<mutex_waiter> waiter = state_->waiter;
            co_await async_wait_for_mutex(waiter, deadline, asio::use_awaitable);
        }
        waited = true;
        spun = false;
    }
}

asio::awaitable<shm_lock_guard> shared_memory_segment::async_lock_semaphore(
    std::chrono::steady_clock::time_point deadline, std::chrono::nanoseconds timeout) {
    // A POSIX semaphore has no waiter count one may set from outside glibc: try + timer backoff from 20 us to 1 ms.
    auto delay = std::chrono::microseconds(20);
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (;;) {
        std::optional<shm_lock_guard> guard = try_lock();
        if (guard) {
            co_return std::move(*guard);
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            throw_lock_timeout(*state_, timeout);
        }
        timer.expires_after(delay);
        co_await timer.async_wait(asio::use_awaitable);
        delay = std::min(delay * 2, std::chrono::microseconds(1000));
    }
}

std::string shared_memory_segment::describe() const {
    const auto& s = *state_;
    return fmt::format("SharedMemoryArray(name='{}', shape={}, datatype={}, connected={})", s.name, shape_text(s.shape),
                       datatype_text(s), is_connected() ? "True" : "False");
}

void* shared_memory_segment::data(access kind) const {
    if (state_->map != nullptr) {
        return state_->map;
    }
    switch (kind) {
        case access::read:
            throw connection_error(fmt::format(
                "Unable to access the data stored in the {} SharedMemoryArray instance, as the instance is not "
                "connected to the shared memory buffer. Call the connect() method prior to accessing the array's "
                "data.",
                state_->name));
        case access::write:
            throw connection_error(fmt::format(
                "Unable to modify the data stored in the {} SharedMemoryArray instance, as the instance is not "
                "connected to the shared memory buffer. Call the connect() method prior to modifying the array's "
                "data.",
                state_->name));
        case access::view: break;
    }
    throw connection_error(fmt::format(
        "Unable to access the data stored in the {} SharedMemoryArray instance, as it is not connected to the shared "
        "memory buffer. Call the connect() method prior to calling the array() method.",
        state_->name));
}

std::size_t shared_memory_segment::flat(std::ptrdiff_t index) const {
    const auto n = static_cast<std::ptrdiff_t>(state_->count);
    const std::ptrdiff_t at = index < 0 ? index + n : index;
    if (at < 0 || at >= n) {
        throw index_error(fmt::format("index {} is out of bounds for the '{}' SharedMemoryArray with size {}", index,
                                      state_->name, n));
    }
    return static_cast<std::size_t>(at);
}

std::size_t shared_memory_segment::flat(std::initializer_list<std::ptrdiff_t> index) const {
    const auto& shape = state_->shape;
    if (index.size() != shape.size()) {
        throw index_error(fmt::format("the '{}' SharedMemoryArray is {}-dimensional, but {} indices were given",
                                      state_->name, shape.size(), index.size()));
    }
    std::size_t offset = 0;
    std::size_t axis = 0;
    for (const std::ptrdiff_t i : index) {
        const auto extent = static_cast<std::ptrdiff_t>(shape[axis]);
        const std::ptrdiff_t at = i < 0 ? i + extent : i;
        if (at < 0 || at >= extent) {
            throw index_error(fmt::format("index {} is out of bounds for axis {} with size {}", i, axis, extent));
        }
        offset = offset * shape[axis] + static_cast<std::size_t>(at);
        ++axis;
    }
    return offset;
}

std::pair<std::size_t, std::size_t> shared_memory_segment::range(std::ptrdiff_t start, std::ptrdiff_t stop) const {
    const auto n = static_cast<std::ptrdiff_t>(state_->count);
    const auto clamp = [n](std::ptrdiff_t i) {
        if (i < 0) {
            i += n;
        }
        return static_cast<std::size_t>(std::clamp<std::ptrdiff_t>(i, 0, n));
    };
    const std::size_t from = clamp(start);
    const std::size_t to = clamp(stop);
    return {from, std::max(from, to)};
}

}  // namespace axds
