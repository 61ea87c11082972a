#pragma once
// sys::atomic_file: the one way src/ replaces a file. The new content goes to a temporary file in the destination's
// directory; commit() fsyncs it, closes it (checked), renames it over the destination and fsyncs the directory, so a
// crash leaves either the old file or the whole new one, never a mix. Until commit() succeeds the temporary file is
// removed when the object goes (any failure, an exception, a stop), and the destination is never touched. Used by
// the YAML writer (configs, the tracker file) and npz_writer. Errors come back as std::error_code with the step that
// failed; the caller words the exception. Private to src/.

#include "sys/unique_fd.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include <sys/types.h>

namespace axds::sys {

/// The temporary file's name (no directory) for destination file name `file_name` and 64 random bits. Each user
/// keeps its own pattern: cleanup code recognises leftovers by it (".NAME.XXXXXXXX.partial" for archives).
using temp_namer = std::string (*)(std::string_view file_name, std::uint64_t random);

struct atomic_file_options {
    temp_namer name = nullptr;    ///< required
    mode_t mode = 0600;           ///< for open(2) (the umask applies)
    bool create_parents = false;  ///< create missing parent directories of the destination
};

/// Where a replacement stopped (`write`: the caller's own writing through fd()).
enum class replace_step { create_directory, create, write, flush, close, rename, sync_directory };

struct replace_error {
    replace_step step = replace_step::create;
    std::error_code error;

    explicit operator bool() const noexcept { return static_cast<bool>(error); }
};

class atomic_file {
public:
    atomic_file() noexcept = default;
    /// Closes the temporary file and removes it unless commit() succeeded. Never throws.
    ~atomic_file();
    atomic_file(const atomic_file&) = delete;
    atomic_file& operator=(const atomic_file&) = delete;

    /// Creates the temporary file for `destination` (O_EXCL; a name taken already is retried with new random bits,
    /// 100 times, then EEXIST). On failure nothing is left behind.
    [[nodiscard]] replace_error create(const std::filesystem::path& destination, const atomic_file_options& options);

    /// The temporary file's descriptor, to write the content through.
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }

    /// The temporary file's path (kept after a failure, for messages).
    [[nodiscard]] const std::filesystem::path& temp_path() const noexcept { return temp_; }

    /// fsync (when `durable`), close, rename over the destination, fsync of the directory (when `durable` and
    /// `sync_directory`: pass directory_needs_sync()'s answer to skip it where it does nothing). After a failure the
    /// temporary file is removed and the destination is what it was (unless the directory fsync failed: then the
    /// rename happened but may not survive a crash).
    [[nodiscard]] replace_error commit(bool durable, bool sync_directory = true);

private:
    void discard() noexcept;

    std::filesystem::path destination_;
    std::filesystem::path temp_;
    unique_fd fd_;
    bool pending_ = false;  ///< the temporary file exists and is ours to remove
};

/// False when the directory `destination` would be renamed into lives on a memory file system (tmpfs, ramfs):
/// nothing there survives a power loss, so its fsync is a no-op worth skipping. True for any other file system and
/// when the answer is unknown (a failed statfs). One statfs: callers that replace the same file often ask once.
[[nodiscard]] bool directory_needs_sync(const std::filesystem::path& destination);

}  // namespace axds::sys
