#include <axds/fs/delete.hpp>

#include <axds/core/console.hpp>
#include <axds/error.hpp>

#include "detail/fault_hooks.hpp"
#include "detail/parallel.hpp"
#include "fs/path_guard.hpp"
#include "sys/error.hpp"
#include "sys/unique_fd.hpp"
#include "sys/uring.hpp"

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <exception>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace axds {

namespace {

constexpr int rmdir_attempts = 5;
/// Directories the coroutine descends through one at a time (a chain of single subdirectories) before a thread takes
/// the rest: each holds a descriptor open.
constexpr int max_chain_depth = 8;

/// What a directory is, for the walk: device and inode, and the mount (Linux >= 5.8: a bind mount of a directory of
/// the same filesystem has the same device but another mount id).
struct dir_identity {
    std::uint64_t device = 0;
    std::uint64_t inode = 0;
    std::uint64_t mount = 0;
    bool has_mount = false;

    [[nodiscard]] bool same_directory(const dir_identity& other) const noexcept {
        return device == other.device && inode == other.inode;
    }

    [[nodiscard]] bool same_mount(const dir_identity& other) const noexcept {
        return device == other.device && (!has_mount || !other.has_mount || mount == other.mount);
    }
};

/// Device and inode (and mount id, when asked for and known) of a statx result.
dir_identity identity_of(const struct statx& sx) {
    dir_identity id;
    id.device = (std::uint64_t{sx.stx_dev_major} << 32U) | sx.stx_dev_minor;
    id.inode = sx.stx_ino;
    id.has_mount = (sx.stx_mask & STATX_MNT_ID) != 0;
    id.mount = sx.stx_mnt_id;
    return id;
}

dir_identity identify(int fd, const std::string& path) {
    struct statx sx {};

    if (::statx(fd, "", AT_EMPTY_PATH, STATX_INO | STATX_MNT_ID, &sx) != 0) {
        const int error = errno;
        throw_errno(error, fmt::format("Unable to inspect {} for deletion: {}.", path, sys::errno_message(error)));
    }
    return identity_of(sx);
}

/// Unlinks between two checks that the directory being emptied is still where the walk found it.
constexpr std::size_t unlinks_per_check = 256;

/// Stops the delete when the open directory `fd` (display path `path`) is no longer inside the directory the walk
/// opened it from (`parent`): another process moved it elsewhere, out of the tree, and whatever it still holds is no
/// longer part of what the user asked to delete. A directory already removed (by a concurrent delete) passes.
void require_in_place(int fd, const dir_identity& parent, const std::string& path) {
    const sys::unique_fd up(::openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!up) {
        return;  // removed meanwhile: nothing left in it to protect
    }

    struct statx sx {};

    if (::statx(up.get(), "", AT_EMPTY_PATH, STATX_INO, &sx) == 0 && identity_of(sx).same_directory(parent)) {
        return;
    }
    throw runtime_error(fmt::format(
        "Unable to delete {}: another process moved it elsewhere while it was emptied, so the delete stopped; what "
        "it still holds, where it was moved to, was left (only the few hundred entries being removed when it moved "
        "went too). Delete again once nothing else changes the tree.",
        path));
}

[[noreturn]] void unlink_failure(const std::string& file, int error) {
    throw_errno(error, fmt::format("Unable to delete {}: {}.", file, sys::errno_message(error)));
}

/// The names in one directory, split by kind (every entry that is not a real directory is unlinked as it is: links,
/// FIFOs and sockets too).
struct listing {
    std::vector<std::string> files;
    std::vector<std::string> directories;
};

/// §9.2 step 3, relative to the open directory `fd`: its entries, classified by readdir's type or, where the
/// filesystem gives none, by fstatat without following links (an entry that vanished counts as a non-directory).
listing list_children(int fd, const std::string& path) {
    const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    DIR* dir = copy < 0 ? nullptr : ::fdopendir(copy);
    if (dir == nullptr) {
        const int error = errno;
        if (copy >= 0) {
            ::close(copy);
        }
        throw_errno(error,
                    fmt::format("Unable to list the {} directory for deletion: {}.", path, sys::errno_message(error)));
    }
    listing out;
    while (const dirent* entry = ::readdir(dir)) {
        const std::string_view name = entry->d_name;
        if (name == "." || name == "..") {
            continue;
        }
        bool is_directory = entry->d_type == DT_DIR;
        if (entry->d_type == DT_UNKNOWN) {
            struct stat st {};

            if (::fstatat(fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                is_directory = S_ISDIR(st.st_mode);
            } else if (errno != ENOENT) {
                const int error = errno;
                ::closedir(dir);
                throw_errno(error, fmt::format("Unable to inspect {}/{} for deletion: {}.", path, name,
                                               sys::errno_message(error)));
            }
        }
        (is_directory ? out.directories : out.files).emplace_back(name);
    }
    ::closedir(dir);
    return out;
}

/// io_uring unlinkat of every name in the directory `fd`, 64 in flight, on this CPU-pool thread's ring. A name that
/// became a directory meanwhile (EISDIR) is added to `became_directories`, as unlink_names does. False if io_uring is
/// not enabled or the ring failed (the caller unlinks plainly then).
bool unlink_with_io_uring(int fd, const std::string& path, const std::vector<std::string>& names,
                          std::vector<std::string>& became_directories, const dir_identity& parent) {
    constexpr std::size_t in_flight = 64;
    sys::uring* ring = sys::thread_ring();
    if (ring == nullptr) {
        return false;
    }
    const std::size_t known_directories = became_directories.size();
    std::size_t next = 0;
    std::size_t done = 0;
    std::error_code first_error;
    std::size_t failed = 0;
    const auto handle = [&](const sys::completion& c) {
        ++done;
        if (c.error() && c.error().value() == EISDIR) {
            became_directories.push_back(names[c.index]);
        } else if (c.error() && c.error().value() != ENOENT && !first_error) {
            first_error = c.error();
            failed = c.index;
        }
    };
    // A failed placement check stops the submissions; the requests in flight are reaped before it is thrown (a
    // thread's ring must never be left with completions nobody waits for).
    std::size_t checked = 0;
    std::exception_ptr moved;
    while (done < (moved ? next : names.size())) {
        if (!moved && next - checked >= unlinks_per_check) {
            try {
                require_in_place(fd, parent, path);
            } catch (...) {
                moved = std::current_exception();
            }
            checked = next;
        }
        for (; !moved && next < names.size() && next - done < in_flight; ++next) {
            io_uring_sqe* sqe = ring->sqe();
            io_uring_prep_unlinkat(sqe, fd, names[next].c_str(), 0);
            sys::set_tag(sqe, next, sys::op::unlink);
        }
        if (done == next) {
            break;  // stopped with nothing in flight
        }
        if (ring->submit_and_reap(handle)) {
            // The ring failed and is retired: queued requests never run later. The caller's plain unlinks go over
            // every name again and find those directories again: none may be listed twice (two walks of one subtree).
            became_directories.resize(known_directories);
            return false;
        }
    }
    if (moved) {
        std::rethrow_exception(moved);
    }
    if (first_error) {
        unlink_failure(path + "/" + names[failed], first_error.value());
    }
    return true;
}

/// Unlinks names[first], names[first + stride], … in the directory `fd` (display path `path`). A name that became a
/// directory meanwhile (EISDIR) is added to `became_directories` when given, else reported.
void unlink_names(int fd, const std::string& path, const std::vector<std::string>& names, const dir_identity& parent,
                  std::size_t first = 0, std::size_t stride = 1,
                  std::vector<std::string>* became_directories = nullptr) {
    for (std::size_t i = first, count = 0; i < names.size(); i += stride, ++count) {
        if (count % unlinks_per_check == unlinks_per_check - 1) {
            require_in_place(fd, parent, path);
        }
        if (::unlinkat(fd, names[i].c_str(), 0) == 0 || errno == ENOENT) {
            continue;
        }
        if (errno == EISDIR && became_directories != nullptr) {
            became_directories->push_back(names[i]);
            continue;
        }
        unlink_failure(path + "/" + names[i], errno);
    }
}

/// The §9.2 warning for a directory left in place after its last rmdir attempt failed with `error`.
void warn_unremovable(const std::string& path, int error) {
    // The §9.2 sentence, then what the last attempt really said: an open handle is only one of the causes.
    const std::string cause =
        error == EBUSY ? "which typically indicates that another process still holds an open handle to it or to one "
                         "of the entries it stored (or something is mounted on it)"
        : error == ENOTEMPTY || error == EEXIST
            ? "because entries kept appearing in it while it was deleted (another process is still writing there)"
        : error == EACCES || error == EPERM ? "because removing it is not permitted"
                                            : "for the reason the system reported";
    warn(fmt::format("Unable to remove the {} directory after 5 attempts ({}). The directory is left in place, {}.",
                     path, sys::errno_message(error), cause));
}

/// Deletes directory trees below open directories, never by a path from the root: every step is relative to a
/// directory descriptor, each child is opened with O_NOFOLLOW and checked to be on the tree's mount, and the way
/// back up is checked to lead to the directory that was left. A directory swapped for a link while the delete runs
/// therefore loses the link (an entry of the tree), never its target; a mount that appears inside the tree is
/// refused; a tree deeper than PATH_MAX allows as a path is deleted like any other (one descriptor per thread).
class tree_remover {
public:
    tree_remover(const delete_options& options, const detail::delete_hooks& hooks, const dir_identity& root)
        : options_(options), hooks_(hooks), root_(root) {}

    /// The test seam after a directory is listed, before its entries are removed.
    void listed(const std::string& path) const {
        if (hooks_.after_list) {
            hooks_.after_list(path);
        }
    }

    /// An opened subdirectory and what it is.
    struct opened {
        sys::unique_fd fd;
        dir_identity id;
    };

    /// Opens the subdirectory `name` of `parent` (display path `path`) for the walk, refused when it is on another
    /// mount. `fd` is empty when there is nothing to walk: it vanished, or it is no directory any more (then it is
    /// unlinked: a link is an entry of the tree).
    opened open_child(int parent, const std::string& name, const std::string& path) const {
        if (hooks_.before_open) {
            hooks_.before_open(path);
        }
        opened child{sys::unique_fd(::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)),
                     {}};
        if (child.fd) {
            child.id = identify(child.fd.get(), path);
            refuse_other_mount(child.id, path);
            return child;
        }
        const int error = errno;
        if (error == ENOTDIR || error == ELOOP) {  // replaced by a link or a file: remove that, never follow it
            if (::unlinkat(parent, name.c_str(), 0) != 0 && errno != ENOENT) {
                unlink_failure(path, errno);
            }
        } else if (error != ENOENT) {
            throw_errno(error, fmt::format("Unable to list the {} directory for deletion: {}.", path,
                                           sys::errno_message(error)));
        }
        return child;
    }

    /// Deletes the subtree `name` of the open directory `parent`, itself included, on this thread, depth first.
    void remove_subtree(int parent, const std::string& name, const std::string& path) const {
        struct frame {
            dir_identity id;
            std::string name;
            std::string path;
            std::vector<std::string> pending;  ///< subdirectories still to delete
        };

        const dir_identity parent_id = identify(parent, path);
        opened root = open_child(parent, name, path);
        if (!root.fd) {
            return;
        }
        sys::unique_fd current = std::move(root.fd);
        std::vector<frame> stack;
        stack.push_back({root.id, name, path, empty_files(current.get(), path, parent_id)});
        while (!stack.empty()) {
            frame& top = stack.back();
            if (!top.pending.empty()) {
                const std::string child = std::move(top.pending.back());
                top.pending.pop_back();
                std::string child_path = top.path + "/" + child;
                opened next = open_child(current.get(), child, child_path);
                if (next.fd) {
                    std::vector<std::string> subdirectories = empty_files(next.fd.get(), child_path, top.id);
                    current = std::move(next.fd);
                    stack.push_back({next.id, child, std::move(child_path), std::move(subdirectories)});
                }
                continue;
            }
            const frame finished = std::move(stack.back());
            stack.pop_back();
            if (stack.empty()) {
                require_in_place(current.get(), parent_id, finished.path);  // a vanished name is no success
                current.reset();
                remove_directory_at(parent, finished.name, finished.path);
                return;
            }
            current = climb(current.get(), stack.back().id, stack.back().path);
            remove_directory_at(current.get(), finished.name, finished.path);
        }
    }

    /// Lists the open directory `fd`, unlinks every entry that is not a directory and returns the subdirectories.
    /// `parent`: the directory `fd` was opened from, checked every unlinks_per_check unlinks (require_in_place).
    [[nodiscard]] std::vector<std::string> empty_files(int fd, const std::string& path,
                                                       const dir_identity& parent) const {
        listing children = list_children(fd, path);
        listed(path);
        if (!children.files.empty() &&
            !(options_.use_io_uring && unlink_with_io_uring(fd, path, children.files, children.directories, parent))) {
            unlink_names(fd, path, children.files, parent, 0, 1, &children.directories);
        }
        return std::move(children.directories);
    }

    /// rmdir of `name` in `parent` with §9.2's attempts rmdir_retry_delay apart (this thread waits), then the warning.
    void remove_directory_at(int parent, const std::string& name, const std::string& path) const {
        before_rmdir(path);
        int error = try_remove_at(parent, name);
        for (int attempt = 2; attempt <= rmdir_attempts && error != 0; ++attempt) {
            std::this_thread::sleep_for(options_.rmdir_retry_delay);
            error = try_remove_at(parent, name);
        }
        if (error != 0) {
            warn_unremovable(path, error);
        }
    }

    /// One rmdir of `name` in `parent`: 0 when it is gone, else the errno.
    static int try_remove_at(int parent, const std::string& name) {
        if (::unlinkat(parent, name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) {
            return 0;
        }
        if (errno == ENOTDIR) {  // swapped for a link after it was emptied: the link goes
            return ::unlinkat(parent, name.c_str(), 0) == 0 || errno == ENOENT ? 0 : errno;
        }
        return errno;
    }

    void before_rmdir(const std::string& path) const {
        if (hooks_.before_rmdir) {
            hooks_.before_rmdir(path);
        }
    }

    [[nodiscard]] const delete_options& options() const noexcept { return options_; }

    void refuse_other_mount(const dir_identity& id, const std::string& path) const {
        if (!id.same_mount(root_)) {
            throw value_error(fmt::format(
                "Unable to delete {}: it is another filesystem (or a bind mount) mounted inside the tree, which is "
                "not deleted. Unmount it, then delete again.",
                path));
        }
    }

private:
    /// The parent of the open directory `fd`, checked to be the directory the walk came down from (`expected`).
    static sys::unique_fd climb(int fd, const dir_identity& expected, const std::string& expected_path) {
        sys::unique_fd up(::openat(fd, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!up || !identify(up.get(), expected_path).same_directory(expected)) {
            throw runtime_error(fmt::format(
                "Unable to delete {}: a directory inside it was moved elsewhere while it was deleted, so the delete "
                "stopped (nothing outside the directory was touched). Delete again once nothing else changes it.",
                expected_path));
        }
        return up;
    }

    const delete_options& options_;
    const detail::delete_hooks& hooks_;
    dir_identity root_;
};

/// The sibling subtrees of one directory deleted side by side, one thread per subtree at a time (on tmpfs and ext4
/// an unlink locks its directory: threads in one directory wait for each other, threads in two do not).
asio::awaitable<void> remove_subtrees(const tree_remover& remover, int parent, const std::string& path,
                                      const std::vector<std::string>& names) {
    const std::size_t tasks = std::min<std::size_t>(4, names.size());
    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    std::function<void(std::size_t)> work = [&](std::size_t) {
        for (std::size_t i = next++; i < names.size() && !failed.load(); i = next++) {
            try {
                remover.remove_subtree(parent, names[i], path + "/" + names[i]);
            } catch (...) {
                failed = true;  // the others stop at their next subtree, as a sequential walk stops at once
                throw;
            }
        }
    };
    co_await detail::async_parallel_for(tasks, std::move(work));
}

/// What the entry `name` of `parent` is now, without following a link; nullopt once it is gone.
std::optional<std::pair<dir_identity, bool>> entry_identity(int parent, const std::string& name) {
    struct statx sx {};

    if (::statx(parent, name.c_str(), AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_INO, &sx) != 0) {
        return std::nullopt;
    }
    return std::pair{identity_of(sx), S_ISDIR(sx.stx_mode)};
}

[[noreturn]] void named_directory_replaced(const std::string& path) {
    throw runtime_error(fmt::format(
        "Unable to finish deleting {}: while its contents were deleted, another process moved it or put something "
        "else in its place. What is at {} now was left untouched, and nothing outside the directory that was emptied "
        "was deleted; that directory, now empty, may remain where it was moved to.",
        path, path));
}

/// One rmdir of the named directory itself, only while `name` in `parent` is still the directory the walk emptied
/// (`expected`): whatever was put in its place meanwhile (a link, a file, another directory) is never removed.
int try_remove_named(int parent, const std::string& name, const std::string& path, const dir_identity& expected) {
    const auto now = entry_identity(parent, name);
    if (!now) {
        return 0;  // gone (removed or moved away by someone else)
    }
    if (!now->second || !now->first.same_directory(expected)) {
        named_directory_replaced(path);
    }
    if (::unlinkat(parent, name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) {
        return 0;
    }
    if (errno == ENOTDIR) {  // swapped for a link or a file between the check and the rmdir
        named_directory_replaced(path);
    }
    return errno;
}

/// rmdir of `name` in `parent` with §9.2's attempts, a delay before each retry on a timer (no thread waits), then
/// the warning. With `expected` (the named directory itself), each attempt first checks that `name` is still that
/// directory (try_remove_named); without it, a subdirectory swapped for a link is unlinked (the link is an entry of
/// the tree).
asio::awaitable<void> remove_with_retries(const tree_remover& remover, int parent, const std::string& name,
                                          const std::string& path, const dir_identity* expected = nullptr) {
    const auto attempt = [&] {
        return expected != nullptr ? try_remove_named(parent, name, path, *expected)
                                   : tree_remover::try_remove_at(parent, name);
    };
    remover.before_rmdir(path);
    int error = attempt();
    if (error == 0) {
        co_return;
    }
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (int attempt_number = 2; attempt_number <= rmdir_attempts && error != 0; ++attempt_number) {
        timer.expires_after(remover.options().rmdir_retry_delay);
        co_await timer.async_wait(asio::use_awaitable);
        error = attempt();
    }
    if (error != 0) {
        warn_unremovable(path, error);
    }
}

/// Empties the open directory `fd` (display path `path`): its files unlinked in parallel (step 4), then its
/// subdirectories; a lone subdirectory is descended into here (up to max_chain_depth levels), so that its own
/// subtrees are spread over the threads too.
asio::awaitable<void> empty_directory(const tree_remover& remover, int fd, std::string path, int depth,
                                      dir_identity parent) {
    listing children = list_children(fd, path);
    remover.listed(path);
    if (!children.files.empty()) {
        const auto& files = children.files;
        const std::size_t tasks =
            remover.options().use_io_uring ? 1 : std::min<std::size_t>(4, (files.size() + 63) / 64);
        std::vector<std::vector<std::string>> became(tasks);
        std::function<void(std::size_t)> work = [&](std::size_t task) {
            if (remover.options().use_io_uring && unlink_with_io_uring(fd, path, files, became[task], parent)) {
                return;
            }
            unlink_names(fd, path, files, parent, task, tasks, &became[task]);
        };
        co_await detail::async_parallel_for(tasks, std::move(work));
        for (auto& list : became) {
            std::move(list.begin(), list.end(), std::back_inserter(children.directories));
        }
    }
    if (children.directories.size() == 1 && depth < max_chain_depth) {
        const std::string& name = children.directories.front();
        const std::string child_path = path + "/" + name;
        const tree_remover::opened child = remover.open_child(fd, name, child_path);
        if (child.fd) {
            const dir_identity here = identify(fd, path);
            co_await empty_directory(remover, child.fd.get(), child_path, depth + 1, here);
            require_in_place(child.fd.get(), here, child_path);  // moved out meanwhile: its rmdir would "succeed"
            co_await remove_with_retries(remover, fd, name, child_path);
        }
    } else if (!children.directories.empty()) {
        co_await remove_subtrees(remover, fd, path, children.directories);
    }
}

/// The refusals made before anything is removed: a protected root (unless forced) and mount points inside the tree.
void refuse_protected_or_mounted(const fs::path& directory, const delete_options& options) {
    if (!options.force_root) {
        if (const std::string reason = detail::protected_root_reason(directory); !reason.empty()) {
            throw protected_directory_error(
                fmt::format("Unable to delete {}: {}. Nothing was deleted. Deleting it is refused unless explicitly "
                            "forced (delete_options::force_root).",
                            directory.string(), reason),
                reason);
        }
    }
    // Another filesystem (or a bind mount of any directory) inside the tree is not part of it: deleting would empty
    // what is mounted there. Refused before anything is removed; the walk below also never crosses a device.
    if (const auto mounts = detail::mount_points_below(directory); !mounts.empty()) {
        throw value_error(fmt::format(
            "Unable to delete {}: it contains {} mount point(s) ({}), and deleting would empty the filesystems "
            "mounted there. Nothing was deleted; unmount them first.",
            directory.string(), mounts.size(), fmt::join(mounts, ", ")));
    }
}

}  // namespace

asio::awaitable<void> async_delete_directory(fs::path directory, delete_options options) {
    return detail::async_delete_directory(std::move(directory), options, {});
}

asio::awaitable<void> detail::async_delete_directory(fs::path directory, delete_options options, delete_hooks hooks) {
    if (directory.empty()) {
        throw value_error("Unable to delete '': an empty path names no directory.");
    }
    if (options.rmdir_retry_delay.count() < 0) {
        throw value_error(fmt::format(
            "Unable to delete {}: the 'rmdir_retry_delay' option must be greater than or equal to 0 ms, but got {} ms.",
            directory.string(), options.rmdir_retry_delay.count()));
    }
    // "LINK/" would make lstat follow the link: look at the last real component.
    directory = detail::without_trailing_separators(directory);
    const std::string last = directory.filename().string();
    if (last == "." || last == "..") {
        throw value_error(fmt::format(
            "Unable to delete '{}': a path ending in '{}' does not name a directory unambiguously. Name the directory "
            "itself.",
            directory.string(), last));
    }

    struct stat st {};

    if (::lstat(directory.c_str(), &st) != 0) {
        if (errno == ENOENT) {
            co_return;  // step 2: nothing to do
        }
        const int error = errno;
        throw_errno(error, fmt::format("Unable to delete {}: {}.", directory.string(), sys::errno_message(error)));
    }
    if (S_ISLNK(st.st_mode)) {  // step 1: remove the link, never its target
        if (::unlink(directory.c_str()) != 0 && errno != ENOENT) {
            const int error = errno;
            throw_errno(error, fmt::format("Unable to delete the symbolic link {}: {}.", directory.string(),
                                           sys::errno_message(error)));
        }
        co_return;
    }
    if (!S_ISDIR(st.st_mode)) {
        throw_errno(ENOTDIR, fmt::format("Unable to delete {}: it is not a directory.", directory.string()));
    }
    refuse_protected_or_mounted(directory, options);
    // Everything below is relative to descriptors: the parent opened once, by the user's path, then the named
    // directory in it without following a link, then each directory from its parent (tree_remover). The final rmdir
    // goes through the same parent descriptor and only while the name still holds the directory that was emptied:
    // a path through a link that is re-pointed meanwhile, or a directory moved away and replaced, never makes the
    // delete remove something it did not walk.
    const std::string name = directory.filename().string();
    const sys::unique_fd parent(::open(directory.parent_path().empty() ? "." : directory.parent_path().c_str(),
                                       O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!parent) {
        const int error = errno;
        throw_errno(error, fmt::format("Unable to delete {}: its parent directory cannot be opened: {}.",
                                       directory.string(), sys::errno_message(error)));
    }
    const sys::unique_fd root(
        name.empty() ? ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                     : ::openat(parent.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!root) {
        const int error = errno;
        if (error == ENOENT) {
            co_return;
        }
        throw_errno(error, fmt::format("Unable to delete {}: {}.", directory.string(), sys::errno_message(error)));
    }
    const auto root_id = identify(root.get(), directory.string());  // this file's dir_identity, not detail::'s
    const tree_remover remover(options, hooks, root_id);
    co_await empty_directory(remover, root.get(), directory.string(), 0, identify(parent.get(), directory.string()));
    if (name.empty()) {
        co_return;  // "/" (force_root): emptied; the root of the filesystem itself is never removed
    }
    co_await remove_with_retries(remover, parent.get(), name, directory.string(), &root_id);
}

}  // namespace axds
