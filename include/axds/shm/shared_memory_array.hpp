#pragma once

#include <axds/error.hpp>

#include <asio/awaitable.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace axds {

/// Element type codes stored in a shared_memory_array's control block, so connect() can refuse a buffer of another
/// type (the Python library cannot detect that).
enum class shm_dtype : std::uint32_t {
    int8 = 1,
    uint8,
    int16,
    uint16,
    int32,
    uint32,
    int64,
    uint64,
    float32,
    float64,
    boolean
};

template <typename T>
constexpr shm_dtype shm_dtype_of() {
    if constexpr (std::is_same_v<T, bool>) {
        return shm_dtype::boolean;
    } else if constexpr (std::is_floating_point_v<T>) {
        static_assert(sizeof(T) == 4 || sizeof(T) == 8, "float32 or float64 only");
        return sizeof(T) == 4 ? shm_dtype::float32 : shm_dtype::float64;
    } else {
        static_assert(std::is_integral_v<T> && sizeof(T) <= 8, "an arithmetic element type");
        constexpr unsigned step = sizeof(T) == 1 ? 0 : sizeof(T) == 2 ? 1 : sizeof(T) == 4 ? 2 : 3;
        return static_cast<shm_dtype>(1 + 2 * step + (std::is_signed_v<T> ? 0 : 1));
    }
}

/// numpy's name for a dtype code ("int32", "float64", "bool", ...).
[[nodiscard]] std::string_view shm_dtype_name(shm_dtype dtype) noexcept;

/// Byte order of the elements in the buffer. numpy arrays are native unless made with an explicit order (`>u8`,
/// `dtype.newbyteorder()`); the buffer does not record it, so it must be stated when attaching to such an array.
enum class shm_byte_order : std::uint8_t {
    native,  ///< This machine's order (little-endian on every supported host).
    little,  ///< numpy `<`: native here.
    big      ///< numpy `>`: element access swaps bytes; live views (array()) are refused.
};

/// Which lock serializes access to a shared_memory_array.
enum class shm_lock_kind : std::uint8_t {
    robust_mutex,     ///< axds buffers (create/attach): the robust process-shared mutex in the control block.
    named_semaphore,  ///< attach_python with a semaphore: the POSIX named semaphore Python's multiprocessing.Lock is.
    none              ///< attach_python with unlocked = true: nothing excludes other processes.
};

/// How shared_memory_array<T>::attach_python() attaches to a buffer made by Python's SharedMemoryArray (or by
/// `multiprocessing.shared_memory.SharedMemory` + numpy): exactly nbytes of element data, no axds control block.
struct shm_python_options {
    /// The POSIX named semaphore that guards the array on the Python side: `lock._semlock.name` of its
    /// multiprocessing.Lock (for a SharedMemoryArray `array._lock._semlock.name`), e.g. "/mp-6a8a82gl"; the leading
    /// '/' is optional. The Lock must come from a "spawn" or "forkserver" context
    /// (`multiprocessing.get_context("spawn").Lock()`): under the "fork" start method (Linux's default before
    /// Python 3.14) CPython unlinks the semaphore right after creating it and the name is None. The semaphore must
    /// exist when connecting (its creator keeps it until it is garbage-collected or exits).
    std::string semaphore;
    /// Attach without any lock (only when `semaphore` is empty): element access, read/write and array() are then
    /// unlocked, and lock()/try_lock()/lock_for()/async_lock() throw runtime_error. For data with one writer, or
    /// for processes that coordinate otherwise. One of `semaphore` or `unlocked` must be given.
    bool unlocked = false;
    /// The elements' byte order in the buffer (numpy `dtype.byteorder`). Non-native orders are converted by
    /// get/set/read/write; array() refuses them. Nothing in the buffer records it: attaching a `>u8` array as
    /// native cannot be detected and reads byte-swapped values.
    shm_byte_order byte_order = shm_byte_order::native;
    bool auto_connect = true;
};

namespace detail {

/// `value` with its bytes reversed (std::byteswap is C++23; this also handles floating point).
template <typename T>
[[nodiscard]] T byteswap_value(T value) noexcept {
    if constexpr (sizeof(T) > 1) {
        std::array<unsigned char, sizeof(T)> bytes{};
        std::memcpy(bytes.data(), &value, sizeof(T));
        std::reverse(bytes.begin(), bytes.end());
        std::memcpy(&value, bytes.data(), sizeof(T));
    }
    return value;
}

}  // namespace detail

class shared_memory_segment;

/// Holds a shared_memory_array's process-shared lock; releases it on destruction.
/// previous_owner_died() tells that the last holder died while holding it (the data may be half-updated); a named
/// semaphore cannot tell, so it is always false for one.
class [[nodiscard]] shm_lock_guard {
public:
    shm_lock_guard(shm_lock_guard&& other) noexcept;
    shm_lock_guard& operator=(shm_lock_guard&& other) noexcept;
    shm_lock_guard(const shm_lock_guard&) = delete;
    shm_lock_guard& operator=(const shm_lock_guard&) = delete;
    ~shm_lock_guard();

    [[nodiscard]] bool previous_owner_died() const noexcept { return previous_owner_died_; }

    [[nodiscard]] bool owns_lock() const noexcept { return state_ != nullptr; }

    void unlock() noexcept;

    struct state;

private:
    friend class shared_memory_segment;

    shm_lock_guard(std::shared_ptr<state> s, bool died) noexcept : state_(std::move(s)), previous_owner_died_(died) {}

    std::shared_ptr<state> state_;
    bool previous_owner_died_ = false;
};

/// The type-independent part of shared_memory_array<T>: a named POSIX shared memory object `/dev/shm/<name>` holding
/// the array's bytes at offset 0 in C order (what Python's `SharedMemory(name)` + `np.ndarray(shape, dtype, buf)`
/// sees), followed at a 64-byte aligned offset by a control block: magic, version, dtype, shape and a robust
/// process-shared mutex.
///
/// Lifetime (spec §5.3): the creating object owns the buffer and unlinks it on destruction; objects made with
/// attach() only disconnect. Creating a name again with exists_ok strips the previous owner in this process of that
/// right, so its destruction cannot unlink the replacement. A buffer left over by a crashed process is reclaimed by
/// create(..., exists_ok = true); `rm /dev/shm/<name>` removes it by hand.
///
/// Buffers made by Python (shared_memory_array<T>::attach_python) have no control block: they hold exactly the
/// array's bytes, and are locked by the Python side's named semaphore, or not at all (see shm_python_options and
/// lock_kind()).
///
/// Thread safety: distinct objects may be used from any threads and processes (the lock serializes data access);
/// one object needs external synchronisation for connect/disconnect/destroy.
class shared_memory_segment {
public:
    shared_memory_segment(shared_memory_segment&&) noexcept;
    shared_memory_segment& operator=(shared_memory_segment&&) noexcept;
    shared_memory_segment(const shared_memory_segment&) = delete;
    shared_memory_segment& operator=(const shared_memory_segment&) = delete;
    ~shared_memory_segment();

    [[nodiscard]] const std::string& name() const noexcept;
    [[nodiscard]] const std::vector<std::size_t>& shape() const noexcept;
    /// Number of elements.
    [[nodiscard]] std::size_t size() const noexcept;
    [[nodiscard]] shm_dtype dtype() const noexcept;
    [[nodiscard]] bool is_connected() const noexcept;
    /// True for the object that created the buffer (and will unlink it on destruction).
    [[nodiscard]] bool owns_buffer() const noexcept;
    /// The lock that lock(), async_lock(), element access and locked views take.
    [[nodiscard]] shm_lock_kind lock_kind() const noexcept;
    /// The elements' byte order in the buffer (native for axds buffers).
    [[nodiscard]] shm_byte_order byte_order() const noexcept;

    /// No-op when connected. @throws file_not_found_error if the buffer (or the named semaphore of attach_python)
    /// does not exist; value_error if it holds an array of another type or shape, or, for attach(), was not made by
    /// axds (no control block), or, for attach_python(), its size is not exactly the array's nbytes.
    void connect();
    /// Unmaps the buffer (which persists). @throws runtime_error while a lock guard of this object is alive.
    void disconnect();
    /// Disconnects and unlinks the buffer (a missing one is ignored); connect() fails afterwards.
    void destroy();

    /// Blocks until the lock is held. @throws connection_error when not connected; runtime_error for an array
    /// attached unlocked (shm_lock_kind::none).
    ///
    /// A named semaphore (shm_lock_kind::named_semaphore) is not robust: if a process holding it is killed
    /// (kill -9, a crash), it stays locked for ever and lock() never returns. Prefer lock_for() or async_lock()
    /// with a timeout; once sure that no live process holds it, break_lock() (or `lock.release()` in Python)
    /// resets it. The robust mutex of axds buffers is handed on instead, with previous_owner_died() set.
    shm_lock_guard lock();
    std::optional<shm_lock_guard> try_lock();
    std::optional<shm_lock_guard> lock_for(std::chrono::nanoseconds timeout);
    /// Waits for the lock without blocking the executor thread. On the robust mutex of axds buffers the wait is
    /// event-driven: an io_uring futex wait on the mutex's futex word (Linux 6.7+; this object's ring, made on its
    /// first wait, whose eventfd the executor's reactor watches) wakes the executor's thread once when the holder
    /// releases it (or dies: the guard then reports previous_owner_died()). Where io_uring cannot (older kernel,
    /// seccomp, AXDS_NO_IO_URING=1 set before connecting) a helper thread of this object (started on the first wait,
    /// gone after 50 ms idle) sleeps on the word and posts the retry to the executor. Before each sleep it spins for
    /// up to 3 µs on the executor's thread, trying the lock whenever the word shows it free (or its holder dead), so
    /// that a holder who takes the lock again right after each unlock cannot keep a sleeping waiter out. Either way
    /// the lock itself is always taken and released on the executor's thread. On a
    /// named semaphore (attach_python) it tries with a timer backoff from 20 µs to 1 ms. Cancellable: a
    /// cancellation (terminal, e.g. through asio::bind_cancellation_slot) ends the wait with
    /// system_error(operation_aborted), without the lock and without a waiter left behind.
    /// @throws timeout_error after `timeout` if given (for a semaphore, the message says how to recover from a
    /// killed holder).
    asio::awaitable<shm_lock_guard> async_lock(std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
    /// Recovery for a named semaphore left locked by a killed process: posts it if it is held (value 0). Returns
    /// true if it did. Call it only when no live process holds the lock (else two processes hold it at once), and
    /// from one process only: a semaphore cannot tell a dead holder from a live one, so a second process that also
    /// breaks it (say, another waiter that timed out) lets two holders in and leaves the count at 2, after which the
    /// lock excludes nobody. Coordinate recovery (one supervisor) or restart every process using the array.
    /// The robust mutex recovers by itself and an unlocked array has no lock: both return false.
    /// @throws connection_error when not connected.
    bool break_lock();

    /// `SharedMemoryArray(name='…', shape=(…), datatype=…, connected=…)` (spec §5.4 repr).
    [[nodiscard]] std::string describe() const;

protected:
    enum class access { read, write, view };

    shared_memory_segment(std::string name, shm_dtype dtype, std::size_t element_size, std::vector<std::size_t> shape);
    /// Creates the buffer with `initial` (nbytes) as content; see shared_memory_array::create.
    void create_buffer(const void* initial, bool exists_ok);
    /// The mapped data; throws the §5.4 connection_error for `kind` when not connected.
    [[nodiscard]] void* data(access kind) const;
    /// Flat offset of a possibly negative flat index; index_error when out of range.
    [[nodiscard]] std::size_t flat(std::ptrdiff_t index) const;
    /// Flat offset of a multi-index (one entry per dimension, negative allowed); index_error when out of range.
    [[nodiscard]] std::size_t flat(std::initializer_list<std::ptrdiff_t> index) const;
    /// The lock without a guard, for element access that releases it before returning (no guard bookkeeping: the
    /// hot path of get/set). A dead previous holder is repaired silently here; lock() reports it. Both do nothing
    /// for an array attached unlocked.
    void lock_raw();
    void unlock_raw() noexcept;
    /// lock() for views: std::nullopt for an array attached unlocked.
    [[nodiscard]] std::optional<shm_lock_guard> lock_for_view();
    /// Makes this object one for a buffer without control block (attach_python): validates `options`.
    void configure_python(const shm_python_options& options);
    /// True when element values must be byte-swapped between the buffer and T.
    [[nodiscard]] bool swaps_bytes() const noexcept;
    /// value_error naming the segment: a live view of non-native elements would show byte-swapped values.
    [[noreturn]] void throw_non_native_view() const;

    /// lock_raw() for one scope.
    class raw_lock_scope {
    public:
        explicit raw_lock_scope(shared_memory_segment& segment) : segment_(segment) { segment_.lock_raw(); }

        raw_lock_scope(const raw_lock_scope&) = delete;
        raw_lock_scope& operator=(const raw_lock_scope&) = delete;

        ~raw_lock_scope() { segment_.unlock_raw(); }

    private:
        shared_memory_segment& segment_;
    };

    /// Normalized [start, stop) of a slice (Python slice rules with step 1).
    [[nodiscard]] std::pair<std::size_t, std::size_t> range(std::ptrdiff_t start, std::ptrdiff_t stop) const;

private:
    asio::awaitable<shm_lock_guard> async_lock_semaphore(std::chrono::steady_clock::time_point deadline,
                                                         std::chrono::nanoseconds timeout);

    std::shared_ptr<shm_lock_guard::state> state_;
};

/// A typed n-dimensional array in named POSIX shared memory (spec §5), shared by processes that know its name,
/// type and shape. Element access takes the process-shared lock; array() gives a locked view for bulk work.
template <typename T>
class shared_memory_array : public shared_memory_segment {
    static_assert(std::is_arithmetic_v<T>, "shared_memory_array holds arithmetic elements");

public:
    /// Creates `/dev/shm/<name>` with `values` (C order; values.size() must equal the product of `shape`).
    /// @throws value_error for an empty shape or size 0 ("'size' must be a positive number different from zero"),
    /// a bad name or a value count mismatch; file_exists_error (§5.4 message) if the name exists and !exists_ok.
    static shared_memory_array create(std::string name, std::vector<std::size_t> shape, std::span<const T> values,
                                      bool exists_ok = false) {
        shared_memory_array array(std::move(name), std::move(shape));
        if (values.size() != array.size()) {
            throw value_error("Unable to create the '" + array.name() +
                              "' SharedMemoryArray object: " + std::to_string(values.size()) +
                              " values were given for " + std::to_string(array.size()) + " elements.");
        }
        array.create_buffer(values.data(), exists_ok);
        return array;
    }

    /// Creates the array with every element set to `fill`.
    static shared_memory_array create(std::string name, std::vector<std::size_t> shape, T fill = T{},
                                      bool exists_ok = false) {
        shared_memory_array array(std::move(name), std::move(shape));  // validates the shape before any allocation
        const auto values = std::make_unique<T[]>(array.size());       // not std::vector: vector<bool> has no data()
        std::fill(values.get(), values.get() + array.size(), fill);
        array.create_buffer(values.get(), exists_ok);
        return array;
    }

    /// An object for an existing buffer (another process created it); connects unless auto_connect is false.
    static shared_memory_array attach(std::string name, std::vector<std::size_t> shape, bool auto_connect = true) {
        shared_memory_array array(std::move(name), std::move(shape));
        if (auto_connect) {
            array.connect();
        }
        return array;
    }

    /// An object for a buffer made by Python (`SharedMemoryArray.create_array`, or `SharedMemory` + numpy):
    /// `/dev/shm/<name>` holding exactly the array's nbytes in C order, without axds's control block. Its size is
    /// checked against shape and T (a buffer of another size is refused, naming both sizes); its dtype cannot be
    /// (same size, other type goes undetected), so T and shape must match the Python prototype's.
    ///
    /// Lock: the named POSIX semaphore `options.semaphore` (Python's multiprocessing.Lock, see shm_python_options),
    /// so C++ and Python exclude each other; or none with `options.unlocked`. The object never owns the buffer:
    /// destruction only disconnects (destroy() unlinks it by name, as Python's destroy() does).
    /// @throws value_error for a bad shape or name, or options naming neither a semaphore nor unlocked (and, when
    /// connecting, those of connect()).
    static shared_memory_array attach_python(std::string name, std::vector<std::size_t> shape,
                                             const shm_python_options& options) {
        shared_memory_array array(std::move(name), std::move(shape));
        array.configure_python(options);
        if (options.auto_connect) {
            array.connect();
        }
        return array;
    }

    /// Element at a flat index (negative counts from the end), under the lock. Element access (get, set, read,
    /// write) takes the lock itself: calling it while this thread already holds a guard of the same array waits for
    /// ever (neither lock is recursive). Under a guard, use the view of array(false).
    [[nodiscard]] T get(std::ptrdiff_t index) {
        auto* base = static_cast<const T*>(data(access::read));  // connection first, as the Python library checks
        return load(base, flat(index));
    }

    /// Element at a multi-index, under the lock.
    [[nodiscard]] T get(std::initializer_list<std::ptrdiff_t> index) {
        auto* base = static_cast<const T*>(data(access::read));
        return load(base, flat(index));
    }

    void set(std::ptrdiff_t index, T value) {
        auto* base = static_cast<T*>(data(access::write));
        store(base, flat(index), value);
    }

    void set(std::initializer_list<std::ptrdiff_t> index, T value) {
        auto* base = static_cast<T*>(data(access::write));
        store(base, flat(index), value);
    }

    /// Copy of the flat slice [start, stop) (Python slice rules), under the lock.
    [[nodiscard]] std::vector<T> read(std::ptrdiff_t start = 0, std::ptrdiff_t stop = PTRDIFF_MAX) {
        auto* base = static_cast<const T*>(data(access::read));
        const auto [from, to] = range(start, stop);
        std::vector<T> values;
        values.reserve(to - from);  // no allocation under the lock
        {
            const raw_lock_scope locked(*this);
            values.assign(base + from, base + to);
        }
        if constexpr (sizeof(T) > 1) {
            if (swaps_bytes()) {
                for (T& value : values) {
                    value = detail::byteswap_value(value);
                }
            }
        }
        return values;
    }

    /// Writes `values` starting at flat index `start`, under the lock. @throws value_error if they do not fit.
    void write(std::ptrdiff_t start, std::span<const T> values) {
        auto* base = static_cast<T*>(data(access::write));
        const std::size_t from = flat(start);
        if (values.size() > size() - from) {
            throw value_error("Unable to write " + std::to_string(values.size()) + " values at index " +
                              std::to_string(from) + " of the '" + name() + "' SharedMemoryArray of size " +
                              std::to_string(size()) + ".");
        }
        if (swaps_bytes()) {
            const auto swapped = std::make_unique<T[]>(values.size());
            std::transform(values.begin(), values.end(), swapped.get(), detail::byteswap_value<T>);
            const raw_lock_scope locked(*this);
            std::memcpy(base + from, swapped.get(), values.size() * sizeof(T));
        } else {
            const raw_lock_scope locked(*this);
            std::memcpy(base + from, values.data(), values.size() * sizeof(T));
        }
    }

    /// The live data (writes go straight to shared memory), with the lock held while the view lives unless
    /// with_lock is false (or the array was attached unlocked). @throws value_error for a non-native byte order:
    /// T& would show byte-swapped values; use get/set/read/write there.
    class view {
    public:
        [[nodiscard]] std::span<T> data() const noexcept { return data_; }

        T& operator[](std::size_t i) const noexcept { return data_[i]; }

        [[nodiscard]] bool previous_owner_died() const noexcept { return guard_ && guard_->previous_owner_died(); }

    private:
        friend class shared_memory_array;

        view(std::span<T> d, std::optional<shm_lock_guard> g) : data_(d), guard_(std::move(g)) {}

        std::span<T> data_;
        std::optional<shm_lock_guard> guard_;
    };

    [[nodiscard]] view array(bool with_lock = true) {
        auto* base = static_cast<T*>(data(access::view));
        if (swaps_bytes()) {
            throw_non_native_view();
        }
        std::optional<shm_lock_guard> guard;
        if (with_lock) {
            guard = lock_for_view();
        }
        return view(std::span<T>(base, size()), std::move(guard));
    }

private:
    shared_memory_array(std::string name, std::vector<std::size_t> shape)
        : shared_memory_segment(std::move(name), shm_dtype_of<T>(), sizeof(T), std::move(shape)) {}

    T load(const T* base, std::size_t offset) {
        lock_raw();
        const T value = base[offset];
        unlock_raw();
        return swaps_bytes() ? detail::byteswap_value(value) : value;
    }

    void store(T* base, std::size_t offset, T value) {
        if (swaps_bytes()) {
            value = detail::byteswap_value(value);
        }
        lock_raw();
        base[offset] = value;
        unlock_raw();
    }
};

}  // namespace axds
