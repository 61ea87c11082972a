#include <axds/fs/checksum.hpp>

#include <axds/core/workers.hpp>
#include <axds/error.hpp>
#include <axds/fs/walk.hpp>

#include "detail/parallel.hpp"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <memory>
#include <mutex>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace axds {

namespace {

constexpr std::size_t chunk_size = std::size_t{8} << 20;

struct file_entry {
    std::string relative;  ///< UTF-8 bytes, '/'-separated
    fs::path path;
    std::array<unsigned char, 16> digest{};
    std::uint64_t size = 0;           ///< bytes actually hashed
    std::uint64_t expected_size = 0;  ///< size at discovery (progress)
};

/// Canonical (big-endian) XXH3-128 of `relative ‖ content`, streamed in chunks.
void hash_file(file_entry& file, std::vector<unsigned char>& buffer) {
    XXH3_state_t* state = XXH3_createState();
    if (state == nullptr) {
        throw std::bad_alloc();
    }
    const std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> owner(state, &XXH3_freeState);
    XXH3_128bits_reset(state);
    XXH3_128bits_update(state, file.relative.data(), file.relative.size());
    const int fd = ::open(file.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const int error = errno;
        throw_errno(error, fmt::format("Unable to read '{}' for the directory checksum: {}.", file.path.string(),
                                       std::system_category().message(error)));
    }
    std::uint64_t total = 0;
    for (;;) {
        const ssize_t n = ::read(fd, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            const int error = errno;
            ::close(fd);
            throw_errno(error, fmt::format("Unable to read '{}' for the directory checksum: {}.", file.path.string(),
                                           std::system_category().message(error)));
        }
        if (n == 0) {
            break;
        }
        XXH3_128bits_update(state, buffer.data(), static_cast<std::size_t>(n));
        total += static_cast<std::uint64_t>(n);
    }
    ::close(fd);
    XXH128_canonical_t canonical;
    XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(state));
    std::copy(std::begin(canonical.digest), std::end(canonical.digest), file.digest.begin());
    file.size = total;
}

std::string hex(const XXH128_canonical_t& canonical) {
    std::string out;
    out.reserve(32);
    for (const unsigned char byte : canonical.digest) {
        out += fmt::format("{:02x}", byte);
    }
    return out;
}

}  // namespace

asio::awaitable<std::string> async_calculate_directory_checksum(fs::path directory, checksum_options options) {
    const std::set<std::string> excluded =
        options.excluded_files ? *options.excluded_files : std::set<std::string>{checksum_file_name};
    std::vector<file_entry> files;
    for (auto& path : walk_files(directory)) {  // §9.1 step 3: root and permission errors come from here
        if (excluded.count(path.filename().string()) != 0) {
            continue;
        }
        file_entry entry;
        entry.relative = path.lexically_relative(directory).generic_string();
        entry.path = std::move(path);
        std::error_code ec;
        entry.expected_size = fs::file_size(entry.path, ec);  // for progress only; 0 if unknown
        files.push_back(std::move(entry));
    }
    if (files.empty()) {
        throw value_error(fmt::format(
            "Unable to calculate the checksum for the {} directory. The directory must hold at least one file the "
            "checksum can cover, but it holds none.",
            directory.string()));
    }
    if (options.max_workers < 0) {
        throw value_error("max_workers must be greater than 0");
    }
    const auto workers = static_cast<std::size_t>(resolve_worker_count(options.max_workers));
    std::sort(files.begin(), files.end(),
              [](const file_entry& a, const file_entry& b) { return a.relative < b.relative; });  // bytewise

    // Batches of files go to the CPU pool; within a batch, workers take files from a shared cursor (large and small
    // files balance themselves). Progress is reported between batches, on the caller's executor.
    const std::size_t tasks = std::min(workers, files.size());
    const std::size_t batch = std::max<std::size_t>(64, tasks * 16);
    checksum_progress progress{.files_total = files.size()};
    for (const auto& file : files) {
        progress.bytes_total += file.expected_size;
    }
    for (std::size_t first = 0; first < files.size(); first += batch) {
        const std::size_t last = std::min(files.size(), first + batch);
        auto next = std::make_shared<std::atomic<std::size_t>>(first);
        std::function<void(std::size_t)> work = [&files, next, last](std::size_t) {
            std::vector<unsigned char> buffer(chunk_size);
            for (std::size_t i = next->fetch_add(1); i < last; i = next->fetch_add(1)) {
                hash_file(files[i], buffer);
            }
        };
        co_await detail::async_parallel_for(std::min(tasks, last - first), std::move(work));
        for (std::size_t i = first; i < last; ++i) {
            progress.bytes_done += files[i].size;
        }
        progress.files_done = last;
        progress.bytes_total = std::max(progress.bytes_total, progress.bytes_done);
        if (options.progress) {
            options.progress(progress);
        }
    }

    XXH3_state_t* state = XXH3_createState();
    if (state == nullptr) {
        throw std::bad_alloc();
    }
    const std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> owner(state, &XXH3_freeState);
    XXH3_128bits_reset(state);
    for (const auto& file : files) {
        XXH3_128bits_update(state, file.relative.data(), file.relative.size());
        XXH3_128bits_update(state, file.digest.data(), file.digest.size());
    }
    XXH128_canonical_t canonical;
    XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(state));
    std::string digest = hex(canonical);
    if (options.save_checksum) {
        const fs::path target = directory / checksum_file_name;
        const int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || ::write(fd, digest.data(), digest.size()) != static_cast<ssize_t>(digest.size())) {
            const int error = errno;
            if (fd >= 0) {
                ::close(fd);
            }
            throw_errno(error, fmt::format("Unable to save the checksum to '{}': {}.", target.string(),
                                           std::system_category().message(error)));
        }
        ::close(fd);
    }
    co_return digest;
}

}  // namespace axds
