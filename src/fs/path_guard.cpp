#include "fs/path_guard.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace axds::detail {

namespace {

/// realpath(3) of an existing path, or empty.
std::string resolved(const fs::path& path) {
    char buffer[PATH_MAX];
    return ::realpath(path.c_str(), buffer) != nullptr ? std::string(buffer) : std::string();
}

/// Mount points from /proc/self/mountinfo (field 5, with the kernel's octal escapes undone).
std::vector<std::string> mount_points() {
    std::vector<std::string> out;
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string field;
        for (int i = 0; i < 5 && fields >> field; ++i) {
        }
        std::string point;
        for (std::size_t i = 0; i < field.size(); ++i) {
            if (field[i] == '\\' && i + 3 < field.size()) {
                point += static_cast<char>(std::strtol(field.substr(i + 1, 3).c_str(), nullptr, 8));
                i += 3;
            } else {
                point += field[i];
            }
        }
        out.push_back(std::move(point));
    }
    return out;
}

}  // namespace

std::optional<dir_identity> identity_of(const fs::path& path) {
    struct stat st {};

    if (::stat(path.c_str(), &st) != 0) {
        return std::nullopt;
    }
    return dir_identity{st.st_dev, st.st_ino};
}

fs::path without_trailing_separators(const fs::path& path) {
    std::string text = path.string();
    for (;;) {
        if (text.size() > 1 && text.back() == '/') {
            text.pop_back();
        } else if (text.size() >= 2 && text.ends_with("/.")) {
            text.resize(text.size() == 2 ? 1 : text.size() - 2);  // "/." is "/"
        } else {
            break;
        }
    }
    return text;
}

std::vector<dir_identity> identities_up_to_root(const fs::path& path) {
    // The longest prefix that exists (lstat: a dangling link counts as existing, realpath then fails below).
    fs::path existing = fs::absolute(path);
    for (;;) {
        struct stat st {};

        if (::lstat(existing.c_str(), &st) == 0 || existing == existing.parent_path()) {
            break;
        }
        existing = existing.parent_path();
    }
    std::vector<dir_identity> out;
    fs::path at = resolved(existing);
    if (at.empty()) {
        return out;
    }
    for (;;) {
        if (const auto id = identity_of(at)) {
            out.push_back(*id);
        }
        if (at == at.parent_path()) {
            break;
        }
        at = at.parent_path();
    }
    return out;
}

tree_relation relate_trees(const fs::path& first, const fs::path& second) {
    const auto first_id = identity_of(first);
    if (!first_id) {
        return tree_relation::separate;
    }
    const auto second_id = identity_of(second);
    const std::vector<dir_identity> second_chain = identities_up_to_root(second);
    if (second_id && *second_id == *first_id) {
        return tree_relation::same;
    }
    if (std::find(second_chain.begin(), second_chain.end(), *first_id) != second_chain.end()) {
        return tree_relation::second_inside_first;
    }
    if (second_id) {
        const std::vector<dir_identity> first_chain = identities_up_to_root(first);
        if (std::find(first_chain.begin(), first_chain.end(), *second_id) != first_chain.end()) {
            return tree_relation::first_inside_second;
        }
    }
    return tree_relation::separate;
}

std::vector<std::string> mount_points_below(const fs::path& directory) {
    std::string real = resolved(directory);
    if (real.empty()) {
        return {};
    }
    if (real != "/") {
        real += '/';
    }
    std::vector<std::string> out;
    for (auto& point : mount_points()) {
        if (point.size() > real.size() && point.starts_with(real)) {
            out.push_back(std::move(point));
        }
    }
    return out;
}

bool make_room_for(const char* path) {
    struct stat st {};

    if (::lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        errno = EISDIR;
        return false;
    }
    return ::unlink(path) == 0 || errno == ENOENT;
}

int create_fresh(const char* path, unsigned mode, int access) {
    const int create = access | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    for (int attempt = 0; attempt < 3; ++attempt) {
        const int fd = ::open(path, create, static_cast<mode_t>(mode));
        if (fd >= 0 || errno != EEXIST) {
            return fd;
        }
        if (!make_room_for(path)) {
            return -1;
        }
    }
    errno = EEXIST;
    return -1;
}

int open_for_replacement(const fs::path& path, unsigned mode, int access, bool* created) {
    const int create = access | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    for (int attempt = 0; attempt < 3; ++attempt) {
        const int fd = ::open(path.c_str(), create, static_cast<mode_t>(mode));
        if (created != nullptr) {
            *created = fd >= 0;
        }
        if (fd >= 0 || errno != EEXIST) {
            return fd;
        }

        struct stat st {};

        if (::lstat(path.c_str(), &st) != 0) {
            continue;  // vanished meanwhile: create it
        }
        if (S_ISREG(st.st_mode) && st.st_nlink == 1) {
            return ::open(path.c_str(), access | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
        }
        if (!make_room_for(path.c_str())) {
            return -1;
        }
    }
    errno = EEXIST;
    return -1;
}

std::string protected_root_reason(const fs::path& directory) {
    const auto id = identity_of(directory);
    if (!id) {
        return {};
    }
    const std::string real = resolved(directory);
    if (real == "/" || id == identity_of("/")) {
        return "it is the root of the filesystem";
    }
    // A working directory that was itself deleted has no path (nothing to protect, and no reason to refuse).
    std::error_code no_cwd;
    const fs::path cwd = fs::current_path(no_cwd);
    const std::vector<dir_identity> cwd_chain = no_cwd ? std::vector<dir_identity>{} : identities_up_to_root(cwd);
    if (!cwd_chain.empty() && cwd_chain.front() == *id) {
        return "it is the current working directory";
    }
    if (std::find(cwd_chain.begin(), cwd_chain.end(), *id) != cwd_chain.end()) {
        return "it contains the current working directory";
    }
    if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0' && identity_of(home)) {  // NOLINT
        if (identity_of(home) == id) {
            return "it is the home directory";
        }
        // `/home`, or wherever the home directories live: every user's home in one command.
        const std::vector<dir_identity> home_chain = identities_up_to_root(home);
        if (std::find(home_chain.begin(), home_chain.end(), *id) != home_chain.end()) {
            return "it contains the home directory";
        }
    }
    const auto parent = identity_of(fs::path(directory) / "..");
    const auto points = mount_points();
    if ((parent && (parent->device != id->device || *parent == *id)) ||
        std::find(points.begin(), points.end(), real) != points.end()) {
        return "it is the root of a mounted filesystem (a mount point)";
    }
    return {};
}

}  // namespace axds::detail
