#include <axds/log/log_archive.hpp>

#include <axds/core/console.hpp>
#include <axds/core/workers.hpp>
#include <axds/error.hpp>
#include <axds/fs/walk.hpp>
#include <axds/log/log_package.hpp>
#include <axds/npy/npy_format.hpp>
#include <axds/npy/npz_archive.hpp>

#include "detail/batch.hpp"
#include "detail/cpu_work.hpp"
#include "detail/fault_hooks.hpp"
#include "detail/huge_pages.hpp"
#include "detail/parallel.hpp"
#include "detail/prefix_ring.hpp"
#include "detail/printable.hpp"
#include "detail/uring_reader.hpp"
#include "log/archive_stream.hpp"
#include "sys/aligned_buffer.hpp"
#include "sys/error.hpp"
#include "sys/unique_fd.hpp"

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

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace axds {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t prefix_buffer = 16 * 1024;  // one read covers typical entries
constexpr std::size_t window_files = 1024;        // entries read per batch

/// One entry file. Trivially copyable: its path lives in the discovery's one block of paths (40,000 small strings
/// for a 20,000-entry directory, and the heap growth under them, were half of the discovery's time).
struct entry {
    std::string_view path;        // NUL-terminated (the block holds a '\0' after each path): path.data() is a C string
    std::size_t name_offset = 0;  // where the file name starts in `path`
    std::uint64_t source = 0;
    std::uint64_t timestamp = 0;
    std::size_t discovery_order = 0;

    /// The file name, `{stem}.npy`: the member's name in the archive (no string per entry: 20,000 small allocations
    /// and the heap pages they touch were measurable).
    [[nodiscard]] std::string_view name() const noexcept { return path.substr(name_offset); }

    [[nodiscard]] std::string_view stem() const noexcept {
        const std::string_view n = name();
        return n.substr(0, n.size() - 4);
    }
};

/// Entries in a block that huge pages back where there are enough of them (detail::huge_page_allocator).
using entry_list = std::vector<entry, detail::huge_page_allocator<entry>>;

struct source_group {
    std::uint64_t source = 0;
    entry_list entries;
    fs::path archive;
};

bool parse_decimal(std::string_view text, std::uint64_t& out) {
    if (text.empty()) {
        return false;
    }
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && ptr == text.data() + text.size();
}

/// `SSS_TTTT…[_anything]`: the first two underscore-separated fields as source and timestamp.
bool parse_stem(std::string_view stem, std::uint64_t& source, std::uint64_t& timestamp) {
    const auto first = stem.find('_');
    if (first == std::string_view::npos) {
        return false;
    }
    const auto second = stem.find('_', first + 1);
    return parse_decimal(stem.substr(0, first), source) &&
           parse_decimal(
               stem.substr(first + 1, second == std::string_view::npos ? std::string_view::npos : second - first - 1),
               timestamp);
}

/// What discovery found: the entries grouped by source, and `.npy` names that are not regular files.
struct discovery {
    /// every entry's path, NUL-terminated, back to back (the entries point into it)
    std::vector<char, detail::huge_page_allocator<char>> paths;
    std::vector<source_group> groups;
    std::vector<assemble_issue> skipped;
};

/// Whether a `.npy` directory entry is a regular file, following links (a link to a FIFO is no entry either).
/// Sets `reason` for a name that is not an entry and must be reported; directories are quietly not entries.
bool is_entry_file(const char* path, unsigned char type, std::string& reason) {
    if (type == DT_REG) {
        return true;
    }
    if (type == DT_DIR) {
        return false;
    }

    struct stat st {};

    if (::stat(path, &st) != 0) {
        reason =
            fmt::format("it cannot be inspected ({}), for example a dangling symbolic link", sys::errno_message(errno));
        return false;
    }
    if (S_ISREG(st.st_mode)) {
        return true;
    }
    if (!S_ISDIR(st.st_mode)) {
        reason = S_ISFIFO(st.st_mode) ? "it is a named pipe (FIFO), not a regular file"
                                      : "it is a socket or device, not a regular file";
    }
    return false;
}

/// One read of the log directory, sorted into what the assembly's three passes look at (listing a 20,000-entry
/// tmpfs directory took ~10 ms: it was listed once per pass).
struct directory_listing {
    struct npy_name {
        std::size_t offset = 0;  ///< in npy_names
        std::size_t size = 0;
        unsigned char type = DT_UNKNOWN;
    };

    /// the `*.npy` names back to back (one string, not one per name)
    std::basic_string<char, std::char_traits<char>, detail::huge_page_allocator<char>> npy_names;
    std::vector<npy_name, detail::huge_page_allocator<npy_name>> npy;  ///< `*.npy` names (entries, unless not files)
    std::vector<std::string> stale;    ///< `.{source}_log.npz.*.partial`: unfinished archives of killed runs
    std::vector<std::string> working;  ///< streaming loggers' working files, for detail::recover_working_files
};

/// `.{source}_log.npz.*.partial`.
bool is_stale_temporary(std::string_view name) {
    const auto suffix = name.find(std::string(log_archive_suffix) + ".");
    std::uint64_t source = 0;
    return name.starts_with('.') && name.ends_with(".partial") && suffix != std::string_view::npos &&
           parse_decimal(name.substr(1, suffix - 1), source);
}

/// Lists `directory` once. A missing directory lists nothing.
directory_listing list_log_directory(const fs::path& directory) {
    directory_listing listing;
    DIR* dir = ::opendir(directory.c_str());
    if (dir == nullptr) {
        if (errno == ENOENT) {
            return listing;  // a missing directory simply yields nothing
        }
        const int error = errno;
        throw_errno(error, fmt::format("Unable to list the log directory {}: {}.", directory.string(),
                                       sys::errno_message(error)));
    }
    while (const dirent* d = ::readdir(dir)) {
        const std::string_view name(d->d_name);
        std::uint64_t source = 0;
        if (name.size() > 4 && name.ends_with(".npy")) {
            listing.npy.push_back({listing.npy_names.size(), name.size(), d->d_type});
            listing.npy_names += name;
        } else if (is_stale_temporary(name)) {
            listing.stale.emplace_back(name);
        } else if (detail::parse_working_file_name(name, source)) {
            listing.working.emplace_back(name);
        }
    }
    ::closedir(dir);
    return listing;
}

/// spec §7.2 step 3: `*.npy` directly in the directory; `stem.split("_")[0:2]` are the source and timestamp.
discovery discover_entries(const fs::path& directory, const directory_listing& listing) {
    entry_list entries;
    entries.reserve(listing.npy.size());
    discovery found;
    std::string prefix = directory.string();
    if (!prefix.empty() && !prefix.ends_with('/')) {
        prefix += '/';
    }
    found.paths.resize(listing.npy.size() * (prefix.size() + 1) + listing.npy_names.size());
    char* next = found.paths.data();
    for (const auto& [offset, size, type] : listing.npy) {
        const std::string_view name = std::string_view(listing.npy_names).substr(offset, size);
        entry e;
        e.path = std::string_view(next, prefix.size() + size);
        e.name_offset = prefix.size();
        next = std::copy(name.begin(), name.end(), std::copy(prefix.begin(), prefix.end(), next));
        *next++ = '\0';
        if (std::string reason; !is_entry_file(e.path.data(), type, reason)) {
            if (!reason.empty()) {
                found.skipped.push_back({e.path, std::move(reason)});
            }
            continue;
        }
        if (!parse_stem(e.stem(), e.source, e.timestamp)) {
            throw value_error(fmt::format(
                "Unable to assemble the log archives in {}. The log entry file name '{}' does not follow the "
                "'{{source_id}}_{{timestamp}}.npy' pattern (for example 001_00000000000000001500.npy): its first two "
                "underscore-separated fields must be non-negative integers.",
                directory.string(), name));
        }
        e.discovery_order = entries.size();
        entries.push_back(e);
    }
    // In place (a stable sort's temporary copy of the entries was ~250 page faults for 20,000 entries, each ~13 us in
    // a VM); the discovery order as the last key keeps equal timestamps in the order a stable sort would.
    std::sort(entries.begin(), entries.end(), [](const entry& a, const entry& b) {
        return a.source != b.source         ? a.source < b.source
               : a.timestamp != b.timestamp ? a.timestamp < b.timestamp
                                            : a.discovery_order < b.discovery_order;
    });
    for (std::size_t first = 0, last = 0; first < entries.size(); first = last) {
        for (last = first + 1; last < entries.size() && entries[last].source == entries[first].source; ++last) {
        }
        source_group& group = found.groups.emplace_back();
        group.source = entries[first].source;
        group.archive = directory / fmt::format("{}{}", group.source, log_archive_suffix);
        if (first == 0 && last == entries.size()) {
            group.entries = std::move(entries);  // one source (the usual case): no copy of every entry
            break;
        }
        const auto from = entries.begin() + static_cast<std::ptrdiff_t>(first);
        group.entries.assign(from, from + static_cast<std::ptrdiff_t>(last - first));
    }
    return found;
}

[[noreturn]] void entry_read_failure(const entry& e, int error) {
    throw_errno(error, fmt::format("Unable to read the log entry {}: {}.", e.path, sys::errno_message(error)));
}

/// A read-only map of one entry file.
class mapped_entry {
public:
    explicit mapped_entry(const entry& e) {
        const sys::unique_fd fd(::open(e.path.data(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));  // a FIFO never blocks us
        if (!fd) {
            entry_read_failure(e, errno);
        }

        struct stat st {};

        if (::fstat(fd.get(), &st) != 0) {
            entry_read_failure(e, errno);
        }
        size_ = static_cast<std::size_t>(st.st_size);
        if (size_ > 0) {
            void* map = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
            if (map == MAP_FAILED) {
                entry_read_failure(e, errno);
            }
            data_ = static_cast<const std::uint8_t*>(map);
        }
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

/// An O_PATH descriptor of a directory (none if it cannot be opened).
sys::unique_fd open_directory_path(const std::string& path) {
    return sys::unique_fd(path.empty() ? -1 : ::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
}

/// How entries are read: large ones mapped (or read whole), small ones through io_uring chains (or open/pread/close).
struct read_mode {
    bool map = true;
    bool uring = false;
    bool durable = true;  // fsync archives: only needed when their entries are about to be removed
};

/// Uninitialized slots for one window of entries, allocated once per archive: zeroing (and faulting in) a fresh
/// 16 MiB per window cost more than reading the entries.
/// Page-aligned, so every slot is (prefix_buffer is a multiple of the page size).
struct window_scratch {
    sys::aligned_buffer bytes{window_files * prefix_buffer};

    // One 2 MiB page fault instead of 128 small ones (one per slot): each fault is far dearer in a VM.
    window_scratch() { detail::advise_huge_pages(bytes.data(), bytes.size()); }

    [[nodiscard]] std::span<std::uint8_t> span() const noexcept { return bytes.as<std::uint8_t>(); }
};

static_assert(prefix_buffer % sys::buffer_alignment == 0);

/// Hands every entry's bytes to `use(entry, bytes)` in order. Entries are read by detail::prefix_ring (this thread
/// and a helper read chunks of 64 entries ahead into 16 KiB slots of `scratch`, with batched io_uring reads where
/// enabled; see window_scratch); larger entries are then memory-mapped (`map`) or read whole into a buffer.
/// `after(consumed)` runs after every 64 entries; false stops the reading (the function then returns false).
/// An entry that cannot be opened or read goes to `unreadable(entry, errno)` instead of `use` when that is given
/// (else the error is thrown).
template <typename Use>
bool for_each_entry_bytes(const entry_list& entries, read_mode mode, std::span<std::uint8_t> scratch, Use&& use,
                          const detail::prefix_ring::after_chunk_fn& after = {},
                          const std::function<void(const entry&, int)>& unreadable = {}) {
    if (entries.empty()) {
        return true;
    }
    // Opening by name relative to the directory spares the kernel the walk down to it on every entry (5-10%).
    const entry& any = entries.front();
    const sys::unique_fd directory = open_directory_path(std::string(any.path.substr(0, any.name_offset)));
    const int dirfd = directory.get();
    // Opening files is kernel path-walk work that scales with cores: the helper reads while this thread parses.
    detail::prefix_ring ring(entries.size(), scratch, prefix_buffer, mode.uring, logical_cpu_count() > 1,
                             [&entries, dirfd](std::size_t i, detail::prefix_read& read) {
                                 const entry& e = entries[i];
                                 read.path = dirfd >= 0 ? e.path.data() + e.name_offset : e.path.data();
                                 read.dirfd = dirfd >= 0 ? dirfd : AT_FDCWD;
                             });
    sys::aligned_buffer large;
    const auto consume = [&](std::size_t i, const detail::prefix_read& read) {
        const entry& e = entries[i];
        if (read.error && unreadable) {
            unreadable(e, read.error.value());
            return;
        }
        if (read.error) {
            entry_read_failure(e, read.error.value());
        }
        if (read.bytes < prefix_buffer) {
            use(e, std::span<const std::uint8_t>(read.buffer.data(), read.bytes));
            return;
        }
        if (mode.map) {
            const mapped_entry mapped(e);
            use(e, mapped.bytes());
            return;
        }
        const sys::io_result whole = detail::read_whole_file(e.path.data(), large);
        if (whole.error && unreadable) {
            unreadable(e, whole.error.value());
            return;
        }
        if (whole.error) {
            entry_read_failure(e, whole.error.value());
        }
        use(e, std::span<const std::uint8_t>(large.as<std::uint8_t>().first(whole.bytes)));
    };
    return ring.run(consume, after);
}

/// The assembly's progress, updated by the tasks per window of entries and per archive (see detail::posted_progress).
class progress_state {
public:
    progress_state(asio::any_io_executor executor, std::function<void(const assemble_progress&)> callback,
                   const assemble_progress& totals)
        : posted_(std::move(executor), std::move(callback), totals) {}

    void add(std::size_t entries, std::uint64_t bytes, std::size_t archives) {
        posted_.update([&](assemble_progress& current) {
            current.entries_done += entries;
            current.bytes_done += bytes;
            current.bytes_total = std::max(current.bytes_total, current.bytes_done);
            current.archives_done += archives;
        });
    }

private:
    detail::posted_progress<assemble_progress> posted_;
};

/// One member of the archive that was already in the directory.
struct previous_member {
    const npz_member* member = nullptr;
    std::uint64_t timestamp = 0;
};

/// What assembling one source did (filled on a CPU-pool thread, read by the coroutine afterwards).
struct source_outcome {
    bool finished = false;  ///< false: cancelled first
    bool written = false;   ///< a new archive was renamed into place
    bool has_archive = false;
    std::uint64_t bytes = 0;
    std::vector<char> archived;  ///< per entry: its bytes are in the archive now, so it may be removed
    std::vector<assemble_issue> skipped;
    std::size_t merged = 0;
    std::size_t duplicates = 0;
    std::unique_ptr<npz_reader> previous;  ///< the archive that was there before, kept mapped for verification

    /// The archive as this run left it (written: after its rename; else as it was found), if known: its entries are
    /// removed only while it is still that file (archive_unchanged).
    struct stat archive_state {};

    bool archive_known = false;
};

/// Opens the archive already in the directory, if any, and checks that it can be merged: a readable log archive of
/// this source whose every member passes its CRC. Anything else is an error naming it (it is never replaced).
std::vector<previous_member> load_previous(const source_group& group, source_outcome& out) {
    struct stat st {};

    if (::lstat(group.archive.c_str(), &st) != 0) {
        if (errno == ENOENT) {
            return {};
        }
        const int error = errno;
        throw_errno(error, fmt::format("Unable to inspect the existing log archive {}: {}.", group.archive.string(),
                                       sys::errno_message(error)));
    }
    const auto refuse = [&](std::string_view problem) {
        throw value_error(fmt::format(
            "Unable to assemble the entries of source {} into {}: the existing file {}. It was left untouched and no "
            "entry was removed; move it out of the directory to assemble the entries into a new archive.",
            group.source, group.archive.string(), problem));
    };
    if (!S_ISREG(st.st_mode)) {
        refuse("is not a regular file");
    }
    out.archive_state = st;
    out.archive_known = true;
    try {
        out.previous = std::make_unique<npz_reader>(group.archive);
    } catch (const value_error& e) {
        refuse(fmt::format("cannot be read as an archive ({})", e.what()));
    }
    std::vector<previous_member> members;
    for (const auto& member : out.previous->members()) {
        std::uint64_t source = 0;
        std::uint64_t timestamp = 0;
        const std::string_view name(member.name);
        if (!name.ends_with(".npy") || !parse_stem(name.substr(0, name.size() - 4), source, timestamp) ||
            source != group.source) {
            refuse(fmt::format("holds the member '{}', which is not a log entry of source {}",
                               detail::printable(member.name), group.source));
        }
        try {
            out.previous->verify_crc(member);
        } catch (const value_error& e) {
            refuse(fmt::format("is damaged ({})", e.what()));
        }
        members.push_back({&member, timestamp});
    }
    std::stable_sort(members.begin(), members.end(),
                     [](const previous_member& a, const previous_member& b) { return a.timestamp < b.timestamp; });
    return members;
}

/// Why the bytes of entry `e` cannot be archived (empty: they can): not a 1-D uint8 `.npy`, or an array shorter
/// than a source id and a timestamp (9 bytes), which would make the whole archive unreadable (the readers refuse it).
std::string entry_damage(const entry& e, std::span<const std::uint8_t> data) {
    try {
        if (const auto payload = npy_u1_payload(data, e.path); payload.size() < 9) {
            return fmt::format(
                "The log entry {} holds {} byte(s); a log entry holds at least 9 (its source id and "
                "timestamp), so it cannot be archived.",
                e.path, payload.size());
        }
    } catch (const value_error& damaged) {
        std::string reason = damaged.what();
        return reason.empty() ? fmt::format("The log entry {} is not a valid .npy file.", e.path) : reason;
    }
    return {};
}

/// Writes one source's archive (runs on a CPU-pool thread): the union of the archive already there (if any) and the
/// entries, in timestamp order (at equal timestamps the archived members first). Returns with `finished` false when
/// `stop` was raised first (the unfinished temporary file is removed by the writer).
void assemble_source(const source_group& group, read_mode mode, progress_state& progress, const std::atomic<bool>& stop,
                     source_outcome& out) {
    const std::vector<previous_member> previous = load_previous(group, out);
    out.archived.assign(group.entries.size(), 0);
    npz_writer writer(group.archive);
    writer.reserve(previous.size() + group.entries.size());
    const window_scratch scratch;
    std::size_t next_previous = 0;
    const auto write_previous_up_to = [&](std::uint64_t timestamp) {
        for (; next_previous < previous.size() && previous[next_previous].timestamp <= timestamp; ++next_previous) {
            const npz_member& member = *previous[next_previous].member;
            writer.add(member.name, out.previous->data(member));
            ++out.merged;
        }
    };
    std::size_t added = 0;
    std::uint64_t window = 0;
    std::size_t window_entries = 0;
    const auto use = [&](const entry& e, std::span<const std::uint8_t> data) {
        const auto i = static_cast<std::size_t>(&e - group.entries.data());
        ++window_entries;
        const std::string_view name = e.name();
        const npz_member* archived = out.previous ? out.previous->find(name) : nullptr;
        if (std::string damage = entry_damage(e, data); !damage.empty()) {
            out.skipped.push_back({e.path, archived == nullptr
                                               ? std::move(damage)
                                               : fmt::format("{} (a valid member with this key is already in {})",
                                                             damage, group.archive.string())});
            return;
        }
        write_previous_up_to(e.timestamp);
        if (archived != nullptr) {
            const auto kept = out.previous->data(*archived);
            if (!std::equal(kept.begin(), kept.end(), data.begin(), data.end())) {
                throw value_error(fmt::format(
                    "Unable to assemble the log archive for source {}: the entry {} and the member '{}' of the "
                    "existing archive {} share a key but hold different data. Nothing was written and no entry was "
                    "removed; keep the one that is right and move the other out of the directory.",
                    group.source, e.path, name, group.archive.string()));
            }
            ++out.duplicates;
        } else {
            writer.add(name, data);
            ++added;
        }
        out.archived[i] = 1;
        window += data.size();
    };
    const auto after = [&](std::size_t consumed) {
        if (consumed % window_files == 0 || consumed == group.entries.size()) {
            out.bytes += window;
            progress.add(window_entries, window, 0);
            window = 0;
            window_entries = 0;
        }
        return !stop.load(std::memory_order_relaxed);
    };
    // An entry that cannot be read (removed meanwhile, not readable by this user) is reported and left on disk, as
    // a damaged one is: the others are still archived.
    const auto unreadable = [&](const entry& e, int error) {
        ++window_entries;
        out.skipped.push_back({e.path, fmt::format("it could not be read ({})", sys::errno_message(error))});
    };
    if (stop.load(std::memory_order_relaxed) ||
        !for_each_entry_bytes(group.entries, mode, scratch.span(), use, after, unreadable)) {
        return;
    }
    write_previous_up_to(~std::uint64_t{0});
    // Nothing new: the archive that is there already holds everything (or there is nothing to write at all).
    out.has_archive = out.previous != nullptr || added > 0;
    if (added > 0) {
        // Replacing an archive whose entries may be gone must be durable, whatever the caller asked for.
        writer.finish(mode.durable || out.previous != nullptr);
        out.written = true;
        out.archive_known = ::lstat(group.archive.c_str(), &out.archive_state) == 0;  // else its entries stay
    }
    out.finished = true;
    progress.add(0, 0, 1);
}

/// spec §7.2 step 7: every archived member must equal its source entry, and every member of the archive that was
/// there before must have been carried over unchanged.
void verify_source(const source_group& group, const source_outcome& outcome, read_mode mode) {
    if (!outcome.written) {
        return;
    }
    const npz_reader archive(group.archive, {.verify_crc = false});  // compared byte by byte (and CRC) below
    const auto mismatch = [&](std::string_view stem) {
        throw value_error(fmt::format(
            "Unable to verify the integrity of the assembled log archive for source {}. The archived data for "
            "entry {} must exactly match the data of the original .npy log entry, but the two differ.",
            group.source, stem));
    };
    const auto same = [&](std::string_view name, std::span<const std::uint8_t> data) {
        const npz_member* member = archive.find(name);
        if (member == nullptr || member->uncompressed_size != data.size()) {
            return false;
        }
        const auto archived = archive.data(*member);
        return std::equal(archived.begin(), archived.end(), data.begin()) && crc32(archived) == member->crc32;
    };
    const window_scratch scratch;
    for_each_entry_bytes(group.entries, mode, scratch.span(), [&](const entry& e, std::span<const std::uint8_t> data) {
        if (outcome.archived[static_cast<std::size_t>(&e - group.entries.data())] != 0 && !same(e.name(), data)) {
            mismatch(e.stem());
        }
    });
    if (outcome.previous) {
        for (const auto& member : outcome.previous->members()) {
            if (!same(member.name, outcome.previous->data(member))) {
                mismatch(std::string_view(member.name).substr(0, member.name.size() - 4));
            }
        }
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

/// One assembly per directory: a BSD lock on the directory itself, held for the whole run.
class directory_lock {
public:
    /// Locks `directory` (a missing one is not locked: there is nothing to assemble).
    /// @throws runtime_error when another assembly holds it.
    explicit directory_lock(const fs::path& directory)
        : fd_(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
        if (fd_ && ::flock(fd_.get(), LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
            throw runtime_error(fmt::format(
                "Unable to assemble the log archives in {}: another assembly of this directory, or a data logger "
                "writing into it, is running. Wait for it to finish (stop the logger first).",
                directory.string()));
        }
        // Any other flock failure (a filesystem without locks) leaves the directory unlocked, as before.
    }

    /// fsync of the directory, so renames into it survive a power loss.
    void sync(const fs::path& directory) const {
        if (fd_ && ::fsync(fd_.get()) != 0) {
            const int error = errno;
            throw_errno(error, fmt::format("Unable to flush the log directory {} to disk: {}.", directory.string(),
                                           sys::errno_message(error)));
        }
    }

private:
    sys::unique_fd fd_;
};

void warn_skipped(const assemble_issue& issue) {
    const std::string_view reason = issue.reason;

    struct stat st {};

    const bool on_disk = ::lstat(issue.path.c_str(), &st) == 0;  // an entry removed meanwhile is not "left"
    warn(fmt::format("The log entry {} was not archived and {}: {}{}", issue.path.string(),
                     on_disk ? "is left on disk" : "is no longer on disk", reason, reason.ends_with('.') ? "" : "."));
}

/// Deletes `.{source}_log.npz.*.partial` files: unfinished archives of runs that were killed (the directory lock
/// guarantees that no live assembly owns them).
std::size_t remove_stale_temporaries(const fs::path& directory, const std::vector<std::string>& stale) {
    std::size_t removed = 0;
    for (const auto& name : stale) {
        if (::unlink((directory / name).c_str()) == 0) {
            ++removed;
        }
    }
    return removed;
}

/// The per-source outcomes added up into the report (skipped entries are warned about here, in source order).
void collect_outcomes(const std::vector<source_group>& groups, std::vector<source_outcome>& outcomes,
                      assemble_report& report) {
    for (std::size_t i = 0; i < groups.size(); ++i) {
        auto& outcome = outcomes[i];
        if (outcome.has_archive) {
            report.archives.push_back(groups[i].archive);
        }
        report.entries += static_cast<std::size_t>(std::count(outcome.archived.begin(), outcome.archived.end(), 1));
        report.bytes += outcome.bytes;
        report.merged += outcome.merged;
        report.duplicates += outcome.duplicates;
        for (auto& issue : outcome.skipped) {
            warn_skipped(issue);
            report.skipped.push_back(std::move(issue));
        }
    }
}

/// The removal phase: the entries every archive now holds, onsets last; returns how many were removed.
/// Whether the archive of a source is still the file this run wrote (or found): same inode, size, mtime and ctime.
/// Another process that rewrote, replaced or removed it since (after its verification, too) may have lost what its
/// entries hold, so they are not removed then.
bool archive_unchanged(const source_group& group, const source_outcome& outcome) {
    struct stat now {};

    const struct stat& then = outcome.archive_state;
    return outcome.archive_known && ::lstat(group.archive.c_str(), &now) == 0 && now.st_dev == then.st_dev &&
           now.st_ino == then.st_ino && now.st_size == then.st_size && now.st_mtim.tv_sec == then.st_mtim.tv_sec &&
           now.st_mtim.tv_nsec == then.st_mtim.tv_nsec && now.st_ctim.tv_sec == then.st_ctim.tv_sec &&
           now.st_ctim.tv_nsec == then.st_ctim.tv_nsec;
}

/// Removes the archived entries of one source: those after its onset, or (`onset_pass`) its onset (time 0). Before
/// the first and then every 64 removals, its archive must still be the file this run wrote or found
/// (archive_unchanged): once it is not, the rest stay. Adds to `removed`; false when the archive changed.
bool remove_entries_of(const source_group& group, const source_outcome& outcome, bool onset_pass, std::size_t& removed,
                       const detail::assembly_hooks& hooks) {
    constexpr std::size_t check_every = 64;
    std::size_t since_check = check_every;
    for (std::size_t i = 0; i < group.entries.size(); ++i) {
        const entry& e = group.entries[i];
        if (outcome.archived[i] == 0 || (e.timestamp == 0) != onset_pass) {
            continue;
        }
        if (since_check == check_every) {
            if (!archive_unchanged(group, outcome)) {
                return false;
            }
            since_check = 0;
        }
        if (::unlink(e.path.data()) != 0 && errno != ENOENT) {
            const int error = errno;
            throw_errno(error, fmt::format("Unable to remove the archived log entry {}: {}.", e.path,
                                           sys::errno_message(error)));
        }
        ++removed;
        ++since_check;
        if (hooks.entry_removed) {
            hooks.entry_removed(removed);
        }
    }
    return true;
}

std::size_t remove_archived_entries(const std::vector<source_group>& groups,
                                    const std::vector<source_outcome>& outcomes, const directory_lock& lock,
                                    const fs::path& log_directory, const detail::assembly_hooks& hooks) {
    lock.sync(log_directory);  // the renames of this run's archives are on disk before any entry goes
    std::size_t removed = 0;
    std::vector<std::string> changed;
    std::vector<char> kept(groups.size(), 0);
    // Onset entries (time 0) last: while any entry of a source is left, its onset is too.
    for (const bool onset_pass : {false, true}) {
        for (std::size_t g = 0; g < groups.size(); ++g) {
            if (kept[g] == 0 && !remove_entries_of(groups[g], outcomes[g], onset_pass, removed, hooks)) {
                kept[g] = 1;
                changed.push_back(groups[g].archive.string());
            }
        }
    }
    if (!changed.empty()) {
        throw runtime_error(fmt::format(
            "The log archive(s) {} changed after this assembly wrote or verified them (another process wrote, "
            "replaced or removed them), so their entries were kept from then on ({} entries were removed in all, "
            "each only while its archive was unchanged). Check what is in them, then assemble again: the entries "
            "are merged into them anew.",
            fmt::join(changed, ", "), removed));
    }
    return removed;
}

}  // namespace

asio::awaitable<assemble_report> async_assemble_log_archives(fs::path log_directory, assemble_options options) {
    return detail::async_assemble_log_archives(std::move(log_directory), std::move(options), {});
}

namespace {

/// The progress shared by the assembly's tasks, totals set and the first report made.
std::shared_ptr<progress_state> start_progress(const std::vector<source_group>& groups, asio::any_io_executor executor,
                                               std::function<void(const assemble_progress&)> callback) {
    assemble_progress totals;
    for (const auto& g : groups) {
        totals.entries_total += g.entries.size();
    }
    totals.archives_total = groups.size();
    auto progress = std::make_shared<progress_state>(std::move(executor), std::move(callback), totals);
    progress->add(0, 0, 0);
    return progress;
}

/// Source indices, most entries first (stable for equal sizes).
std::vector<std::size_t> largest_first(const std::vector<source_group>& groups) {
    std::vector<std::size_t> order(groups.size());
    for (std::size_t i = 0; i < order.size(); ++i) {
        order[i] = i;
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return groups[a].entries.size() > groups[b].entries.size(); });
    return order;
}

/// The entries of a log directory by source, after its stale temporaries are removed and the working files of killed
/// streaming loggers recovered (their archives may be merged with the entries); counts both into `report`.
discovery scan_log_directory(const fs::path& directory, assemble_report& report) {
    const directory_listing listing = list_log_directory(directory);  // neither step below adds or drops a .npy
    report.stale_temp_files_removed = remove_stale_temporaries(directory, listing.stale);
    report.recovered = detail::recover_working_files(directory, &listing.working);
    return discover_entries(directory, listing);
}

[[noreturn]] void throw_assembly_cancelled(const fs::path& log_directory, const std::vector<source_outcome>& outcomes) {
    const auto written = static_cast<std::size_t>(
        std::count_if(outcomes.begin(), outcomes.end(), [](const source_outcome& o) { return o.written; }));
    if (outcomes.empty()) {
        throw_os_error(asio::error::operation_aborted,
                       fmt::format("The assembly of the log archives in {} was cancelled while the directory was "
                                   "scanned, before any archive was written; no entry was removed.",
                                   log_directory.string()));
    }
    const std::string finished =
        written == 0   ? std::string("No archive was finished before the cancellation; the next assembly starts over.")
        : written == 1 ? std::string(
                             "The 1 archive finished before the cancellation holds copies of its entries; the "
                             "next assembly merges the rest.")
                       : fmt::format(
                             "The {} archives finished before the cancellation hold copies of their entries; "
                             "the next assembly merges the rest.",
                             written);
    throw_os_error(asio::error::operation_aborted,
                   fmt::format("The assembly of the log archives in {} was cancelled; no entry was removed. {}",
                               log_directory.string(), finished));
}

}  // namespace

asio::awaitable<assemble_report> detail::async_assemble_log_archives(fs::path log_directory, assemble_options options,
                                                                     assembly_hooks hooks) {
    const int workers = resolve_workers_option(options.workers, "assemble_options::workers");
    const auto lock = std::make_shared<directory_lock>(log_directory);
    assemble_report report;
    discovery found;
    auto discover = [&log_directory, &report, &found, &hooks] {
        found = scan_log_directory(log_directory, report);
        if (hooks.after_discovery) {
            hooks.after_discovery();
        }
    };
    const bool interrupted = co_await detail::async_run_cpu_cancellable(discover);
    if (interrupted) {  // nothing archived yet (a working file recovered meanwhile is an archive of its own)
        throw_assembly_cancelled(log_directory, {});
    }
    for (auto& issue : found.skipped) {
        warn_skipped(issue);
        report.skipped.push_back(std::move(issue));
    }
    const std::vector<source_group>& groups = found.groups;
    if (groups.empty()) {
        co_return report;
    }
    asio::any_io_executor executor = co_await asio::this_coro::executor;
    const auto progress = start_progress(groups, std::move(executor), options.progress);

    // Archive phase: `workers` tasks of the batch runner take sources largest first (keeps the tail short).
    const std::vector<std::size_t> order = largest_first(groups);
    const read_mode mode{
        .map = options.memory_mapping, .uring = options.use_io_uring, .durable = options.remove_sources};
    std::vector<source_outcome> outcomes(groups.size());
    const detail::batch_plan plan{.workers = static_cast<std::size_t>(workers)};
    detail::item_work archive = [&](std::size_t k, const std::atomic<bool>& stop) {
        const source_group& group = groups[order[k]];
        assemble_source(group, mode, *progress, stop, outcomes[order[k]]);
        if (hooks.after_archive_written && outcomes[order[k]].written) {
            hooks.after_archive_written(group.archive);
        }
    };
    const detail::batch_result archived = co_await detail::async_for_each_item(order.size(), plan, std::move(archive));
    // Cancellation is honoured until the first entry is removed. Archives finished before it stay: each
    // holds the union of what was archived before and its entries, every entry is still on disk too, and the next
    // run merges them again (deleting them would lose what earlier runs archived).
    const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
    if (archived.stopped || detail::cancelled(state)) {
        throw_assembly_cancelled(log_directory, outcomes);
    }
    if (options.verify_integrity) {  // runs to its end: a cancellation meanwhile is honoured after it
        detail::item_work verify = [&](std::size_t k, const std::atomic<bool>&) {
            if (hooks.before_verify) {
                hooks.before_verify(groups[order[k]].archive);
            }
            verify_source(groups[order[k]], outcomes[order[k]], mode);
        };
        const detail::batch_plan verify_plan{.workers = plan.workers, .cancellable = false};
        co_await detail::async_for_each_item(order.size(), verify_plan, std::move(verify));
        // Still before the first entry is removed: a cancellation during the verification stops here, saying so
        // (the next co_await would otherwise throw a bare "co_await: Operation aborted").
        const asio::cancellation_state after_verify = co_await asio::this_coro::cancellation_state;
        if (detail::cancelled(after_verify)) {
            throw_assembly_cancelled(log_directory, outcomes);
        }
    }

    collect_outcomes(groups, outcomes, report);
    if (options.remove_sources) {
        auto remove = [&groups, &outcomes, &lock, &log_directory, &hooks] {
            if (hooks.before_remove) {
                hooks.before_remove();
            }
            return remove_archived_entries(groups, outcomes, *lock, log_directory, hooks);
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

bool is_working_archive_name(std::string_view file_name) {
    std::uint64_t source = 0;
    return detail::parse_working_file_name(file_name, source);
}

working_archive_info inspect_working_archive(const fs::path& working_file) {
    std::uint64_t source = 0;
    if (!detail::parse_working_file_name(working_file.filename().string(), source)) {
        throw value_error(
            fmt::format("Unable to inspect {}: it is not a streaming logger's working file (a name like "
                        ".1_log.npz.working).",
                        working_file.string()));
    }
    const sys::unique_fd fd(::open(working_file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));  // a FIFO: no wait
    if (!fd) {
        const int error = errno;
        throw_errno(error, fmt::format("Unable to open the working file {}: {}.", working_file.string(),
                                       sys::errno_message(error)));
    }
    if (struct stat st{}; ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        throw value_error(
            fmt::format("Unable to inspect {}: it is not a regular file (a streaming logger's working "
                        "file is one).",
                        working_file.string()));
    }
    detail::working_scan scan = detail::scan_working_fd(fd.get(), working_file, source, false);
    return {.source = source,
            .recoverable_members = scan.members.size(),
            .recoverable_bytes = scan.valid_end,
            .file_size = scan.file_size,
            .stop_reason = std::move(scan.stop_reason),
            .damaged = std::move(scan.damaged)};
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
