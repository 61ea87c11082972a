// held_for_writing: who else can still write a file, from /proc (fs/open_files.hpp).

#include "fs/open_files.hpp"

#include "sys/unique_fd.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string_view>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace axds::detail {

namespace {

/// The content of `name` below the directory `dir` (a /proc file: its size is unknown until read), empty when it
/// cannot be read.
std::string read_all(int dir, const char* name) {
    const sys::unique_fd fd(::openat(dir, name, O_RDONLY | O_CLOEXEC));
    std::string text;
    if (!fd) {
        return text;
    }
    std::array<char, 16384> chunk{};
    for (;;) {
        const ssize_t n = ::read(fd.get(), chunk.data(), chunk.size());
        if (n <= 0) {
            return text;
        }
        text.append(chunk.data(), static_cast<std::size_t>(n));
    }
}

/// The process's command name (/proc/PID/comm), without its newline.
std::string command_of(int process) {
    std::string name = read_all(process, "comm");
    while (!name.empty() && (name.back() == '\n' || name.back() == '\0')) {
        name.pop_back();
    }
    return name;
}

/// Whether the process's descriptor `fd` (a name in /proc/PID/fd) was opened for writing (its fdinfo flags).
bool opened_for_writing(int process, std::string_view fd) {
    const std::string info = read_all(process, fmt::format("fdinfo/{}", fd).c_str());
    const std::size_t at = info.find("flags:");
    if (at == std::string::npos) {
        return true;  // cannot be told: held, to be safe
    }
    const unsigned long flags = std::strtoul(info.c_str() + at + 6, nullptr, 8);
    return (flags & O_ACCMODE) != O_RDONLY;
}

/// Adds to `held` the files of `files` the process has open for writing.
void scan_descriptors(int process, const std::set<file_key>& files, const std::function<std::string()>& who,
                      std::map<file_key, std::string>& held) {
    const int listing = ::openat(process, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (listing < 0) {
        return;  // another user's process (EACCES), or gone
    }
    DIR* dir = ::fdopendir(listing);
    if (dir == nullptr) {
        ::close(listing);
        return;
    }
    while (const dirent* entry = ::readdir(dir)) {
        if (entry->d_name[0] == '.') {
            continue;
        }

        struct stat st {};

        // Follows the descriptor's magic link: the file it has open, wherever its name is now.
        if (::fstatat(listing, entry->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        const file_key key{st.st_dev, st.st_ino};
        if (files.count(key) != 0 && held.count(key) == 0 && opened_for_writing(process, entry->d_name)) {
            held.emplace(key, fmt::format("{} has it open for writing", who()));
        }
    }
    ::closedir(dir);
}

/// Whether the process's mapping at `range` ("start-end", as maps writes it) may be made writable: its VmFlags in
/// /proc/PID/smaps hold "mw". True when that cannot be told.
bool may_write(int process, std::string_view range) {
    const std::string smaps = read_all(process, "smaps");
    const std::size_t at = smaps.find(std::string(range) + ' ');
    if (at == std::string::npos) {
        return true;
    }
    const std::size_t flags = smaps.find("VmFlags:", at);
    if (flags == std::string::npos) {
        return true;
    }
    const std::size_t end = std::min(smaps.find('\n', flags), smaps.size());
    const std::string_view line(smaps.data() + flags, end - flags);
    return line.find(" mw") != std::string_view::npos;
}

/// Adds to `held` the files of `files` the process has mapped shared and writable, or that it may make writable. A
/// mapping names its file by the device of its filesystem's superblock, which is not always the st_dev of stat (btrfs
/// subvolumes): inode numbers decide (`by_inode`), so a file elsewhere with the same inode number can only make a file
/// stay, never go.
void scan_mappings(int process, const std::map<ino_t, std::vector<file_key>>& by_inode,
                   const std::function<std::string()>& who, std::map<file_key, std::string>& held) {
    const std::string maps = read_all(process, "maps");
    std::size_t begin = 0;
    while (begin < maps.size()) {
        std::size_t end = maps.find('\n', begin);
        if (end == std::string::npos) {
            end = maps.size();
        }
        // address perms offset major:minor inode [path]
        const std::string line = maps.substr(begin, end - begin);
        begin = end + 1;
        std::array<char, 8> perms{};
        unsigned long inode = 0;
        if (std::sscanf(line.c_str(), "%*s %4s %*s %*s %lu", perms.data(), &inode) != 2 || perms[3] != 's') {
            continue;
        }
        const auto it = by_inode.find(static_cast<ino_t>(inode));
        // A shared mapping that is read-only for now may become writable (mprotect) when its file was opened for
        // writing: the kernel marks such a mapping "mw" (may write) in smaps.
        if (it == by_inode.end() || (perms[1] != 'w' && !may_write(process, line.substr(0, line.find(' '))))) {
            continue;
        }
        for (const file_key& key : it->second) {
            held.emplace(key, fmt::format("{} has it mapped for writing", who()));
        }
    }
}

}  // namespace

std::map<file_key, std::string> held_for_writing(const std::set<file_key>& files) {
    std::map<file_key, std::string> held;
    if (files.empty()) {
        return held;
    }
    std::map<ino_t, std::vector<file_key>> by_inode;
    for (const file_key& key : files) {
        by_inode[key.second].push_back(key);
    }
    DIR* proc = ::opendir("/proc");
    if (proc == nullptr) {
        return held;
    }
    const std::string self = std::to_string(::getpid());
    while (const dirent* entry = ::readdir(proc)) {
        const std::string_view name = entry->d_name;
        if (name.empty() || name.find_first_not_of("0123456789") != std::string_view::npos || name == self) {
            continue;
        }
        const sys::unique_fd process(::openat(::dirfd(proc), entry->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!process) {
            continue;  // ended meanwhile
        }
        const std::function<std::string()> who = [&name, &process] {  // only for a file it holds
            return fmt::format("process {} ({})", name, command_of(process.get()));
        };
        scan_descriptors(process.get(), files, who, held);
        scan_mappings(process.get(), by_inode, who, held);
    }
    ::closedir(proc);
    return held;
}

}  // namespace axds::detail
