#include <axds/fs/delete.hpp>

#include "detail/fault_hooks.hpp"
#include "support/matchers.hpp"
#include "support/temp_dir.hpp"

#include <axds/core/console.hpp>
#include <axds/core/runtime.hpp>
#include <axds/error.hpp>
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include <sys/stat.h>

namespace fs = std::filesystem;
using axds::test::temp_dir;
using axds::test::write_file;

namespace {

void delete_tree(const fs::path& path, axds::delete_options options = {}) {
    axds::block_on(axds::async_delete_directory(path, options));
}

}  // namespace

// upstream: filesystem_tools_test.py::test_delete_directory_*
TEST_CASE("delete_directory removes a nested tree with every kind of entry", "[fs][io_uring]") {
    const axds::delete_options options{.use_io_uring = GENERATE(false, true)};
    const temp_dir tmp;
    const fs::path root = tmp.path() / "tree";
    for (int d = 0; d < 5; ++d) {
        for (int f = 0; f < 150; ++f) {
            write_file(root / fmt::format("d{}", d) / "deeper" / fmt::format("f{}.bin", f), "x");
        }
    }
    write_file(tmp.path() / "outside.txt", "keep");
    fs::create_symlink(tmp.path() / "outside.txt", root / "link_to_file");
    fs::create_symlink(tmp.path(), root / "link_to_dir");
    fs::create_symlink(tmp.path() / "nothing", root / "dangling");
    REQUIRE(::mkfifo((root / "fifo").c_str(), 0600) == 0);
    fs::create_directories(root / "empty" / "emptier");
    delete_tree(root, options);
    CHECK_FALSE(fs::exists(root));
    CHECK(axds::test::read_file(tmp.path() / "outside.txt") == "keep");  // links were not followed
    delete_tree(root);                                                   // missing path: silent
    CHECK(fs::exists(tmp.path()));
}

TEST_CASE("delete_directory removes a symlink to a directory, never its target", "[fs]") {
    const temp_dir tmp;
    write_file(tmp.path() / "target" / "data.txt", "kept");
    fs::create_directory_symlink(tmp.path() / "target", tmp.path() / "link");
    delete_tree(tmp.path() / "link");
    CHECK_FALSE(fs::exists(fs::symlink_status(tmp.path() / "link")));
    CHECK(axds::test::read_file(tmp.path() / "target" / "data.txt") == "kept");
    CHECK_THROWS_AS(delete_tree(tmp.path() / "target" / "data.txt"), axds::not_a_directory_error);
}

TEST_CASE("delete_directory retries rmdir and then leaves the directory with the §9.2 warning", "[fs]") {
    const temp_dir tmp;
    const fs::path root = tmp.path() / "busy";
    write_file(root / "a.txt", "a");
    // Another writer keeps adding a file just before the rmdir: every attempt fails with ENOTEMPTY.
    const axds::delete_options options{.rmdir_retry_delay = std::chrono::milliseconds(5)};
    axds::detail::delete_hooks hooks{.before_rmdir = [](const fs::path& directory) {
        write_file(directory / "late", "x");
    }};
    const axds::scoped_warning_capture warnings;
    axds::block_on(axds::detail::async_delete_directory(root, options, std::move(hooks)));
    REQUIRE(warnings.messages().size() == 1);
    CHECK_THAT(warnings.messages()[0], Catch::Matchers::Contains(fmt::format(
                                           "Unable to remove the {} directory after 5 attempts", root.string())));
    // The real cause, not the "open handle" the Python message always blames.
    CHECK_THAT(warnings.messages()[0], Catch::Matchers::Contains("Directory not empty") &&
                                           Catch::Matchers::Contains("entries kept appearing") &&
                                           !Catch::Matchers::Contains("open handle"));
    CHECK(fs::exists(root / "late"));
    CHECK_FALSE(fs::exists(root / "a.txt"));  // the contents were removed
}

TEST_CASE("delete_directory deletes sibling subtrees side by side and retries each directory that refills",
          "[fs][io_uring]") {
    const axds::delete_options options{.use_io_uring = GENERATE(false, true),
                                       .rmdir_retry_delay = std::chrono::milliseconds(2)};
    const temp_dir tmp;
    const fs::path root = tmp.path() / "tree";
    for (int d = 0; d < 12; ++d) {
        for (int f = 0; f < 20; ++f) {
            write_file(root / fmt::format("d{:02}", d) / "inner" / fmt::format("f{}.bin", f), "x");
        }
    }
    write_file(tmp.path() / "outside" / "kept.txt", "keep");
    fs::create_directory_symlink(tmp.path() / "outside", root / "d03" / "inner" / "link");
    // Another writer refills d07/inner just before its rmdir: it, d07 and the root stay, with one warning each.
    const fs::path refilled = root / "d07" / "inner";
    axds::detail::delete_hooks hooks{.before_rmdir = [refilled](const fs::path& directory) {
        if (directory == refilled) {
            write_file(directory / "late", "x");
        }
    }};
    const axds::scoped_warning_capture warnings;
    axds::block_on(axds::detail::async_delete_directory(root, options, std::move(hooks)));
    REQUIRE(warnings.messages().size() == 3);
    CHECK_THAT(warnings.messages()[0], Catch::Matchers::Contains(refilled.string() + " directory"));
    CHECK_THAT(warnings.messages()[1], Catch::Matchers::Contains((root / "d07").string() + " directory"));
    CHECK_THAT(warnings.messages()[2], Catch::Matchers::Contains(root.string() + " directory"));
    std::vector<std::string> left;
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
        left.push_back(fs::relative(entry.path(), root).string());
    }
    std::sort(left.begin(), left.end());
    CHECK(left == std::vector<std::string>{"d07", "d07/inner", "d07/inner/late"});
    CHECK(axds::test::read_file(tmp.path() / "outside" / "kept.txt") == "keep");  // the link was not followed
}

TEST_CASE("delete_directory descends into a file that became a directory after the listing", "[fs][io_uring]") {
    const axds::delete_options options{.use_io_uring = GENERATE(false, true)};
    const temp_dir tmp;
    const fs::path root = tmp.path() / "tree";
    // top.bin goes by the root's own unlinks; inner.bin by the walk of a subtree (two siblings: one thread each).
    write_file(root / "top.bin", "x");
    for (int f = 0; f < 3; ++f) {
        write_file(root / "a" / "deep" / fmt::format("f{}.bin", f), "x");
    }
    write_file(root / "a" / "deep" / "inner.bin", "x");
    write_file(root / "b" / "other.bin", "x");
    // Another process replaces a listed file by a directory holding a file, before the unlinks reach it: unlink then
    // says EISDIR, and the new directory is emptied and removed as part of the tree, with io_uring or without.
    std::mutex mutex;  // subtrees are walked by threads of their own
    std::vector<fs::path> swapped;
    axds::detail::delete_hooks hooks{.after_list = [&](const fs::path& directory) {
        const std::lock_guard lock(mutex);
        for (const char* name : {"top.bin", "inner.bin"}) {
            const fs::path file = directory / name;
            if (fs::is_regular_file(fs::symlink_status(file))) {
                fs::remove(file);
                write_file(file / "arrived.bin", "y");
                swapped.push_back(file);
            }
        }
    }};
    axds::block_on(axds::detail::async_delete_directory(root, options, std::move(hooks)));
    CHECK(swapped.size() == 2);
    CHECK_FALSE(fs::exists(root));
}

// Found by a hostile-user run: the final rmdir went by path, and on ENOTDIR unlinked whatever was there.
TEST_CASE("delete_directory never removes what replaced the named directory while it was emptied", "[fs]") {
    const temp_dir tmp;
    const fs::path root = tmp.path() / "tree";
    write_file(root / "d" / "a.bin", "a");
    const fs::path moved = tmp.path() / "moved";
    axds::detail::delete_hooks hooks{.before_rmdir = [&](const fs::path& directory) {
        if (directory == root) {  // another process moves the emptied directory away and puts a file in its place
            fs::rename(root, moved);
            write_file(root, "user file");
        }
    }};
    try {
        axds::block_on(axds::detail::async_delete_directory(root, {}, std::move(hooks)));
        FAIL("the delete reported success although its directory was replaced");
    } catch (const axds::runtime_error& error) {
        CHECK_THAT(error.what(), Catch::Matchers::Contains(root.string()) &&
                                     Catch::Matchers::Contains("put something else in its place"));
    }
    CHECK(axds::test::read_file(root) == "user file");
    CHECK(fs::is_empty(moved));  // what was walked is empty; it is left where it was moved to
}

TEST_CASE("delete_directory through a link that is re-pointed meanwhile removes the directory it emptied", "[fs]") {
    const temp_dir tmp;
    write_file(tmp.path() / "A" / "tree" / "d" / "a.bin", "a");
    write_file(tmp.path() / "decoy" / "tree", "precious");  // a file where the re-pointed link leads
    fs::create_directory_symlink("A", tmp.path() / "L");
    const fs::path named = tmp.path() / "L" / "tree";
    axds::detail::delete_hooks hooks{.before_open = [&](const fs::path& directory) {
        if (directory == named / "d") {  // while the tree is walked
            fs::remove(tmp.path() / "L");
            fs::create_directory_symlink("decoy", tmp.path() / "L");
        }
    }};
    axds::block_on(axds::detail::async_delete_directory(named, {}, std::move(hooks)));
    CHECK_FALSE(fs::exists(tmp.path() / "A" / "tree"));
    CHECK(axds::test::read_file(tmp.path() / "decoy" / "tree") == "precious");
}

// Found by a hostile-user run: a subdirectory moved out of the tree while its files were unlinked was emptied to the
// end (its rmdir then found nothing and counted as done), and the delete reported success.
TEST_CASE("delete_directory stops when a directory is moved out of the tree while it is emptied", "[fs][io_uring]") {
    const axds::delete_options options{.use_io_uring = GENERATE(false, true)};
    const bool sibling = GENERATE(false, true);  // alone: emptied in place; with a sibling: by a subtree thread
    const temp_dir tmp;
    const fs::path root = tmp.path() / "tree";
    constexpr int files = 2000;
    for (int f = 0; f < files; ++f) {
        write_file(root / "big" / fmt::format("f{:04}", f), "x");
    }
    write_file(root / "big" / "zz" / "precious", "precious");
    if (sibling) {
        write_file(root / "other" / "a.bin", "a");
    }
    const fs::path rescued = tmp.path() / "rescued";
    axds::detail::delete_hooks hooks{.after_list = [&](const fs::path& directory) {
        if (directory == root / "big") {  // listed, about to be emptied: another process moves it away
            fs::rename(root / "big", rescued);
        }
    }};
    INFO("io_uring " << options.use_io_uring << ", sibling " << sibling);
    CHECK_THROWS_MATCHES(
        axds::block_on(axds::detail::async_delete_directory(root, options, std::move(hooks))), axds::runtime_error,
        axds::test::message_contains((root / "big").string()) && axds::test::message_contains("moved it elsewhere"));
    std::size_t left = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator(rescued)) {
        ++left;
    }
    // At most one check interval (256 unlinks, plus 64 in flight on io_uring) per unlinking thread (up to 4).
    CHECK(left >= files - 4 * (256 + 64));
    CHECK(axds::test::read_file(rescued / "zz" / "precious") == "precious");
}
