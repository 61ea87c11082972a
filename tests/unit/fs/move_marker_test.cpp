// The marker a move leaves in its source (src/fs/move_marker.hpp): what a rerun reads back from it, and what it
// ignores (a line cut short by a crash, a file of its name that is not a marker) or tells apart (a move elsewhere).

#include "fs/move_marker.hpp"
#include "support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;
using axds::test::read_file;
using axds::test::temp_dir;
using axds::test::write_file;

namespace {

/// A source and a destination directory, both made.
struct move_roots {
    temp_dir tmp;
    fs::path source = tmp.path() / "src";
    fs::path destination = tmp.path() / "dst";

    move_roots() {
        fs::create_directories(source);
        fs::create_directories(destination);
    }
};

void append(const fs::path& file, const std::string& text) {
    std::ofstream out(file, std::ios::app | std::ios::binary);
    out << text;
}

}  // namespace

TEST_CASE("a move marker names its destination and notes a removed checksum", "[fs][move_marker]") {
    const move_roots roots;
    const fs::path& source = roots.source;
    const fs::path& destination = roots.destination;
    const fs::path marker = source / std::string(axds::detail::move_marker_name);

    auto read = axds::detail::read_move_marker(source, destination);
    CHECK_FALSE(read.into_destination);
    CHECK_FALSE(read.other_move);
    axds::detail::write_move_marker(source, destination);
    read = axds::detail::read_move_marker(source, destination);
    CHECK(read.into_destination);
    CHECK_FALSE(read.checksum_removed);
    CHECK_FALSE(read.other_move);

    // A note cut short by a crash is ignored; completed, it counts. A rerun's marker write keeps it.
    append(marker, "checksum-rem");
    CHECK_FALSE(axds::detail::read_move_marker(source, destination).checksum_removed);
    append(marker, "\n");
    CHECK_FALSE(axds::detail::read_move_marker(source, destination).checksum_removed);  // "checksum-rem\n"
    axds::detail::record_checksum_removed(source);
    CHECK(axds::detail::read_move_marker(source, destination).checksum_removed);
    axds::detail::write_move_marker(source, destination);
    CHECK(axds::detail::read_move_marker(source, destination).checksum_removed);
}

TEST_CASE("a move marker of a move elsewhere is told apart and names that destination", "[fs][move_marker]") {
    const temp_dir tmp;
    const fs::path source = tmp.path() / "src";
    const fs::path elsewhere = tmp.path() / "elsewhere";
    const fs::path destination = tmp.path() / "dst";
    fs::create_directories(elsewhere);
    fs::create_directories(destination);
    fs::create_directories(source);
    axds::detail::write_move_marker(source, elsewhere);
    const auto read = axds::detail::read_move_marker(source, destination);
    CHECK_FALSE(read.into_destination);
    CHECK(read.other_move);
    CHECK(read.other_destination == elsewhere.string());
    axds::detail::write_move_marker(source, destination);
    CHECK(axds::detail::read_move_marker(source, destination).into_destination);
}

TEST_CASE("a file of the marker's name that is not a marker is not taken for one", "[fs][move_marker]") {
    const temp_dir tmp;
    const fs::path source = tmp.path() / "src";
    write_file(source / std::string(axds::detail::move_marker_name), "user data\nmore\n");
    const auto read = axds::detail::read_move_marker(source, tmp.path());
    CHECK_FALSE(read.into_destination);
    CHECK_FALSE(read.other_move);
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
    const move_roots roots;
    const fs::path& source = roots.source;
    const fs::path& destination = roots.destination;
    const temp_dir& tmp = roots.tmp;
    axds::detail::write_move_marker(source, destination);
    const fs::path marker = source / std::string(axds::detail::move_marker_name);
    const std::string text = read_file(marker);
    const fs::path other = tmp.path() / "user.txt";
    fs::create_hard_link(marker, other);  // same inode, same text: a marker of this move by its content
    CHECK_THROWS(axds::detail::record_checksum_removed(source));
    axds::detail::write_move_marker(source, destination);  // replaced by a file of its own
    CHECK(fs::hard_link_count(marker) == 1);
    axds::detail::record_checksum_removed(source);
    CHECK(read_file(other) == text);
    CHECK(axds::detail::read_move_marker(source, destination).checksum_removed);
}

// Found by a hostile-user run: a user's notes file of the marker's name whose first line began with "axds move" was
// taken for the marker of a move elsewhere (a plain copy left it out; a move named its second line as a destination).
TEST_CASE("only a marker's exact first line makes a file of its name a marker", "[fs][move_marker]") {
    const temp_dir tmp;
    const fs::path source = tmp.path() / "src";
    const fs::path marker = source / std::string(axds::detail::move_marker_name);
    for (const char* text :
         {"axds move plan: ship the drive on Tuesday\nmy notes\n", "axds move into device 12 inode\nx\n",
          "axds move into device 1a inode 2\nx\n", "axds move into device 1 inode 2 and more\nx\n"}) {
        CAPTURE(text);
        write_file(marker, text);
        const auto read = axds::detail::read_move_marker(source, tmp.path());
        CHECK_FALSE(read.other_move);
        CHECK_FALSE(read.into_destination);
    }
    write_file(marker, "axds move into device 1 inode 2\n/somewhere\n");
    CHECK(axds::detail::read_move_marker(source, tmp.path()).other_move);
}
