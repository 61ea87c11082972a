#include <axds/fs/delete.hpp>

#include <axds/core/console.hpp>
#include <axds/error.hpp>

#include "detail/parallel.hpp"
#include "detail/test_hooks.hpp"

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
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
                                       std::system_category().message(error)));
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
                                               std::system_category().message(error)));
            }
        }
        (is_directory ? out.directories : out.files).push_back(std::move(child));
    }
    ::closedir(dir);
    return out;
}

asio::awaitable<void> delete_tree(fs::path directory) {
    listing children = list_children(directory);
    if (!children.files.empty()) {
        // Step 4: unlink the non-directories in parallel; the first failure propagates.
        const std::size_t tasks = std::min<std::size_t>(4, (children.files.size() + 63) / 64);
        const auto& files = children.files;
        std::function<void(std::size_t)> work = [&files, tasks](std::size_t task) {
            for (std::size_t i = task; i < files.size(); i += tasks) {
                if (::unlink(files[i].c_str()) != 0 && errno != ENOENT) {
                    const int error = errno;
                    throw_errno(error, fmt::format("Unable to delete {}: {}.", files[i].string(),
                                                   std::system_category().message(error)));
                }
            }
        };
        co_await detail::async_parallel_for(tasks, std::move(work));
    }
    for (auto& child : children.directories) {  // step 5: sequential recursion
        co_await delete_tree(std::move(child));
    }
    if (detail::test_hooks::before_rmdir) {
        detail::test_hooks::before_rmdir(directory);
    }
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (int attempt = 1; attempt <= rmdir_attempts; ++attempt) {
        if (::rmdir(directory.c_str()) == 0 || errno == ENOENT) {
            co_return;
        }
        timer.expires_after(detail::test_hooks::rmdir_retry_delay);
        co_await timer.async_wait(asio::use_awaitable);
    }
    warn(fmt::format(
        "Unable to remove the {} directory after 5 attempts. The directory is left in place, which typically "
        "indicates that another process still holds an open handle to it or to one of the entries it stored.",
        directory.string()));
}

}  // namespace

asio::awaitable<void> async_delete_directory(fs::path directory) {
    struct stat st {};

    if (::lstat(directory.c_str(), &st) != 0) {
        if (errno == ENOENT) {
            co_return;  // step 2: nothing to do
        }
        const int error = errno;
        throw_errno(error,
                    fmt::format("Unable to delete {}: {}.", directory.string(), std::system_category().message(error)));
    }
    if (S_ISLNK(st.st_mode)) {  // step 1: remove the link, never its target
        if (::unlink(directory.c_str()) != 0 && errno != ENOENT) {
            const int error = errno;
            throw_errno(error, fmt::format("Unable to delete the symbolic link {}: {}.", directory.string(),
                                           std::system_category().message(error)));
        }
        co_return;
    }
    if (!S_ISDIR(st.st_mode)) {
        throw_errno(ENOTDIR, fmt::format("Unable to delete {}: it is not a directory.", directory.string()));
    }
    co_await delete_tree(std::move(directory));
}

}  // namespace axds
