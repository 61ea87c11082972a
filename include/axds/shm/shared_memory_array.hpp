#pragma once

#include <axds/error.hpp>

#include <asio/awaitable.hpp>

#include <algorithm>
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

class shared_memory_segment;

/// Holds a shared_memory_array's process-shared lock; releases it on destruction.
/// previous_owner_died() tells that the last holder died while holding it (the data may be half-updated).
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

    /// No-op when connected. @throws file_not_found_error if the buffer does not exist; value_error if it holds an
    /// array of another type or shape, or was not made by axds (no control block).
    void connect();
    /// Unmaps the buffer (which persists). @throws runtime_error while a lock guard of this object is alive.
    void disconnect();
    /// Disconnects and unlinks the buffer (a missing one is ignored); connect() fails afterwards.
    void destroy();

    /// Blocks until the lock is held. @throws connection_error when not connected.
    shm_lock_guard lock();
    std::optional<shm_lock_guard> try_lock();
    std::optional<shm_lock_guard> lock_for(std::chrono::nanoseconds timeout);
    /// Waits for the lock without blocking the executor thread (try-lock + timer backoff from 20 µs to 1 ms).
    /// @throws timeout_error after `timeout` if given.
    asio::awaitable<shm_lock_guard> async_lock(std::optional<std::chrono::nanoseconds> timeout = std::nullopt);

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
    /// hot path of get/set). A dead previous holder is repaired silently here; lock() reports it.
    void lock_raw();
    void unlock_raw() noexcept;
    /// Normalized [start, stop) of a slice (Python slice rules with step 1).
    [[nodiscard]] std::pair<std::size_t, std::size_t> range(std::ptrdiff_t start, std::ptrdiff_t stop) const;

private:
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

    /// Element at a flat index (negative counts from the end), under the lock.
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
        const shm_lock_guard guard = lock();
        return std::vector<T>(base + from, base + to);
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
        const shm_lock_guard guard = lock();
        std::memcpy(base + from, values.data(), values.size() * sizeof(T));
    }

    /// The live data (writes go straight to shared memory), with the lock held while the view lives unless
    /// with_lock is false.
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
        std::optional<shm_lock_guard> guard;
        if (with_lock) {
            guard.emplace(lock());
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
        return value;
    }

    void store(T* base, std::size_t offset, T value) {
        lock_raw();
        base[offset] = value;
        unlock_raw();
    }
};

}  // namespace axds
