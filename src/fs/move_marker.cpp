#include "fs/move_marker.hpp"

#include <axds/error.hpp>

#include "fs/path_guard.hpp"
#include "sys/error.hpp"
#include "sys/io.hpp"
#include "sys/unique_fd.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace axds::detail {

namespace {

constexpr std::string_view header_prefix = "axds move";
constexpr std::string_view checksum_removed_line = "checksum-removed";

/// The marker's first line for a move into `destination`: the destination's device and inode.
std::string header_for(const fs::path& destination) {
    const auto id = identity_of(destination);
    return id ? fmt::format("{} into device {} inode {}", header_prefix, id->device, id->inode)
              : std::string(header_prefix);
}

/// Whether `line` is a marker's first line: "axds move into device D inode I" (D and I decimal), or "axds move" (a
/// destination that could not be stat'ed).
bool is_header(std::string_view line) {
    if (line == header_prefix) {
        return true;
    }
    constexpr std::string_view device = " into device ";
    constexpr std::string_view inode = " inode ";
    const auto digits = [](std::string_view text) {
        return !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
    };
    if (!line.starts_with(header_prefix) || line.substr(header_prefix.size(), device.size()) != device) {
        return false;
    }
    const std::string_view numbers = line.substr(header_prefix.size() + device.size());
    const std::size_t middle = numbers.find(inode);
    return middle != std::string_view::npos && digits(numbers.substr(0, middle)) &&
           digits(numbers.substr(middle + inode.size()));
}

/// Appends `lines` to `source`'s marker and flushes it: false (errno set) when that fails. A marker that is a hard
/// link to another file is never written through.
bool append_to_marker(const fs::path& source, std::string_view lines) {
    const sys::unique_fd fd(::open((source / move_marker_name).c_str(), O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC));

    struct stat st {};

    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
        errno = fd ? EMLINK : errno;
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

move_marker read_move_marker(const fs::path& source, const fs::path& destination) {
    move_marker marker;
    const std::string text = marker_text(source);
    std::string_view rest = text;
    const std::size_t first = rest.find('\n');
    if (first == std::string_view::npos || !is_header(rest.substr(0, first))) {
        return marker;  // no marker, or a file of its name that is not one
    }
    if (rest.substr(0, first) != header_for(destination)) {
        marker.other_move = true;
        const std::string_view path = rest.substr(first + 1);
        marker.other_destination = std::string(path.substr(0, path.find('\n')));
        return marker;
    }
    marker.into_destination = true;
    rest.remove_prefix(first + 1);
    for (std::size_t end = rest.find('\n'); end != std::string_view::npos; end = rest.find('\n')) {
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
        return;  // written (and flushed) by the interrupted run this one finishes, with what it notes
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

void record_checksum_removed(const fs::path& source) {
    if (!append_to_marker(source, fmt::format("{}\n", checksum_removed_line))) {
        const int error = errno;
        throw_errno(error, fmt::format("Unable to note in {} that the destination's checksum is computed again: {}. "
                                       "Nothing was copied and nothing was removed.",
                                       (source / move_marker_name).string(), sys::errno_message(error)));
    }
}

}  // namespace axds::detail
