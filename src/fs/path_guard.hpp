#pragma once
// Path checks that stand between a typed path and a destructive operation (transfer, delete). Private to src/.
//
// Paths are compared by what they are on disk, not by how they are spelled: every directory is identified by its
// device and inode number, so `D`, `D/.`, a symlink to `D` and a bind mount of `D` are all the same directory.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/types.h>

namespace axds::detail {

/// A directory's identity on disk.
struct dir_identity {
    dev_t device = 0;
    ino_t inode = 0;

    friend bool operator==(const dir_identity&, const dir_identity&) = default;
};

/// The identity of `path` (following symlinks), or nullopt if it cannot be stat'ed.
[[nodiscard]] std::optional<dir_identity> identity_of(const std::filesystem::path& path);

/// `path` with trailing slashes and trailing "/." components removed, so that lstat() sees the last real component
/// (lstat("LINK/") follows the link; lstat("LINK") does not). "/" stays "/"; an empty path stays empty.
[[nodiscard]] std::filesystem::path without_trailing_separators(const std::filesystem::path& path);

/// The identities of `path` and of every directory above it up to "/", resolved on disk: the longest existing prefix
/// is resolved with realpath() and each of its ancestors is stat'ed (so bind mounts and symlinks count). A path that
/// does not exist yet contributes the identities of its existing ancestors.
[[nodiscard]] std::vector<dir_identity> identities_up_to_root(const std::filesystem::path& path);

/// How two directory trees relate.
enum class tree_relation { separate, same, first_inside_second, second_inside_first };

/// Where `first` (an existing directory) stands relative to `second` (which may not exist yet).
[[nodiscard]] tree_relation relate_trees(const std::filesystem::path& first, const std::filesystem::path& second);

/// Why deleting `directory` (already stripped of trailing separators, existing, not a symlink) would be unsafe: it is
/// the filesystem root, the current directory or one of its ancestors, the home directory, or the root of a mount
/// point. Empty when none applies.
[[nodiscard]] std::string protected_root_reason(const std::filesystem::path& directory);

/// Mount points strictly below `directory` (from /proc/self/mountinfo, compared with its realpath).
[[nodiscard]] std::vector<std::string> mount_points_below(const std::filesystem::path& directory);

/// Makes room for a new file at `path` once its exclusive creation (O_EXCL, linkat) failed with EEXIST: whatever
/// non-directory holds the name (a partial copy left by a killed run, or one another process is writing right now) is
/// unlinked, so two writers never share one inode. False with errno set (EISDIR for a directory, else unlink's).
[[nodiscard]] bool make_room_for(const char* path);

/// Creates `path` as a new file (O_EXCL, `mode` under the umask; `access` O_WRONLY or O_RDWR) that nobody else has
/// open: whatever non-directory holds the name (a partial copy left by a killed run, or one another process is
/// writing right now) is unlinked first, so two writers never share one inode. Returns the descriptor, or -1 with
/// errno set (EISDIR for a directory).
[[nodiscard]] int create_fresh(const char* path, unsigned mode, int access);

/// Opens `path` to write new content without ever writing through it into another file: a symlink at that path
/// (which could point anywhere) or a hard link (a `cp -al` copy shares its inodes with the original) is unlinked and
/// a new file (mode 0600 before the caller's chmod; `mode` for new files) created in its place. A plain file with one
/// link is truncated in place. `access`: O_WRONLY, or O_RDWR to read the new content back. Returns the descriptor,
/// or -1 with errno set (EISDIR for a directory). `*created` (if given) says whether the file is new (so it has
/// `mode` under the umask) or was truncated in place (it kept its permission bits).
[[nodiscard]] int open_for_replacement(const std::filesystem::path& path, unsigned mode = 0600, int access = O_WRONLY,
                                       bool* created = nullptr);

}  // namespace axds::detail
