#pragma once
// A small tmpfs mounted for one test (root only): the way to get a really full disk.

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>

#include <sys/mount.h>

namespace axds::test {

/// A tmpfs of `size` (e.g. "512k") mounted on `mount_point` (created if missing) for the guard's lifetime; lazily
/// unmounted by the destructor whatever the test did.
class tmpfs_mount {
public:
    tmpfs_mount(const std::filesystem::path& mount_point, const std::string& size) : mount_point_(mount_point) {
        std::error_code ec;
        std::filesystem::create_directories(mount_point, ec);
        const std::string data = "size=" + size;
        if (::mount("tmpfs", mount_point.c_str(), "tmpfs", 0, data.c_str()) == 0) {
            mounted_ = true;
        } else {
            error_ = errno;
        }
    }

    tmpfs_mount(const tmpfs_mount&) = delete;
    tmpfs_mount& operator=(const tmpfs_mount&) = delete;

    ~tmpfs_mount() {
        if (mounted_ && ::umount2(mount_point_.c_str(), MNT_DETACH) != 0) {
            fmt::print(stderr, "could not unmount the test tmpfs at {}: {}\n", mount_point_.string(),
                       std::strerror(errno));
        }
    }

    /// Grows (or shrinks) the mounted filesystem: "the user freed some space".
    bool resize(const std::string& size) {
        const std::string data = "size=" + size;
        return ::mount("tmpfs", mount_point_.c_str(), "tmpfs", MS_REMOUNT, data.c_str()) == 0;
    }

    [[nodiscard]] bool mounted() const noexcept { return mounted_; }

    [[nodiscard]] std::string why_not() const { return std::system_category().message(error_); }

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return mount_point_; }

private:
    std::filesystem::path mount_point_;
    bool mounted_ = false;
    int error_ = 0;
};

}  // namespace axds::test
