// Permission errors of the directory tools (spec §2, §9.1-§9.3 "POSIX non-root" tests). Root bypasses permission
// checks, so each operation runs in a helper process that drops to uid 65534 (nobody) when the suite runs as root:
// these tests run everywhere, CI's root containers included.

#include "support/child_process.hpp"
#include "support/log_entries.hpp"
#include "support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;
using axds::test::temp_dir;
using axds::test::write_file;

namespace {

/// Runs the helper (as nobody when we are root) and returns its one-line outcome.
std::string as_unprivileged(const std::vector<std::string>& args) {
    std::vector<std::string> argv{AXDS_FS_WORKER};
    argv.insert(argv.end(), args.begin(), args.end());
    axds::test::child_process child(argv);
    std::string line = child.read_line();
    (void)child.wait();
    return line;
}

/// Gives the tree to nobody when we are root, so the helper owns (and may restrict) what it works on.
void hand_over(const fs::path& root) {
    if (::geteuid() != 0) {
        return;
    }
    REQUIRE(::lchown(root.c_str(), 65534, 65534) == 0);
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
        REQUIRE(::lchown(entry.path().c_str(), 65534, 65534) == 0);
    }
}

/// Removes permissions as the owner (the helper), e.g. chmod("000", dir).
void restrict(const std::string& mode, const fs::path& path) {
    REQUIRE(as_unprivileged({"chmod", mode, path.string()}) == "ok changed");
}

bool starts_with(const std::string& text, const std::string& prefix) {
    return text.rfind(prefix, 0) == 0;
}

}  // namespace

// upstream: checksum_tools_test.py (filesystem tools): unreadable subdirectory -> PermissionError
TEST_CASE("checksum and walk report an unreadable subdirectory as permission_error", "[fs][permissions]") {
    const temp_dir tmp;
    write_file(tmp.path() / "tree" / "a.txt", "a");
    write_file(tmp.path() / "tree" / "locked" / "b.txt", "b");
    hand_over(tmp.path());
    REQUIRE(starts_with(as_unprivileged({"checksum", (tmp.path() / "tree").string()}), "ok "));
    restrict("000", tmp.path() / "tree" / "locked");
    const std::string checksum = as_unprivileged({"checksum", (tmp.path() / "tree").string()});
    CHECK(starts_with(checksum, "permission_error: "));
    CHECK(checksum.find("locked") != std::string::npos);
    CHECK(starts_with(as_unprivileged({"walk", (tmp.path() / "tree").string()}), "permission_error: "));
}

// upstream: checksum_tools_test.py: entries under a directory without search permission -> PermissionError; a
// file whose stat is denied is still included (never silently left out of the digest)
TEST_CASE("checksum refuses files under a directory without search permission instead of skipping them",
          "[fs][permissions]") {
    const temp_dir tmp;
    write_file(tmp.path() / "tree" / "a.txt", "a");
    write_file(tmp.path() / "tree" / "listable" / "b.txt", "b");
    hand_over(tmp.path());
    restrict("644", tmp.path() / "tree" / "listable");  // names can be listed, entries cannot be reached
    const std::string outcome = as_unprivileged({"checksum", (tmp.path() / "tree").string()});
    CHECK(starts_with(outcome, "permission_error: "));
}

// upstream: transfer_tools_test.py: unreadable source subdirectory -> PermissionError, destination's stray file
// kept, no source checksum
TEST_CASE("transfer of a source with an unreadable subdirectory fails before touching anything", "[fs][permissions]") {
    const temp_dir tmp;
    write_file(tmp.path() / "source" / "a.txt", "a");
    write_file(tmp.path() / "source" / "locked" / "b.txt", "b");
    write_file(tmp.path() / "dest" / "stray.txt", "stray");
    hand_over(tmp.path());
    restrict("000", tmp.path() / "source" / "locked");
    const std::string outcome =
        as_unprivileged({"transfer", (tmp.path() / "source").string(), (tmp.path() / "dest").string(), "verify"});
    CHECK(starts_with(outcome, "permission_error: "));
    CHECK(fs::exists(tmp.path() / "dest" / "stray.txt"));
    CHECK_FALSE(fs::exists(tmp.path() / "source" / "ax_checksum.txt"));
}

// upstream: transfer_tools_test.py: unsearchable destination subdirectory holding a stray -> RuntimeError or
// PermissionError
TEST_CASE("transfer into a destination with an unsearchable subdirectory fails", "[fs][permissions]") {
    const temp_dir tmp;
    write_file(tmp.path() / "source" / "a.txt", "a");
    write_file(tmp.path() / "dest" / "hidden" / "stray.txt", "stray");
    hand_over(tmp.path());
    restrict("000", tmp.path() / "dest" / "hidden");
    const std::string outcome =
        as_unprivileged({"transfer", (tmp.path() / "source").string(), (tmp.path() / "dest").string()});
    CHECK((starts_with(outcome, "permission_error: ") || starts_with(outcome, "runtime_error: ")));
    CHECK(fs::exists(tmp.path() / "dest" / "hidden" / "stray.txt"));
}

// upstream: delete_tools_test.py::_classify_entry lstat EACCES -> PermissionError
TEST_CASE("delete reports entries it cannot inspect as permission_error", "[fs][permissions]") {
    const std::string backend = GENERATE(std::string("plain"), std::string("io_uring"));
    const temp_dir tmp;
    write_file(tmp.path() / "tree" / "a.txt", "a");
    write_file(tmp.path() / "tree" / "sub" / "b.txt", "b");
    write_file(tmp.path() / "tree" / "sibling" / "c.txt", "c");  // two subtrees: deleted side by side
    hand_over(tmp.path());
    restrict("644", tmp.path() / "tree" / "sub");  // listable, but its entries cannot be lstat'ed
    const std::string outcome = as_unprivileged({"delete", (tmp.path() / "tree").string(), backend});
    CHECK(starts_with(outcome, "permission_error: "));
    CHECK(fs::exists(tmp.path() / "tree" / "sub" / "b.txt"));  // nothing below it was touched
}

// A hostile-user run: one entry this user cannot read stopped the whole assembly, no source archived at all.
TEST_CASE("assembly archives the readable entries and leaves an unreadable one on disk", "[log][permissions]") {
    const temp_dir tmp;
    const fs::path logs = tmp.path() / "rig_data_log";
    axds::test::write_fixture_entries(logs, 1, 20);
    axds::test::write_fixture_entries(logs, 2, 5);
    const fs::path locked = axds::test::write_entry(logs, 1, 999'000, {1, 2, 3});
    hand_over(tmp.path());
    restrict("000", locked);
    const std::string outcome = as_unprivileged({"assemble", logs.string()});
    CHECK(outcome == "ok assembled entries=27 skipped=1 removed=27");
    CHECK(fs::exists(logs / "1_log.npz"));
    CHECK(fs::exists(logs / "2_log.npz"));
    CHECK(fs::exists(locked));  // left on disk for the user to fix, never removed unarchived
}
