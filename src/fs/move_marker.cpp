#include "fs/move_marker.hpp"

#include <axds/error.hpp>

#include "fs/path_guard.hpp"
#include "sys/error.hpp"
#include "sys/io.hpp"
#include "sys/unique_fd.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <charconv>

#include <fcntl.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace axds::detail {

namespace {

/// The marker's first line for a move into `destination`: the destination's device and inode.
std::string header_for(const fs::path& destination) {
    const auto id = identity_of(destination);
    return id ? fmt::format("axds move into device {} inode {}", id->device, id->inode) : std::string("axds move");
}

constexpr std::int64_t nanoseconds_of(const timespec& t) {
    return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

/// Parses "copy DEV INO SIZE MTIME_NS CTIME_NS" (without its newline); false for anything else.
bool parse_copy_line(std::string_view line, recorded_copy& copy) {
    constexpr std::string_view prefix = "copy ";
    if (line.substr(0, prefix.size()) != prefix) {
        return false;
    }
    const char* p = line.data() + prefix.size();
    const char* const end = line.data() + line.size();
    const auto field = [&](auto& value) {
        const auto [next, error] = std::from_chars(p, end, value);
        if (error != std::errc() || (next != end && *next != ' ')) {
            return false;
        }
        p = next == end ? end : next + 1;
        return true;
    };
    return field(copy.device) && field(copy.inode) && field(copy.size) && field(copy.mtime_ns) &&
           field(copy.ctime_ns) && p == end;
}

constexpr std::string_view checksum_removed_line = "checksum-removed";

/// Appends `lines` to `source`'s marker and flushes it: false when that fails.
bool append_to_marker(const fs::path& source, std::string_view lines) {
    const sys::unique_fd fd(::open((source / move_marker_name).c_str(), O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC));

    struct stat st {};

    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
        errno = fd ? EMLINK : errno;  // a hard link to another file is never written through
        return false;
    }
    return ::write(fd.get(), lines.data(), lines.size()) == static_cast<ssize_t>(lines.size()) &&
           ::fsync(fd.get()) == 0;
}

/// The whole marker (up to 64 MiB), or "" when it cannot be read.
std::string marker_text(const fs::path& source) {
    constexpr std::size_t limit = std::size_t{64} << 20;
    const sys::unique_fd fd(::open((source / move_marker_name).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));

    struct stat st {};

    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        return {};
    }
    std::string text(std::min(static_cast<std::size_t>(st.st_size), limit), '\0');
    const sys::io_result read = sys::pread_full(fd.get(), text.data(), text.size(), 0);
    text.resize(read.error ? 0 : read.bytes);
    return text;
}

}  // namespace

recorded_copy recorded_copy::of(const struct stat& st) {
    return {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
            static_cast<std::int64_t>(st.st_size), nanoseconds_of(st.st_mtim), nanoseconds_of(st.st_ctim)};
}

move_marker read_move_marker(const fs::path& source, const fs::path& destination) {
    move_marker marker;
    const std::string text = marker_text(source);
    std::string_view rest = text;
    const std::size_t first = rest.find('\n');
    if (first == std::string_view::npos || rest.substr(0, first) != header_for(destination)) {
        return marker;
    }
    marker.into_destination = true;
    rest.remove_prefix(first + 1);
    for (std::size_t end = rest.find('\n'); end != std::string_view::npos; end = rest.find('\n')) {
        recorded_copy copy;
        if (parse_copy_line(rest.substr(0, end), copy)) {
            marker.copies.insert(copy);
        }
        marker.checksum_removed = marker.checksum_removed || rest.substr(0, end) == checksum_removed_line;
        rest.remove_prefix(end + 1);
    }
    return marker;  // a last line without its newline was cut short by a crash: ignored
}

void write_move_marker(const fs::path& source, const fs::path& destination) {
    const fs::path marker = source / move_marker_name;

    struct stat st {};

    if (::lstat(marker.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
        read_move_marker(source, destination).into_destination) {
        return;  // written (and flushed) by the interrupted run this one finishes, with the copies it recorded
    }
    const std::string text = header_for(destination) + "\n" + destination.string() + "\n";
    const sys::unique_fd fd(open_for_replacement(marker, 0600, O_WRONLY));
    bool written = fd && !sys::pwrite_full(fd.get(), text.data(), text.size(), 0).error && ::fsync(fd.get()) == 0;
    if (written) {
        const sys::unique_fd directory(::open(source.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        written = directory && ::fsync(directory.get()) == 0;
    }
    if (!written) {
        const int error = errno;
        throw_errno(error, fmt::format("Unable to write {}, which marks the source as being moved, so the source was "
                                       "not removed: {}.",
                                       marker.string(), sys::errno_message(error)));
    }
}

void record_move_copies(const fs::path& source, const fs::path& destination, const std::vector<std::string>& copies) {
    std::string lines;
    for (const auto& relative : copies) {
        struct stat st {};

        if (::lstat((destination / relative).c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
            const recorded_copy copy = recorded_copy::of(st);
            lines +=
                fmt::format("copy {} {} {} {} {}\n", copy.device, copy.inode, copy.size, copy.mtime_ns, copy.ctime_ns);
        }
    }
    if (!lines.empty()) {
        (void)append_to_marker(source, lines);
    }
}

void record_checksum_removed(const fs::path& source) {
    if (!append_to_marker(source, fmt::format("{}\n", checksum_removed_line))) {
        const int error = errno;
        throw_errno(error, fmt::format("Unable to note in {} that the destination's checksum is computed again: {}. "
                                       "Nothing was copied and nothing was removed.",
                                       (source / move_marker_name).string(), sys::errno_message(error)));
    }
}

}  // namespace axds::detail
