#include <axds/fs/checksum.hpp>

#include <axds/core/workers.hpp>
#include <axds/error.hpp>
#include <axds/fs/walk.hpp>

#include "detail/batch.hpp"
#include "detail/cpu_work.hpp"
#include "detail/ordered_reader.hpp"
#include "detail/parallel.hpp"
#include "detail/uring_copy.hpp"
#include "fs/file_digest.hpp"
#include "fs/path_guard.hpp"
#include "fs/walk_detail.hpp"
#include "fs/xxh3_update.hpp"
#include "sys/aligned_buffer.hpp"
#include "sys/error.hpp"
#include "sys/io.hpp"
#include "sys/unique_fd.hpp"

#include <asio/error.hpp>
#include <asio/this_coro.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <memory>
#include <mutex>
#include <span>
#include <system_error>
#include <utility>
#include <vector>

#include <xxhash.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace axds {

namespace {

struct file_entry {
    std::string relative;  ///< UTF-8 bytes, '/'-separated
    std::string path;      ///< as the walk built it (detail::typed_path)
    detail::digest128 digest{};
    std::uint64_t size = 0;  ///< bytes actually hashed
};

/// Files this large are read by two threads while this one hashes (detail::read_in_order): reading 1 GiB from the
/// page cache into memory took ~0.17 s on one core, hashing it ~0.03 s.
constexpr std::uint64_t parallel_read_min = std::uint64_t{32} << 20;

/// Opens a listed file for reading. Without blocking (a file replaced by a FIFO since the walk listed it would
/// wait for a writer forever) and only when it is still a regular file: hashing anything else would give a digest
/// of something the directory no longer holds as a file.
sys::unique_fd open_listed_file(const std::string& path) {
    sys::unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    if (!fd) {
        const int error = errno;
        throw_errno(
            error, fmt::format("Unable to read '{}' for the directory checksum: {}.", path, sys::errno_message(error)));
    }

    struct stat st {};

    if (::fstat(fd.get(), &st) != 0) {
        const int error = errno;
        throw_errno(
            error, fmt::format("Unable to read '{}' for the directory checksum: {}.", path, sys::errno_message(error)));
    }
    if (!S_ISREG(st.st_mode)) {
        throw runtime_error(
            fmt::format("Unable to read '{}' for the directory checksum: it is no longer a regular "
                        "file (it was replaced while the checksum ran). Run the checksum again once "
                        "nothing changes the directory.",
                        path));
    }
    return fd;
}

/// Reads one file in chunks through `hasher` into its digest; the rest of a large file goes through `streamer`
/// when set (tests), detail::uring_copy otherwise.
void hash_file(file_entry& file, std::span<std::byte> buffer, detail::file_hasher& hasher,
               const detail::rest_streamer& streamer = {}) {
    hasher.start(file.relative);
    const sys::unique_fd fd_owner = open_listed_file(file.path);
    const int fd = fd_owner.get();
    std::uint64_t total = 0;
    bool first = true;
    for (;;) {
        const ssize_t n = sys::retry_eintr([&] { return ::read(fd, buffer.data(), buffer.size()); });
        if (n < 0) {
            const int error = errno;
            throw_errno(error, fmt::format("Unable to read '{}' for the directory checksum: {}.", file.path,
                                           sys::errno_message(error)));
        }
        if (n == 0) {
            break;
        }
        hasher.update(buffer.data(), static_cast<std::size_t>(n));
        total += static_cast<std::uint64_t>(n);

        // A first read that fills the whole buffer marks a large file (small ones never pay for a stat): the rest is
        // read ahead and hashed in order as chunks arrive. From parallel_read_min, two reader threads split the
        // kernel's copy into memory (the bound: hashing is several times faster); below it, io_uring (1 MiB chunks, 4
        // in flight) overlaps the copy of the next chunks with hashing. Whatever is left (a file that grew, or
        // everything when io_uring is unavailable) is read here, to the end.
        struct stat st {};

        if (std::exchange(first, false) && total == buffer.size() && ::fstat(fd, &st) == 0 &&
            static_cast<std::uint64_t>(st.st_size) > total) {
            const auto rest = static_cast<std::uint64_t>(st.st_size) - total;
            if (static_cast<std::uint64_t>(st.st_size) >= parallel_read_min && logical_cpu_count() > 1) {
                const sys::io_result streamed = detail::read_in_order(
                    fd, total, rest, 2,
                    [&hasher](std::span<const std::byte> chunk) { hasher.update(chunk.data(), chunk.size()); });
                if (streamed.error) {
                    const int error = streamed.error.value();
                    throw_errno(error, fmt::format("Unable to read '{}' for the directory checksum: {}.", file.path,
                                                   sys::errno_message(error)));
                }
                total += streamed.bytes;
                (void)::lseek(fd, static_cast<off_t>(total), SEEK_SET);
                continue;
            }
            // Counted as hashed: a stream that fails midway (ring error, transient read error) has already fed
            // its first chunks to the hasher, and the plain reads below must go on after them, not from where the
            // stream started (those chunks would be hashed twice: a wrong digest, silently).
            std::uint64_t hashed = 0;
            const std::function<void(std::span<const char>)> observe = [&hasher, &hashed](std::span<const char> chunk) {
                hasher.update(chunk.data(), chunk.size());
                hashed += chunk.size();
            };
            (void)(streamer ? streamer(fd, total, rest, observe) : detail::uring_copy(fd, -1, rest, observe, total));
            if (hashed > 0) {
                total += hashed;
                (void)::lseek(fd, static_cast<off_t>(total), SEEK_SET);
            }
        }
    }
    file.digest = hasher.finish();
    file.size = total;
}

/// Takes the file's digest from `known` when it lists the file and the file is still what it was then.
bool take_known_digest(file_entry& file, const detail::known_digests* known) {
    if (known == nullptr) {
        return false;
    }
    const auto it = known->find(file.relative);

    struct stat st {};

    if (it == known->end() || ::lstat(file.path.c_str(), &st) != 0 || !it->second.matches(st)) {
        return false;
    }
    file.digest = it->second.digest;
    file.size = static_cast<std::uint64_t>(st.st_size);
    return true;
}

/// The files the checksum covers (§9.1 step 3: the walk's root and permission errors come from here), with their
/// '/'-separated relative paths, in byte order of those paths; none is an error naming the directory.
std::vector<file_entry> collect_files(const fs::path& directory, const checksum_options& options) {
    const std::set<std::string> excluded =
        options.excluded_files ? *options.excluded_files : std::set<std::string>{checksum_file_name};
    // §9.1 step 3: the walk's root and permission errors come from here.
    std::vector<std::string> walked = detail::walk_files_native(directory);
    std::vector<file_entry> files;
    files.reserve(walked.size());
    for (auto& path : walked) {
        if (!excluded.empty() && excluded.count(std::string(detail::file_name_of(path))) != 0) {
            continue;
        }
        file_entry entry;
        entry.relative = detail::relative_to_root(path, directory);
        entry.path = std::move(path);
        files.push_back(std::move(entry));
    }
    if (files.empty()) {
        throw value_error(fmt::format(
            "Unable to calculate the checksum for the {} directory. The directory must hold at least one file the "
            "checksum can cover, but it holds none.",
            directory.string()));
    }
    std::sort(files.begin(), files.end(),
              [](const file_entry& a, const file_entry& b) { return a.relative < b.relative; });  // bytewise
    return files;
}

/// Every file's digest (reused from `known` where the file did not change), `workers` at a time on the batch runner,
/// in rounds whose progress goes to `report`.
asio::awaitable<detail::batch_result> hash_files(std::vector<file_entry>& files, std::size_t workers,
                                                 std::shared_ptr<const detail::known_digests> known,
                                                 const std::function<void(const checksum_progress&)>& report) {
    const std::size_t tasks = std::min(workers, files.size());
    const detail::batch_plan plan{.workers = tasks,
                                  .round = detail::round_size(files.size(), std::max<std::size_t>(64, tasks * 16))};
    detail::item_work hash = [&files, known](std::size_t i, const std::atomic<bool>&) {
        thread_local detail::file_hasher hasher;
        if (!take_known_digest(files[i], known.get())) {
            hash_file(files[i], detail::thread_read_buffer(), hasher);
        }
    };
    checksum_progress progress{.files_total = files.size()};
    detail::round_done after_round = [&files, &progress, &report](std::size_t first, std::size_t last) {
        for (std::size_t i = first; i < last; ++i) {
            progress.bytes_done += files[i].size;
        }
        progress.files_done = last;
        progress.bytes_total = progress.bytes_done;  // sizes are learned while reading (no extra stat per file)
        if (report) {
            report(progress);
        }
    };
    co_return co_await detail::async_for_each_item(files.size(), plan, std::move(hash), std::move(after_round));
}

}  // namespace

asio::awaitable<std::string> async_calculate_directory_checksum(fs::path directory, checksum_options options) {
    co_return co_await detail::async_directory_checksum(std::move(directory), std::move(options), nullptr);
}

}  // namespace axds

namespace axds::detail {

asio::awaitable<std::string> async_directory_checksum(fs::path directory, checksum_options options,
                                                      std::shared_ptr<const known_digests> known,
                                                      std::function<void()> after_walk) {
    // Before the walk (the Python library refuses a bad count only after it): a bad count never costs a long walk.
    const auto workers = static_cast<std::size_t>(resolve_workers_option(options.workers, "checksum_options::workers"));
    std::vector<file_entry> files;
    auto walk = [&files, &directory, &options, &after_walk] {  // a large tree's walk must not stall the executor
        files = collect_files(directory, options);
        if (after_walk) {
            after_walk();
        }
    };
    const bool interrupted = co_await detail::async_run_cpu_cancellable(walk);
    if (interrupted) {
        throw_os_error(asio::error::operation_aborted,
                       fmt::format("The checksum of {} was cancelled after 0 of {} files; nothing was saved.",
                                   directory.string(), files.size()));
    }

    // Rounds of files go to the batch runner; progress is reported between rounds, on the caller's executor, and
    // cancellation is honoured between files (nothing is written then).
    const detail::batch_result hashed = co_await hash_files(files, workers, known, options.progress);
    const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
    if (hashed.stopped || detail::cancelled(state)) {
        throw_os_error(asio::error::operation_aborted,
                       fmt::format("The checksum of {} was cancelled after {} of {} files; nothing was saved.",
                                   directory.string(), hashed.done, files.size()));
    }

    std::vector<detail::file_digest> digests;
    digests.reserve(files.size());
    for (auto& file : files) {
        digests.push_back({file.relative, file.digest});  // `files` outlives the combination
    }
    std::string digest = detail::combine_file_digests(digests);
    if (options.save_checksum) {
        detail::save_checksum_file(directory, digest);
    }
    co_return digest;
}

/// Distinguishes the temporary names of saves running at once in one process.
std::atomic<std::uint64_t> save_counter{0};

std::span<std::byte> thread_read_buffer() {
    // Uninitialized and reused for the thread's life (zeroing a fresh one per batch cost more than hashing 16 KiB
    // files); page-aligned (see sys/aligned_buffer.hpp).
    thread_local const sys::aligned_buffer buffer(read_chunk_size);
    return buffer.as();
}

std::pair<digest128, std::uint64_t> file_digest_of(const std::string& path, std::string_view relative,
                                                   const rest_streamer& streamer) {
    file_entry file{.relative = std::string(relative), .path = path};
    file_hasher hasher;
    hash_file(file, thread_read_buffer(), hasher, streamer);
    return {file.digest, file.size};
}

struct file_hasher::state {
    XXH3_state_t* xxh = XXH3_createState();
};

file_hasher::file_hasher() : state_(std::make_unique<state>()) {
    if (state_->xxh == nullptr) {
        throw std::bad_alloc();
    }
}

file_hasher::~file_hasher() {
    XXH3_freeState(state_->xxh);
}

void file_hasher::start(std::string_view relative) {
    XXH3_128bits_reset(state_->xxh);
    XXH3_128bits_update(state_->xxh, relative.data(), relative.size());
}

void file_hasher::update(const void* data, std::size_t size) {
    detail::xxh3_128_update(state_->xxh, data, size);  // AVX-512/AVX2 when the CPU has them: 2x the SSE2 build
}

digest128 file_hasher::finish() {
    XXH128_canonical_t canonical;
    XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(state_->xxh));
    digest128 out{};
    std::copy(std::begin(canonical.digest), std::end(canonical.digest), out.begin());
    return out;
}

std::string combine_file_digests(std::vector<file_digest>& files) {
    std::sort(files.begin(), files.end(),
              [](const file_digest& a, const file_digest& b) { return a.relative < b.relative; });  // bytewise
    file_hasher combined;
    combined.start("");
    for (const auto& file : files) {
        combined.update(file.relative.data(), file.relative.size());
        combined.update(file.digest.data(), file.digest.size());
    }
    const digest128 bytes = combined.finish();
    std::string out;
    out.reserve(32);
    for (const unsigned char byte : bytes) {
        out += fmt::format("{:02x}", byte);
    }
    return out;
}

namespace {

/// Writes `digest` to a new file in `directory` that has no name (O_TMPFILE) and links it as `temporary` once it is
/// complete and synced. Returns 0, the errno of a write or sync that failed (a full disk, a file size limit), or -1
/// when this cannot be done here (a filesystem without O_TMPFILE, no usable /proc/self/fd, `temporary` taken): the
/// caller then writes a named file instead.
int write_unnamed(const fs::path& directory, const fs::path& temporary, const std::string& digest,
                  const file_sync_fn& sync) {
    const sys::unique_fd fd(::open(directory.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644));
    if (!fd) {
        return -1;
    }
    const sys::io_result written = sys::pwrite_full(fd.get(), digest.data(), digest.size(), 0);
    if (written.error) {
        return written.error.value();
    }
    if (const int error = sync(fd.get()); error != 0) {
        return error;
    }
    const std::string proc_path = fmt::format("/proc/self/fd/{}", fd.get());
    if (::linkat(AT_FDCWD, proc_path.c_str(), AT_FDCWD, temporary.c_str(), AT_SYMLINK_FOLLOW) == 0 ||
        ::linkat(fd.get(), "", AT_FDCWD, temporary.c_str(), AT_EMPTY_PATH) == 0) {  // the latter needs privilege
        return 0;
    }
    return -1;
}

}  // namespace

int sync_file_data(int fd) noexcept {
    return ::fdatasync(fd) == 0 ? 0 : errno;
}

void save_checksum_file(const fs::path& directory, const std::string& digest, const file_sync_fn& sync) {
    const fs::path target = directory / checksum_file_name;
    // Written to a new file, then renamed over ax_checksum.txt: a save that fails part way (a full disk, a file size
    // limit) leaves the previous checksum as it was, never an empty or cut file. The file has no name while it is
    // written (O_TMPFILE) and gets its temporary name only once complete, so a save killed part way leaves nothing
    // that a later checksum would include, but for the instant between that link and the rename; without O_TMPFILE
    // (some network filesystems, no /proc) it is named from the start. A temporary name already taken (a leftover of
    // another process with this PID, e.g. PID 1 in a container) is skipped, never removed. The rename replaces a
    // symlink or a hard link named ax_checksum.txt itself, never the file it leads to. The new file's data is synced
    // before the rename, so that a power loss cannot leave a renamed but empty ax_checksum.txt (filesystems may commit
    // the rename before the data): after one, the file holds the previous checksum or the new one.
    fs::path temporary;
    bool created = false;
    const auto fail = [&](int error) {
        if (created) {
            (void)::unlink(temporary.c_str());
        }
        throw_errno(error, fmt::format("Unable to save the checksum {} to '{}': {}.", digest, target.string(),
                                       sys::errno_message(error)));
    };
    for (int attempt = 0; !created; ++attempt) {
        temporary =
            directory / fmt::format(".{}.axds-{}-{}", checksum_file_name, ::getpid(), save_counter.fetch_add(1));
        const int unnamed = write_unnamed(directory, temporary, digest, sync);
        if (unnamed > 0) {
            fail(unnamed);
        }
        if (unnamed == 0) {
            created = true;
            break;
        }
        const sys::unique_fd fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
        if (!fd && errno == EEXIST && attempt < 100) {
            continue;
        }
        if (!fd) {
            fail(errno);
        }
        created = true;
        const sys::io_result written = sys::pwrite_full(fd.get(), digest.data(), digest.size(), 0);
        if (written.error) {
            fail(written.error.value());
        }
        if (const int error = sync(fd.get()); error != 0) {
            fail(error);
        }
    }
    if (::rename(temporary.c_str(), target.c_str()) != 0) {
        fail(errno);
    }
}

}  // namespace axds::detail
