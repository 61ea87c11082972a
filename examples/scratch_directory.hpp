#pragma once
// A fresh directory of the example's own under $TMPDIR (or /tmp), removed with everything in it when the example
// ends. Made by mkdtemp: it never reuses, and so never deletes, a directory that was already there, and never follows
// a link someone planted at a predictable name (a name made of the process id would do both).

#include <cerrno>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

#include <stdlib.h>  // mkdtemp

namespace axds_examples {

class scratch_directory {
public:
    /// Creates `{temporary directory}/{prefix}XXXXXX`. @throws std::runtime_error naming what is wrong.
    explicit scratch_directory(const std::string& prefix) {
        std::error_code error;
        const std::filesystem::path base = std::filesystem::temp_directory_path(error);
        if (error) {
            throw std::runtime_error("no usable temporary directory (check TMPDIR): " + error.message());
        }
        std::string pattern = (base / (prefix + "XXXXXX")).string();
        if (::mkdtemp(pattern.data()) == nullptr) {
            throw std::system_error(errno, std::generic_category(),
                                    "Unable to create a scratch directory in " + base.string());
        }
        path_ = pattern;
    }

    ~scratch_directory() {
        if (!keep_) {
            std::error_code ignored;
            std::filesystem::remove_all(path_, ignored);
        }
    }

    scratch_directory(const scratch_directory&) = delete;
    scratch_directory& operator=(const scratch_directory&) = delete;

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

    /// Leaves the directory and its contents in place at the end (output the user asked for).
    void keep() noexcept { keep_ = true; }

private:
    std::filesystem::path path_;
    bool keep_ = false;
};

}  // namespace axds_examples
