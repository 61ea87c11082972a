#pragma once
// The directory walk with each entry's kind as readdir reported it (private to src/).

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace axds::detail {

/// An entry below the walked directory and its `d_type` (DT_REG, DT_DIR, DT_LNK, ... or DT_UNKNOWN when the
/// filesystem does not say: the caller then asks lstat).
struct typed_path {
    std::string path;  ///< the walked root's string, '/', the rest (no std::filesystem::path: its parsed components
                       ///< cost ~300 bytes and several allocations per entry, for trees of many small files)
    unsigned char type = 0;
};

/// The last component of a '/'-separated path (the whole of it without a '/').
[[nodiscard]] inline std::string_view file_name_of(std::string_view path) {
    const std::size_t slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

/// `directory / name` as std::filesystem::path joins them (one separator, none added after a trailing one or to an
/// empty directory), as a string: std::filesystem::path parses its components each time it is made.
[[nodiscard]] inline std::string joined(std::string_view directory, std::string_view name) {
    std::string out;
    out.reserve(directory.size() + 1 + name.size());
    out.append(directory);
    if (!out.empty() && !out.ends_with('/')) {
        out.push_back('/');
    }
    out.append(name);
    return out;
}

/// walk_directory (spec §2.1: the same entries in the same order), with each entry's d_type: a caller that only
/// needs an entry's kind spares an lstat per entry.
[[nodiscard]] std::vector<typed_path> walk_directory_typed(const std::filesystem::path& directory);

/// walk_files as strings (see typed_path::path).
[[nodiscard]] std::vector<std::string> walk_files_native(const std::filesystem::path& directory);

/// The '/'-separated path of `entry` relative to `root`, for an entry the walk of `root` yielded (`root / relative`):
/// the rest of its string after root's, without the per-entry cost of lexically_relative (which it falls back to
/// for any other path).
[[nodiscard]] std::string relative_to_root(const std::string& entry, const std::filesystem::path& root);

}  // namespace axds::detail
