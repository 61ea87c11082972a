#pragma once
// The marker a move leaves in its source while it removes the source's files. Private to src/.
//
// `source/.axds-move-in-progress` is written (and flushed, with the source directory) before the first source file of
// a move is removed, and removed once the removal is over. A rerun after a kill -9 during the removal knows from it
// that the files only the destination holds are the ones this move took out of the source. When the removal ends
// with files kept (they changed after their copy, or a writer still had them open), the marker also records the
// identity of each of their copies in the destination: a later run of the same move may then replace exactly those
// copies -- still what the move wrote, as nobody touched them since -- with the source's newer files.
//
// The format (ours: the Python library has no such marker): a first line naming the destination by device and inode,
// the destination's path on the second (for a human reader), then lines "copy DEV INO SIZE MTIME_NS CTIME_NS", one per
// recorded copy, and "checksum-removed" (record_checksum_removed). Lines are appended and flushed; a line cut short by
// a crash is ignored.

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <sys/stat.h>

namespace axds::detail {

/// The marker's file name in the source.
inline constexpr std::string_view move_marker_name = ".axds-move-in-progress";

/// One file as it was on disk: a later stat that gives the same values (the ctime included, which no tool can set
/// back) is the same, untouched file.
struct recorded_copy {
    std::uint64_t device = 0;
    std::uint64_t inode = 0;
    std::int64_t size = 0;
    std::int64_t mtime_ns = 0;
    std::int64_t ctime_ns = 0;

    [[nodiscard]] static recorded_copy of(const struct stat& st);
    friend auto operator<=>(const recorded_copy&, const recorded_copy&) = default;
};

/// What a source's marker says about a move into a given destination.
struct move_marker {
    bool into_destination = false;   ///< the marker exists and names this destination
    std::set<recorded_copy> copies;  ///< the recorded copies in the destination (empty when !into_destination)
    bool checksum_removed = false;   ///< a run that copied files again removed the destination's ax_checksum.txt
};

/// Reads `source`'s marker for a move into `destination` (at most 64 MiB of it are read; a missing or unreadable
/// marker, or one of a move elsewhere, gives into_destination == false).
[[nodiscard]] move_marker read_move_marker(const std::filesystem::path& source,
                                           const std::filesystem::path& destination);

/// Makes sure `source` carries the marker of a move into `destination`, flushed to disk with the source directory
/// (a marker of this move already there is kept as it is, with the copies it records). Throws when it cannot be
/// written: the source must then not be removed.
void write_move_marker(const std::filesystem::path& source, const std::filesystem::path& destination);

/// Appends to the marker the identity of the destination files `destination / relative` for each of `copies` (copies
/// the move made: of the source files it kept, or that it is about to replace or just made when finishing a move)
/// that is a regular file; flushed. Best effort: a marker that cannot be extended only means a later run cannot
/// replace those copies (it refuses, naming them).
void record_move_copies(const std::filesystem::path& source, const std::filesystem::path& destination,
                        const std::vector<std::string>& copies);

/// Appends the note that the destination's ax_checksum.txt is being removed by a run that copies files again (it is
/// computed again once they are copied; a run after a kill computes it then). Flushed; throws when it cannot be.
void record_checksum_removed(const std::filesystem::path& source);

}  // namespace axds::detail
