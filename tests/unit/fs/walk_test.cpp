#include <axds/fs/walk.hpp>

#include "fs/walk_detail.hpp"
#include "support/matchers.hpp"
#include "support/temp_dir.hpp"

#include <axds/error.hpp>
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <string>
#include <vector>

#include <dirent.h>
#include <sys/stat.h>
#include <sys/types.h>

namespace fs = std::filesystem;
using axds::test::message_contains;
using axds::test::temp_dir;
using axds::test::write_file;

namespace {

std::vector<fs::path> sorted(std::vector<fs::path> paths) {
    std::sort(paths.begin(), paths.end());
    return paths;
}

/// root/{a.txt, sub/b.txt, sub/deeper/c.txt, empty/, link_file -> a.txt, link_dir -> sub, dangling -> missing,
/// loop -> loop, fifo}
void make_tree(const fs::path& root) {
    write_file(root / "a.txt", "a");
    write_file(root / "sub" / "b.txt", "b");
    write_file(root / "sub" / "deeper" / "c.txt", "c");
    fs::create_directory(root / "empty");
    fs::create_symlink("a.txt", root / "link_file");
    fs::create_directory_symlink("sub", root / "link_dir");
    fs::create_symlink("missing", root / "dangling");
    fs::create_symlink("loop", root / "loop");
    REQUIRE(::mkfifo((root / "fifo").c_str(), 0600) == 0);
}

}  // namespace

// upstream: filesystem_tools_test.py::test_walk_directory_reports_everything
TEST_CASE("walk_directory reports every entry below the root but does not enter linked directories", "[fs]") {
    temp_dir tmp;
    const fs::path root = tmp.path();
    make_tree(root);
    const auto found = sorted(axds::walk_directory(root));
    const std::vector<fs::path> expected =
        sorted({root / "a.txt", root / "sub", root / "sub" / "b.txt", root / "sub" / "deeper",
                root / "sub" / "deeper" / "c.txt", root / "empty", root / "link_file", root / "link_dir",
                root / "dangling", root / "loop", root / "fifo"});
    CHECK(found == expected);
}

// upstream: filesystem_tools_test.py::test_walk_files_resolves_to_regular_files
TEST_CASE("walk_files keeps regular files and links to files, and drops everything else", "[fs]") {
    temp_dir tmp;
    const fs::path root = tmp.path();
    make_tree(root);
    const auto found = sorted(axds::walk_files(root));
    CHECK(found ==
          sorted({root / "a.txt", root / "sub" / "b.txt", root / "sub" / "deeper" / "c.txt", root / "link_file"}));
}

// The walk joins names to their directory as strings (no std::filesystem::path per entry): the strings must be what
// `directory / name` gives, for a root with a trailing separator too.
TEST_CASE("walk paths join the root and each name as std::filesystem::path does", "[fs]") {
    temp_dir tmp;
    make_tree(tmp.path());
    for (const std::string& root : {tmp.path().string(), tmp.path().string() + "/"}) {
        const fs::path as_given(root);
        for (const auto& path : axds::walk_files(as_given)) {
            CHECK(path.native().find("//") == std::string::npos);
        }
        const auto found = sorted(axds::walk_files(as_given));
        CHECK(found == sorted({as_given / "a.txt", as_given / "sub" / "b.txt", as_given / "sub" / "deeper" / "c.txt",
                               as_given / "link_file"}));
        for (const auto& entry : axds::detail::walk_directory_typed(as_given)) {
            CHECK(axds::detail::relative_to_root(entry.path, as_given).find('/') != 0);
        }
    }
}

// The walk lists the root's subtrees on several threads and joins them: the order must stay that of the spec's one
// stack-based scan (§2.1), which the reference below does on one thread.
TEST_CASE("walk_directory keeps the order of the sequential depth-first scan on a wide and deep tree", "[fs]") {
    temp_dir tmp;
    const fs::path root = tmp.path();
    for (int i = 0; i < 40; ++i) {
        write_file(root / fmt::format("top{:02}", i % 13) / fmt::format("mid{}", i % 3) / fmt::format("f{}.bin", i),
                   "x");
        write_file(root / fmt::format("top{:02}", i % 13) / fmt::format("g{}.bin", i), "y");
        write_file(root / fmt::format("r{}.bin", i), "z");
    }
    fs::create_directory(root / "top03" / "empty");
    fs::create_directory_symlink("top01", root / "top_link");
    std::vector<fs::path> reference;
    std::vector<fs::path> pending{root};
    while (!pending.empty()) {
        const fs::path current = pending.back();
        pending.pop_back();
        DIR* dir = ::opendir(current.c_str());
        REQUIRE(dir != nullptr);
        while (const dirent* entry = ::readdir(dir)) {
            const std::string name(entry->d_name);
            if (name == "." || name == "..") {
                continue;
            }
            reference.push_back(current / name);
            if (fs::is_directory(fs::symlink_status(current / name))) {
                pending.push_back(current / name);
            }
        }
        ::closedir(dir);
    }
    REQUIRE(reference.size() == 40 + 40 + 40 + 13 + 39 + 1 + 1);
    CHECK(axds::walk_directory(root) == reference);
    std::vector<fs::path> files;
    std::copy_if(reference.begin(), reference.end(), std::back_inserter(files),
                 [](const fs::path& p) { return fs::is_regular_file(fs::symlink_status(p)); });
    CHECK(axds::walk_files(root) == files);
}

TEST_CASE("walk functions follow a root that is a symlink to a directory", "[fs]") {
    temp_dir tmp;
    write_file(tmp.path() / "real" / "x.txt", "x");
    fs::create_directory_symlink(tmp.path() / "real", tmp.path() / "alias");
    CHECK(axds::walk_files(tmp.path() / "alias") == std::vector<fs::path>{tmp.path() / "alias" / "x.txt"});
}

TEST_CASE("walk functions report a missing or non-directory root instead of returning nothing", "[fs]") {
    temp_dir tmp;
    write_file(tmp.path() / "file.txt", "x");
    CHECK_THROWS_AS(axds::walk_directory(tmp.path() / "missing"), axds::file_not_found_error);
    CHECK_THROWS_AS(axds::walk_files(tmp.path() / "missing"), axds::file_not_found_error);
    CHECK_THROWS_AS(axds::walk_directory(tmp.path() / "file.txt"), axds::not_a_directory_error);
    CHECK_THROWS_MATCHES(axds::walk_files(tmp.path() / "file.txt"), axds::not_a_directory_error,
                         message_contains("file.txt"));
}

TEST_CASE("walk functions propagate an unreadable subdirectory as permission_error", "[fs]") {
    AXDS_SKIP_IF(axds::test::running_as_root(), "running as root: permission checks are bypassed");
    temp_dir tmp;
    write_file(tmp.path() / "locked" / "x.txt", "x");
    fs::permissions(tmp.path() / "locked", fs::perms::none);
    CHECK_THROWS_AS(axds::walk_directory(tmp.path()), axds::permission_error);
    CHECK_THROWS_AS(axds::walk_files(tmp.path()), axds::permission_error);
}

// upstream: filesystem_tools_test.py::test_discover_marker_files
TEST_CASE("discover_marker_files finds exact-name files, ignores marker-named directories, sorts by component",
          "[fs]") {
    temp_dir tmp;
    const fs::path root = tmp.path();
    write_file(root / "a" / "b" / "marker.yaml", "");
    write_file(root / "a.txt" / "marker.yaml", "");
    write_file(root / "a" / "Marker.yaml", "");
    write_file(root / "z" / "marker.yaml" / "inner.txt", "");  // a directory named like the marker
    write_file(root / "marker.yaml", "");
    const auto found = axds::discover_marker_files(root, "marker.yaml");
    // component-wise: a/b/marker.yaml < a.txt/marker.yaml < marker.yaml (plain string order would differ)
    CHECK(found == std::vector<fs::path>{root / "a" / "b" / "marker.yaml", root / "a.txt" / "marker.yaml",
                                         root / "marker.yaml"});
}

// upstream: filesystem_tools_test.py::test_discover_marker_roots_levels
TEST_CASE("discover_marker_roots climbs levels_up ancestors and deduplicates", "[fs]") {
    temp_dir tmp;
    const fs::path root = tmp.path();
    write_file(root / "s1" / "raw" / "x" / "m.bin", "");
    write_file(root / "s1" / "raw" / "y" / "m.bin", "");
    write_file(root / "s2" / "raw" / "z" / "m.bin", "");
    CHECK(axds::discover_marker_roots(root, "m.bin") ==
          std::vector<fs::path>{root / "s1" / "raw" / "x", root / "s1" / "raw" / "y", root / "s2" / "raw" / "z"});
    CHECK(axds::discover_marker_roots(root, "m.bin", 2) == std::vector<fs::path>{root / "s1", root / "s2"});
    CHECK(axds::discover_marker_roots(root, "absent").empty());
}

// upstream: filesystem_tools_test.py::test_discover_marker_roots_negative_levels
// upstream: filesystem_tools_test.py::test_discover_marker_roots_too_many_levels
TEST_CASE("discover_marker_roots rejects negative levels and levels beyond the filesystem root", "[fs]") {
    temp_dir tmp;
    write_file(tmp.path() / "m.bin", "");
    CHECK_THROWS_MATCHES(axds::discover_marker_roots(tmp.path(), "m.bin", -1), axds::value_error,
                         message_contains("'levels_up' argument must be greater than or equal to 0"));
    CHECK_THROWS_MATCHES(axds::discover_marker_roots(tmp.path(), "m.bin", 1000), axds::value_error,
                         message_contains("ancestor"));
}

TEST_CASE("discover_marker_roots on a relative directory ends the ancestor chain at '.'", "[fs]") {
    temp_dir tmp;
    write_file(tmp.path() / "d" / "m.bin", "");
    const auto cwd = fs::current_path();
    fs::current_path(tmp.path());
    const auto roots = axds::discover_marker_roots("d", "m.bin", 1);
    const bool too_far_throws = [] {
        try {
            (void)axds::discover_marker_roots("d", "m.bin", 2);
        } catch (const axds::value_error&) {
            return true;
        }
        return false;
    }();
    fs::current_path(cwd);
    CHECK(roots == std::vector<fs::path>{"."});
    CHECK(too_far_throws);
}

// upstream: filesystem_tools_test.py::test_resolve_unique_roots_examples
TEST_CASE("resolve_unique_roots reproduces the spec's examples", "[fs]") {
    using paths = std::vector<fs::path>;
    CHECK(axds::resolve_unique_roots(paths{"/data/animal_1/2026-01-01/raw_data/behavior_data_log",
                                           "/data/animal_2/2026-02-02/raw_data/behavior_data_log"}) ==
          paths{"/data/animal_1/2026-01-01", "/data/animal_2/2026-02-02"});
    CHECK(axds::resolve_unique_roots(paths{"/data/x/y"}) == paths{"/data/x/y"});
    CHECK(
        axds::resolve_unique_roots(paths{"/data/recording_1/logs/camera", "/data/recording_1/logs/microcontroller"}) ==
        paths{"/data/recording_1/logs/camera", "/data/recording_1/logs/microcontroller"});
    CHECK(axds::resolve_unique_roots(paths{"/data/recording_1/deeply/nested/logs", "/data/recording_2/logs"}) ==
          paths{"/data/recording_1/deeply/nested", "/data/recording_2"});
    CHECK(axds::resolve_unique_roots(paths{"/shared", "relative/shared"}) == paths{"/", "relative"});
    CHECK(axds::resolve_unique_roots(paths{}).empty());
}

TEST_CASE("resolve_unique_roots keeps the order of the input and normalises paths", "[fs]") {
    using paths = std::vector<fs::path>;
    CHECK(axds::resolve_unique_roots(paths{"/d/s2/raw/cam/", "/d/s1/raw/cam", "/d/s3//raw/./cam"}) ==
          paths{"/d/s2", "/d/s1", "/d/s3"});
}

// upstream: filesystem_tools_test.py::test_resolve_unique_roots_duplicate_paths
TEST_CASE("resolve_unique_roots rejects a path that shares every component", "[fs]") {
    using paths = std::vector<fs::path>;
    CHECK_THROWS_MATCHES(axds::resolve_unique_roots(paths{"/data/p", "/data/p"}), axds::value_error,
                         message_contains("shares all 3"));
    CHECK_THROWS_MATCHES(axds::resolve_unique_roots(paths{"/data/p", "/data/p/q"}), axds::value_error,
                         message_contains("shares all"));
}

TEST_CASE("python_path and python_parent follow pathlib", "[fs]") {
    CHECK(axds::python_path("a//./b/") == fs::path("a/b"));
    CHECK(axds::python_path("") == fs::path("."));
    CHECK(axds::python_parent("/a") == fs::path("/"));
    CHECK(axds::python_parent("a") == fs::path("."));
    CHECK(axds::python_parent("/") == fs::path("/"));
    CHECK(axds::python_parent(".") == fs::path("."));
    CHECK(axds::python_parent("a/b/c") == fs::path("a/b"));
}

TEST_CASE("relative_to_root slices a walked entry's path and falls back to lexically_relative otherwise", "[fs]") {
    using axds::detail::relative_to_root;
    CHECK(relative_to_root("/data/run/a/b.bin", "/data/run") == "a/b.bin");
    CHECK(relative_to_root("/data/run/a/b.bin", "/data/run/") == "a/b.bin");
    CHECK(relative_to_root("run/x", "run") == "x");
    CHECK(relative_to_root("/x", "/") == "x");
    // Not below the root by its string (a sibling sharing the prefix, a path written differently): lexically.
    CHECK(relative_to_root("/data/runner/x", "/data/run") == "../runner/x");
    CHECK(relative_to_root("/data/./run/x", "/data/run") ==
          fs::path("/data/./run/x").lexically_relative("/data/run").generic_string());
}
