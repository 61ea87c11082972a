#pragma once
// The marker a move leaves in its source while it removes the source's files. Private to src/.
//
// `source/.axds-move-in-progress` is written (and flushed, with the source directory) before the first source file of
// a move is removed, and removed once the removal is over. A rerun after a kill -9 during the removal, or after a
// removal that kept files (they changed after their copy, or a writer still had them open), knows from it that the
// files only the destination holds are the ones this move took out of the source.
//
// The format (ours: the Python library has no such marker): a first line naming the destination by device and inode,
// the destination's path on the second, then possibly "checksum-removed" (record_checksum_removed). Lines are
// appended and flushed; a line cut short by a crash is ignored.

#include <filesystem>
#include <string>
#include <string_view>

namespace axds::detail {

/// The marker's file name in the source.
inline constexpr std::string_view move_marker_name = ".axds-move-in-progress";

/// What a source's marker says about a move into a given destination.
struct move_marker {
    bool into_destination = false;  ///< the marker exists and names this destination
    bool checksum_removed = false;  ///< a run that copied files again removed the destination's ax_checksum.txt
    /// The marker exists and is axds's, but of a move into another directory (or into one that was replaced since):
    /// that destination's path, as the marker names it.
    std::string other_destination;
    bool other_move = false;
};

/// Reads `source`'s marker for a move into `destination` (at most 64 MiB of it are read). A missing or unreadable
/// marker, or a file of its name that is not a marker, gives all fields false.
[[nodiscard]] move_marker read_move_marker(const std::filesystem::path& source,
                                           const std::filesystem::path& destination);

/// Makes sure `source` carries the marker of a move into `destination`, flushed to disk with the source directory
/// (a marker of this move already there is kept as it is, with what it notes). Throws when it cannot be written:
/// the source must then not be removed.
void write_move_marker(const std::filesystem::path& source, const std::filesystem::path& destination);

/// Appends the note that the destination's ax_checksum.txt is being removed by a run that copies files again (it is
/// computed again once they are copied; a run after a kill computes it then). Flushed; throws when it cannot be.
void record_checksum_removed(const std::filesystem::path& source);

}  // namespace axds::detail
