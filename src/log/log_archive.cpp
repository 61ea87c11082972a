#include <axds/log/log_archive.hpp>

#include <axds/core/workers.hpp>
#include <axds/error.hpp>
#include <axds/fs/walk.hpp>
#include <axds/log/log_package.hpp>
#include <axds/npy/npy_format.hpp>
#include <axds/npy/npz_archive.hpp>

#include "detail/cpu_work.hpp"
#include "detail/parallel.hpp"
#include "detail/test_hooks.hpp"
#include "detail/uring_reader.hpp"

#include <asio/error.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace axds {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t prefix_buffer = 16 * 1024;  // one read covers typical entries
constexpr std::size_t window_files = 1024;        // entries read per batch
constexpr std::size_t window_bytes = 64U << 20U;  // bytes per batch (mapped entries)

struct entry {
    std::string path;             // a plain string: building 20,000 fs::path objects (component split) was measurable
    std::size_t name_offset = 0;  // where the file name starts in `path`
    std::string stem;
    std::uint64_t source = 0;
    std::uint64_t timestamp = 0;
    std::size_t discovery_order = 0;
};

struct source_group {
    std::uint64_t source = 0;
    std::vector<entry> entries;
    fs::path archive;
};

bool parse_decimal(std::string_view text, std::uint64_t& out) {
    if (text.empty()) {
        return false;
    }
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && ptr == text.data() + text.size();
}

/// spec §7.2 step 3: `*.npy` directly in the directory; `stem.split("_")[0:2]` are the source and timestamp.
std::vector<source_group> discover_entries(const fs::path& directory) {
    std::vector<entry> entries;
    DIR* dir = ::opendir(directory.c_str());
    if (dir == nullptr) {
        if (errno == ENOENT) {
            return {};  // a missing directory simply yields nothing
        }
        const int error = errno;
        throw_errno(error,
                    fmt::format("Unable to list the log directory {}: {}.", directory.string(), std::strerror(error)));
    }
    std::string prefix = directory.string();
    if (!prefix.empty() && !prefix.ends_with('/')) {
        prefix += '/';
    }
    while (const dirent* d = ::readdir(dir)) {
        const std::string_view name(d->d_name);
        if (name.size() <= 4 || !name.ends_with(".npy")) {
            continue;
        }
        if (d->d_type != DT_REG && d->d_type != DT_UNKNOWN && d->d_type != DT_LNK) {
            continue;  // a directory named *.npy is not an entry
        }
        entry e;
        e.path = prefix;
        e.path += name;
        e.name_offset = prefix.size();
        e.stem = std::string(name.substr(0, name.size() - 4));
        const auto first = e.stem.find('_');
        const auto second = first == std::string::npos ? std::string::npos : e.stem.find('_', first + 1);
        const std::string_view stem(e.stem);
        if (first == std::string::npos || !parse_decimal(stem.substr(0, first), e.source) ||
            !parse_decimal(stem.substr(first + 1, second == std::string::npos ? std::string::npos : second - first - 1),
                           e.timestamp)) {
            std::string message = fmt::format(
                "Unable to assemble the log archives in {}. The log entry file name '{}' does not follow the "
                "'{{source_id}}_{{timestamp}}.npy' pattern (for example 001_00000000000000001500.npy): its first two "
                "underscore-separated fields must be non-negative integers.",
                directory.string(), name);
            ::closedir(dir);  // `name` points into the directory stream: format the message first
            throw value_error(message);
        }
        e.discovery_order = entries.size();
        entries.push_back(std::move(e));
    }
    ::closedir(dir);
    std::stable_sort(entries.begin(), entries.end(), [](const entry& a, const entry& b) {
        return a.source != b.source ? a.source < b.source : a.timestamp < b.timestamp;
    });
    std::vector<source_group> groups;
    for (auto& e : entries) {
        if (groups.empty() || groups.back().source != e.source) {
            source_group group;
            group.source = e.source;
            group.archive = directory / fmt::format("{}{}", e.source, log_archive_suffix);
            groups.push_back(std::move(group));
        }
        groups.back().entries.push_back(std::move(e));
    }
    return groups;
}

[[noreturn]] void entry_read_failure(const entry& e, int error) {
    throw_errno(error, fmt::format("Unable to read the log entry {}: {}.", e.path, std::strerror(error)));
}

/// A read-only map of one entry file.
class mapped_entry {
public:
    explicit mapped_entry(const entry& e) {
        const int fd = ::open(e.path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            entry_read_failure(e, errno);
        }

        struct stat st {};

        if (::fstat(fd, &st) != 0) {
            const int error = errno;
            ::close(fd);
            entry_read_failure(e, error);
        }
        size_ = static_cast<std::size_t>(st.st_size);
        if (size_ > 0) {
            void* map = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
            if (map == MAP_FAILED) {
                const int error = errno;
                ::close(fd);
                entry_read_failure(e, error);
            }
            data_ = static_cast<const std::uint8_t*>(map);
        }
        ::close(fd);
    }

    mapped_entry(const mapped_entry&) = delete;
    mapped_entry& operator=(const mapped_entry&) = delete;

    mapped_entry(mapped_entry&& other) noexcept
        : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

    mapped_entry& operator=(mapped_entry&&) = delete;

    ~mapped_entry() {
        if (data_ != nullptr) {
            ::munmap(const_cast<std::uint8_t*>(data_), size_);
        }
    }

    [[nodiscard]] std::span<const std::uint8_t> bytes() const noexcept { return {data_, size_}; }

private:
    const std::uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
};

/// An O_PATH descriptor of a directory (-1 if it cannot be opened), closed on scope exit.
struct directory_handle {
    int fd;

    explicit directory_handle(const std::string& path)
        : fd(path.empty() ? -1 : ::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)) {}

    directory_handle(const directory_handle&) = delete;
    directory_handle& operator=(const directory_handle&) = delete;

    ~directory_handle() {
        if (fd >= 0) {
            ::close(fd);
        }
    }
};

/// How entries are read: large ones mapped (or read whole), small ones through io_uring chains (or open/pread/close).
struct read_mode {
    bool map = true;
    bool uring = false;
    bool durable = true;  // fsync archives: only needed when their entries are about to be removed
};

/// Uninitialized slots for one window of entries, allocated once per archive: zeroing (and faulting in) a fresh
/// 16 MiB per window cost more than reading the entries.
struct window_scratch {
    std::unique_ptr<std::uint8_t[]> bytes{new std::uint8_t[window_files * prefix_buffer]};

    [[nodiscard]] std::span<std::uint8_t> span() const noexcept { return {bytes.get(), window_files * prefix_buffer}; }
};

/// Reads the entries [first, last) of a group and hands each one's bytes to `use(entry, bytes)` in order. Every entry
/// is first read with batched io_uring reads into a 16 KiB slot (one pass covers typical log entries); larger entries
/// are then memory-mapped (`map`) or read whole into a buffer.
/// `scratch` holds window_files slots of prefix_buffer bytes (see window_scratch).
template <typename Use>
void for_each_entry_bytes(const std::vector<entry>& entries, std::size_t first, std::size_t last, read_mode mode,
                          std::span<std::uint8_t> scratch, Use&& use) {
    const std::size_t count = last - first;
    std::uint8_t* const storage = scratch.data();
    std::vector<detail::prefix_read> reads(count);
    // Opening by name relative to the directory spares the kernel the walk down to it on every entry (5-10%).
    const std::string& any = entries[first].path;
    const directory_handle directory(any.substr(0, entries[first].name_offset));
    const int dirfd = directory.fd;
    for (std::size_t i = 0; i < count; ++i) {
        const entry& e = entries[first + i];
        reads[i].path = dirfd >= 0 ? e.path.c_str() + e.name_offset : e.path.c_str();
        reads[i].dirfd = dirfd >= 0 ? dirfd : AT_FDCWD;
        reads[i].buffer = std::span(storage + i * prefix_buffer, prefix_buffer);
    }
    // Opening files is kernel path-walk work that scales with cores: a large window is read by two threads.
    if (count >= 256 && std::thread::hardware_concurrency() > 1) {
        const std::span<detail::prefix_read> all(reads);
        std::thread helper([second = all.subspan(count / 2), mode] { detail::read_file_prefixes(second, mode.uring); });
        detail::read_file_prefixes(all.first(count / 2), mode.uring);
        helper.join();
    } else {
        detail::read_file_prefixes(reads, mode.uring);
    }
    std::vector<std::uint8_t> large;
    for (std::size_t i = 0; i < count; ++i) {
        const entry& e = entries[first + i];
        if (reads[i].result < 0) {
            entry_read_failure(e, static_cast<int>(-reads[i].result));
        }
        if (static_cast<std::size_t>(reads[i].result) < prefix_buffer) {
            use(e, std::span<const std::uint8_t>(reads[i].buffer.data(), static_cast<std::size_t>(reads[i].result)));
            continue;
        }
        if (mode.map) {
            const mapped_entry mapped(e);
            use(e, mapped.bytes());
            continue;
        }
        const int status = detail::read_whole_file(e.path.c_str(), large);
        if (status < 0) {
            entry_read_failure(e, -status);
        }
        use(e, std::span<const std::uint8_t>(large));
    }
}

/// Shared progress state; callbacks are posted to the caller's executor.
struct progress_state {
    asio::any_io_executor executor;
    std::function<void(const assemble_progress&)> callback;
    std::mutex mutex;
    assemble_progress current;

    void add(std::size_t entries, std::uint64_t bytes, std::size_t archives) {
        if (!callback) {
            return;
        }
        assemble_progress snapshot;
        {
            const std::lock_guard lock(mutex);
            current.entries_done += entries;
            current.bytes_done += bytes;
            current.bytes_total = std::max(current.bytes_total, current.bytes_done);
            current.archives_done += archives;
            snapshot = current;
        }
        asio::post(executor, [cb = callback, snapshot] { cb(snapshot); });
    }
};

/// Writes one source's archive (runs on a CPU-pool thread). Returns the bytes of entries archived, or nullopt when
/// `stop` was raised first (the unfinished temporary file is removed by the writer).
std::optional<std::uint64_t> assemble_source(const source_group& group, read_mode mode, progress_state& progress,
                                             const std::atomic<bool>& stop) {
    npz_writer writer(group.archive);
    const window_scratch scratch;
    std::uint64_t bytes = 0;
    std::size_t first = 0;
    while (first < group.entries.size()) {
        if (stop.load(std::memory_order_relaxed)) {
            return std::nullopt;
        }
        const std::size_t last = std::min(group.entries.size(), first + window_files);
        std::uint64_t window = 0;
        std::size_t window_entries = 0;
        for_each_entry_bytes(group.entries, first, last, mode, scratch.span(),
                             [&](const entry& e, std::span<const std::uint8_t> data) {
                                 (void)npy_u1_payload(data, e.path);  // a damaged entry is an error naming the file
                                 writer.add(e.stem + ".npy", data);
                                 window += data.size();
                                 ++window_entries;
                             });
        bytes += window;
        progress.add(window_entries, window, 0);
        first = last;
    }
    writer.finish(mode.durable);
    progress.add(0, 0, 1);
    return bytes;
}

/// spec §7.2 step 7: every archived member must equal its source entry.
void verify_source(const source_group& group, read_mode mode) {
    const npz_reader archive(group.archive);
    const window_scratch scratch;
    std::size_t first = 0;
    while (first < group.entries.size()) {
        const std::size_t last = std::min(group.entries.size(), first + window_files);
        for_each_entry_bytes(
            group.entries, first, last, mode, scratch.span(), [&](const entry& e, std::span<const std::uint8_t> data) {
                const npz_member* member = archive.find(e.stem + ".npy");
                bool same = member != nullptr && member->uncompressed_size == data.size();
                if (same) {
                    const auto archived = archive.data(*member);
                    same =
                        std::equal(archived.begin(), archived.end(), data.begin()) && crc32(archived) == member->crc32;
                }
                if (!same) {
                    throw value_error(fmt::format(
                        "Unable to verify the integrity of the assembled log archive for source {}. The archived data "
                        "for "
                        "entry {} must exactly match the data of the original .npy log entry, but the two differ.",
                        group.source, e.stem));
                }
            });
        first = last;
    }
}

[[nodiscard]] bool stat_is_regular_file(const fs::path& path) {
    struct stat st {};

    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

[[nodiscard]] bool stat_is_directory(const fs::path& path) {
    struct stat st {};

    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

asio::awaitable<assemble_report> async_assemble_log_archives(fs::path log_directory, assemble_options options) {
    const int workers = resolve_worker_count(std::max(0, options.max_workers));
    auto discover = [directory = log_directory] {
        return discover_entries(directory);
    };
    const std::vector<source_group> groups = co_await detail::async_run_cpu(discover);
    assemble_report report;
    if (groups.empty()) {
        co_return report;
    }
    auto progress = std::make_shared<progress_state>();
    progress->executor = co_await asio::this_coro::executor;
    progress->callback = options.progress;
    for (const auto& g : groups) {
        progress->current.entries_total += g.entries.size();
    }
    progress->current.archives_total = groups.size();
    progress->add(0, 0, 0);

    // Archive phase: `workers` tasks pull sources from a shared cursor (largest first keeps the tail short).
    std::vector<std::size_t> order(groups.size());
    for (std::size_t i = 0; i < order.size(); ++i) {
        order[i] = i;
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return groups[a].entries.size() > groups[b].entries.size(); });
    const read_mode mode{
        .map = options.memory_mapping, .uring = options.use_io_uring, .durable = options.remove_sources};
    std::atomic<std::size_t> cursor{0};
    std::vector<std::optional<std::uint64_t>> bytes(groups.size());
    const auto tasks = std::min<std::size_t>(static_cast<std::size_t>(workers), groups.size());
    auto stop = std::make_shared<std::atomic<bool>>(false);
    std::function<void(std::size_t)> task0 = [&](std::size_t) {
        for (std::size_t k = cursor++; k < order.size(); k = cursor++) {
            const source_group& group = groups[order[k]];
            bytes[order[k]] = assemble_source(group, mode, *progress, *stop);
            if (detail::test_hooks::after_archive_written && bytes[order[k]]) {
                detail::test_hooks::after_archive_written(group.archive);
            }
        }
    };
    co_await detail::async_parallel_for(tasks, std::move(task0), stop);
    // Cancellation (STYLE.md C9) is honoured until the first entry is removed: the archives of this run are deleted
    // again, so the directory holds exactly the entries it held before.
    if (stop->load() || detail::cancelled(co_await asio::this_coro::cancellation_state)) {
        std::size_t written = 0;
        for (std::size_t i = 0; i < groups.size(); ++i) {
            if (bytes[i]) {
                ::unlink(groups[i].archive.c_str());
                ++written;
            }
        }
        throw_os_error(asio::error::operation_aborted,
                       fmt::format("The assembly of the log archives in {} was cancelled; no entry was removed, and "
                                   "the {} archives finished before the cancellation were deleted.",
                                   log_directory.string(), written));
    }

    if (options.verify_integrity) {
        std::atomic<std::size_t> verify_cursor{0};
        std::function<void(std::size_t)> task1 = [&](std::size_t) {
            for (std::size_t k = verify_cursor++; k < order.size(); k = verify_cursor++) {
                verify_source(groups[order[k]], mode);
            }
        };
        co_await detail::async_parallel_for(tasks, std::move(task1));
    }

    for (std::size_t i = 0; i < groups.size(); ++i) {
        report.archives.push_back(groups[i].archive);
        report.entries += groups[i].entries.size();
        report.bytes += *bytes[i];
    }
    if (options.remove_sources) {
        auto remove = [&groups] {
            std::size_t removed = 0;
            for (const auto& g : groups) {
                for (const auto& e : g.entries) {
                    if (::unlink(e.path.c_str()) != 0 && errno != ENOENT) {
                        const int error = errno;
                        throw_errno(error, fmt::format("Unable to remove the archived log entry {}: {}.", e.path,
                                                       std::strerror(error)));
                    }
                    ++removed;
                }
            }
            return removed;
        };
        report.removed = co_await detail::async_run_cpu(remove);
    }
    co_return report;
}

fs::path find_log_archive(const fs::path& log_directory, std::string_view source_id) {
    if (!stat_is_directory(log_directory)) {
        throw_errno(ENOENT, fmt::format("Unable to find the log archive of source '{}' in '{}'. The path does not "
                                        "exist or is not a directory.",
                                        source_id, log_directory.string()));
    }
    const std::string name = fmt::format("{}{}", source_id, log_archive_suffix);
    const auto found = discover_marker_files(log_directory, name);
    if (found.empty()) {
        throw_errno(ENOENT, fmt::format("Unable to find the log archive of source '{}' in '{}'. No file named '{}' "
                                        "was found anywhere under the directory.",
                                        source_id, log_directory.string(), name));
    }
    if (found.size() > 1) {
        std::string list;
        for (const auto& p : found) {
            list += (list.empty() ? "'" : ", '") + p.string() + "'";
        }
        throw value_error(
            fmt::format("Unable to find the log archive of source '{}' in '{}'. Exactly one file named "
                        "'{}' must exist under the directory, but {} were found: [{}].",
                        source_id, log_directory.string(), name, found.size(), list));
    }
    return found.front();
}

std::map<std::string, fs::path> discover_log_archives(const fs::path& log_directory) {
    if (!stat_is_directory(log_directory)) {
        throw_errno(ENOENT, fmt::format("Unable to discover the log archives stored in '{}'. The path does not exist "
                                        "or is not a directory.",
                                        log_directory.string()));
    }
    std::vector<fs::path> candidates;
    for (const auto& item : fs::directory_iterator(log_directory)) {
        const std::string name = item.path().filename().string();
        const std::string_view suffix(log_archive_suffix);
        if (name.size() > suffix.size() && name.ends_with(suffix) && stat_is_regular_file(item.path())) {
            candidates.push_back(item.path());
        }
    }
    std::sort(candidates.begin(), candidates.end());
    std::map<std::string, fs::path> out;
    for (auto& path : candidates) {
        const std::string name = path.filename().string();
        out.emplace(name.substr(0, name.size() - std::string_view(log_archive_suffix).size()), std::move(path));
    }
    return out;
}

std::size_t read_archive_message_count(const fs::path& archive_path) {
    if (!stat_is_regular_file(archive_path)) {
        throw_errno(ENOENT, fmt::format("Unable to read the message count of the log archive at '{}'. The path does "
                                        "not exist or is not a file.",
                                        archive_path.string()));
    }
    const npz_reader archive(archive_path);
    std::size_t count = 0;
    for (const auto& member : archive.members()) {
        if (!log_member_key(member.name).ends_with(log_onset_key_suffix)) {
            ++count;
        }
    }
    return count;
}

}  // namespace axds
