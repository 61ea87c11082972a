#pragma once

#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

namespace axds {

// Filesystem discovery (spec §2). These are plain blocking functions over readdir/stat: the async pipelines
// (checksum, transfer) call them from the CPU pool, never on an executor thread.
// Every listing failure propagates as an os_error subclass (file_not_found_error for a missing root,
// not_a_directory_error for a file root, permission_error for an unreadable directory): nothing is skipped silently.

/// Every entry below `directory` (files, directories, symlinks, anything), root excluded, in unspecified order.
/// A root that is a symlink to a directory is followed; symlinks below the root are reported but never entered.
/// @throws os_error family when the root or any subdirectory cannot be listed.
[[nodiscard]] std::vector<std::filesystem::path> walk_directory(const std::filesystem::path& directory);

/// The entries below `directory` that resolve to a regular file (regular files and symlinks whose final target is
/// one), in unspecified order. Dangling links, link loops and links through files count as "not a file".
/// @throws os_error family as walk_directory, or when an entry's kind cannot be determined for another reason.
[[nodiscard]] std::vector<std::filesystem::path> walk_files(const std::filesystem::path& directory);

/// Files anywhere under `directory` named exactly `marker_name` (case-sensitive), sorted component-wise as Python
/// sorts Path objects. A directory carrying the marker name is ignored.
[[nodiscard]] std::vector<std::filesystem::path> discover_marker_files(const std::filesystem::path& directory,
                                                                       std::string_view marker_name);

/// For every marker file, its ancestor `levels_up` levels above its parent (0 = the directory holding it),
/// deduplicated and sorted component-wise.
/// @throws value_error if levels_up < 0 (anchor: "'levels_up' argument must be greater than or equal to 0") or if a
/// marker has fewer ancestors than requested (anchor: "ancestor").
[[nodiscard]] std::vector<std::filesystem::path> discover_marker_roots(const std::filesystem::path& directory,
                                                                       std::string_view marker_name, int levels_up = 0);

/// For each path, the deepest ancestor-or-self whose name is the deepest component no other list position shares
/// (spec §2.6); results deduplicated in order of first appearance. Empty input gives an empty result.
/// @throws value_error if a path shares all of its components with the others (anchor: "shares all").
[[nodiscard]] std::vector<std::filesystem::path> resolve_unique_roots(std::span<const std::filesystem::path> paths);

/// Python's Path normalisation: drops empty and "." components ("a//./b/" → "a/b"; "" and "./" → ".").
[[nodiscard]] std::filesystem::path python_path(const std::filesystem::path& path);

/// Python's Path.parent on a python_path: "/a" → "/", "a" → ".", "/" → "/", "." → ".".
[[nodiscard]] std::filesystem::path python_parent(const std::filesystem::path& path);

}  // namespace axds
