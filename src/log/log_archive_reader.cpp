#include <axds/log/log_archive_reader.hpp>

#include <axds/core/workers.hpp>
#include <axds/error.hpp>
#include <axds/log/log_package.hpp>
#include <axds/npy/npy_format.hpp>
#include <axds/npy/npz_archive.hpp>

#include "detail/cpu_work.hpp"
#include "detail/parallel.hpp"
#include "detail/printable.hpp"
#include "sys/endian.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <mutex>
#include <unordered_map>

#include <sys/stat.h>

namespace axds {

namespace fs = std::filesystem;

namespace {

std::string_view key_of(const npz_member& member) {
    return log_member_key(member.name);
}

/// True for a log entry key `SSS_TTTTTTTTTTTTTTTTTTTT` (spec §6.1) whose time is not 0: its name says it is not the
/// onset message, so onset discovery need not read (or inflate) it.
bool named_after_nonzero_time(std::string_view key) {
    if (key.size() != 24 || key[3] != '_') {
        return false;
    }
    for (std::size_t i = 0; i < key.size(); ++i) {
        if (i != 3 && (key[i] < '0' || key[i] > '9')) {
            return false;
        }
    }
    return !key.ends_with(log_onset_key_suffix);
}

}  // namespace

struct log_archive_reader::impl {
    fs::path path;
    std::optional<std::uint64_t> provided_onset;
    npz_reader_options options;

    // A mutex and flags rather than std::call_once: a throwing call_once deadlocks later callers under TSan, and
    // discovery must be retried after a failure (the archive may be replaced).
    std::recursive_mutex mutex;
    std::unique_ptr<npz_reader> archive;
    std::atomic<const npz_reader*> opened{nullptr};  // lock-free fast path once the archive is open
    std::unordered_map<std::string_view, const npz_member*> by_key;

    bool discovered = false;
    std::uint64_t onset = 0;
    std::vector<std::string> keys;  // message_keys(), made on first use
    bool keys_made = false;
    std::atomic<bool> by_key_made{false};     // by_key, made on the first look-up by key
    std::span<const npz_member> key_members;  // the members after the onset message (no list is made)

    const npz_reader& open() {
        if (const npz_reader* ready = opened.load(std::memory_order_acquire)) {
            return *ready;
        }
        const std::lock_guard lock(mutex);
        if (!archive) {
            archive = std::make_unique<npz_reader>(path, options);
            opened.store(archive.get(), std::memory_order_release);
        }
        return *archive;
    }

    /// message_keys(): made on first use (a million keys are a million strings; iteration needs none).
    const std::vector<std::string>& message_keys() {
        discover();
        const std::lock_guard lock(mutex);
        if (!keys_made) {
            keys.reserve(key_members.size());
            for (const npz_member& member : key_members) {
                keys.emplace_back(key_of(member));
            }
            keys_made = true;
        }
        return keys;
    }

    /// The member of a message key (the first member whose name less ".npy" is `key`), or nullptr.
    const npz_member* member_of(std::string_view key) {
        if (!by_key_made.load(std::memory_order_acquire)) {
            const npz_reader& reader = open();
            const std::lock_guard lock(mutex);
            if (!by_key_made.load(std::memory_order_relaxed)) {
                by_key.reserve(reader.members().size());
                for (const auto& member : reader.members()) {
                    by_key.emplace(key_of(member), &member);
                }
                by_key_made.store(true, std::memory_order_release);
            }
        }
        const auto it = by_key.find(key);  // read-only once made
        return it == by_key.end() ? nullptr : it->second;
    }

    /// The entry array [source][elapsed LE][payload] of a member. Runs once per message read: nothing is formatted
    /// or allocated unless the member is refused (the error's context is made on the error path only).
    std::span<const std::uint8_t> entry(const npz_member& member) {
        const auto bytes = open().data(member);
        std::span<const std::uint8_t> array;
        try {
            array = npy_u1_payload(bytes, {});
        } catch (const value_error&) {
            refuse_entry(member, bytes);
        }
        if (array.size() < 9) [[unlikely]] {
            throw value_error(fmt::format(
                "Unable to read the member '{}' of the archive {}: a log entry holds at least 9 bytes (source id and "
                "timestamp), but it holds {}.",
                detail::printable(member.name), path.string(), array.size()));
        }
        return array;
    }

    /// Raises npy_u1_payload's error for a refused member again, now naming the member and the archive (the parse is
    /// deterministic: the same bytes fail the same way).
    [[noreturn]] void refuse_entry(const npz_member& member, std::span<const std::uint8_t> bytes) const {
        (void)npy_u1_payload(
            bytes, fmt::format("member '{}' of the archive {}", detail::printable(member.name), path.string()));
        throw value_error(fmt::format("Unable to read the member '{}' of the archive {}: its .npy header is refused.",
                                      detail::printable(member.name), path.string()));
    }

    void discover() {
        const std::lock_guard lock(mutex);
        if (discovered) {
            return;
        }
        {
            const auto& members = open().members();
            std::size_t first_message = 0;
            if (provided_onset) {
                onset = *provided_onset;
                for (std::size_t i = 0; i < members.size(); ++i) {
                    if (key_of(members[i]).ends_with(log_onset_key_suffix)) {
                        first_message = i + 1;
                        break;
                    }
                }
            } else {
                bool found = false;
                for (std::size_t i = 0; i < members.size() && !found; ++i) {
                    if (named_after_nonzero_time(key_of(members[i]))) {
                        continue;
                    }
                    const auto array = entry(members[i]);
                    if (sys::load_le64(array.data() + 1) != 0) {
                        continue;
                    }
                    if (array.size() != 17) {
                        throw value_error(fmt::format(
                            "Unable to discover onset timestamp in log archive. The onset message '{}' must hold an "
                            "8-byte UTC epoch timestamp, but its payload holds {} bytes: {}.",
                            detail::printable(members[i].name), array.size() - 9, path.string()));
                    }
                    onset = sys::load_le64(array.data() + 9);
                    first_message = i + 1;
                    found = true;
                }
                if (!found) {
                    throw value_error(fmt::format(
                        "Unable to discover onset timestamp in log archive. The archive must contain a message with "
                        "timestamp value 0 storing the UTC epoch reference, but none was found in: {}.",
                        path.string()));
                }
            }
            key_members = std::span(members).subspan(std::min(first_message, members.size()));
            discovered = true;
        }
    }
};

log_archive_reader::log_archive_reader(fs::path archive_path, std::optional<std::uint64_t> onset_us,
                                       npz_reader_options options)
    : impl_(std::make_unique<impl>()) {
    struct stat st {};

    if (::stat(archive_path.c_str(), &st) != 0) {
        throw_errno(ENOENT, fmt::format("Unable to open log archive. The file does not exist at the expected path: {}.",
                                        archive_path.string()));
    }
    impl_->path = std::move(archive_path);
    impl_->provided_onset = onset_us;
    impl_->options = options;
}

log_archive_reader::log_archive_reader(log_archive_reader&&) noexcept = default;
log_archive_reader& log_archive_reader::operator=(log_archive_reader&&) noexcept = default;
log_archive_reader::~log_archive_reader() = default;

const fs::path& log_archive_reader::archive_path() const noexcept {
    return impl_->path;
}

std::string log_archive_reader::repr() const {
    return fmt::format("LogArchiveReader(archive_path={}, onset_us={})", impl_->path.string(),
                       impl_->provided_onset ? std::to_string(*impl_->provided_onset) : "not discovered");
}

std::uint64_t log_archive_reader::onset_timestamp_us() const {
    impl_->discover();
    return impl_->onset;
}

const std::vector<std::string>& log_archive_reader::message_keys() const {
    return impl_->message_keys();
}

std::size_t log_archive_reader::message_count() const {
    impl_->discover();
    return impl_->key_members.size();
}

std::vector<std::vector<std::string>> log_archive_reader::get_batches(int workers, int batch_multiplier) const {
    const auto w = static_cast<std::size_t>(resolve_workers_option(workers, "workers"));
    if (batch_multiplier < 1) {
        throw value_error(
            fmt::format("Unable to batch the messages of the log archive {}. The 'batch_multiplier' "
                        "argument must be greater than or equal to 1, but got {}.",
                        impl_->path.string(), batch_multiplier));
    }
    const auto& keys = message_keys();
    if (keys.empty()) {
        return {};
    }
    if (keys.size() < 2000) {  // PARALLEL_PROCESSING_THRESHOLD
        return {keys};
    }
    const std::size_t divisor = w * static_cast<std::size_t>(batch_multiplier);
    const std::size_t size = std::max<std::size_t>(1, (keys.size() + divisor - 1) / divisor);
    std::vector<std::vector<std::string>> batches;
    for (std::size_t first = 0; first < keys.size(); first += size) {
        const auto last = std::min(keys.size(), first + size);
        batches.emplace_back(keys.begin() + static_cast<std::ptrdiff_t>(first),
                             keys.begin() + static_cast<std::ptrdiff_t>(last));
    }
    return batches;
}

log_message_view log_archive_reader::decode(const npz_member& member) const {
    const auto array = impl_->entry(member);
    return {impl_->onset + sys::load_le64(array.data() + 1), array.subspan(9)};
}

std::vector<const npz_member*> log_archive_reader::resolve(std::span<const std::string> keys) const {
    impl_->discover();
    std::vector<const npz_member*> members;
    members.reserve(keys.size());
    for (const auto& key : keys) {
        const npz_member* member = impl_->member_of(key);
        if (member == nullptr) {
            throw key_error(
                fmt::format("Unable to read the message '{}' from the log archive {}: there is no such "
                            "key in the archive.",
                            detail::printable(key), impl_->path.string()));
        }
        members.push_back(member);
    }
    return members;
}

log_message_view log_archive_reader::read_message(std::string_view key) const {
    const std::string owned(key);
    return decode(*resolve(std::span(&owned, 1)).front());
}

log_archive_reader::message_range log_archive_reader::messages() const {
    impl_->discover();
    return {this, impl_->key_members};
}

log_archive_reader::message_range log_archive_reader::messages(std::span<const std::string> keys) const {
    return {this, resolve(keys)};
}

std::pair<std::vector<std::uint64_t>, std::vector<std::vector<std::uint8_t>>> log_archive_reader::read_all_messages()
    const {
    std::pair<std::vector<std::uint64_t>, std::vector<std::vector<std::uint8_t>>> out;
    const auto range = messages();
    out.first.reserve(range.size());
    out.second.reserve(range.size());
    for (const auto message : range) {
        out.first.push_back(message.timestamp_us);
        out.second.emplace_back(message.payload.begin(), message.payload.end());
    }
    return out;
}

asio::awaitable<std::vector<log_message_view>> log_archive_reader::async_read_messages(
    std::vector<std::string> keys) const {
    auto work = [this, keys = std::move(keys)] {
        const auto range = keys.empty() ? messages() : messages(keys);
        return std::vector<log_message_view>(range.begin(), range.end());
    };
    co_return co_await detail::async_run_cpu(std::move(work));
}

asio::awaitable<void> async_for_each_batch(const log_archive_reader& reader,
                                           std::function<void(std::size_t, std::span<const log_message_view>)> fn,
                                           int workers, int batch_multiplier) {
    const auto resolved = static_cast<std::size_t>(resolve_workers_option(workers, "workers"));
    auto plan = [&reader, workers, batch_multiplier] {
        return reader.get_batches(workers, batch_multiplier);
    };
    const auto batches = co_await detail::async_run_cpu(plan);
    const auto tasks = std::min(batches.size(), resolved);
    std::atomic<std::size_t> cursor{0};
    std::function<void(std::size_t)> task0 = [&](std::size_t) {
        for (std::size_t b = cursor++; b < batches.size(); b = cursor++) {
            const auto range = reader.messages(batches[b]);
            const std::vector<log_message_view> views(range.begin(), range.end());
            fn(b, views);
        }
    };
    co_await detail::async_parallel_for(tasks, std::move(task0));
}

}  // namespace axds
