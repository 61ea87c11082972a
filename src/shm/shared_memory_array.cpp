#include <axds/shm/shared_memory_array.hpp>

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <thread>
#include <unordered_map>

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
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

}  // namespace

struct shm_lock_guard::state {
    std::string name;
    shm_dtype dtype{};
    std::size_t element_size = 0;
    std::vector<std::size_t> shape;
    std::size_t count = 0;
    std::size_t nbytes = 0;
    std::size_t total = 0;
    int fd = -1;
    void* map = nullptr;
    bool owner = false;
    std::atomic<int> held_locks{0};

    [[nodiscard]] control_block* control() const {
        return reinterpret_cast<control_block*>(static_cast<char*>(map) + control_offset(nbytes));  // NOLINT
    }

    void unmap() noexcept {
        if (map != nullptr) {
            ::munmap(map, total);
            map = nullptr;
        }
        if (fd >= 0) {
            ::close(fd);
            fd = -1;
        }
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
    s.map = ::mmap(nullptr, s.total, PROT_READ | PROT_WRITE, MAP_SHARED, s.fd, 0);
    if (s.map == MAP_FAILED) {
        s.map = nullptr;
        const int error = errno;
        throw_errno(error, fmt::format("Unable to map the '{}' SharedMemoryArray buffer: {}.", s.name,
                                       std::system_category().message(error)));
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
    throw_errno(
        rc, fmt::format("Unable to lock the '{}' SharedMemoryArray: {}.", name, std::system_category().message(rc)));
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
        pthread_mutex_unlock(&state_->control()->mutex);
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
            } else {
                state_->unmap();
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
    } else {
        state_->unmap();
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

void shared_memory_segment::create_buffer(const void* initial, bool exists_ok) {
    auto& s = *state_;
    const std::string shm_name = posix_name(s.name);
    s.fd = ::shm_open(shm_name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    if (s.fd < 0 && errno == EEXIST) {
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
                                           s.name, shm_name, std::system_category().message(error)));
        }
        s.fd = ::shm_open(shm_name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
        if (s.fd < 0 && errno == EEXIST) {
            throw file_exists_error(
                std::make_error_code(std::errc::file_exists),
                fmt::format("Unable to recreate the '{}' SharedMemoryArray object, as the shared memory buffer with "
                            "this name is still held by an open handle. Disconnect every SharedMemoryArray instance "
                            "connected to this buffer, then call this method again.",
                            s.name));
        }
    }
    if (s.fd < 0) {
        const int error = errno;
        throw_errno(error, fmt::format("Unable to create the '{}' SharedMemoryArray buffer: {}.", s.name,
                                       std::system_category().message(error)));
    }
    try {
        if (::ftruncate(s.fd, static_cast<off_t>(s.total)) != 0) {
            const int error = errno;
            throw_errno(error, fmt::format("Unable to size the '{}' SharedMemoryArray buffer to {} bytes: {}.", s.name,
                                           s.total, std::system_category().message(error)));
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

void shared_memory_segment::connect() {
    auto& s = *state_;
    if (s.map != nullptr) {
        return;
    }
    s.fd = ::shm_open(posix_name(s.name).c_str(), O_RDWR | O_CLOEXEC, 0);
    if (s.fd < 0) {
        const int error = errno;
        throw_errno(error, fmt::format("Unable to connect to the '{}' SharedMemoryArray buffer: {}.", s.name,
                                       std::system_category().message(error)));
    }
    try {
        struct stat st {};

        if (::fstat(s.fd, &st) != 0 || static_cast<std::size_t>(st.st_size) < s.total) {
            throw value_error(fmt::format(
                "Unable to connect to the '{}' SharedMemoryArray buffer: it holds {} bytes, but a {} array of shape {} "
                "with its control block needs {}. The buffer was made for another array or by another library.",
                s.name, st.st_size, shm_dtype_name(s.dtype), shape_text(s.shape), s.total));
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
    control_block* control = state_->control();
    const bool died = handle_lock_result(pthread_mutex_lock(&control->mutex), &control->mutex, state_->name);
    state_->held_locks.fetch_add(1);
    return {state_, died};
}

void shared_memory_segment::lock_raw() {
    control_block* control = state_->control();
    (void)handle_lock_result(pthread_mutex_lock(&control->mutex), &control->mutex, state_->name);
}

void shared_memory_segment::unlock_raw() noexcept {
    pthread_mutex_unlock(&state_->control()->mutex);
}

std::optional<shm_lock_guard> shared_memory_segment::try_lock() {
    (void)data(access::view);
    control_block* control = state_->control();
    const int rc = pthread_mutex_trylock(&control->mutex);
    if (rc == EBUSY) {
        return std::nullopt;
    }
    const bool died = handle_lock_result(rc, &control->mutex, state_->name);
    state_->held_locks.fetch_add(1);
    return shm_lock_guard(state_, died);
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

asio::awaitable<shm_lock_guard> shared_memory_segment::async_lock(std::optional<std::chrono::nanoseconds> timeout) {
    const auto start = std::chrono::steady_clock::now();
    auto delay = std::chrono::microseconds(20);
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (;;) {
        std::optional<shm_lock_guard> guard = try_lock();
        if (guard) {
            co_return std::move(*guard);
        }
        if (timeout && std::chrono::steady_clock::now() - start >= *timeout) {
            throw timeout_error(fmt::format("Unable to lock the '{}' SharedMemoryArray within {} ms.", state_->name,
                                            std::chrono::duration_cast<std::chrono::milliseconds>(*timeout).count()));
        }
        timer.expires_after(delay);
        co_await timer.async_wait(asio::use_awaitable);
        delay = std::min(delay * 2, std::chrono::microseconds(1000));
    }
}

std::string shared_memory_segment::describe() const {
    return fmt::format("SharedMemoryArray(name='{}', shape={}, datatype={}, connected={})", state_->name,
                       shape_text(state_->shape), shm_dtype_name(state_->dtype), is_connected() ? "True" : "False");
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
