#include "sys/atomic_file.hpp"

#include "sys/error.hpp"

#include <random>

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <unistd.h>

namespace axds::sys {

namespace fs = std::filesystem;

namespace {

std::uint64_t random_bits() {
    // One seeded generator per thread: constructing std::random_device per file cost more than a small write.
    thread_local std::mt19937_64 entropy{std::random_device{}() ^
                                         (std::uint64_t{static_cast<std::uint32_t>(::getpid())} << 32U)};
    return entropy();
}

fs::path directory_of(const fs::path& destination) {
    return destination.has_parent_path() ? destination.parent_path() : fs::path(".");
}

}  // namespace

atomic_file::~atomic_file() {
    discard();
}

void atomic_file::discard() noexcept {
    fd_.reset();
    if (pending_) {
        (void)::unlink(temp_.c_str());
        pending_ = false;
    }
}

replace_error atomic_file::create(const fs::path& destination, const atomic_file_options& options) {
    discard();
    destination_ = destination;
    const fs::path directory = directory_of(destination);
    const std::string file_name = destination.filename().string();
    for (int attempt = 0; attempt < 100; ++attempt) {
        fs::path candidate = directory / options.name(file_name, random_bits());
        fd_.reset(::open(candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, options.mode));
        if (fd_) {
            temp_ = std::move(candidate);
            pending_ = true;
            return {};
        }
        const int error = errno;
        if (error == ENOENT && attempt == 0 && options.create_parents && destination.has_parent_path()) {
            // Parent directories only when missing: one failed open here rather than a stat on every write.
            std::error_code ec;
            fs::create_directories(directory, ec);
            if (ec) {
                return {replace_step::create_directory, ec};
            }
            continue;
        }
        if (error != EEXIST) {
            return {replace_step::create, errno_code(error)};
        }
    }
    return {replace_step::create, errno_code(EEXIST)};
}

replace_error atomic_file::commit(bool durable, bool sync_directory) {
    const auto fail = [this](replace_step step, std::error_code error) {
        discard();
        return replace_error{step, error};
    };
    if (durable && ::fsync(fd_.get()) != 0) {
        return fail(replace_step::flush, last_error());
    }
    if (const std::error_code error = fd_.close_checked()) {
        return fail(replace_step::close, error);
    }
    if (::rename(temp_.c_str(), destination_.c_str()) != 0) {
        return fail(replace_step::rename, last_error());
    }
    pending_ = false;
    if (durable && sync_directory) {
        const unique_fd directory(::open(directory_of(destination_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!directory || (::fsync(directory.get()) != 0 && errno != EINVAL)) {  // EINVAL: cannot sync directories
            return {replace_step::sync_directory, last_error()};
        }
    }
    return {};
}

bool directory_needs_sync(const fs::path& destination) {
    struct statfs info {};

    const fs::path directory = directory_of(destination);
    if (::statfs(directory.c_str(), &info) != 0) {
        return true;
    }
    return info.f_type != TMPFS_MAGIC && info.f_type != RAMFS_MAGIC;
}

}  // namespace axds::sys
