#pragma once
// Which files other processes of this machine can still write: a move must not remove a source file that a running
// program (a recorder, a logger) holds open for writing or has mapped for writing, or what it writes next is lost
// with the unlinked inode. Read from /proc. Private to src/.

#include <map>
#include <set>
#include <string>
#include <utility>

#include <sys/types.h>

namespace axds::detail {

/// A file by device and inode number.
using file_key = std::pair<dev_t, ino_t>;

/// The files among `files` that another process (not this one) has open for writing, or mapped shared and writable
/// (a write through such a mapping changes neither the size nor, once the page is dirty, the times), with who holds
/// each: "process 1234 (recorder) has it open for writing" / "... has it mapped for writing". Found by one pass over
/// /proc/PID/fd, fdinfo and maps of every process this one may inspect (its own user's, or all as root); a process
/// that opens a file after the pass, or runs on another machine (network filesystems), is not seen.
[[nodiscard]] std::map<file_key, std::string> held_for_writing(const std::set<file_key>& files);

}  // namespace axds::detail
