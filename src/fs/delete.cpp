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
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace axds {

namespace {

constexpr int rmdir_attempts = 5;

struct listing {
    std::vector<fs::path> files;        ///< everything that is not a real directory (links, FIFOs, sockets too)
    std::vector<fs::path> directories;  ///< real directories
};

/// §9.2 step 3: direct children classified with lstat; an entry that vanished counts as a non-directory.
listing list_children(const fs::path& directory) {
    DIR* dir = ::opendir(directory.c_str());
    if (dir == nullptr) {
        const int error = errno;
        throw_errno(error, fmt::format("Unable to list the {} directory for deletion: {}.", directory.string(),
                                       sys::errno_message(error)));
    }
    listing out;
    while (const dirent* entry = ::readdir(dir)) {
        const std::string_view name = entry->d_name;
        if (name == "." || name == "..") {
            continue;
        }
        fs::path child = directory / entry->d_name;
        bool is_directory = entry->d_type == DT_DIR;
        if (entry->d_type == DT_UNKNOWN) {
            struct stat st {};

            if (::lstat(child.c_str(), &st) == 0) {
                is_directory = S_ISDIR(st.st_mode);
            } else if (errno != ENOENT && errno != ENOTDIR && errno != EBADF && errno != ELOOP) {
                const int error = errno;
                ::closedir(dir);
                throw_errno(error, fmt::format("Unable to inspect {} for deletion: {}.", child.string(),
                                               sys::errno_message(error)));
            }
        }
        (is_directory ? out.directories : out.files).push_back(std::move(child));
    }
    ::closedir(dir);
    return out;
}

[[noreturn]] void unlink_failure(const fs::path& file, int error) {
    throw_errno(error, fmt::format("Unable to delete {}: {}.", file.string(), sys::errno_message(error)));
}

/// io_uring unlinkat of every file (all in one directory), 64 in flight, on this CPU-pool thread's ring. False if
/// io_uring is not enabled or the ring failed (the caller unlinks plainly then).
bool unlink_with_io_uring(const fs::path& directory, const std::vector<fs::path>& files) {
    constexpr std::size_t in_flight = 64;
    sys::uring* ring = sys::thread_ring();
    if (ring == nullptr) {
        return false;
    }
    const sys::unique_fd directory_fd(::open(directory.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!directory_fd) {
        return false;
    }
    std::vector<std::string> names;
    names.reserve(files.size());
    for (const auto& file : files) {
        names.push_back(file.filename().string());
    }
    std::size_t next = 0;
    std::size_t done = 0;
    std::error_code first_error;
    std::size_t failed = 0;
    const auto handle = [&](const sys::completion& c) {
        ++done;
        if (c.error() && c.error().value() != ENOENT && !first_error) {
            first_error = c.error();
            failed = c.index;
        }
    };
    while (done < names.size()) {
        for (; next < names.size() && next - done < in_flight; ++next) {
            io_uring_sqe* sqe = ring->sqe();
            io_uring_prep_unlinkat(sqe, directory_fd.get(), names[next].c_str(), 0);
            sys::set_tag(sqe, next, sys::op::unlink);
        }
        if (ring->submit_and_reap(handle)) {
            return false;  // the ring failed and is retired: queued requests never run later
        }
    }
    if (first_error) {
        unlink_failure(files[failed], first_error.value());
    }
    return true;
}

/// The mount check of §9.2's walk: a directory on another device is refused before anything in `directory` goes.
void refuse_other_devices(const fs::path& directory, const std::vector<fs::path>& directories, dev_t device) {
    for (const auto& child : directories) {
        struct stat st {};

        if (::lstat(child.c_str(), &st) == 0 && st.st_dev != device) {
            throw value_error(
                fmt::format("Unable to delete {}: {} is another filesystem mounted inside it, which is "
                            "not deleted. Unmount it, then delete again.",
                            directory.string(), child.string()));
        }
    }
}

/// Unlinks `files` (all in `directory`; `directory / name`, as list_children made them) on this thread, by name
/// relative to the directory opened without following a link: no walk down to it per file (~10% of rm -rf-like
/// work), and a directory swapped for a link meanwhile is not followed. `stride`/`first` split one list between
/// tasks.
void unlink_files(const sys::unique_fd& parent, const std::vector<fs::path>& files, std::size_t first = 0,
                  std::size_t stride = 1) {
    for (std::size_t i = first; i < files.size(); i += stride) {
        const std::string& path = files[i].native();
        const std::size_t slash = path.rfind('/');
        const char* name = path.c_str() + (slash == std::string::npos ? 0 : slash + 1);
        const int removed =
            parent ? ::unlinkat(parent.get(), name, 0) : ::unlink(path.c_str());  // the directory could not be opened
        if (removed != 0 && errno != ENOENT) {
            unlink_failure(files[i], errno);
        }
    }
}

sys::unique_fd open_parent(const fs::path& directory) {
    return sys::unique_fd(::open(directory.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

/// One rmdir attempt, after the test hook. False when the directory is still there (the caller retries later).
bool remove_once(const fs::path& directory, const detail::delete_hooks& hooks) {
    if (hooks.before_rmdir) {
        hooks.before_rmdir(directory);
    }
    return ::rmdir(directory.c_str()) == 0 || errno == ENOENT;
}

/// Deletes the tree at `directory` on this thread, depth first; a directory whose first rmdir failed is appended
/// to `unremoved` (children before their parent) for the retries, which wait on a timer in the coroutine.
void remove_subtree(const fs::path& directory, const delete_options& options, const detail::delete_hooks& hooks,
                    dev_t device, std::vector<fs::path>& unremoved) {
    const listing children = list_children(directory);
    refuse_other_devices(directory, children.directories, device);
    if (!children.files.empty() && !(options.use_io_uring && unlink_with_io_uring(directory, children.files))) {
        unlink_files(open_parent(directory), children.files);
    }
    for (const auto& child : children.directories) {
        remove_subtree(child, options, hooks, device, unremoved);
    }
    if (!remove_once(directory, hooks)) {
        unremoved.push_back(directory);
    }
}

/// The sibling subtrees of one directory deleted side by side, one thread per subtree at a time (on tmpfs and ext4
/// an unlink locks its directory: threads in one directory wait for each other, threads in two do not). Returns
/// the directories still present after one rmdir each, in the order a sequential walk would have met them.
asio::awaitable<std::vector<fs::path>> remove_subtrees(const std::vector<fs::path>& directories,
                                                       const delete_options& options, const detail::delete_hooks& hooks,
                                                       dev_t device) {
    const std::size_t tasks = std::min<std::size_t>(4, directories.size());
    std::vector<std::vector<fs::path>> unremoved(directories.size());
    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    std::function<void(std::size_t)> work = [&](std::size_t) {
        for (std::size_t i = next++; i < directories.size() && !failed.load(); i = next++) {
            try {
                remove_subtree(directories[i], options, hooks, device, unremoved[i]);
            } catch (...) {
                failed = true;  // the others stop at their next subtree, as a sequential walk stops at once
                throw;
            }
        }
    };
    co_await detail::async_parallel_for(tasks, std::move(work));
    std::vector<fs::path> all;
    for (auto& list : unremoved) {
        std::move(list.begin(), list.end(), std::back_inserter(all));
    }
    co_return all;
}

/// §9.2's further rmdir attempts after the first failed one, a delay before each, then the warning: the directory
/// is left in place.
asio::awaitable<void> remove_with_retries(const fs::path& directory, const delete_options& options) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    int error = 0;
    for (int attempt = 2; attempt <= rmdir_attempts; ++attempt) {
        timer.expires_after(options.rmdir_retry_delay);
        co_await timer.async_wait(asio::use_awaitable);
        if (::rmdir(directory.c_str()) == 0 || errno == ENOENT) {
            co_return;
        }
        error = errno;
    }
    // The §9.2 sentence, then what the last attempt really said: an open handle is only one of the causes.
    const std::string cause =
        error == EBUSY ? "which typically indicates that another process still holds an open handle to it or to one "
                         "of the entries it stored"
        : error == ENOTEMPTY || error == EEXIST
            ? "because entries kept appearing in it while it was deleted (another process is still writing there)"
        : error == EACCES || error == EPERM ? "because removing it is not permitted"
                                            : "for the reason the system reported";
    warn(fmt::format("Unable to remove the {} directory after 5 attempts ({}). The directory is left in place, {}.",
                     directory.string(), sys::errno_message(error), cause));
}

asio::awaitable<void> delete_tree(fs::path directory, const delete_options& options, const detail::delete_hooks& hooks,
                                  dev_t device) {
    listing children = list_children(directory);
    refuse_other_devices(directory, children.directories, device);
    if (!children.files.empty() && options.use_io_uring) {
        const auto& files = children.files;
        std::function<void(std::size_t)> work = [&files, &directory](std::size_t) {
            if (!unlink_with_io_uring(directory, files)) {
                unlink_files(open_parent(directory), files);
            }
        };
        co_await detail::async_parallel_for(1, std::move(work));
    } else if (!children.files.empty()) {
        // Step 4: unlink the non-directories in parallel; the first failure propagates.
        const std::size_t tasks = std::min<std::size_t>(4, (children.files.size() + 63) / 64);
        const auto& files = children.files;
        auto parent = std::make_shared<const sys::unique_fd>(open_parent(directory));
        std::function<void(std::size_t)> work = [&files, tasks, parent](std::size_t task) {
            unlink_files(*parent, files, task, tasks);
        };
        co_await detail::async_parallel_for(tasks, std::move(work));
    }
    if (children.directories.size() == 1) {  // step 5: one child, whose own children may run side by side
        co_await delete_tree(std::move(children.directories.front()), options, hooks, device);
    } else if (!children.directories.empty()) {
        const std::vector<fs::path> unremoved = co_await remove_subtrees(children.directories, options, hooks, device);
        for (const auto& left : unremoved) {
            co_await remove_with_retries(left, options);
        }
    }
    const bool removed = remove_once(directory, hooks);
    if (!removed) {
        co_await remove_with_retries(directory, options);
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
    co_await delete_tree(std::move(directory), options, hooks, st.st_dev);
}

}  // namespace axds
