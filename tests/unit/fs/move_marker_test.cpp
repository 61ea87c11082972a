// The marker a move leaves in its source (src/fs/move_marker.hpp): what a rerun reads back from it, and what it
// ignores (a line cut short by a crash, anything that does not parse, a marker of a move elsewhere).

#include "fs/move_marker.hpp"
#include "support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include <sys/stat.h>

namespace fs = std::filesystem;
using axds::test::read_file;
using axds::test::temp_dir;
using axds::test::write_file;

namespace {

void append(const fs::path& file, const std::string& text) {
    std::ofstream out(file, std::ios::app | std::ios::binary);
    out << text;
}

axds::detail::recorded_copy identity(const fs::path& path) {
    struct stat st {};

    REQUIRE(::lstat(path.c_str(), &st) == 0);
    return axds::detail::recorded_copy::of(st);
}

}  // namespace

TEST_CASE("a move marker records the copies of kept files and reads them back", "[fs][move_marker]") {
    const temp_dir tmp;
    const fs::path source = tmp.path() / "src";
    const fs::path destination = tmp.path() / "dst";
    write_file(destination / "a.bin", "copy of a");
    write_file(destination / "sub" / "b.bin", "copy of b");
    fs::create_directories(source);
    fs::create_directories(destination / "dir");
    const fs::path marker = source / std::string(axds::detail::move_marker_name);

    CHECK_FALSE(axds::detail::read_move_marker(source, destination).into_destination);
    axds::detail::write_move_marker(source, destination);
    auto read = axds::detail::read_move_marker(source, destination);
    CHECK(read.into_destination);
    CHECK(read.copies.empty());
    CHECK_FALSE(read.checksum_removed);

    // Regular files only: a directory and a missing file are not recorded.
    axds::detail::record_move_copies(source, destination, {"a.bin", "sub/b.bin", "dir", "missing.bin"});
    read = axds::detail::read_move_marker(source, destination);
    CHECK(read.copies == std::set<axds::detail::recorded_copy>{identity(destination / "a.bin"),
                                                               identity(destination / "sub" / "b.bin")});

    // A rerun's marker write keeps what the interrupted run recorded.
    axds::detail::write_move_marker(source, destination);
    CHECK(axds::detail::read_move_marker(source, destination).copies.size() == 2);

    // Lines that do not parse, and a last line cut short by a crash, are ignored.
    append(marker, "copy 1 2 3\ncopy 1 2 3 4 5 6\ncopy x 2 3 4 5\nsomething else\ncopy 7 8 9 10 11");
    read = axds::detail::read_move_marker(source, destination);
    CHECK(read.copies.size() == 2);
    append(marker, "\n");  // the cut line, completed
    read = axds::detail::read_move_marker(source, destination);
    CHECK(read.copies.size() == 3);
    CHECK(read.copies.count({7, 8, 9, 10, 11}) == 1);

    axds::detail::record_checksum_removed(source);
    CHECK(axds::detail::read_move_marker(source, destination).checksum_removed);
}

TEST_CASE("a move marker of a move elsewhere does not count and is replaced", "[fs][move_marker]") {
    const temp_dir tmp;
    const fs::path source = tmp.path() / "src";
    const fs::path elsewhere = tmp.path() / "elsewhere";
    const fs::path destination = tmp.path() / "dst";
    write_file(destination / "a.bin", "copy of a");
    fs::create_directories(elsewhere);
    fs::create_directories(source);
    axds::detail::write_move_marker(source, elsewhere);
    axds::detail::record_move_copies(source, destination, {"a.bin"});  // recorded in the marker of `elsewhere`
    const auto read = axds::detail::read_move_marker(source, destination);
    CHECK_FALSE(read.into_destination);
    CHECK(read.copies.empty());
    axds::detail::write_move_marker(source, destination);
    CHECK(axds::detail::read_move_marker(source, destination).into_destination);
    CHECK(axds::detail::read_move_marker(source, destination).copies.empty());
    CHECK_FALSE(axds::detail::read_move_marker(source, elsewhere).into_destination);
    CHECK_THAT(read_file(source / std::string(axds::detail::move_marker_name)),
               Catch::Matchers::Contains(destination.string()));
}

TEST_CASE("a move marker that cannot be written stops the move with an error naming it", "[fs][move_marker]") {
    const temp_dir tmp;
    const fs::path source = tmp.path() / "src";
    fs::create_directories(source / std::string(axds::detail::move_marker_name) / "x");  // a directory of its name
    CHECK_THROWS_WITH(
        axds::detail::write_move_marker(source, tmp.path()),
        Catch::Matchers::Contains(".axds-move-in-progress") && Catch::Matchers::Contains("the source was not removed"));
}

TEST_CASE("a move marker that is a hard link to another file is never written through", "[fs][move_marker]") {
    const temp_dir tmp;
    const fs::path source = tmp.path() / "src";
    const fs::path destination = tmp.path() / "dst";
    write_file(destination / "a.bin", "copy of a");
    fs::create_directories(source);
    axds::detail::write_move_marker(source, destination);
    const fs::path marker = source / std::string(axds::detail::move_marker_name);
    const std::string text = read_file(marker);
    const fs::path other = tmp.path() / "user.txt";
    fs::create_hard_link(marker, other);  // same inode, same text: a marker of this move by its content
    axds::detail::record_move_copies(source, destination, {"a.bin"});
    axds::detail::write_move_marker(source, destination);  // replaced by a file of its own
    axds::detail::record_move_copies(source, destination, {"a.bin"});
    CHECK(read_file(other) == text);
    CHECK(fs::hard_link_count(marker) == 1);
    CHECK(axds::detail::read_move_marker(source, destination).copies.size() == 1);
}
