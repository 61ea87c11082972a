#include <axds/fs/transfer.hpp>

#include <axds/core/console.hpp>
#include <axds/core/workers.hpp>
#include <axds/error.hpp>
#include <axds/fs/checksum.hpp>
#include <axds/fs/delete.hpp>
#include <axds/fs/walk.hpp>

#include "detail/batch.hpp"
#include "detail/cpu_work.hpp"
#include "detail/fault_hooks.hpp"
#include "detail/parallel.hpp"
#include "detail/uring_copy.hpp"
#include "fs/copy_pipeline.hpp"
#include "fs/file_digest.hpp"
#include "fs/move_marker.hpp"
#include "fs/open_files.hpp"
#include "fs/path_guard.hpp"
#include "fs/walk_detail.hpp"
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
#include <cstdio>
#include <cstring>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <set>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace axds {

namespace {

struct source_entry {
    std::string path;  ///< as the walk built it (detail::typed_path: no parsed std::filesystem::path per file)
    std::string relative;
    std::size_t depth = 0;
    /// special: a named pipe, socket or device (which holds no data a copy could keep)
    enum class kind { file, directory, symlink, special } type = kind::file;
    const char* special_kind = nullptr;  ///< what a special entry is, for the refusal
    detail::dir_identity identity;       ///< device and inode (lstat), of directories (and entries of unusual type)
};

std::string relative_of(const fs::path& path, const fs::path& root) {
    return path.lexically_relative(root).generic_string();
}

/// The last six components, as the Python library shortens paths in the verification message
/// (`Path(*path.parts[-6:])`, where the root `/` counts as a part: a short absolute path keeps it).
std::string tail6(const fs::path& path) {
    std::vector<std::string> parts;
    for (const auto& part : path) {
        if (!part.empty()) {
            parts.push_back(part.string());
        }
    }
    const std::size_t from = parts.size() > 6 ? parts.size() - 6 : 0;
    std::string out;
    for (std::size_t i = from; i < parts.size(); ++i) {
        if (parts[i] == "/") {
            out = "/";
            continue;
        }
        out += (out.empty() || out == "/" ? "" : "/") + parts[i];
    }
    return out;
}

/// What a source file was when it was copied: removal deletes it only if it is still that file.
struct file_state {
    dev_t device = 0;
    ino_t inode = 0;
    off_t size = -1;
    timespec mtime{};
    timespec ctime{};
    nlink_t links = 0;

    static file_state of(const struct stat& st) {
        return {st.st_dev, st.st_ino, st.st_size, st.st_mtim, st.st_ctim, st.st_nlink};
    }

    [[nodiscard]] bool same_content_as(const struct stat& st) const {
        return size >= 0 && st.st_dev == device && st.st_ino == inode && st.st_size == size &&
               st.st_mtim.tv_sec == mtime.tv_sec && st.st_mtim.tv_nsec == mtime.tv_nsec;
    }

    [[nodiscard]] bool same_as(const struct stat& st) const {
        return size >= 0 && st.st_dev == device && st.st_ino == inode && st.st_size == size &&
               st.st_mtim.tv_sec == mtime.tv_sec && st.st_mtim.tv_nsec == mtime.tv_nsec &&
               st.st_ctim.tv_sec == ctime.tv_sec && st.st_ctim.tv_nsec == ctime.tv_nsec;
    }
};

[[noreturn]] void throw_copy_error(int error, const std::string& from, const std::string& to) {
    throw_errno(error, fmt::format("Unable to copy {} to {}: {}.", from, to, sys::errno_message(error)));
}

/// Verified copies of files this large are pipelined (see detail::copy_and_hash): copied in-kernel chunk by chunk
/// while a helper thread hashes the source and reads each copied chunk back from the destination.
constexpr off_t pipelined_min = off_t{8} << 20;

/// What to compute while copying one file (all optional).
struct copy_hashing {
    std::string_view relative;                           ///< the §9.1 prefix of both digests
    detail::file_hasher* source = nullptr;               ///< the source checksum, computed in the same pass as the copy
    detail::digest128* source_digest = nullptr;          ///< receives it
    detail::file_hasher* destination = nullptr;          ///< verification: the copy read back while it is still open
    detail::known_digest* destination_digest = nullptr;  ///< receives it (size stays -1 when it was not computed)
    bool flush_before_rename = false;  ///< verification: closing may report write-back errors (put_in_place_verified)
    /// Finishing a move: what the destination file must still be right before the copy replaces it (its size -1:
    /// there must be none), else the copy is withdrawn (still_replaceable).
    const file_state* replaces = nullptr;
};

/// Step 1 of copy_with_metadata, unhashed: copy_file_range from `in` to `out` until the end, adding to `copied`.
/// The end is where the file ended when it was opened (`size`, from its fstat), or later if it grew before a call
/// saw it: a file is copied as it was when opened, at least. (A size of 0 is not trusted: pseudo-files report it.)
/// Clears `in_kernel` when the kernel refuses the copy before any byte moved (another filesystem: the caller copies
/// through buffers then). Returns 0 or an errno.
int copy_in_kernel(int in, int out, std::uint64_t size, std::uint64_t& copied, bool& in_kernel) {
    for (;;) {
        if (size > 0 && copied >= size) {
            return 0;  // the size it had when opened: no second call only to be told it ended (one per small file)
        }
        const ssize_t n =
            sys::retry_eintr([&] { return ::copy_file_range(in, nullptr, out, nullptr, std::size_t{1} << 30, 0); });
        if (n < 0 && copied == 0 && detail::kernel_refuses_copy(errno)) {
            in_kernel = false;  // e.g. another filesystem: the content moves through buffers
            return 0;
        }
        if (n <= 0) {
            return n < 0 ? errno : 0;
        }
        copied += static_cast<std::uint64_t>(n);
    }
}

/// Step 3 of copy_with_metadata: plain pread/pwrite from `copied` to the end of file (as copy_in_kernel: at least
/// `size`, the size when opened), feeding `hasher` (if any). Returns 0 or an errno.
int copy_through_buffer(int in, int out, std::uint64_t size, detail::file_hasher* hasher, std::uint64_t& copied) {
    // The pool thread's page-aligned read buffer, shared with the checksum (uninitialized, reused).
    const std::span<std::byte> buffer = detail::thread_read_buffer();
    for (;;) {
        if (size > 0 && copied >= size) {
            return 0;
        }
        const ssize_t n =
            sys::retry_eintr([&] { return ::pread(in, buffer.data(), buffer.size(), static_cast<off_t>(copied)); });
        if (n <= 0) {
            return n < 0 ? errno : 0;
        }
        if (hasher != nullptr) {
            hasher->update(buffer.data(), static_cast<std::size_t>(n));
        }
        const sys::io_result written =
            sys::pwrite_full(out, buffer.data(), static_cast<std::size_t>(n), static_cast<off_t>(copied));
        if (written.error) {
            return written.error.value();
        }
        copied += static_cast<std::uint64_t>(n);
    }
}

/// Verification of a copy that was not pipelined (a small file, or one copied through buffers): the destination's
/// first `copied` bytes read back through `out` (still open, read-write) and hashed into `hasher`, right after they
/// were written. (Whether the file holds more is settled by its size when it is put in place: put_in_place.) Returns
/// 0 or an errno; clears `complete` when the file ended before `copied` (another process truncated it: the
/// verification reads it again).
int read_back_copy(int out, std::uint64_t copied, detail::file_hasher& hasher, bool& complete) {
    const std::span<std::byte> buffer = detail::thread_read_buffer();
    for (std::uint64_t offset = 0; offset < copied;) {
        const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), copied - offset));
        const ssize_t n =
            sys::retry_eintr([&] { return ::pread(out, buffer.data(), want, static_cast<off_t>(offset)); });
        if (n <= 0) {
            complete = false;
            return n < 0 ? errno : 0;
        }
        hasher.update(buffer.data(), static_cast<std::size_t>(n));
        offset += static_cast<std::uint64_t>(n);
    }
    return 0;
}

/// Opens `from` for reading and checks that it is a regular file (as shutil.copy2's SpecialFileError).
sys::unique_fd open_source(const std::string& from, const std::string& to, struct stat& st) {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
    sys::unique_fd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (!in) {
        throw_copy_error(errno, from, to);
    }
    if (::fstat(in.get(), &st) != 0) {
        throw_copy_error(errno, from, to);
    }
    if (!S_ISREG(st.st_mode)) {  // as shutil.copy2's SpecialFileError
        throw os_error(std::make_error_code(std::errc::operation_not_supported),
                       fmt::format("Unable to copy {}: it is a {}, not a regular file, and cannot be transferred.",
                                   from, S_ISFIFO(st.st_mode) ? "named pipe" : "special file"));
    }
    // O_NONBLOCK stays: it has no effect on a regular file (clearing it cost two syscalls per file).
    return in;
}

/// The process's umask as of the start of the latest transfer (refresh_umask), -1 when unknown. Read from
/// /proc/self/status: umask(2) can only read it by setting it, which races with other threads creating files.
std::atomic<int> known_umask{-1};

void refresh_umask() {
    int found = -1;
    if (std::FILE* status = std::fopen("/proc/self/status", "re")) {
        std::array<char, 256> line{};
        while (std::fgets(line.data(), static_cast<int>(line.size()), status) != nullptr) {
            unsigned mask = 0;
            if (std::sscanf(line.data(), "Umask: %o", &mask) == 1) {
                found = static_cast<int>(mask);
                break;
            }
        }
        (void)std::fclose(status);
    }
    known_umask.store(found, std::memory_order_relaxed);
}

/// Whether a copy can be created with permission bits `mode` directly (saving an fchmod per file): the umask
/// keeps all of them, there are no set-id or sticky bits, and the owner can write (a copy without owner write gets
/// its bits by fchmod once written, so that its temporary stays writable while it is filled).
bool mode_survives_umask(unsigned mode) {
    const int mask = known_umask.load(std::memory_order_relaxed);
    return mask >= 0 && (mode & ~0777U) == 0 && (mode & S_IWUSR) != 0 && (mode & static_cast<unsigned>(mask)) == 0;
}

/// The content of `in` into `out`, hashed as `hashing` asks. Returns 0 or an errno; sets `pipelined` when the
/// destination was read back and hashed during the copy.
int copy_content(int in, int out, const struct stat& st, const copy_hashing& hashing, std::uint64_t& copied,
                 bool& pipelined) {
    // 1. A verified copy of a large file: pipelined with its hashing (copy_and_hash), in-kernel, or through buffers
    //    where the kernel refuses to copy between the two files (another filesystem).
    if (hashing.destination != nullptr && st.st_size >= pipelined_min) {
        const detail::pipeline_hashers hashers{hashing.source, hashing.destination};
        auto result = detail::copy_and_hash(in, out, hashers, detail::copy_method::kernel, detail::pipeline_chunk_size);
        if (!result.in_kernel) {  // refused: nothing was copied or hashed yet
            result = detail::copy_and_hash(in, out, hashers, detail::copy_method::buffers, detail::ring_chunk_size);
        }
        copied = result.copied;
        pipelined = !result.resized;  // resized by another process: the copy is read again (copy_with_metadata)
        return result.error;
    }
    // 2. In-kernel: copy_file_range (hashed copies of small files go to 4: one read for the copy and the hash).
    bool in_kernel = hashing.source == nullptr;
    int error = 0;
    if (in_kernel) {
        error = copy_in_kernel(in, out, static_cast<std::uint64_t>(st.st_size), copied, in_kernel);
    }
    if (error != 0 || in_kernel) {
        return error;
    }
    // 3. Across filesystems, large files: pipelined io_uring reads and writes (1 MiB chunks, 4 in flight). Small
    //    files, and hashed copies, go straight to 3: there io_uring measured slower (tmpfs hands its reads to kernel
    //    worker threads; 2-3x for 16 KiB files, ~10% for a hashed 1 GiB file).
    if (hashing.source == nullptr && copied == 0 && st.st_size >= pipelined_min) {
        // On any failure the plain path below starts over from offset 0 and reports a real I/O error itself.
        const sys::io_result pipelined_copy = detail::uring_copy(in, out, static_cast<std::uint64_t>(st.st_size));
        copied = pipelined_copy.error ? 0 : pipelined_copy.bytes;
    }
    // 4. Plain pread/pwrite from where the others stopped, to end of file (no io_uring; a file that changed size).
    return copy_through_buffer(in, out, static_cast<std::uint64_t>(st.st_size), hashing.source, copied);
}

/// Hidden files of the form `.NAME.axds-partial` in the destination are copies in progress (see partial_path_of).
constexpr std::string_view partial_suffix = ".axds-partial";

/// The longest file name Linux filesystems take (NAME_MAX).
constexpr std::size_t name_max = 255;

/// `.axds-<16 hex digits of NAME's FNV-1a hash>.axds-partial`: the temporary name of a copy of NAME whose plain form
/// would be too long (31 bytes).
std::string hashed_partial_name(std::string_view name) {
    std::uint64_t hash = 14695981039346656037ULL;
    for (const char c : name) {
        hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    }
    return fmt::format(".axds-{:016x}{}", hash, partial_suffix);
}

/// The temporary name a copy to `final` is written under, in the same directory, before it is renamed into place:
/// `.NAME.axds-partial`, or hashed_partial_name(NAME) when that would exceed the 255-byte name limit. A kill -9 during
/// a copy thus never leaves a short file under a final name.
std::string partial_path_of(const std::string& final) {
    const std::string_view name = detail::file_name_of(final);
    std::string partial = "." + std::string(name) + std::string(partial_suffix);
    if (partial.size() > name_max) {
        partial = hashed_partial_name(name);
    }
    return final.substr(0, final.size() - name.size()) + partial;
}

/// The last step of an unverified copy (copy_with_metadata): the finished copy at `temp` (open as `out_fd`) closed,
/// then renamed to `to`, unless `error` (an errno) says it failed already. Closed first: a failed close (a write-back
/// error, which network filesystems report there) never reaches the final name. Returns 0 or the errno of the step
/// that failed; the caller removes `temp` then.
int put_in_place(sys::unique_fd& out_fd, const std::string& temp, const std::string& to, int error) {
    if (const std::error_code closed = out_fd.close_checked(); closed && error == 0) {
        error = closed.value();
    }
    if (error == 0 && ::rename(temp.c_str(), to.c_str()) != 0) {
        error = errno;
    }
    return error;
}

/// Surfaces the write-back errors a network filesystem reports when a descriptor of the file is closed, while `fd`
/// stays open: a duplicate is closed (every close flushes there). Returns 0 or an errno.
int flush_by_closing_duplicate(int fd) {
    const int duplicate = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (duplicate < 0) {
        return errno;
    }
    return ::close(duplicate) == 0 || errno == EINTR ? 0 : errno;
}

/// Takes back a verified copy that failed after it was renamed to `to`: removed when `to` is still that file
/// (`placed`).
void withdraw_placed(const std::string& to, const struct stat& placed) {
    struct stat now {};

    if (::lstat(to.c_str(), &now) == 0 && sys::same_file(now, placed)) {
        (void)::unlink(to.c_str());
    }
}

/// What a verified copy (copy_with_metadata) knows once its content, mode and times are written.
struct written_copy {
    std::uint64_t copied = 0;                   ///< bytes written
    timespec mtime{};                           ///< the mtime it was given (the source's)
    bool read_back = false;                     ///< read back and hashed during the copy (a large file, pipelined)
    const detail::copy_watch* watch = nullptr;  ///< set on it since it was created (large files), else null
};

/// The last step of a verified copy: the finished copy at `temp` (open as `out_fd`, read-write) renamed to `to` first,
/// and read back and hashed after that, through `out_fd` (unless it was read back during the copy and nobody opened
/// it since: `copy.watch`). Its destination digest then goes with the identity it had when its read-back ended, if
/// that was also its identity before the read-back began (device, inode and ctime: any write since the rename, even
/// one that set the mtime back, changes the ctime) and it is still `copy.copied` bytes long with `copy.mtime`;
/// otherwise the verification reads the file itself. (Renamed first because the rename changes the ctime: looked at
/// before it, a write in between would go unseen. A write through the temporary's name before the rename is in what
/// is read back.) Where closing may report a write-back error (`hashing.flush_before_rename`), a duplicate descriptor
/// is closed before the rename, so that such an error never reaches the final name; a failure after the rename
/// removes the copy from `to` again. Returns 0 or an errno; the caller removes `temp` then.
int put_in_place_verified(sys::unique_fd& out_fd, const std::string& temp, const std::string& to,
                          const copy_hashing& hashing, const written_copy& copy, const detail::transfer_hooks* hooks) {
    const int out = out_fd.get();
    if (hashing.flush_before_rename) {
        if (const int error = flush_by_closing_duplicate(out); error != 0) {
            return error;
        }
    }
    if (hooks != nullptr && hooks->before_rename) {
        hooks->before_rename(fs::path(temp));
    }
    if (::rename(temp.c_str(), to.c_str()) != 0) {
        return errno;
    }

    struct stat placed {};

    if (::fstat(out, &placed) != 0) {
        return errno;  // not withdrawn: nothing tells what `to` is (never seen: fstat of an open file)
    }
    // Checked after the fstat: a write since would show in the watch, a later one in the ctime.
    bool read_back = copy.read_back && copy.watch != nullptr && copy.watch->untouched();
    int error = 0;
    if (!read_back) {
        hashing.destination->start(hashing.relative);  // anew: a read-back during the copy may have fed it
        read_back = true;                              // cleared when the file ended early
        error = read_back_copy(out, copy.copied, *hashing.destination, read_back);
        read_back = read_back && error == 0;
    }
    if (hooks != nullptr && hooks->copy_read_back && read_back) {
        hooks->copy_read_back(fs::path(to));
    }

    struct stat done {};

    // A ctime of whole seconds (ext3 with small inodes, FAT, some network filesystems) need not change with a write
    // in the same second: such a copy is read again by the verification.
    if (error == 0 && read_back && placed.st_ctim.tv_nsec != 0 && ::fstat(out, &done) == 0 &&
        sys::same_file(done, placed) && done.st_ctim.tv_sec == placed.st_ctim.tv_sec &&
        done.st_ctim.tv_nsec == placed.st_ctim.tv_nsec && static_cast<std::uint64_t>(done.st_size) == copy.copied &&
        done.st_mtim.tv_sec == copy.mtime.tv_sec && done.st_mtim.tv_nsec == copy.mtime.tv_nsec) {
        *hashing.destination_digest = {
            hashing.destination->finish(), done.st_dev, done.st_ino, done.st_size, done.st_mtim, done.st_ctim};
    }
    if (const std::error_code closed = out_fd.close_checked(); closed && error == 0) {
        error = closed.value();
    }
    if (error != 0) {
        withdraw_placed(to, placed);
    }
    return error;
}

/// The relative paths of the source entries whose names look like temporaries (they contain `partial_suffix`): a
/// copy's temporary must never take one of their names, or two copies would write through each other's files (and
/// a directory of that name, which the transfer makes in the destination too, would make the copy fail). Empty
/// (nothing to check) in every tree that has none, so the usual transfer builds no set.
std::set<std::string> temporary_like_names(const std::vector<source_entry>& entries) {
    std::set<std::string> taken;
    for (const auto& entry : entries) {
        if (entry.relative.find(partial_suffix) != std::string::npos) {
            taken.insert(entry.relative);
        }
    }
    return taken;
}

/// The temporary a copy to `final` (`relative` below the destination) is written under: partial_path_of, or, when
/// a source entry has that very name (`taken`: temporary_like_names), the same name with `.1`, `.2`, ... appended
/// until it names no source entry (from the hashed form, hashed_partial_name, when the suffix would make the name
/// longer than 255 bytes). Deterministic for a given source tree, so a rerun recognises what a killed run left.
std::string temporary_for(const std::string& final, std::string_view relative, const std::set<std::string>& taken) {
    std::string temp = partial_path_of(final);
    if (taken.empty()) {
        return temp;
    }
    const std::size_t slash = relative.rfind('/');
    const std::string directory(relative.substr(0, slash == std::string_view::npos ? 0 : slash + 1));
    const std::string_view plain = detail::file_name_of(temp);
    const std::string prefix = temp.substr(0, temp.size() - plain.size());
    std::string base(plain);
    std::string name = base;
    for (int k = 1; taken.count(directory + name) != 0; ++k) {
        name = base + "." + std::to_string(k);
        if (name.size() > name_max) {  // only a plain form of 254-255 bytes gets here: the hashed one is short
            base = hashed_partial_name(detail::file_name_of(final));
            name = base;
            k = 0;
        }
    }
    return prefix + name;
}

/// A large verified copy's temporary `temp`, open for reading and writing, with `watch` set on it before anyone else
/// can open it: created unnamed (O_TMPFILE), watched, then linked under its name, so that every open by that name is
/// seen. Where the filesystem (or a missing /proc) does not allow that, created by name (create_fresh) and watched
/// right after: an open in that instant goes unseen. -1 with errno on failure.
int create_watched(const std::string& temp, unsigned mode, std::optional<detail::copy_watch>& watch,
                   const detail::transfer_hooks* hooks) {
    const auto named = [&temp, hooks] {  // the first moment another process can open it by name
        if (hooks != nullptr && hooks->temporary_named) {
            hooks->temporary_named(fs::path(temp));
        }
    };
    const std::size_t slash = temp.rfind('/');
    const std::string directory = slash == std::string::npos ? std::string(".") : temp.substr(0, slash + 1);
    sys::unique_fd unnamed(::open(directory.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, static_cast<mode_t>(mode)));
    if (unnamed) {
        watch.emplace(unnamed.get());
        std::array<char, 40> link{};
        (void)std::snprintf(link.data(), link.size(), "/proc/self/fd/%d", unnamed.get());
        for (int attempt = 0; attempt < 3; ++attempt) {
            if (::linkat(AT_FDCWD, link.data(), AT_FDCWD, temp.c_str(), AT_SYMLINK_FOLLOW) == 0) {
                named();
                return unnamed.release();
            }
            if (errno != EEXIST) {
                break;
            }
            if (!detail::make_room_for(temp.c_str())) {  // a leftover, or another transfer's copy: never shared
                return -1;
            }
        }
        watch.reset();
    }
    const int fd = detail::create_fresh(temp.c_str(), mode, O_RDWR);
    if (fd >= 0) {
        named();
        watch.emplace(fd);
    }
    return fd;
}

/// The temporary a copy of `from` (opened, `st`) to `to` is written to, `temp`, created with the source's mode when
/// the umask keeps it (`with_mode`; else 0600, fchmod-ed later). Verification (`read_back`) reads the copy back while
/// it is still open (a large file during its copy, pipelined; any other right after it): it is opened for reading
/// too, and a large one is trusted only if nobody else can have changed it (`watch`, set before the temporary has a
/// name where the filesystem allows: create_watched). Every copy is a new inode: a partial copy of a killed run, or
/// of another transfer writing here right now, is unlinked, never shared. @throws os_error naming the files.
sys::unique_fd create_temporary(const std::string& from, const std::string& to, const std::string& temp,
                                const struct stat& st, bool with_mode, bool read_back,
                                std::optional<detail::copy_watch>& watch, const detail::transfer_hooks* hooks) {
    const unsigned mode = with_mode ? static_cast<unsigned>(st.st_mode & 07777) : 0600;
    sys::unique_fd out(read_back && st.st_size >= pipelined_min
                           ? create_watched(temp, mode, watch, hooks)
                           : detail::create_fresh(temp.c_str(), mode, read_back ? O_RDWR : O_WRONLY));
    if (!out) {
        const int error = errno;
        throw_errno(error, fmt::format("Unable to copy {} to {}: its temporary copy {} could not be created: {}.", from,
                                       to, temp, sys::errno_message(error)));
    }
    return out;
}

/// The source checksum computed in the same pass as a copy must be of one state of the source: a file that changed
/// while it was read (appended to, truncated or overwritten by another process; its size, mtime or ctime then differ
/// from `st`, taken when it was opened) may have been copied as a mix of its old and new bytes, which that checksum
/// would vouch for. Then the copy at `temp` is removed and the transfer fails, naming the file.
void refuse_changed_source(int in, const struct stat& st, const std::string& temp, const std::string& from,
                           const std::string& to) {
    struct stat now {};

    if (::fstat(in, &now) == 0 && file_state::of(st).same_as(now)) {
        return;
    }
    (void)::unlink(temp.c_str());
    throw runtime_error(
        fmt::format("Unable to copy {} to {} with verification: the file changed while it was copied (its size, "
                    "time of last modification or status change differs from when the copy began), so the copy may "
                    "mix its old and new content; nothing was put in place. Transfer it again once nothing writes "
                    "to it.",
                    from, to));
}

/// Whether the destination file `to` is still what `expected` says (copy_hashing::replaces): the same file, unchanged
/// (size, mtime and ctime: no tool sets a ctime back), or, for an expected size of -1, still absent.
bool still_replaceable(const std::string& to, const file_state& expected) {
    struct stat now {};

    if (::lstat(to.c_str(), &now) != 0) {
        return errno == ENOENT && expected.size < 0;
    }
    return expected.same_as(now);
}

/// Whether the first `size` bytes of the open files `a` and `b` are equal (both at least that long). A read error
/// of `a` throws, naming `a_name`, when one is given; any other failure counts as a difference.
bool equal_starts(int a, int b, off_t size, const std::string* a_name = nullptr) {
    constexpr std::size_t chunk = std::size_t{512} << 10;
    std::vector<char> buffer(2 * chunk);
    for (off_t offset = 0; offset < size;) {
        const auto want = static_cast<std::size_t>(std::min<off_t>(static_cast<off_t>(chunk), size - offset));
        const sys::io_result p = sys::pread_full(a, buffer.data(), want, offset);
        const sys::io_result q = sys::pread_full(b, buffer.data() + chunk, want, offset);
        if (p.error && a_name != nullptr) {
            throw_errno(p.error.value(),
                        fmt::format("Unable to read {}: {}.", *a_name, sys::errno_message(p.error.value())));
        }
        if (p.error || q.error || p.bytes != want || q.bytes != want ||
            std::memcmp(buffer.data(), buffer.data() + chunk, want) != 0) {
            return false;
        }
        offset += static_cast<off_t>(want);
    }
    return true;
}

/// Whether the first `size` bytes of the files `a` and `b` are equal (both at least that long).
bool same_start(const std::string& a, const std::string& b, off_t size) {
    const sys::unique_fd x(::open(a.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    const sys::unique_fd y(::open(b.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    return x && y && equal_starts(x.get(), y.get(), size);
}

/// Right before a copy finishing a move replaces the destination file `to` (copy_hashing::replaces): that file is
/// still the one compared (still_replaceable), no other process has it open for writing (what it wrote next would go
/// to an unlinked file), and the new copy at `temp` still begins with its whole content (the source file was not
/// rewritten since it was compared): replacing it loses no byte.
bool replacement_safe(const std::string& to, const std::string& temp, const file_state& expected) {
    if (!still_replaceable(to, expected)) {
        return false;
    }
    if (expected.size < 0) {
        return true;  // nothing to replace
    }
    return detail::held_for_writing({{expected.device, expected.inode}}).empty() &&
           same_start(to, temp, expected.size) && still_replaceable(to, expected);
}

/// Content (copy_content), then permission bits and atime/mtime (shutil.copy2), written to a temporary name in the
/// destination directory (`temp`: temporary_for) and renamed into place once complete. With `hashing.source`,
/// `*hashing.source_digest` receives the §9.1 digest of `relative ‖ content` — the source checksum computed in the
/// same pass as the copy; with `hashing.destination`, the copy is read back and hashed while it is open (a large
/// file's during the copy) into `*hashing.destination_digest`, with the destination's identity when it was finished
/// (after the rename, which changes its ctime).
std::uint64_t copy_with_metadata(const std::string& from, const std::string& to, const std::string& temp,
                                 file_state* copied_state, const copy_hashing& hashing = {},
                                 const detail::transfer_hooks* hooks = nullptr) {
    struct stat st {};

    const sys::unique_fd in_fd = open_source(from, to, st);
    const int in = in_fd.get();
    if (copied_state != nullptr) {
        *copied_state = file_state::of(st);
    }
    const bool read_back = hashing.destination != nullptr;
    const auto mode = static_cast<unsigned>(st.st_mode & 07777);
    const bool with_mode = mode_survives_umask(mode);
    std::optional<detail::copy_watch> watch;
    sys::unique_fd out_fd = create_temporary(from, to, temp, st, with_mode, read_back, watch, hooks);
    const int out = out_fd.get();
    for (auto* hasher : {hashing.source, read_back ? hashing.destination : nullptr}) {
        if (hasher != nullptr) {
            hasher->start(hashing.relative);
        }
    }
    std::uint64_t copied = 0;
    bool read_back_done = false;
    int error = copy_content(in, out, st, hashing, copied, read_back_done);
    if (hooks != nullptr && hooks->content_copied) {
        hooks->content_copied(fs::path(temp));
    }
    if (error == 0 && hashing.source != nullptr) {
        refuse_changed_source(in, st, temp, from, to);
    }
    if (error == 0 && hashing.source != nullptr) {
        *hashing.source_digest = hashing.source->finish();
    }
    // No fchmod for a copy created with its mode (mode_survives_umask).
    if (error == 0 && !with_mode && ::fchmod(out, mode) != 0) {
        error = errno;
    }
    const std::array<timespec, 2> times{st.st_atim, st.st_mtim};
    if (error == 0 && ::futimens(out, times.data()) != 0) {
        error = errno;
    }
    if (error == 0 && hashing.replaces != nullptr && !replacement_safe(to, temp, *hashing.replaces)) {
        (void)::unlink(temp.c_str());
        throw runtime_error(fmt::format(
            "Unable to replace {} with the newer {} to finish the move: while this run copied the source file, that "
            "destination file changed, another program opened it for writing, or the source file was rewritten so "
            "that it no longer begins with that file's content. It may hold data the source does not, so it was left "
            "as it is (the copy was withdrawn) and nothing was removed from the source. Check it, then run the move "
            "again.",
            to, from));
    }
    if (read_back && error == 0) {
        const written_copy copy{copied, st.st_mtim, read_back_done, watch ? &*watch : nullptr};
        error = put_in_place_verified(out_fd, temp, to, hashing, copy, hooks);
    } else {
        error = put_in_place(out_fd, temp, to, error);
    }
    if (error != 0) {
        (void)::unlink(temp.c_str());  // ENOENT once renamed
        throw_copy_error(error, from, to);
    }
    return copied;
}

std::string first_line(const fs::path& file) {
    std::string text;
    const sys::unique_fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        const int error = errno;
        throw_errno(error, fmt::format("Unable to read {}: {}.", file.string(), sys::errno_message(error)));
    }
    std::array<char, 256> buffer{};
    const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    text.assign(buffer.data(), n > 0 ? static_cast<std::size_t>(n) : 0);
    text = text.substr(0, text.find('\n'));
    const auto first = text.find_first_not_of(" \t\r");
    const auto last = text.find_last_not_of(" \t\r");
    return first == std::string::npos ? std::string() : text.substr(first, last - first + 1);
}

/// Refuses roots that are one tree, or one inside the other, before anything is written (compared on disk).
void check_separate_trees(const fs::path& source, const fs::path& destination) {
    const char* problem = nullptr;
    switch (detail::relate_trees(source, destination)) {
        case detail::tree_relation::same: problem = "they are the same directory"; break;
        case detail::tree_relation::second_inside_first: problem = "the destination lies inside the source"; break;
        case detail::tree_relation::first_inside_second: problem = "the source lies inside the destination"; break;
        case detail::tree_relation::separate: return;
    }
    throw value_error(fmt::format(
        "Unable to transfer the source directory {} to {}: {} (compared on disk, so symbolic links and bind mounts "
        "count). Copying a tree into itself would overwrite or delete the data being copied. Nothing was written; "
        "choose a destination outside the source.",
        source.string(), destination.string(), problem));
}

/// What lies below the destination may lead back into the source or out of the destination: a symbolic link where
/// the source has a directory (the copies would be written through it, anywhere), or a bind mount of a source
/// directory (the copies would overwrite their own originals, and stray removal would delete them). Both are refused
/// before anything is written.
void check_destination_tree(const fs::path& source, const fs::path& destination,
                            const std::vector<source_entry>& entries) {
    const auto refuse = [&](const fs::path& where, std::string_view problem) {
        throw value_error(fmt::format(
            "Unable to transfer the source directory {} to {}: {} {}. Nothing was written; remove it (or unmount it) "
            "from the destination first.",
            source.string(), destination.string(), where.string(), problem));
    };
    for (const auto& entry : entries) {
        struct stat st {};

        if (entry.type == source_entry::kind::directory && ::lstat((destination / entry.relative).c_str(), &st) == 0 &&
            S_ISLNK(st.st_mode)) {
            refuse(destination / entry.relative,
                   "is a symbolic link where the source has a directory, and files are never written through links "
                   "in the destination");
        }
    }
    if (!detail::identity_of(destination)) {
        return;  // nothing there yet
    }
    std::set<std::pair<dev_t, ino_t>> source_directories;
    if (const auto root = detail::identity_of(source)) {
        source_directories.emplace(root->device, root->inode);
    }
    for (const auto& entry : entries) {
        if (entry.type == source_entry::kind::directory) {
            source_directories.emplace(entry.identity.device, entry.identity.inode);
        }
    }
    std::vector<fs::path> directories{destination};
    for (auto& path : walk_directory(destination)) {
        struct stat st {};

        if (::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
            directories.push_back(std::move(path));
        }
    }
    for (const auto& directory : directories) {
        const auto id = detail::identity_of(directory);
        if (id && source_directories.count({id->device, id->inode}) != 0) {
            refuse(directory, "is a directory of the source itself (a bind mount or another view of it)");
        }
    }
}

using detail::move_marker_name;

bool unchanged_but_relinked(const file_state& copied, const struct stat& st, const std::string& from,
                            const std::string& to, std::vector<char>& buffer);

/// The copied source files (`states`) that another process still has open or mapped for writing, with who holds each
/// (detail::held_for_writing).
std::map<detail::file_key, std::string> held_by_others(const std::vector<file_state>& states) {
    std::set<detail::file_key> files;
    for (const file_state& state : states) {
        if (state.size >= 0) {
            files.emplace(state.device, state.inode);
        }
    }
    return detail::held_for_writing(files);
}

/// Whether the destination still holds the copy of the source file `st` at `copy`: a regular file of its size (not
/// a symbolic link put there since, which would leave the destination without the data once the source is gone).
bool still_holds_copy(const std::string& copy, const struct stat& st) {
    struct stat there {};

    return ::lstat(copy.c_str(), &there) == 0 && S_ISREG(there.st_mode) && there.st_size == st.st_size;
}

/// Whether the copy at `copy` is still the file `expected` says it was (same inode, size, mtime and ctime).
bool copy_unchanged(const std::string& copy, const file_state& expected) {
    struct stat now {};

    return ::lstat(copy.c_str(), &now) == 0 && expected.same_as(now);
}

/// Why a move kept source files that it copied (remove_copied_source), besides a change since their copy.
struct kept_reasons {
    std::vector<std::string> held;       ///< "relative (who holds it)": another process can still write them
    std::vector<std::string> displaced;  ///< their copy is no longer a regular file of their size
};

/// The end of remove_copied_source: the directories that became empty removed, deepest first, and what stays listed
/// in `report` and in warnings; the move's marker removed with the last file, kept while any file stays.
void finish_removal(const fs::path& source, const fs::path& destination, const std::vector<source_entry>& entries,
                    const kept_reasons& kept, transfer_report& report) {
    // Directories deepest first (entries are sorted shallow first); one that still holds something stays.
    for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
        if (it->type == source_entry::kind::directory) {
            (void)::rmdir(it->path.c_str());
        }
    }
    for (const auto& path : walk_files(source)) {
        std::string relative = relative_of(path, source);
        if (relative != move_marker_name) {
            report.source_files_kept.push_back(std::move(relative));
        }
    }
    if (report.source_files_kept.empty()) {
        (void)::unlink((source / move_marker_name).c_str());  // the removal is over: the move is no longer pending
        (void)::rmdir(source.c_str());
        return;
    }
    // Files stay, and so does the marker: the same command, run again once nothing writes to them, takes this for
    // the move into `destination` that it is, removes those still identical to their copies and replaces the copies
    // that the newer source files extend with them (settle_strays).
    std::sort(report.source_files_kept.begin(), report.source_files_kept.end());
    if (!kept.held.empty()) {
        warn(
            fmt::format("{} source file(s) of {} are kept: another program still has them open or mapped for writing, "
                        "so what it writes next would be lost with them: {}.",
                        kept.held.size(), source.string(), fmt::join(kept.held, ", ")));
    }
    if (!kept.displaced.empty()) {
        warn(
            fmt::format("{} source file(s) of {} are kept: their copy in {} is no longer a regular file of their size "
                        "(replaced or changed since it was copied): {}.",
                        kept.displaced.size(), source.string(), destination.string(), fmt::join(kept.displaced, ", ")));
    }
    const std::size_t explained = kept.held.size() + kept.displaced.size();
    warn(fmt::format(
        "The source {} was not removed entirely: {} file(s) are kept: {}.{} It stays marked as a move into "
        "{}: once nothing writes to them, the same command finishes the move (it copies again the files that "
        "grew since their copy or appeared meanwhile, then removes them; one that changed otherwise is named, "
        "and nothing is replaced).",
        source.string(), report.source_files_kept.size(), fmt::join(report.source_files_kept, ", "),
        report.source_files_kept.size() > explained
            ? " Those not named above appeared or changed while it was transferred, so they were not "
              "copied as they are now."
            : "",
        destination.string()));
}

/// remove_source: after the destination is flushed to disk, deletes exactly the source files that were copied (each
/// only if it is still the file that was copied), then the directories that became empty, deepest first. Whatever
/// appeared or changed in the meantime stays and is listed in `report` and in a warning. Runs on the CPU pool.
/// `copy_states`, when given, holds what each copy was when compared or made (size -1: not known): a copy changed
/// since (a write into it, which may have replaced data of the source file's) keeps its source file.
void remove_copied_source(const fs::path& source, const fs::path& destination, const std::vector<source_entry>& entries,
                          const std::vector<std::pair<std::string, std::string>>& copies,
                          const std::vector<file_state>& states, transfer_report& report,
                          const std::function<void(std::size_t)>& removed_hook = {},
                          const std::vector<file_state>* copy_states = nullptr) {
    // The copies must be on disk before the originals go: a power loss right after must not lose both.
    const sys::unique_fd dest_fd(::open(destination.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dest_fd || ::syncfs(dest_fd.get()) != 0) {
        const int error = errno;
        throw_errno(error, fmt::format("Unable to flush the transferred files in {} to disk, so the source {} was not "
                                       "removed: {}.",
                                       destination.string(), source.string(), sys::errno_message(error)));
    }
    detail::write_move_marker(source, destination);
    const std::map<detail::file_key, std::string> held = held_by_others(states);
    kept_reasons kept;
    std::set<std::pair<dev_t, ino_t>> unlinked;  // inodes with other links left
    std::vector<char> buffer;
    for (std::size_t i = 0; i < copies.size(); ++i) {
        const auto& [path, relative] = copies[i];

        struct stat st {};

        if (::lstat(path.c_str(), &st) != 0) {
            continue;  // already gone (an earlier, interrupted removal)
        }
        const std::string copy = detail::joined(destination.native(), relative);
        // Unlinking one hard link of an inode changes the ctime of its other links: that change was ours. So does the
        // transfer's rename over a destination file that was a link of it (a `cp -al` copy): then the bytes decide.
        const bool relinked = unlinked.count({st.st_dev, st.st_ino}) != 0;
        if (!(relinked ? states[i].same_content_as(st) : states[i].same_as(st)) &&
            !unchanged_but_relinked(states[i], st, path, copy, buffer)) {
            continue;  // changed since it was copied: listed below as kept
        }
        if (const auto holder = held.find({st.st_dev, st.st_ino}); holder != held.end()) {
            kept.held.push_back(fmt::format("{} ({})", relative, holder->second));
            continue;  // what its writer writes next would be lost with it
        }
        if (!still_holds_copy(copy, st) ||
            (copy_states != nullptr && (*copy_states)[i].size >= 0 && !copy_unchanged(copy, (*copy_states)[i]))) {
            kept.displaced.push_back(relative);
            continue;
        }
        if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
            const int error = errno;
            throw_errno(error, fmt::format("Unable to remove the transferred source file {}: {}. The transfer to {} is "
                                           "complete{}; {} source files were removed before this one and the others "
                                           "stay, marked as a move in progress: once the cause is fixed, running the "
                                           "same command again finishes the move.",
                                           path, sys::errno_message(error), destination.string(),
                                           report.verified ? " and verified" : "", report.source_files_removed));
        }
        ++report.source_files_removed;
        if (removed_hook) {
            removed_hook(report.source_files_removed);
        }
        if (st.st_nlink > 1) {
            unlinked.emplace(st.st_dev, st.st_ino);
        }
    }
    finish_removal(source, destination, entries, kept, report);
}

/// The destination digests computed during the copies (read_back[i] for copies[i]), by relative path: views of
/// `copies`, which must not change while the result lives (the verification builds it once the copy list is
/// complete, ax_checksum.txt included).
std::shared_ptr<const detail::known_digests> known_digests_of(
    const std::vector<std::pair<std::string, std::string>>& copies,
    const std::vector<detail::known_digest>& read_back) {
    auto known = std::make_shared<detail::known_digests>();
    for (std::size_t i = 0; i < read_back.size(); ++i) {
        if (read_back[i].size >= 0) {
            known->emplace(copies[i].second, read_back[i]);
        }
    }
    return known;
}

/// What the steps of one transfer share: the roots, the classified source tree and the copy bookkeeping.
struct transfer_plan {
    fs::path source;
    fs::path destination;
    std::size_t threads = 1;
    std::vector<source_entry> entries;       ///< shallow entries first
    std::vector<const source_entry*> files;  ///< the regular files (and other non-directories) of entries
    std::vector<std::pair<std::string, std::string>> copies;  // (source path, relative)
    bool reused = false;  ///< verification compares with the source's existing ax_checksum.txt
    bool fused = false;   ///< the source checksum is computed while copying
    std::vector<detail::digest128> digests;
    std::vector<file_state> copied_states;
    std::vector<detail::known_digest> read_back;  ///< verification: digests of the copies read back while open
    // Step 8, when the destination holds files the source does not account for (settle_strays):
    std::vector<std::string> strays;  ///< their relative paths, sorted
    /// Copies in progress that a killed run left (temporary_for of a source file or of ax_checksum.txt): removed
    /// once the transfer goes ahead (prepare_copies), or before the destination of a move whose source files all have
    /// identical copies there is verified (settle_strays; they would fail the verification, and if it fails that move
    /// is refused: they were incomplete copies of files the source still holds). No other refused run removes them.
    std::vector<fs::path> leftovers;
    std::set<std::string> temporary_like;  ///< temporary_like_names of the source files
    bool marked = false;            ///< the source carries the marker of an interrupted move into the destination
    bool checksum_removed = false;  ///< that marker says a run finishing the move removed ax_checksum.txt (finish_move)
    /// With remove_source: the source files identical to their copies in the destination, and what each was when
    /// compared (removal deletes it only if it still is), and the relative paths of those that differ or have none.
    std::vector<std::pair<std::string, std::string>> remaining;
    std::vector<file_state> remaining_states;
    /// What their copies were when compared (removal requires them still; size -1: not checked).
    std::vector<file_state> remaining_copies;
    std::vector<std::string> differing;
    /// Finishing a move (plan_copies_again): for each of `copies`, the destination file it replaces, which must
    /// still be that file when the copy is renamed into place (size -1: there must be none). Empty otherwise.
    std::vector<file_state> replaced;
    std::vector<file_state> placed;  ///< finishing a move: each copy right after it was put in place (copy_one)
    const detail::transfer_hooks* hooks = nullptr;
    bool uncoverable = false;  ///< verification, and no source file the checksum can cover (refused, unless resumed)
    bool flush_before_rename = false;  ///< verification on a filesystem whose close may fail (put_in_place_verified)
};

/// A destination that exists must be a directory (or a symlink to one), and a missing one must be creatable as one.
void check_destination_is_directory(const fs::path& source, const fs::path& destination) {
    struct stat st {};

    const bool exists = ::stat(destination.c_str(), &st) == 0;
    if ((exists && !S_ISDIR(st.st_mode)) || (!exists && errno == ENOTDIR)) {
        throw_os_error(std::make_error_code(std::errc::not_a_directory),
                       fmt::format("Unable to transfer the source directory {} to {}, as {} is not a directory: {}. "
                                   "Nothing was written; name a directory as the destination (a missing one is "
                                   "created).",
                                   source.string(), destination.string(), destination.string(),
                                   exists ? "it is an existing file" : "a component of its path is a file"));
    }
}

/// Steps 1-2: the source must exist and be a real directory; the two roots must be separate trees.
void check_roots(fs::path& source, fs::path& destination) {
    std::error_code ec;
    if (source.empty() || destination.empty()) {
        throw value_error(fmt::format("Unable to transfer '{}' to '{}': an empty path names no directory.",
                                      source.string(), destination.string()));
    }
    // "LINK/" would make lstat follow the link: the checks below look at the last real component.
    source = detail::without_trailing_separators(source);
    destination = detail::without_trailing_separators(destination);
    // 1-2: the source must exist and be a real directory.
    if (!fs::exists(source, ec)) {
        // The same command run again after its move finished lands here: say where the data may already be.
        const std::string hint =
            fs::is_directory(destination, ec)
                ? fmt::format(
                      " The destination {} exists: if a move (remove_source) of this source into it finished "
                      "earlier, the data is there and nothing is left to do.",
                      destination.string())
                : std::string();
        throw file_not_found_error(
            std::make_error_code(std::errc::no_such_file_or_directory),
            fmt::format("Unable to transfer the source directory {}, as it does not exist.{}", source.string(), hint));
    }
    if (fs::is_symlink(fs::symlink_status(source, ec))) {
        throw runtime_error(fmt::format(
            "Unable to transfer the source directory {}, as it is a symbolic link rather than a real directory. "
            "Transfer the directory the link points to instead.",
            source.string()));
    }
    check_destination_is_directory(source, destination);
    check_separate_trees(source, destination);
}

/// Step 4: discover and classify the source tree, shallow entries first.
std::vector<source_entry> discover_source(const fs::path& source) {
    std::vector<source_entry> entries;
    std::vector<detail::typed_path> walked = detail::walk_directory_typed(source);
    entries.reserve(walked.size());
    // Every path is `source / ...` as the walk built it: its relative part is the rest of the string (computing it
    // with lexically_relative, and an lstat per file for its kind, were ~15% of a small-file transfer).
    for (auto& [path, d_type] : walked) {
        source_entry entry;
        entry.relative = detail::relative_to_root(path, source);
        entry.depth = static_cast<std::size_t>(std::count(entry.relative.begin(), entry.relative.end(), '/')) + 1;
        // Files and links are told apart by readdir's type; directories (whose identity check_destination_tree
        // needs) and entries of other or unknown type by lstat.
        if (d_type == DT_REG || d_type == DT_LNK) {
            entry.type = d_type == DT_LNK ? source_entry::kind::symlink : source_entry::kind::file;
            entry.path = std::move(path);
            entries.push_back(std::move(entry));
            continue;
        }

        struct stat st {};

        if (::lstat(path.c_str(), &st) != 0) {
            const int error = errno;
            throw_errno(error, fmt::format("Unable to inspect {}: {}.", path, sys::errno_message(error)));
        }
        entry.type = S_ISLNK(st.st_mode)   ? source_entry::kind::symlink
                     : S_ISDIR(st.st_mode) ? source_entry::kind::directory
                     : S_ISREG(st.st_mode) ? source_entry::kind::file
                                           : source_entry::kind::special;
        if (entry.type == source_entry::kind::special) {
            entry.special_kind = S_ISFIFO(st.st_mode)   ? "a named pipe"
                                 : S_ISSOCK(st.st_mode) ? "a socket"
                                 : S_ISCHR(st.st_mode)  ? "a character device"
                                                        : "a block device";
        }
        entry.identity = {st.st_dev, st.st_ino};
        entry.path = std::move(path);
        entries.push_back(std::move(entry));
    }
    std::stable_sort(entries.begin(), entries.end(),
                     [](const source_entry& a, const source_entry& b) { return a.depth < b.depth; });
    return entries;
}

/// At most `cap` of `names`, then how many more there are.
std::string capped_list(const std::vector<std::string>& names, std::size_t cap = 20) {
    if (names.size() <= cap) {
        return fmt::format("{}", fmt::join(names, ", "));
    }
    return fmt::format("{}, and {} more",
                       fmt::join(names.begin(), names.begin() + static_cast<std::ptrdiff_t>(cap), ", "),
                       names.size() - cap);
}

/// Step 6's refusal: a verified transfer of a source without a file the checksum can cover.
[[noreturn]] void refuse_uncoverable(const fs::path& source) {
    throw runtime_error(fmt::format(
        "Unable to transfer the source directory {} with integrity verification, as it holds no file the checksum "
        "can cover.",
        source.string()));
}

/// Steps 5-6: no symlinks inside; with verification, at least one file the checksum can cover. Fills plan.files.
void check_source_files(transfer_plan& plan, const transfer_options& options) {
    const fs::path& source = plan.source;
    std::vector<std::string> links;
    std::vector<std::string> specials;
    plan.files.reserve(plan.entries.size());
    for (const auto& entry : plan.entries) {
        if (entry.type == source_entry::kind::symlink) {
            links.push_back(entry.relative);
        } else if (entry.type == source_entry::kind::special) {
            specials.push_back(fmt::format("{} ({})", entry.relative, entry.special_kind));
        } else if (entry.type == source_entry::kind::file) {
            plan.files.push_back(&entry);
        }
    }
    if (!links.empty()) {  // every link, as the Python library lists them (spec wording)
        throw runtime_error(fmt::format(
            "Unable to transfer the source directory {}, as it contains {} symbolic link(s). Symbolic links cannot "
            "be transferred as data. Resolve the following link(s) into real data before transferring the tree: {}.",
            source.string(), links.size(), fmt::join(links, ", ")));
    }
    if (!specials.empty()) {  // before anything is written (a copy would fail on them, or wait on a pipe)
        std::sort(specials.begin(), specials.end());
        throw runtime_error(fmt::format(
            "Unable to transfer the source directory {}, as it contains {} special file(s), which hold no data a copy "
            "could keep: {}. Nothing was copied. Move them out of the source, then transfer it.",
            source.string(), specials.size(), capped_list(specials)));
    }
    // 6
    const bool coverable = std::any_of(plan.files.begin(), plan.files.end(), [](const source_entry* f) {
        return detail::file_name_of(f->relative) != checksum_file_name;
    });
    // A move interrupted after its last file was removed leaves a source with none: settle_strays may finish it.
    plan.uncoverable = options.verify_integrity && !coverable;
    std::error_code ec;
    if (plan.uncoverable && !(options.remove_source && fs::exists(plan.destination, ec))) {
        refuse_uncoverable(source);
    }
}

/// Step 8: the destination files the source does not account for (plan.strays). Leftover copies in progress of a
/// killed run (the temporary of a source file, or of ax_checksum.txt) are not strays: they are incomplete copies of
/// files the source still has, removed once the transfer goes ahead (plan.leftovers, remove_leftovers).
void find_strays(transfer_plan& plan) {
    const fs::path& destination = plan.destination;
    std::vector<fs::path> found = walk_files(destination);
    if (found.empty()) {
        return;  // the usual case, a new destination: no sets of every source file's names to build
    }
    std::set<std::string> source_files;
    const auto temporary_of = [&](const std::string& relative) {
        return relative_of(temporary_for(destination / relative, relative, plan.temporary_like), destination);
    };
    std::set<std::string> partials{temporary_of(std::string(checksum_file_name))};
    for (const auto* file : plan.files) {
        source_files.insert(file->relative);
        partials.insert(temporary_of(file->relative));
    }
    for (auto& path : found) {
        const std::string relative = relative_of(path, destination);
        if (path.filename() == checksum_file_name || source_files.count(relative) != 0) {
            continue;
        }
        if (partials.count(relative) != 0) {
            plan.leftovers.push_back(std::move(path));
        } else {
            plan.strays.push_back(relative);
        }
    }
    std::sort(plan.strays.begin(), plan.strays.end());
}

/// Removes the copies in progress a killed run left (plan.leftovers), once the transfer goes ahead.
void remove_leftovers(transfer_plan& plan) {
    for (const auto& path : plan.leftovers) {
        (void)::unlink(path.c_str());  // a temporary: never followed if a link, gone already is fine
    }
    plan.leftovers.clear();
}

/// Whether the regular files `a` (the source's) and `b` have the same bytes; `state` receives what `a` was. A source
/// file that cannot be read throws; a destination file that is missing or not a regular file differs.
bool identical_files(const fs::path& a, const fs::path& b, file_state& state, std::vector<char>& buffer,
                     file_state* copy_state = nullptr) {
    struct stat st {};

    const sys::unique_fd in = open_source(a, b, st);
    state = file_state::of(st);

    struct stat other_st {};

    const sys::unique_fd other(::open(b.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (!other || ::fstat(other.get(), &other_st) != 0 || !S_ISREG(other_st.st_mode) ||
        other_st.st_size != st.st_size) {
        return false;
    }
    if (copy_state != nullptr) {
        *copy_state = file_state::of(other_st);
    }
    const std::size_t half = buffer.size() / 2;
    for (off_t offset = 0;;) {
        const sys::io_result x = sys::pread_full(in.get(), buffer.data(), half, offset);
        const sys::io_result y = sys::pread_full(other.get(), buffer.data() + half, half, offset);
        if (x.error) {
            throw_errno(x.error.value(),
                        fmt::format("Unable to read {}: {}.", a.string(), sys::errno_message(x.error.value())));
        }
        if (y.error || x.bytes != y.bytes || std::memcmp(buffer.data(), buffer.data() + half, x.bytes) != 0) {
            return false;
        }
        if (x.bytes < half) {
            return true;
        }
        offset += static_cast<off_t>(x.bytes);
    }
}

/// Step 8 for a move: which source files are identical to their copies in the destination (plan.remaining, with
/// their states) and which are not (plan.differing).
void compare_remaining(transfer_plan& plan) {
    std::vector<char> buffer(std::size_t{1} << 20);
    for (const auto* file : plan.files) {
        file_state state;
        file_state copy_state;
        if (identical_files(file->path, plan.destination / file->relative, state, buffer, &copy_state)) {
            plan.remaining.emplace_back(file->path, file->relative);
            plan.remaining_states.push_back(state);
            // ax_checksum.txt is left unchecked: finishing a move computes the destination's again (finish_move).
            plan.remaining_copies.push_back(file->relative == checksum_file_name ? file_state{} : copy_state);
        } else {
            plan.differing.push_back(file->relative);
        }
    }
}

/// reset_dirty_destination: unlinks the strays.
void remove_strays(const transfer_plan& plan, transfer_report& report) {
    for (const auto& stray : plan.strays) {
        const fs::path path = plan.destination / stray;
        if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
            const int error = errno;
            throw_errno(error, fmt::format("Unable to remove {} from the destination: {}.", path.string(),
                                           sys::errno_message(error)));
        }
        report.strays_removed.push_back(stray);
    }
}

/// A reused ax_checksum.txt must hold a checksum (32 lowercase hexadecimal digits, as the checksum writes it):
/// anything else (an empty file left by a crash, a directory, text) would fail the verification after the whole
/// copy, blamed on the data.
void require_checksum_file(const fs::path& file) {
    struct stat st {};

    const bool regular = ::stat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode);
    const std::string digest = regular ? first_line(file) : std::string();
    const bool hex = digest.size() == 32 && digest.find_first_not_of("0123456789abcdef") == std::string::npos;
    if (!regular || !hex) {
        throw value_error(fmt::format(
            "Unable to verify the transfer of {}: its {} {}, where a checksum (32 lowercase hexadecimal digits) was "
            "expected. Nothing was copied. Remove it to have the checksum computed during the copy, or recompute it "
            "with `axds checksum`.",
            file.parent_path().string(), file.string(),
            !regular ? "is not a regular file"
                     : fmt::format("holds '{}'", digest.size() > 64 ? digest.substr(0, 64) + "..." : digest)));
    }
}

/// Steps 9-10: the copy list, whether the source checksum is reused or computed while copying, and every source
/// directory (empty ones included) made in the destination.
void prepare_copies(transfer_plan& plan, const transfer_options& options) {
    remove_leftovers(plan);
    std::error_code ec;
    // 9: the source checksum, reused or computed (and then copied too).
    plan.copies.reserve(plan.files.size() + 1);  // + ax_checksum.txt (expected_checksum)
    for (const auto* file : plan.files) {
        plan.copies.emplace_back(file->path, file->relative);
    }
    // Without a checksum to reuse, the source checksum is computed while copying (one read of the source, not two);
    // it is then saved to the source and copied along, as calculate_directory_checksum(save) would have done first.
    if (options.verify_integrity) {
        plan.reused = fs::exists(plan.source / checksum_file_name, ec);
        plan.fused = !plan.reused;
    }
    plan.digests.resize(plan.fused ? plan.copies.size() : 0);
    plan.copied_states.resize(plan.copies.size());
    // Verification: every copy is read back and hashed while it is open (large ones during the copy, see
    // detail::copy_and_hash), so the destination checksum reads none of them again unless it changed since.
    plan.read_back.resize(options.verify_integrity ? plan.copies.size() : 0);
    // 10: every source directory, empty ones included.
    for (const auto& entry : plan.entries) {
        if (entry.type == source_entry::kind::directory) {
            fs::create_directories(plan.destination / entry.relative, ec);
            if (ec) {
                throw_os_error(ec, fmt::format("Unable to create {}.", (plan.destination / entry.relative).string()));
            }
        }
    }
    if (options.verify_integrity) {  // unknown (cannot be opened): flushed, as on a network filesystem
        const sys::unique_fd root(::open(plan.destination.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        plan.flush_before_rename = !root || !detail::on_local_filesystem(root.get()) ||
                                   (plan.hooks != nullptr && plan.hooks->flush_before_rename);
    }
}

/// The cancellation error of a transfer stopped after `done` files.
[[noreturn]] void throw_cancelled(const transfer_plan& plan, std::size_t done) {
    throw_os_error(asio::error::operation_aborted,
                   fmt::format("The transfer of {} to {} was cancelled after {} of {} files; the source is intact.",
                               plan.source.string(), plan.destination.string(), done, plan.copies.size()));
}

/// One copy of step 11, on a CPU-pool thread: copies[i], hashed as the plan asks; returns the bytes copied.
std::uint64_t copy_one(transfer_plan& plan, std::size_t i) {
    thread_local detail::file_hasher source_hasher;
    thread_local detail::file_hasher destination_hasher;
    const auto& [from, relative] = plan.copies[i];
    copy_hashing hashing{.relative = relative};
    if (plan.fused) {
        hashing.source = &source_hasher;
        hashing.source_digest = &plan.digests[i];
    }
    if (!plan.read_back.empty()) {
        hashing.destination = &destination_hasher;
        hashing.destination_digest = &plan.read_back[i];
        hashing.flush_before_rename = plan.flush_before_rename;
    }
    if (!plan.replaced.empty()) {
        hashing.replaces = &plan.replaced[i];
    }
    const std::string to = detail::joined(plan.destination.native(), relative);
    const std::uint64_t copied = copy_with_metadata(from, to, temporary_for(to, relative, plan.temporary_like),
                                                    &plan.copied_states[i], hashing, plan.hooks);

    struct stat st {};

    if (!plan.placed.empty() && ::lstat(to.c_str(), &st) == 0) {
        plan.placed[i] = file_state::of(st);  // what the removal then requires of it
    }
    return copied;
}

/// The order in which `copies` are started: one file of each directory in turn (directories in their order, files
/// in theirs), so that the threads copying at the same time create their files in different directories. Creating
/// and renaming take the directory's lock: two threads in one directory wait for each other.
std::vector<std::size_t> interleaved_by_directory(const std::vector<std::pair<std::string, std::string>>& copies) {
    std::vector<std::vector<std::size_t>> groups;
    std::unordered_map<std::string_view, std::size_t> group_of;
    for (std::size_t i = 0; i < copies.size(); ++i) {
        const std::string_view relative = copies[i].second;
        const std::size_t slash = relative.rfind('/');
        const std::string_view parent =
            slash == std::string_view::npos ? std::string_view() : relative.substr(0, slash);
        const auto [it, added] = group_of.try_emplace(parent, groups.size());
        if (added) {
            groups.emplace_back();
        }
        groups[it->second].push_back(i);
    }
    std::vector<std::size_t> order;
    order.reserve(copies.size());
    for (std::size_t rank = 0; order.size() < copies.size(); ++rank) {
        for (const auto& group : groups) {
            if (rank < group.size()) {
                order.push_back(group[rank]);
            }
        }
    }
    return order;
}

/// Step 11: copies, `threads` at a time on the batch runner, progress between rounds. Cancellation is honoured
/// between files; the source is untouched until the very end (its removal, once begun, is finished).
asio::awaitable<transfer_progress> copy_files(transfer_plan& plan, const transfer_options& options) {
    transfer_progress progress{.files_total = plan.copies.size()};
    const detail::batch_plan batch{.workers = plan.threads,
                                   .round = detail::round_size(plan.copies.size(), plan.threads * 8)};
    auto bytes = std::make_shared<std::atomic<std::uint64_t>>(0);
    auto order = std::make_shared<const std::vector<std::size_t>>(
        plan.threads > 1 ? interleaved_by_directory(plan.copies) : std::vector<std::size_t>());
    detail::item_work copy = [&plan, bytes, order](std::size_t i, const std::atomic<bool>&) {
        bytes->fetch_add(copy_one(plan, order->empty() ? i : (*order)[i]));
    };
    detail::round_done after_round = [&progress, &options, bytes](std::size_t, std::size_t last) {
        progress.files_done = last;
        progress.bytes_done = bytes->load();
        if (options.progress) {
            options.progress(progress);
        }
    };
    const detail::batch_result copied =
        co_await detail::async_for_each_item(plan.copies.size(), batch, std::move(copy), std::move(after_round));
    if (copied.stopped) {
        throw_cancelled(plan, copied.done);
    }
    co_return progress;
}

/// The checksum the destination must have: the one computed while copying (then saved to the source and copied
/// along), the source's existing ax_checksum.txt, or none without verification.
std::string expected_checksum(transfer_plan& plan, const transfer_options& options) {
    const fs::path& source = plan.source;
    auto& copies = plan.copies;
    std::string expected;
    if (plan.fused) {
        std::vector<detail::file_digest> covered;
        covered.reserve(copies.size());
        for (std::size_t i = 0; i < copies.size(); ++i) {
            const std::string& relative = copies[i].second;
            if (detail::file_name_of(relative) != checksum_file_name) {
                covered.push_back({relative, plan.digests[i]});
            }
        }
        expected = detail::combine_file_digests(covered);
        try {
            detail::save_checksum_file(source, expected);
        } catch (const os_error& e) {  // e.g. a full source filesystem
            throw_errno(e.code().value(),
                        fmt::format("{} Every file was copied to {}, but without its checksum in the source the copy "
                                    "cannot be verified; nothing was removed from the source.",
                                    e.what(), plan.destination.string()));
        }
        copies.emplace_back((source / checksum_file_name).native(), std::string(checksum_file_name));
        plan.copied_states.emplace_back();
        const fs::path to = plan.destination / checksum_file_name;
        (void)copy_with_metadata(source / checksum_file_name, to,
                                 temporary_for(to, checksum_file_name, plan.temporary_like),
                                 &plan.copied_states.back());
    } else if (options.verify_integrity) {
        expected = first_line(source / checksum_file_name);
    }
    return expected;
}

/// What changed in the source while a transfer that keeps it ran, found after the copies: the copied files that are no
/// longer what they were when their copy began (size, mtime or ctime, from the fstat taken when each was opened: so a
/// change during its copy counts too) or are gone, and the files that appeared since the source was walked.
struct source_changes {
    std::vector<std::string> changed;
    std::vector<std::string> appeared;

    [[nodiscard]] bool empty() const { return changed.empty() && appeared.empty(); }
};

/// The source files (not directories) that a second walk finds and the copies do not name.
std::vector<std::string> files_not_copied(const transfer_plan& plan) {
    std::unordered_set<std::string_view> copied;
    copied.reserve(plan.copies.size());
    for (const auto& copy : plan.copies) {
        copied.insert(copy.second);
    }
    std::vector<std::string> appeared;
    for (const auto& [path, type] : detail::walk_directory_typed(plan.source)) {
        struct stat st {};

        if (type == DT_DIR || (type == DT_UNKNOWN && ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))) {
            continue;
        }
        std::string relative = detail::relative_to_root(path, plan.source);
        if (copied.count(relative) == 0 && relative != move_marker_name) {
            appeared.push_back(std::move(relative));
        }
    }
    return appeared;
}

/// Whether the source file `from` (found as `st`), which is no longer exactly what was copied to `to` (`copied`), is
/// unchanged all the same: only its link count changed, and with it its ctime (the transfer's own rename over a
/// destination file that was a hard link of it, as in a `cp -al` copy, does that), while its inode, size and mtime
/// are the same and its bytes are still those of the copy (a rewrite that set the mtime back is caught there). False
/// when either file cannot be read.
bool unchanged_but_relinked(const file_state& copied, const struct stat& st, const std::string& from,
                            const std::string& to, std::vector<char>& buffer) {
    if (st.st_nlink == copied.links || !copied.same_content_as(st)) {
        return false;
    }
    buffer.resize(std::size_t{2} << 20);
    file_state ignored;
    try {
        return identical_files(from, to, ignored, buffer);
    } catch (const std::exception&) {
        return false;
    }
}

/// changes_since_copied, with an lstat per copied file (split across the transfer's threads: on a virtual machine
/// each costs microseconds) beside the second walk.
asio::awaitable<source_changes> changes_since_copied(const transfer_plan& plan) {
    const std::size_t slices = plan.threads;
    const std::size_t count = plan.copies.size();
    std::vector<char> changed(count, 0);
    source_changes found;
    std::function<void(std::size_t)> task = [&plan, &changed, &found, slices, count](std::size_t k) {
        if (k == slices) {
            found.appeared = files_not_copied(plan);
            return;
        }
        std::vector<char> buffer;
        for (std::size_t i = k * count / slices; i < (k + 1) * count / slices; ++i) {
            struct stat st {};

            const file_state& copied = plan.copied_states[i];
            if (::lstat(plan.copies[i].first.c_str(), &st) != 0) {
                changed[i] = 1;
            } else if (!copied.same_as(st)) {
                // A change of its link count changes its ctime too (our own rename over a destination file that was
                // a hard link of it does): then its bytes are compared with the copy's.
                const auto& [from, relative] = plan.copies[i];
                changed[i] = static_cast<char>(!unchanged_but_relinked(
                    copied, st, from, detail::joined(plan.destination.native(), relative), buffer));
            }
        }
    };
    co_await detail::async_parallel_for(slices + 1, task);
    for (std::size_t i = 0; i < count; ++i) {
        if (changed[i] != 0) {
            found.changed.push_back(plan.copies[i].second);
        }
    }
    std::sort(found.changed.begin(), found.changed.end());
    std::sort(found.appeared.begin(), found.appeared.end());
    co_return found;
}

/// The last step of a transfer that keeps its source: the destination must be a copy of the source as it is, not as
/// it was. When files changed, vanished or appeared in the source while it was copied (changes_since_copied), the
/// transfer fails, naming them (a script that deletes the source after a successful transfer must not delete data
/// the destination lacks). The ax_checksum.txt a verified transfer saved to the source describes the earlier content:
/// it is removed again (if nobody changed it), so that the next transfer computes it anew.
void refuse_source_changed_meanwhile(const transfer_plan& plan, const source_changes& found) {
    std::string checksum;
    if (plan.fused) {
        const std::string saved = (plan.source / checksum_file_name).native();

        struct stat st {};

        if (::lstat(saved.c_str(), &st) == 0 && plan.copied_states.back().same_as(st) && ::unlink(saved.c_str()) == 0) {
            checksum = fmt::format(
                " The {} saved to the source for this transfer describes that earlier content, so "
                "it was removed from the source again.",
                checksum_file_name);
        }
    }
    std::vector<std::string> listed;
    if (!found.changed.empty()) {
        listed.push_back(fmt::format("{} file(s) changed or were removed after their copy began ({})",
                                     found.changed.size(), capped_list(found.changed)));
    }
    if (!found.appeared.empty()) {
        listed.push_back(fmt::format("{} file(s) appeared and were not copied ({})", found.appeared.size(),
                                     capped_list(found.appeared)));
    }
    throw runtime_error(fmt::format(
        "The transfer of {} to {} copied every file it found, but the source changed while it was transferred: {}. "
        "The destination holds each copied file as it was when its copy began, not the source as it is now.{} Nothing "
        "was removed from the source. Transfer again once nothing writes to it.",
        plan.source.string(), plan.destination.string(), fmt::join(listed, "; "), checksum));
}

/// The copied files whose destination digest differs from their source digest (the digest read back during the copy
/// while the file is still what it was then, else the file read again) or that are gone or unreadable. It reads again
/// every copy that changed since its copy. Runs on the CPU pool.
std::vector<std::string> copies_that_differ(const transfer_plan& plan) {
    std::vector<std::string> differ;
    for (std::size_t i = 0; i < plan.digests.size(); ++i) {  // the copies before ax_checksum.txt was added
        const std::string& relative = plan.copies[i].second;
        if (detail::file_name_of(relative) == checksum_file_name) {
            continue;  // not part of the checksum
        }
        const std::string path = detail::joined(plan.destination.native(), relative);

        struct stat st {};

        if (::lstat(path.c_str(), &st) != 0) {
            differ.push_back(relative + " (missing)");
            continue;
        }
        detail::digest128 digest{};
        if (!plan.read_back.empty() && plan.read_back[i].matches(st)) {
            digest = plan.read_back[i].digest;
        } else {
            try {
                digest = detail::file_digest_of(path, relative).first;
            } catch (const std::exception&) {
                differ.push_back(relative + " (unreadable)");
                continue;
            }
        }
        if (digest != plan.digests[i]) {
            differ.push_back(relative);
        }
    }
    return differ;
}

/// After a failed verification of a checksum computed while copying: copies_that_differ, and the destination files no
/// copy made. Only on that failure. Runs on the CPU pool.
std::vector<std::string> files_that_differ(const transfer_plan& plan) {
    std::vector<std::string> differ = copies_that_differ(plan);
    std::unordered_set<std::string_view> copied;
    for (std::size_t i = 0; i < plan.digests.size(); ++i) {
        copied.insert(plan.copies[i].second);
    }
    for (const auto& path : walk_files(plan.destination)) {
        const std::string relative = relative_of(path, plan.destination);
        if (detail::file_name_of(relative) != checksum_file_name && copied.count(relative) == 0) {
            differ.push_back(relative + " (not in the source)");
        }
    }
    std::sort(differ.begin(), differ.end());
    return differ;
}

/// Step 12: the destination's checksum must equal `expected`.
asio::awaitable<void> verify_destination(const transfer_plan& plan, const std::string& expected) {
    const fs::path& source = plan.source;
    const fs::path& destination = plan.destination;
    // With as many workers as the copies had (the default, cores - 2, left a 2-core machine hashing on one).
    const checksum_options verify{.workers = static_cast<int>(plan.threads), .save_checksum = false};
    // Files read back during their copy are not read again unless they changed since (known_digest).
    const std::string actual =
        co_await detail::async_directory_checksum(destination, verify, known_digests_of(plan.copies, plan.read_back));
    if (actual != expected) {
        const std::string cause =
            plan.reused ? "Either the data was corrupted in transmission, or the reused ax_checksum.txt file of the "
                          "source predates the current contents of the source. Remove that file to have the checksum "
                          "regenerated from the current data, then transfer again."
                        : "This indicates that the data was corrupted in transmission.";
        // With the source digests of every file (computed while copying), the files at fault can be named.
        std::vector<std::string> differ;
        if (plan.fused) {
            auto find = [&plan, &differ] {
                differ = files_that_differ(plan);
            };
            co_await detail::async_run_cpu(find);
        }
        const std::string named =
            differ.empty() ? std::string()
                           : fmt::format(" The destination files that differ from the source as it was read: {}.",
                                         capped_list(differ));
        throw runtime_error(fmt::format(
            "Unable to verify the integrity of the directory transferred from {} to {}. The destination checksum "
            "must match the source checksum, but the two differ. {}{}",
            tail6(source), tail6(destination), cause, named));
    }
}

/// The refusal of reset_dirty_destination when the strays may be the only copy of their data (settle_strays).
[[noreturn]] void refuse_reset(const transfer_plan& plan, const transfer_options& options) {
    const char* reason =
        options.remove_source
            ? "the transfer is a move (remove_source), and a move of this source interrupted while it removed the "
              "source leaves exactly such files in the destination"
        : plan.marked ? "the source carries the marker of a move into this destination that was interrupted while it "
                        "removed the source"
                      : "the destination matches its ax_checksum.txt, so it is a complete copy of a tree that includes "
                        "them, not leftovers of an unrelated attempt";
    throw runtime_error(fmt::format(
        "Unable to transfer the source directory {} into {} with reset_dirty_destination, as the destination holds "
        "{} file(s) the source does not account for ({}) and {}. They may be the only copy of their data, so nothing "
        "was copied and nothing was deleted. Run the transfer again without reset_dirty_destination: as a move "
        "(remove_source) it finishes an interrupted move of this source safely when the destination is a complete "
        "copy; otherwise check these files and move them out of the destination by hand.",
        plan.source.string(), plan.destination.string(), plan.strays.size(), capped_list(plan.strays), reason));
}

/// The refusal of a move being finished (settle_strays) when some source files differ from copies that may hold data
/// the source does not (plan.differing, as plan_copies_again left it).
[[noreturn]] void refuse_differing(const transfer_plan& plan) {
    throw runtime_error(fmt::format(
        "Unable to finish the move of {} into {}: {} file(s) still in the source differ from their copies in the "
        "destination, and the source file does not simply extend its copy (the copy changed in the destination, the "
        "source file was rewritten or shortened since the copy, the copy is not a regular file, or another program "
        "has the copy open for writing), so replacing the copy could lose data only it holds: {}. Nothing was copied "
        "and nothing was deleted. Compare each pair, remove the version you do not want (the source file, or its copy "
        "in the destination), then run the move again.",
        plan.source.string(), plan.destination.string(), plan.differing.size(), capped_list(plan.differing)));
}

/// The refusal of a destination holding strays, with why an interrupted move could not be finished.
[[noreturn]] void refuse_strays(const transfer_plan& plan, const transfer_options& options, bool has_checksum) {
    std::string why;
    if (options.remove_source) {
        why = has_checksum ? " The destination does not match its ax_checksum.txt, so it cannot be shown to be the "
                             "complete copy of an interrupted move of this source."
              : plan.marked
                  ? " The source carries the marker of an interrupted move into this destination, but the "
                    "destination holds no ax_checksum.txt to verify it with: run the move again without "
                    "verify_integrity to finish it."
                  : " Nothing shows that the destination is the complete copy of an interrupted move of this source "
                    "(it holds no ax_checksum.txt and the source carries no move marker).";
    } else if (plan.marked) {
        why =
            " The source carries the marker of a move into this destination that was interrupted during its source "
            "removal: run that move again (remove_source) to finish it.";
    }
    throw runtime_error(fmt::format(
        "Unable to transfer the source directory {} into {}, as the destination holds {} file(s) the source does not "
        "account for: {}.{} Nothing was copied and nothing was deleted. These files may be the only copy of their "
        "data (for example, files that an earlier transfer of this source moved there before it was interrupted), so "
        "they are left in place: check them, move them out of the destination, then transfer again.",
        plan.source.string(), plan.destination.string(), plan.strays.size(), capped_list(plan.strays), why));
}

/// Whether the destination's tree (without ax_checksum.txt) hashes to its ax_checksum.txt.
asio::awaitable<bool> destination_verifies(const transfer_plan& plan) {
    const std::string expected = first_line(plan.destination / checksum_file_name);
    const checksum_options verify{.workers = static_cast<int>(plan.threads), .save_checksum = false};
    const std::shared_ptr<const detail::known_digests> none;
    const std::string actual = co_await detail::async_directory_checksum(plan.destination, verify, none);
    co_return actual == expected;
}

/// Whether the regular file `copy` (`copy_st`) holds exactly the first bytes of the source file `source`: it is no
/// longer, and equal to its start. Replacing the copy with the source then loses no byte. A source that cannot be read
/// throws.
bool extended_by_source(const std::string& copy, const struct stat& copy_st, const std::string& source) {
    struct stat st {};

    const sys::unique_fd in = open_source(source, copy, st);
    const sys::unique_fd other(::open(copy.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    return other && copy_st.st_size <= st.st_size && equal_starts(in.get(), other.get(), copy_st.st_size, &source);
}

/// Step 8 for a move being finished: which of the source files that differ from their copies (plan.differing) may
/// be copied again -- they have no copy in the destination (they appeared after the move copied the tree), or their
/// copy is a regular file that the source file extends (a writer kept appending after the copy: replacing it loses
/// no byte) and that no other process has open for writing. Those go to plan.copies, with what they replace
/// (plan.replaced); the others, whose copy may hold data the source does not (changed in the destination, or the
/// source rewritten or shortened since), are returned. The source's ax_checksum.txt, when it differs, is out of date
/// (the destination's is computed again, finish_move): it joins the files removed, not copied.
std::vector<std::string> plan_copies_again(transfer_plan& plan) {
    std::unordered_map<std::string_view, const std::string*> source_path;
    for (const auto* file : plan.files) {
        source_path.emplace(file->relative, &file->path);
    }
    std::vector<std::string> blocked;
    std::vector<std::pair<std::string, struct stat>> candidates;  // relative, its copy
    for (const auto& relative : plan.differing) {
        const std::string& from = *source_path.at(relative);

        struct stat st {};

        if (relative == checksum_file_name) {
            if (::lstat(from.c_str(), &st) == 0) {
                plan.remaining.emplace_back(from, relative);
                plan.remaining_states.push_back(file_state::of(st));
                plan.remaining_copies.emplace_back();  // the destination's is computed again
            }
            continue;
        }
        const std::string copy = detail::joined(plan.destination.native(), relative);
        if (::lstat(copy.c_str(), &st) != 0 && errno == ENOENT) {
            plan.copies.emplace_back(from, relative);
            plan.replaced.emplace_back();  // size -1: there must still be none
        } else if (S_ISREG(st.st_mode) && extended_by_source(copy, st, from)) {
            candidates.emplace_back(relative, st);
        } else {
            blocked.push_back(relative);
        }
    }
    std::set<detail::file_key> copies;
    for (const auto& candidate : candidates) {
        copies.emplace(candidate.second.st_dev, candidate.second.st_ino);
    }
    const std::map<detail::file_key, std::string> held = detail::held_for_writing(copies);
    for (const auto& [relative, st] : candidates) {
        if (held.count({st.st_dev, st.st_ino}) != 0) {
            blocked.push_back(relative);  // what its writer writes next would be lost with it
            continue;
        }
        plan.copies.emplace_back(*source_path.at(relative), relative);
        plan.replaced.push_back(file_state::of(st));
    }
    std::sort(blocked.begin(), blocked.end());
    return blocked;
}

/// Steps 9-10 for the copies of plan_copies_again: hashed as verification needs (file by file: the rest of the
/// destination verified already), and their directories made.
void prepare_copies_again(transfer_plan& plan, const transfer_options& options) {
    plan.fused = options.verify_integrity;
    plan.digests.resize(plan.fused ? plan.copies.size() : 0);
    plan.copied_states.resize(plan.copies.size());
    plan.placed.resize(plan.copies.size());
    plan.read_back.resize(options.verify_integrity ? plan.copies.size() : 0);
    for (const auto& [from, relative] : plan.copies) {
        const fs::path parent = (plan.destination / relative).parent_path();
        std::error_code ec;
        fs::create_directories(parent, ec);
        if (ec) {
            throw_os_error(ec, fmt::format("Unable to create {}.", parent.string()));
        }
    }
    if (options.verify_integrity) {
        const sys::unique_fd root(::open(plan.destination.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        plan.flush_before_rename = !root || !detail::on_local_filesystem(root.get()) ||
                                   (plan.hooks != nullptr && plan.hooks->flush_before_rename);
    }
}

/// Finishes an interrupted move whose destination is a complete copy: the files of plan.copies (plan_copies_again)
/// are copied again (and verified, file by file, with verify_integrity), the destination's ax_checksum.txt, when it
/// has one, is computed again for its new contents, then the source files identical to their copies and those just
/// copied are removed (each only if it is still what was compared or copied).
asio::awaitable<void> finish_move(transfer_plan& plan, const transfer_options& options, bool has_checksum,
                                  transfer_report& report) {
    if (!plan.copies.empty()) {
        auto prepare = [&plan, &options, has_checksum] {
            // A kill from here on must leave a destination the next run can still finish: ax_checksum.txt, which the
            // first copy makes stale, goes first, noted in the marker (it is computed again at the end).
            detail::write_move_marker(plan.source, plan.destination);
            if (has_checksum) {
                detail::record_checksum_removed(plan.source);
                const fs::path stale = plan.destination / checksum_file_name;
                if (::unlink(stale.c_str()) != 0 && errno != ENOENT) {
                    const int error = errno;
                    throw_errno(error, fmt::format("Unable to remove {}, which the files copied again make out of "
                                                   "date: {}. Nothing was copied and nothing was removed.",
                                                   stale.string(), sys::errno_message(error)));
                }
            }
            remove_leftovers(plan);
            prepare_copies_again(plan, options);
        };
        co_await detail::async_run_cpu(prepare);
        const transfer_progress progress = co_await copy_files(plan, options);
        report.files_copied = progress.files_done;
        report.bytes_copied = progress.bytes_done;
        std::vector<std::string> differ;
        co_await detail::async_run_cpu([&plan, &differ] { differ = copies_that_differ(plan); });
        if (!differ.empty()) {
            throw runtime_error(fmt::format(
                "Unable to verify the files copied again from {} to {} to finish an interrupted move: {} of them "
                "differ from the source as it was read ({}). This indicates that the data was corrupted in "
                "transmission. Nothing was removed from the source.",
                plan.source.string(), plan.destination.string(), differ.size(), capped_list(differ)));
        }
    }
    // A checksum the destination had, or that a killed run finishing this move removed, is computed again.
    if ((has_checksum && !plan.copies.empty()) || plan.checksum_removed) {
        const checksum_options settings{.workers = static_cast<int>(plan.threads), .save_checksum = false};
        const std::string digest = co_await detail::async_directory_checksum(
            plan.destination, settings, known_digests_of(plan.copies, plan.read_back));
        co_await detail::async_run_cpu([&plan, &digest] { detail::save_checksum_file(plan.destination, digest); });
    }
    auto remove = [&plan, &report] {
        std::vector<std::pair<std::string, std::string>> files = plan.remaining;
        files.insert(files.end(), plan.copies.begin(), plan.copies.end());
        std::vector<file_state> states = plan.remaining_states;
        states.insert(states.end(), plan.copied_states.begin(), plan.copied_states.end());
        std::vector<file_state> copies = plan.remaining_copies;
        copies.insert(copies.end(), plan.placed.begin(), plan.placed.end());
        remove_copied_source(plan.source, plan.destination, plan.entries, files, states, report,
                             plan.hooks->source_file_removed, &copies);
    };
    co_await detail::async_run_cpu(remove);
}

/// Step 8 when the destination holds strays, or the source carries the marker of a move into it (resumes_move).
/// reset_dirty_destination removes strays (then the copies are prepared), unless they may be the only copy of their
/// data: the transfer is a move, the source carries the marker of an interrupted move into this destination, or the
/// destination verifies against its ax_checksum.txt (a complete copy). A move whose destination holds no strays or
/// is a complete copy -- it verifies against its ax_checksum.txt, or (without one, and without verify_integrity) the
/// source carries the marker -- is an interrupted move: it is finished (true: nothing is left to do), copying again
/// the remaining source files that have no copy or extend theirs (plan_copies_again; any other differing file
/// refuses it). Otherwise refused.
asio::awaitable<bool> settle_strays(transfer_plan& plan, const transfer_options& options, transfer_report& report) {
    std::error_code ec;
    const bool has_checksum = fs::is_regular_file(fs::symlink_status(plan.destination / checksum_file_name, ec));
    const bool reset = options.reset_dirty_destination;
    const bool move = options.remove_source;
    bool verifies = false;
    if (move && !reset && plan.differing.empty()) {
        // A move that may be finished: its own leftovers would fail the destination's verification. (With differing
        // files they stay until the move goes ahead, finish_move: a refused run deletes nothing.)
        co_await detail::async_run_cpu([&plan] { remove_leftovers(plan); });
    }
    if (has_checksum && ((reset && !move && !plan.marked) || (!reset && move))) {
        verifies = co_await destination_verifies(plan);
    }
    if (reset) {
        if (move || plan.marked || verifies) {
            refuse_reset(plan, options);
        }
        auto clean = [&plan, &options, &report] {
            remove_strays(plan, report);
            prepare_copies(plan, options);
        };
        co_await detail::async_run_cpu(clean);
        co_return false;
    }
    // Without strays (a marked move that kept every file, or removed none) no file is only in the destination.
    const bool complete =
        plan.strays.empty() || verifies || (plan.marked && !has_checksum && !options.verify_integrity);
    if (!move || !complete) {
        if (plan.uncoverable) {
            refuse_uncoverable(plan.source);
        }
        refuse_strays(plan, options, has_checksum);
    }
    auto plan_again = [&plan] {
        plan.differing = plan_copies_again(plan);
    };
    co_await detail::async_run_cpu(plan_again);
    if (!plan.differing.empty()) {
        refuse_differing(plan);
    }
    report.resumed_move = true;
    // Copies made without verify_integrity are not verified, whatever the destination was before them.
    report.verified = verifies && (plan.copies.empty() || options.verify_integrity);
    co_await finish_move(plan, options, has_checksum, report);
    co_return true;
}

}  // namespace

namespace {

/// Whether this transfer finishes a move of its source into its destination that did not end (the source carries
/// its marker): then the files still in the source are compared with their copies (settle_strays), even without
/// strays -- a move that kept every file removed none -- never copied over them blindly.
bool resumes_move(const transfer_plan& plan, const transfer_options& options) {
    return plan.marked && options.remove_source && !options.reset_dirty_destination;
}

/// A move refused because its source holds a file named like the move marker that is not the marker of a move into
/// this destination: the marker of a move elsewhere, not finished (moving the source into another destination would
/// split it), or a file of the user's, which the removal would delete without copying it first.
[[noreturn]] void refuse_other_marker(const transfer_plan& plan, const detail::move_marker& found) {
    const fs::path marker = plan.source / detail::move_marker_name;
    if (found.other_move) {
        throw runtime_error(fmt::format(
            "Unable to move {} into {}: the source carries the marker of an earlier move into {} that did not end "
            "({}), so part of its data may be there already and moving the rest elsewhere would split it. Nothing "
            "was copied and nothing was deleted. Finish that move (run it again with that destination), or, if that "
            "destination is gone or was replaced, remove the marker and run this move again.",
            plan.source.string(), plan.destination.string(), found.other_destination, marker.string()));
    }
    throw runtime_error(fmt::format(
        "Unable to move {} into {}: the source holds {}, a file of the name axds gives the marker of a move in "
        "progress, but it is not one. Nothing was copied and nothing was deleted. Rename it, then run the move again.",
        plan.source.string(), plan.destination.string(), marker.string()));
}

/// Steps 1-2 and 4-10: checks of both roots, the source's walk and checks, the destination directory, strays, and
/// the copies to make.
void plan_transfer(transfer_plan& plan, const transfer_options& options) {
    check_roots(plan.source, plan.destination);   // 1-2
    plan.entries = discover_source(plan.source);  // 4
    // The marker of an interrupted move is never copied (nor counted as a source file).
    const auto marker = std::find_if(plan.entries.begin(), plan.entries.end(), [](const source_entry& e) {
        return e.relative == move_marker_name && e.type == source_entry::kind::file;
    });
    if (marker != plan.entries.end()) {
        const detail::move_marker found = detail::read_move_marker(plan.source, plan.destination);
        if (options.remove_source && !found.into_destination) {
            refuse_other_marker(plan, found);
        }
        plan.marked = found.into_destination;
        plan.checksum_removed = found.checksum_removed;
        if (found.into_destination || found.other_move) {
            plan.entries.erase(marker);  // axds's own file: never copied (a file of its name that is not one is data)
        }
    }
    check_source_files(plan, options);  // 5-6
    if (std::error_code ec; options.verify_integrity && fs::exists(plan.source / checksum_file_name, ec)) {
        require_checksum_file(plan.source / checksum_file_name);  // a reused checksum: before anything is written
    }
    plan.temporary_like = temporary_like_names(plan.entries);
    check_destination_tree(plan.source, plan.destination, plan.entries);
    // 7
    std::error_code ec;
    fs::create_directories(plan.destination, ec);
    if (ec || !fs::is_directory(plan.destination)) {
        const std::error_code code = ec ? ec : std::make_error_code(std::errc::file_exists);
        std::error_code link_error;
        const bool dangling = fs::is_symlink(fs::symlink_status(plan.destination, link_error)) &&
                              !fs::exists(plan.destination, link_error);
        throw_os_error(
            code, fmt::format("Unable to create the destination directory {}: {}.", plan.destination.string(),
                              dangling ? "it is a symbolic link to something that does not exist" : code.message()));
    }
    find_strays(plan);  // 8 (settled by settle_strays when there are any)
    if (plan.uncoverable && plan.strays.empty()) {
        refuse_uncoverable(plan.source);
    }
    if (!plan.strays.empty() || resumes_move(plan, options)) {
        if (options.remove_source && !options.reset_dirty_destination) {
            compare_remaining(plan);
        }
        return;
    }
    prepare_copies(plan, options);  // 9-10
}

}  // namespace

asio::awaitable<transfer_report> async_transfer_directory(fs::path source, fs::path destination,
                                                          transfer_options options) {
    return detail::async_transfer_directory(std::move(source), std::move(destination), std::move(options), {});
}

asio::awaitable<transfer_report> detail::async_transfer_directory(fs::path source, fs::path destination,
                                                                  transfer_options options, transfer_hooks hooks) {
    transfer_plan plan;
    refresh_umask();  // copies are created with their mode when the umask keeps it (mode_survives_umask)
    // 3 (first: a bad count is refused before anything is looked at)
    plan.threads = static_cast<std::size_t>(resolve_workers_option(options.workers, "transfer_options::workers"));
    plan.source = std::move(source);
    plan.destination = std::move(destination);
    plan.hooks = &hooks;
    transfer_report report;
    // Steps 1-10 walk both trees and stat every file: on the CPU pool, never on the caller's executor.
    auto make_plan = [&plan, &options, &hooks] {
        plan_transfer(plan, options);
        if (hooks.after_plan) {
            hooks.after_plan();
        }
    };
    const bool interrupted = co_await detail::async_run_cpu_cancellable(make_plan);
    if (interrupted) {  // nothing copied yet
        throw_cancelled(plan, 0);
    }
    if (!plan.strays.empty() || resumes_move(plan, options)) {  // 8: refused, reset, or an interrupted move finished
        const bool resumed = co_await settle_strays(plan, options, report);
        if (resumed) {
            co_return report;
        }
    }
    const transfer_progress progress = co_await copy_files(plan, options);  // 11
    if (hooks.after_copy) {
        hooks.after_copy(plan.destination);
    }
    if (detail::cancelled(co_await asio::this_coro::cancellation_state)) {
        throw_cancelled(plan, plan.copies.size());
    }
    const std::string expected = expected_checksum(plan, options);
    if (options.verify_integrity) {  // 12
        co_await verify_destination(plan, expected);
    }
    // 13
    if (detail::cancelled(co_await asio::this_coro::cancellation_state)) {
        throw_cancelled(plan, plan.copies.size());
    }
    report.files_copied = progress.files_done;
    report.bytes_copied = progress.bytes_done;
    report.verified = options.verify_integrity;
    if (!options.remove_source) {  // a move keeps what changed in the source (remove_copied_source)
        const source_changes found = co_await changes_since_copied(plan);
        if (!found.empty()) {
            refuse_source_changed_meanwhile(plan, found);
        }
    }
    if (options.remove_source) {
        auto remove = [&] {
            remove_copied_source(plan.source, plan.destination, plan.entries, plan.copies, plan.copied_states, report,
                                 hooks.source_file_removed);
        };
        co_await detail::async_run_cpu(remove);
    }
    co_return report;
}

}  // namespace axds
