// Transfer and delete never destroy data through a wrong path: same tree, nested trees, symlinks, protected roots.
#include <axds/fs/checksum.hpp>
#include <axds/fs/delete.hpp>
#include <axds/fs/transfer.hpp>

#include "detail/fault_hooks.hpp"
#include "fs/move_marker.hpp"
#include "support/child_process.hpp"
#include "support/matchers.hpp"
#include "support/temp_dir.hpp"

#include <axds/core/console.hpp>
#include <axds/core/runtime.hpp>
#include <axds/error.hpp>
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <array>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using axds::test::message_contains;
using axds::test::read_file;
using axds::test::snapshot;
using axds::test::temp_dir;
using axds::test::write_file;

namespace {

axds::transfer_report transfer(const fs::path& from, const fs::path& to, axds::transfer_options options = {},
                               axds::detail::transfer_hooks hooks = {}) {
    return axds::block_on(axds::detail::async_transfer_directory(from, to, std::move(options), std::move(hooks)));
}

void delete_tree(const fs::path& path, axds::delete_options options = {}) {
    axds::block_on(axds::async_delete_directory(path, options));
}

fs::path make_tree(const fs::path& root) {
    write_file(root / "a.bin", std::string(5000, 'a'));
    write_file(root / "sub" / "b.txt", "bravo");
    write_file(root / "sub" / "deep" / "c.txt", "charlie");
    return root;
}

/// 40 small files in four directories.
fs::path make_session(const fs::path& root) {
    for (std::size_t i = 0; i < 40; ++i) {
        write_file(root / fmt::format("d{}", i % 4) / fmt::format("f{:03}.bin", i),
                   std::string(100 + i, static_cast<char>('a' + i % 26)));
    }
    return root;
}

/// Appends `text` to `file`, as a recorder still writing it does.
void append_file(const fs::path& file, const std::string& text) {
    std::ofstream out(file, std::ios::app | std::ios::binary);
    out << text;
}

/// What a move's removal leaves when it is interrupted halfway: the files of d0 and d1 are gone from the source.
void remove_half(const fs::path& source) {
    for (const char* directory : {"d0", "d1"}) {
        for (const auto& entry : fs::directory_iterator(source / directory)) {
            fs::remove(entry.path());
        }
    }
}

/// Changes the working directory for the scope.
struct scoped_cwd {
    fs::path previous = fs::current_path();

    explicit scoped_cwd(const fs::path& to) { fs::current_path(to); }

    ~scoped_cwd() { fs::current_path(previous); }

    scoped_cwd(const scoped_cwd&) = delete;
    scoped_cwd& operator=(const scoped_cwd&) = delete;
};

}  // namespace

TEST_CASE("transfer into the same tree is refused before anything is written", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path d = make_tree(tmp.path() / "D");
    fs::create_directory_symlink(d, tmp.path() / "link_to_D");
    const auto before = snapshot(d);
    for (const fs::path& same :
         {d, d / ".", fs::path(d.string() + "/"), tmp.path() / "link_to_D", tmp.path() / "D" / "sub" / ".."}) {
        for (const bool verify : {false, true}) {
            CAPTURE(same, verify);
            CHECK_THROWS_MATCHES(transfer(d, same, {.verify_integrity = verify, .remove_source = verify}),
                                 axds::value_error,
                                 message_contains("same directory") && message_contains("Nothing was written"));
            CHECK(snapshot(d) == before);
            CHECK_FALSE(fs::exists(d / "ax_checksum.txt"));
        }
    }
}

TEST_CASE("transfer into a directory inside the source, or out of one inside the destination, is refused",
          "[fs][safety]") {
    const temp_dir tmp;
    const fs::path d = make_tree(tmp.path() / "D");
    const auto before = snapshot(d);
    CHECK_THROWS_MATCHES(transfer(d, d / "backup", {.verify_integrity = true, .remove_source = true}),
                         axds::value_error, message_contains("the destination lies inside the source"));
    CHECK_THROWS_MATCHES(transfer(d, d / "sub" / "new" / "deeper"), axds::value_error,
                         message_contains("inside the source"));
    CHECK_FALSE(fs::exists(d / "backup"));
    CHECK_FALSE(fs::exists(d / "sub" / "new"));
    CHECK_THROWS_MATCHES(transfer(d / "sub", d, {.reset_dirty_destination = true}), axds::value_error,
                         message_contains("the source lies inside the destination"));
    CHECK(snapshot(d) == before);
    // Through a symlink to a directory inside the source, too.
    fs::create_directory_symlink(d / "sub", tmp.path() / "link_to_sub");
    CHECK_THROWS_AS(transfer(d, tmp.path() / "link_to_sub" / "copy"), axds::value_error);
    CHECK(snapshot(d) == before);
}

TEST_CASE("transfer into a bind mount of the source is refused", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path d = make_tree(tmp.path() / "D");
    const fs::path mount_point = tmp.path() / "M";
    fs::create_directory(mount_point);
    AXDS_SKIP_IF(::mount(d.c_str(), mount_point.c_str(), nullptr, MS_BIND, nullptr) != 0,
                 "bind mounts are not permitted here (needs root): the bind-mount case is not tested");
    const auto before = snapshot(d);
    CHECK_THROWS_MATCHES(transfer(d, mount_point / "backup", {.verify_integrity = true, .remove_source = true}),
                         axds::value_error, message_contains("inside the source"));
    CHECK_THROWS_MATCHES(transfer(d, mount_point), axds::value_error, message_contains("same directory"));
    ::umount2(mount_point.c_str(), MNT_DETACH);
    CHECK(snapshot(d) == before);
}

TEST_CASE("a symlinked source is refused also when written with a trailing slash", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path d = make_tree(tmp.path() / "D");
    const auto before = snapshot(d);
    fs::create_directory_symlink(d, tmp.path() / "LINK");
    const std::string spelled = GENERATE(std::string("/"), std::string("//"), std::string("/."));
    CHECK_THROWS_MATCHES(transfer(tmp.path().string() + "/LINK" + spelled, tmp.path() / "out", {.remove_source = true}),
                         axds::runtime_error, message_contains("symbolic link rather than a real directory"));
    CHECK(snapshot(d) == before);
    CHECK_FALSE(fs::exists(tmp.path() / "out"));
}

TEST_CASE("remove_source deletes exactly the files it copied, and what appeared or changed meanwhile stays",
          "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = make_tree(tmp.path() / "src");
    for (int i = 0; i < 50; ++i) {
        write_file(source / "many" / fmt::format("f{}.bin", i), std::string(static_cast<std::size_t>(100 + i), 'x'));
    }
    // While the transfer runs (after its copies, before verification): a new file arrives, one file is rewritten.
    axds::detail::transfer_hooks hooks{.after_copy = [&](const fs::path&) {
        write_file(source / "sub" / "new_recording.bin", "arrived late");
        write_file(source / "many" / "f7.bin", "rewritten after it was copied");
    }};
    const axds::scoped_warning_capture warnings;
    const auto report = transfer(source, tmp.path() / "dst",
                                 {.workers = 2, .verify_integrity = true, .remove_source = true}, std::move(hooks));
    CHECK(report.verified);
    CHECK(report.files_copied == 53);
    CHECK(report.source_files_kept == std::vector<std::string>{"many/f7.bin", "sub/new_recording.bin"});
    CHECK(read_file(source / "sub" / "new_recording.bin") == "arrived late");
    CHECK(read_file(source / "many" / "f7.bin") == "rewritten after it was copied");
    CHECK(read_file(tmp.path() / "dst" / "many" / "f7.bin") == std::string(107, 'x'));
    CHECK_FALSE(fs::exists(source / "a.bin"));
    CHECK_FALSE(fs::exists(source / "sub" / "deep"));  // emptied directories go
    CHECK(report.source_files_removed == 53);          // 52 untouched files + the source's ax_checksum.txt
    REQUIRE(warnings.messages().size() == 1);
    CHECK_THAT(warnings.messages().front(), Catch::Matchers::Contains("new_recording.bin"));
}

// Found by a hostile-user run: a source file appended to after it was copied left `transfer --verify` saying
// "checksum verified" (exit 0) while the destination lacked the appended bytes -- a script that then deleted the
// source lost them. A transfer that keeps its source now fails when its source changed while it ran.
TEST_CASE("a transfer that keeps its source fails, naming them, when source files change, vanish or appear meanwhile",
          "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = make_tree(tmp.path() / "src");
    const bool verify = GENERATE(false, true);
    const std::string change = GENERATE("appended", "rewritten, mtime restored", "removed", "appeared", "during copy");
    if (verify && change == "during copy") {
        return;  // a verified copy refuses a file that changed during its own copy at once (refuse_changed_source)
    }
    CAPTURE(verify, change);
    std::string named = "sub/b.txt";
    axds::detail::transfer_hooks hooks;
    if (change == "during copy") {
        named = "a.bin";
        hooks.content_copied = [&](const fs::path& partial) {
            if (partial.filename().string().find("a.bin") != std::string::npos) {
                write_file(source / "a.bin", std::string(5000, 'Z'));  // same size, after its bytes were copied
            }
        };
    }
    hooks.after_copy = [&](const fs::path&) {
        const fs::path file = source / named;
        if (change == "appended") {
            std::ofstream(file, std::ios::app) << " and more";
        } else if (change == "rewritten, mtime restored") {
            struct stat st {};

            REQUIRE(::stat(file.c_str(), &st) == 0);
            std::ofstream(file, std::ios::in | std::ios::out) << "BRAVO";
            const std::array<timespec, 2> times{st.st_atim, st.st_mtim};
            REQUIRE(::utimensat(AT_FDCWD, file.c_str(), times.data(), 0) == 0);
        } else if (change == "removed") {
            fs::remove(file);
        } else if (change == "appeared") {
            named = "sub/new_recording.bin";
            write_file(source / named, "arrived late");
        }
    };
    const fs::path destination = tmp.path() / "dst";
    CHECK_THROWS_MATCHES(transfer(source, destination, {.workers = 2, .verify_integrity = verify}, std::move(hooks)),
                         axds::runtime_error,
                         message_contains("but the source changed while it was transferred") &&
                             message_contains(change == "appeared" ? "1 file(s) appeared and were not copied (" + named
                                                                   : "1 file(s) changed or were removed after their "
                                                                     "copy began (" +
                                                                         named) &&
                             message_contains("Nothing was removed from the source."));
    CHECK(read_file(destination / "sub" / "b.txt") == "bravo");  // each copy is whole, of one state of its file
    CHECK(read_file(destination / "a.bin") == std::string(5000, 'a'));
    // The checksum it saved described the earlier content: gone again, so the next transfer computes it anew.
    CHECK_FALSE(fs::exists(source / "ax_checksum.txt"));
    transfer(source, tmp.path() / "again", {.verify_integrity = verify});  // nothing writes now: it succeeds
    auto copied = snapshot(tmp.path() / "again");
    auto original = snapshot(source);
    copied.erase("ax_checksum.txt");
    original.erase("ax_checksum.txt");
    CHECK(copied == original);
}

/// A same-size rewrite of the start of `file` ("BRAVO") that then sets its mtime back: only its ctime tells.
void rewrite_setting_mtime_back(const fs::path& file) {
    struct stat st {};

    REQUIRE(::stat(file.c_str(), &st) == 0);
    std::ofstream(file, std::ios::in | std::ios::out) << "BRAVO";
    const std::array<timespec, 2> times{st.st_atim, st.st_mtim};
    REQUIRE(::utimensat(AT_FDCWD, file.c_str(), times.data(), 0) == 0);
}

// Found by a hostile-user run: where a source file's link count changed (here: the transfer's own rename over a
// destination that was a `cp -al` copy), its ctime was not compared, so a same-size rewrite that set the mtime back
// went unseen. Such a file's bytes are now compared with its copy's.
TEST_CASE("a source rewritten with its mtime set back is caught when its link count changed too", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = make_tree(tmp.path() / "src");
    const fs::path destination = tmp.path() / "dst";
    fs::copy(source, destination, fs::copy_options::recursive | fs::copy_options::create_hard_links);
    const bool verify = GENERATE(false, true);
    CAPTURE(verify);
    axds::detail::transfer_hooks hooks{.after_copy = [&](const fs::path&) {
        rewrite_setting_mtime_back(source / "sub" / "b.txt");
    }};
    CHECK_THROWS_MATCHES(transfer(source, destination, {.verify_integrity = verify}, std::move(hooks)),
                         axds::runtime_error,
                         message_contains("1 file(s) changed or were removed after their copy began (sub/b.txt)"));
    CHECK(read_file(destination / "a.bin") == std::string(5000, 'a'));
}

// Found by a hostile-user run: a move into a `cp -al` copy of its source kept every source file as "changed" (the
// transfer's own rename over each hard-linked destination file changed the source's link count, hence its ctime),
// and the command then failed. Such a file is removed when its bytes are still its copy's; one rewritten with its
// mtime set back stays.
TEST_CASE("a move into a hard-linked copy of its source removes the source, except a file rewritten meanwhile",
          "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = make_tree(tmp.path() / "src");
    const fs::path destination = tmp.path() / "dst";
    fs::copy(source, destination, fs::copy_options::recursive | fs::copy_options::create_hard_links);
    const auto before = snapshot(source);
    const bool verify = GENERATE(false, true);
    const bool rewrite = GENERATE(false, true);
    CAPTURE(verify, rewrite);
    axds::detail::transfer_hooks hooks{.after_copy = [&](const fs::path&) {
        if (!rewrite) {
            return;
        }
        rewrite_setting_mtime_back(source / "sub" / "b.txt");
    }};
    const auto report =
        transfer(source, destination, {.verify_integrity = verify, .remove_source = true}, std::move(hooks));
    auto copied = snapshot(destination);
    copied.erase("ax_checksum.txt");
    CHECK(copied == before);
    if (rewrite) {
        CHECK(report.source_files_kept == std::vector<std::string>{"sub/b.txt"});
        CHECK(read_file(source / "sub" / "b.txt").starts_with("BRAVO"));
    } else {
        CHECK(report.source_files_kept.empty());
        CHECK_FALSE(fs::exists(source));
    }
}

// Found by a hostile-user run: a recorder writing into a preallocated file through a shared mapping (its size and,
// once a page is dirty, its times never change) or a logger holding its file open between writes lost everything it
// wrote after the move removed the file. A source file another process holds open or mapped for writing now stays;
// one held open for reading only goes.
// Found by a hostile-user run: a verified move of a source on a full filesystem failed with "Unable to save the
// checksum ... No space left on device" alone, without saying what became of the copy and of the source.
TEST_CASE("a verified move whose source cannot take its checksum says that nothing was removed", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = tmp.path() / "full";
    fs::create_directory(source);
    AXDS_SKIP_IF(::mount("tmpfs", source.c_str(), "tmpfs", 0, "size=64k,nr_inodes=16") != 0,
                 "mounting is not permitted here (needs root): the full-source case is not tested");

    struct unmount_at_end {
        fs::path point;

        ~unmount_at_end() { ::umount2(point.c_str(), MNT_DETACH); }
    } unmount{source};

    for (int i = 0;; ++i) {  // every inode taken: not even a small ax_checksum.txt fits
        std::ofstream file(source / fmt::format("f{:02}.bin", i));
        file << "recorded";
        if (!file.flush() || i > 64) {
            break;
        }
    }
    const auto before = snapshot(source);
    REQUIRE_FALSE(before.empty());
    CHECK_THROWS_MATCHES(
        transfer(source, tmp.path() / "dst", {.verify_integrity = true, .remove_source = true}), axds::os_error,
        message_contains("Unable to save the checksum") && message_contains("nothing was removed from the source"));
    CHECK(snapshot(source) == before);
}

TEST_CASE("a move keeps the source files another process has open or mapped for writing", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = tmp.path() / "src";
    write_file(source / "frames.raw", std::string(65536, 'f'));
    write_file(source / "log.txt", "line 1\n");
    write_file(source / "config.yaml", "rate: 30\n");
    write_file(source / "notes.txt", "untouched");
    write_file(source / "later.raw", std::string(4096, 'l'));   // mapped read-only, but opened for writing
    write_file(source / "viewed.raw", std::string(4096, 'v'));  // mapped read-only from a read-only descriptor
    const char* holder =
        "import ctypes, mmap, os, sys, time\n"  // libc's mmap: Python's mmap module keeps a descriptor of its own
        "libc = ctypes.CDLL(None); libc.mmap.restype = ctypes.c_void_p\n"
        "libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, "
        "ctypes.c_long]\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "assert libc.mmap(None, 65536, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0) not in (None, -1)\n"
        "os.close(fd)\n"  // only the mapping is left
        "for name, mode in ((sys.argv[4], os.O_RDWR), (sys.argv[5], os.O_RDONLY)):\n"
        "    fd = os.open(name, mode)\n"
        "    assert libc.mmap(None, 4096, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0) not in (None, -1)\n"
        "    os.close(fd)\n"
        "g = open(sys.argv[2], 'ab'); h = open(sys.argv[3], 'rb')\n"
        "print('ready', flush=True); time.sleep(120)\n";
    axds::test::child_process recorder({AXDS_PYTHON3, "-c", holder, (source / "frames.raw").string(),
                                        (source / "log.txt").string(), (source / "config.yaml").string(),
                                        (source / "later.raw").string(), (source / "viewed.raw").string()});
    REQUIRE(recorder.read_line() == "ready");
    const bool verify = GENERATE(false, true);
    CAPTURE(verify);
    const axds::scoped_warning_capture warnings;
    const auto report = transfer(source, tmp.path() / "dst", {.verify_integrity = verify, .remove_source = true});
    CHECK(report.source_files_kept == std::vector<std::string>{"frames.raw", "later.raw", "log.txt"});
    CHECK_FALSE(fs::exists(source / "viewed.raw"));
    CHECK_FALSE(fs::exists(source / "config.yaml"));
    CHECK_FALSE(fs::exists(source / "notes.txt"));
    CHECK(read_file(tmp.path() / "dst" / "frames.raw") == std::string(65536, 'f'));
    const std::string said = fmt::format("{}", fmt::join(warnings.messages(), "\n"));
    CHECK_THAT(said, Catch::Matchers::Contains(
                         fmt::format("frames.raw (process {} (python3) has it mapped for writing)", recorder.pid())) &&
                         Catch::Matchers::Contains(
                             fmt::format("log.txt (process {} (python3) has it open for writing)", recorder.pid())));
    // Once the recorder is gone, the same command finishes the move (the source stays marked as one): found by a
    // hostile-user run, it refused, as the destination held files the source no longer accounted for.
    // What the recorder wrote after the copy is moved too (found by a hostile-user run: the rerun refused, as
    // log.txt no longer matched its copy): its copy, untouched since, is replaced.
    recorder.kill9();
    (void)recorder.wait();
    append_file(source / "log.txt", "line 2\n");
    const auto again = transfer(source, tmp.path() / "dst", {.verify_integrity = verify, .remove_source = true});
    CHECK(again.resumed_move);
    CHECK(again.files_copied == 1);
    CHECK(again.source_files_kept.empty());
    CHECK_FALSE(fs::exists(source));
    CHECK(read_file(tmp.path() / "dst" / "log.txt") == "line 1\nline 2\n");
}

// Found by a hostile-user run: a removal stopped by a file that cannot be removed said only that, not that the
// destination is complete and verified, how far the removal got, nor that the same command finishes the move.
// Root removes anything but an immutable directory's entries: made so by `chattr +i` (skipped where it fails).
TEST_CASE("a move whose removal is stopped says how to finish it, and the same command does", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = make_tree(tmp.path() / "src");
    const fs::path destination = tmp.path() / "dst";
    const auto before = snapshot(source);
    const std::string locked = (source / "sub" / "deep").string();
    bool immutable = false;
    axds::detail::transfer_hooks hooks{.after_copy = [&](const fs::path&) {
        immutable = std::system(fmt::format("chattr +i '{}' 2>/dev/null", locked).c_str()) == 0;
    }};
    bool stopped = false;
    try {
        (void)transfer(source, destination, {.verify_integrity = true, .remove_source = true}, std::move(hooks));
    } catch (const axds::os_error& e) {
        stopped = true;
        CHECK_THAT(std::string(e.what()), Catch::Matchers::Contains("Unable to remove the transferred source file") &&
                                              Catch::Matchers::Contains("is complete and verified") &&
                                              Catch::Matchers::Contains("running the same command again finishes"));
    }
    (void)std::system(fmt::format("chattr -i '{}' 2>/dev/null", locked).c_str());
    AXDS_SKIP_IF(!immutable, "chattr +i is not possible here (needs root and ext4): the stopped removal is not tested");
    REQUIRE(stopped);
    const auto report = transfer(source, destination, {.verify_integrity = true, .remove_source = true});
    CHECK(report.resumed_move);
    CHECK_FALSE(fs::exists(source));
    auto copied = snapshot(destination);
    copied.erase("ax_checksum.txt");
    CHECK(copied == before);
}

// Found by a hostile-user run: a destination file replaced by a symbolic link to its source after the copy passed
// the verification (whose checksum reads through links), and the move then removed the source: the destination was
// left with a dangling link. A source file goes only while its copy is a regular file of its size.
TEST_CASE("a move keeps a source file whose copy was replaced after the copy", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = make_tree(tmp.path() / "src");
    const fs::path destination = tmp.path() / "dst";
    const bool verify = GENERATE(false, true);
    CAPTURE(verify);
    axds::detail::transfer_hooks hooks{.after_copy = [&](const fs::path&) {
        fs::remove(destination / "a.bin");
        fs::create_symlink(source / "a.bin", destination / "a.bin");
    }};
    const auto report =
        transfer(source, destination, {.verify_integrity = verify, .remove_source = true}, std::move(hooks));
    CHECK(report.source_files_kept == std::vector<std::string>{"a.bin"});
    CHECK(read_file(source / "a.bin") == std::string(5000, 'a'));
    CHECK_FALSE(fs::exists(source / "sub" / "b.txt"));
}

/// What a hostile process does to a verified copy at `path` (a temporary or its final name) when it is named
/// `recording.bin`: eight bytes overwritten in place, then its times set back, so that its size and mtime are what
/// the transfer left.
void overwrite_setting_times_back(const fs::path& path) {
    if (path.filename().string().find("recording.bin") == std::string::npos) {
        return;
    }

    struct stat st {};

    REQUIRE(::stat(path.c_str(), &st) == 0);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(::pwrite(fd, "HOSTILE!", 8, 100) == 8);
    ::close(fd);
    const std::array<timespec, 2> times{st.st_atim, st.st_mtim};
    REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times.data(), 0) == 0);
}

// Found by hostile-user runs: a write of the same size into a verified copy after its read-back, which then set the
// mtime back, went unseen (the digest read back was kept, as the size and mtime still matched): the transfer said
// "verified" over a corrupt copy and a move removed the intact source. First after the read-back (the ctime is
// compared since), then in the instant between the last look at the ctime and the rename (which changes the ctime
// itself): the copy is now renamed into place first and read back after.
TEST_CASE("a write into a verified copy after its read-back is caught even when it sets the mtime back",
          "[fs][safety]") {
    const temp_dir tmp;
    const std::size_t size = GENERATE(std::size_t{100000}, std::size_t{9} << 20);  // read back after / during copy
    const bool before_rename = GENERATE(false, true);
    CAPTURE(size, before_rename);
    const fs::path source = tmp.path() / "src";
    std::string content(size, 'r');
    for (std::size_t i = 0; i < size; i += 4096) {
        content[i] = static_cast<char>('a' + i / 4096 % 26);
    }
    write_file(source / "recording.bin", content);
    write_file(source / "notes.txt", "session notes");
    axds::detail::transfer_hooks hooks;
    (before_rename ? hooks.before_rename : hooks.copy_read_back) = overwrite_setting_times_back;
    CHECK_THROWS_MATCHES(
        transfer(source, tmp.path() / "dst", {.verify_integrity = true, .remove_source = true}, std::move(hooks)),
        axds::runtime_error, message_contains("This indicates that the data was corrupted in transmission."));
    CHECK(read_file(source / "recording.bin") == content);  // the move removed nothing
    CHECK(read_file(tmp.path() / "dst" / "recording.bin").substr(100, 8) == "HOSTILE!");
}

// Where closing a file may report a write-back error (network filesystems), a verified copy is flushed by closing a
// duplicate descriptor before its rename (it is read back after): the copies are complete and no descriptor is left.
TEST_CASE("a verified transfer flushed before each rename, as on a network filesystem, verifies and leaks nothing",
          "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = make_tree(tmp.path() / "src");
    write_file(source / "large.bin", std::string(std::size_t{9} << 20, 'L'));  // read back during its copy
    const auto before = snapshot(source);
    axds::detail::transfer_hooks hooks;
    hooks.flush_before_rename = true;
    (void)transfer(source, tmp.path() / "dst", {.verify_integrity = true, .remove_source = true}, std::move(hooks));
    // No descriptor of this process is left on a copy (the pool's threads keep pipes and rings of their own).
    const std::string destination = (tmp.path() / "dst").string();
    for (const auto& item : fs::directory_iterator("/proc/self/fd")) {
        std::error_code ec;
        const std::string target = fs::read_symlink(item.path(), ec).string();
        CHECK_FALSE(target.starts_with(destination));
    }
    auto after = snapshot(tmp.path() / "dst");
    after.erase("ax_checksum.txt");
    CHECK(after == before);
    CHECK_FALSE(fs::exists(source));
}

// Found by a hostile-user run: on a filesystem whose ctime has whole seconds (ext3 with 128-byte inodes, FAT), a write
// into a verified copy after its read-back that set the mtime back left the ctime as it was within that second, and
// the digest read back was kept: "verified" over a corrupt copy. Such a copy is now read again by the verification.
// Needs root (a loop-mounted ext3 image); skipped otherwise.
TEST_CASE("a write into a verified copy on a filesystem with whole-second times is caught", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path image = tmp.path() / "ext3.img";
    const fs::path mount_point = tmp.path() / "coarse";
    fs::create_directory(mount_point);
    const std::string make = fmt::format(
        "truncate -s 64M '{}' && mkfs.ext3 -q -F -I 128 '{}' >/dev/null 2>&1 && mount -o loop '{}' '{}' 2>/dev/null",
        image.string(), image.string(), image.string(), mount_point.string());
    AXDS_SKIP_IF(std::system(make.c_str()) != 0,
                 "no loop-mounted ext3 here (needs root, mkfs.ext3 and a loop device): the whole-second case is not "
                 "tested");

    struct unmount_at_end {
        fs::path point;

        ~unmount_at_end() { ::umount2(point.c_str(), MNT_DETACH); }
    } unmount{mount_point};

    const fs::path source = mount_point / "src";
    std::string content(100000, 'r');
    write_file(source / "recording.bin", content);
    write_file(source / "notes.txt", "session notes");
    axds::detail::transfer_hooks hooks;
    hooks.copy_read_back = overwrite_setting_times_back;
    CHECK_THROWS_MATCHES(
        transfer(source, mount_point / "dst", {.verify_integrity = true, .remove_source = true}, std::move(hooks)),
        axds::runtime_error, message_contains("This indicates that the data was corrupted in transmission."));
    CHECK(read_file(source / "recording.bin") == content);  // the move removed nothing
}

// Found by a hostile-user run: a process that opened a large copy's temporary in the instant between its creation
// and the inotify watch on its inode, and wrote through it after the copy was read back, went unseen (its write
// was then hidden by the times set on the copy): "verified" over a corrupt copy. The watch now begins on the
// directory before the temporary exists.
TEST_CASE("a large verified copy opened by another process right after its creation is read again", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = tmp.path() / "src";
    std::string content(std::size_t{9} << 20, 'r');  // pipelined: read back during its copy
    for (std::size_t i = 0; i < content.size(); i += 4096) {
        content[i] = static_cast<char>('a' + i / 4096 % 26);
    }
    write_file(source / "recording.bin", content);
    int early = -1;
    axds::detail::transfer_hooks hooks;
    hooks.temporary_named = [&early](const fs::path& partial) {
        if (partial.filename().string().find("recording.bin") != std::string::npos) {
            early = ::open(partial.c_str(), O_WRONLY | O_CLOEXEC);
        }
    };
    hooks.content_copied = [&early](const fs::path&) {  // after the read-back, before the times are set
        if (early >= 0) {
            REQUIRE(::pwrite(early, "HOSTILE!", 8, 100) == 8);
            ::close(early);
            early = -1;
        }
    };
    CHECK_THROWS_MATCHES(
        transfer(source, tmp.path() / "dst", {.verify_integrity = true, .remove_source = true}, std::move(hooks)),
        axds::runtime_error,
        message_contains("This indicates that the data was corrupted in transmission.") &&
            message_contains("recording.bin"));
    CHECK(read_file(source / "recording.bin") == content);  // the move removed nothing
}

TEST_CASE("remove_source after a clean transfer removes the whole source", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = make_tree(tmp.path() / "src");
    fs::create_directories(source / "empty" / "emptier");
    const auto before = snapshot(source);
    const auto report = transfer(source, tmp.path() / "dst", {.verify_integrity = true, .remove_source = true});
    CHECK_FALSE(fs::exists(source));
    CHECK(report.source_files_kept.empty());
    auto after = snapshot(tmp.path() / "dst");
    after.erase("ax_checksum.txt");
    CHECK(after == before);
    CHECK(fs::is_directory(tmp.path() / "dst" / "empty" / "emptier"));
}

TEST_CASE("the stray-files error never recommends deleting files that exist only in the destination", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = make_tree(tmp.path() / "src");
    // As left by a move interrupted during its source removal: the destination is complete, the source partial; and
    // a file added to the destination since, so that it no longer verifies (the move cannot be finished then).
    transfer(source, tmp.path() / "dst", {.verify_integrity = true});
    fs::remove(source / "a.bin");
    fs::remove_all(source / "sub" / "deep");
    write_file(tmp.path() / "dst" / "notes.txt", "added later");
    const auto destination = snapshot(tmp.path() / "dst");
    try {
        transfer(source, tmp.path() / "dst", {.verify_integrity = true, .remove_source = true});
        FAIL("the dirty destination was accepted");
    } catch (const axds::runtime_error& e) {
        const std::string message = e.what();
        CHECK_THAT(message, Catch::Matchers::Contains("does not account for") && Catch::Matchers::Contains("a.bin") &&
                                Catch::Matchers::Contains("only copy"));
        CHECK_THAT(message, !Catch::Matchers::Contains("reset_dirty_destination") &&
                                !Catch::Matchers::Contains("reset-dirty-destination"));
    }
    CHECK(snapshot(tmp.path() / "dst") == destination);
    CHECK(fs::exists(source / "sub" / "b.txt"));
}

TEST_CASE("a move interrupted during its source removal is finished by running it again", "[fs][safety]") {
    const bool rerun_verified = GENERATE(true, false);
    const bool source_checksum_kept = GENERATE(true, false);
    const temp_dir tmp;
    const fs::path source = make_session(tmp.path() / "src");
    const fs::path destination = tmp.path() / "dst";
    transfer(source, destination, {.verify_integrity = true});  // the move's copy, then its removal, interrupted:
    remove_half(source);
    if (!source_checksum_kept) {
        fs::remove(source / "ax_checksum.txt");
    }
    const auto complete = snapshot(destination);
    const auto left = snapshot(source);
    // reset_dirty_destination would delete the only copies: refused, with remove_source or without.
    CHECK_THROWS_MATCHES(transfer(source, destination, {.remove_source = true, .reset_dirty_destination = true}),
                         axds::runtime_error, message_contains("only copy") && message_contains("is a move"));
    CHECK_THROWS_MATCHES(transfer(source, destination, {.reset_dirty_destination = true}), axds::runtime_error,
                         message_contains("only copy") && message_contains("matches its ax_checksum.txt"));
    CHECK(snapshot(destination) == complete);
    CHECK(snapshot(source) == left);
    const auto report = transfer(source, destination, {.verify_integrity = rerun_verified, .remove_source = true});
    CHECK(report.resumed_move);
    CHECK(report.verified);
    CHECK(report.files_copied == 0);
    CHECK(report.source_files_removed == left.size());
    CHECK_FALSE(fs::exists(source));
    CHECK(snapshot(destination) == complete);  // every file once, nothing else (no temporary, no marker)
}

/// The checksum of `directory`'s tree as calculate_directory_checksum computes it (without saving it).
std::string checksum_of(const fs::path& directory) {
    return axds::block_on(axds::async_calculate_directory_checksum(directory, {.save_checksum = false}));
}

// Found by a hostile-user run (session 22): a rerun of a move whose source still held a file that grew after its
// copy (a writer was still appending) refused to finish it, naming the file, and the user had to move it by hand.
// The source file extends its copy, so replacing the copy loses nothing: the rerun copies it again, copies a file that
// appeared meanwhile, computes the destination's checksum again, and removes the source.
TEST_CASE("an interrupted move copies again a source file that grew after its copy, then finishes", "[fs][safety]") {
    const bool rerun_verified = GENERATE(true, false);
    CAPTURE(rerun_verified);
    const temp_dir tmp;
    const fs::path source = make_session(tmp.path() / "src");
    const fs::path destination = tmp.path() / "dst";
    transfer(source, destination, {.verify_integrity = true});
    remove_half(source);
    append_file(source / "d2" / "f002.bin", " and more, recorded after the copy");
    write_file(source / "d4" / "new.bin", "appeared after the copy");
    auto expected = snapshot(destination);
    expected["d2/f002.bin"] = read_file(source / "d2" / "f002.bin");
    expected["d4/new.bin"] = "appeared after the copy";
    expected.erase("ax_checksum.txt");
    const auto report = transfer(source, destination, {.verify_integrity = rerun_verified, .remove_source = true});
    CHECK(report.resumed_move);
    CHECK(report.verified == rerun_verified);  // copies made without verification are not verified
    CHECK(report.files_copied == 2);
    CHECK(report.source_files_kept.empty());
    CHECK_FALSE(fs::exists(source));
    auto copied = snapshot(destination);
    REQUIRE(copied.count("ax_checksum.txt") == 1);
    CHECK(copied["ax_checksum.txt"] == checksum_of(destination));
    copied.erase("ax_checksum.txt");
    CHECK(copied == expected);
}

// Found by the hostile-user run of the change above: a copy is replaced only when the source file extends it. A copy
// edited in the destination (and its checksum saved again, so that the destination verifies), or a source file
// rewritten or shortened since the copy, may hold data the other lacks: the rerun refuses and names it.
TEST_CASE("an interrupted move does not replace a copy that the source file does not extend", "[fs][safety]") {
    const int how = GENERATE(0, 1, 2);
    CAPTURE(how);
    const temp_dir tmp;
    const fs::path source = make_session(tmp.path() / "src");
    const fs::path destination = tmp.path() / "dst";
    transfer(source, destination, {.verify_integrity = true});
    remove_half(source);
    const fs::path file = source / "d2" / "f002.bin";
    if (how == 0) {  // edited in the destination, the source grew, and the destination's checksum saved again
        append_file(destination / "d2" / "f002.bin", "user edit in the destination");
        append_file(file, "recorded later");
        fs::remove(destination / "ax_checksum.txt");
        (void)axds::block_on(axds::async_calculate_directory_checksum(destination, {}));
    } else if (how == 1) {  // the source file rewritten
        write_file(file, std::string(fs::file_size(file) + 10, 'z'));
    } else {  // the source file shortened
        fs::resize_file(file, 10);
    }
    const auto complete = snapshot(destination);
    const auto left = snapshot(source);
    CHECK_THROWS_MATCHES(transfer(source, destination, {.remove_source = true}), axds::runtime_error,
                         message_contains("1 file(s) still in the source differ") &&
                             message_contains("does not simply extend its copy") && message_contains("d2/f002.bin") &&
                             message_contains("Nothing was copied and nothing was deleted"));
    CHECK(snapshot(destination) == complete);
    CHECK(snapshot(source) == left);
}

// Found by the hostile-user run: a move that kept every file (one recording still being written) leaves no strays,
// and the rerun took the plain-copy path, overwriting a copy edited in the destination since. A source carrying the
// marker of a move into the destination is finished as such: copies are replaced only when the source extends them.
TEST_CASE("a move that kept every file replaces a copy on a rerun only when the source file extends it",
          "[fs][safety]") {
    const bool destination_edited = GENERATE(false, true);
    CAPTURE(destination_edited);
    const temp_dir tmp;
    const fs::path source = tmp.path() / "src";
    write_file(source / "rec.log", "frame 1\n");
    const fs::path destination = tmp.path() / "dst";
    axds::detail::transfer_hooks hooks{.after_copy = [&](const fs::path&) {
        append_file(source / "rec.log", "frame 2\n");
    }};
    const auto first = transfer(source, destination, {.remove_source = true}, std::move(hooks));
    REQUIRE(first.source_files_kept == std::vector<std::string>{"rec.log"});
    REQUIRE(read_file(destination / "rec.log") == "frame 1\n");
    if (destination_edited) {
        append_file(destination / "rec.log", "a note added in the destination\n");
        CHECK_THROWS_MATCHES(transfer(source, destination, {.remove_source = true}), axds::runtime_error,
                             message_contains("does not simply extend its copy") && message_contains("rec.log"));
        CHECK(read_file(destination / "rec.log") == "frame 1\na note added in the destination\n");
        CHECK(read_file(source / "rec.log") == "frame 1\nframe 2\n");
        // The user keeps the source's version: with the destination's copy gone, the move finishes.
        fs::remove(destination / "rec.log");
    }
    const auto report = transfer(source, destination, {.remove_source = true});
    CHECK(report.resumed_move);
    CHECK(report.files_copied == 1);
    CHECK_FALSE(fs::exists(source));
    CHECK(read_file(destination / "rec.log") == "frame 1\nframe 2\n");
}

// Found by the hostile-user run: a copy written in the destination while the rerun copied its replacement was
// overwritten. The copy must still be what was compared right before the replacement is renamed over it.
TEST_CASE("finishing a move never replaces a copy that changed while its replacement was copied", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = tmp.path() / "src";
    write_file(source / "rec.log", "frame 1\n");
    const fs::path destination = tmp.path() / "dst";
    axds::detail::transfer_hooks grow{.after_copy = [&](const fs::path&) {
        append_file(source / "rec.log", "frame 2\n");
    }};
    (void)transfer(source, destination, {.remove_source = true}, std::move(grow));
    axds::detail::transfer_hooks edit;
    edit.content_copied = [&](const fs::path&) {
        append_file(destination / "rec.log", "edited meanwhile\n");
    };
    CHECK_THROWS_MATCHES(transfer(source, destination, {.remove_source = true}, std::move(edit)), axds::runtime_error,
                         message_contains("while this run copied the source file, that destination file changed") &&
                             message_contains("rec.log"));
    CHECK(read_file(destination / "rec.log") == "frame 1\nedited meanwhile\n");
    CHECK(read_file(source / "rec.log") == "frame 1\nframe 2\n");
    CHECK(snapshot(destination).size() == 1);  // no temporary left
}

// Found by a second hostile-user run: the checks of a copy to replace were made once, when the rerun planned, so a
// source rewritten (not extended) while the rerun ran, or a program opening the old copy for writing meanwhile,
// still had the old copy replaced: its data lost. Both are checked again right before the rename.
TEST_CASE("finishing a move checks again, right before the rename, that the replacement loses nothing",
          "[fs][safety]") {
    const bool rewritten = GENERATE(true, false);
    CAPTURE(rewritten);
    const temp_dir tmp;
    const fs::path source = tmp.path() / "src";
    write_file(source / "a.log", "a 1\n");
    write_file(source / "b.log", "b 1\n");
    const fs::path destination = tmp.path() / "dst";
    axds::detail::transfer_hooks grow{.after_copy = [&](const fs::path&) {
        append_file(source / "a.log", "a 2\n");
        append_file(source / "b.log", "b 2\n");
    }};
    (void)transfer(source, destination, {.remove_source = true}, std::move(grow));
    // One copy at a time: between the planning and the copy of the second file, its source is rewritten, or a
    // program opens its old copy for writing.
    std::optional<axds::test::child_process> holder;
    std::string first;  // the file copied first, and the other one
    std::string second;
    axds::detail::transfer_hooks meanwhile;
    meanwhile.content_copied = [&](const fs::path& partial) {
        if (!first.empty()) {
            return;
        }
        first = partial.filename().string().find("a.log") != std::string::npos ? "a" : "b";
        second = first == "a" ? "b" : "a";
        if (rewritten) {  // longer, but no longer beginning with its copy
            write_file(source / (second + ".log"), "X 1\n" + second + " 2\n" + second + " 3\n");
        } else {
            holder.emplace(
                std::vector<std::string>{AXDS_PYTHON3, "-c",
                                         "import sys, time\nf = open(sys.argv[1], 'ab')\nprint('ready', flush=True)\n"
                                         "time.sleep(60)",
                                         (destination / (second + ".log")).string()});
            REQUIRE(holder->read_line() == "ready");
        }
    };
    try {
        (void)transfer(source, destination, {.remove_source = true}, std::move(meanwhile));
        FAIL("the replacement went ahead");
    } catch (const axds::runtime_error& e) {
        CHECK_THAT(std::string(e.what()),
                   Catch::Matchers::Contains("Unable to replace") && Catch::Matchers::Contains(second + ".log"));
    }
    CHECK(read_file(destination / (second + ".log")) == second + " 1\n");
    CHECK(read_file(destination / (first + ".log")) == first + " 1\n" + first + " 2\n");  // it extended its copy
    CHECK(fs::exists(source / "a.log"));  // nothing is removed when the run fails
    CHECK(fs::exists(source / "b.log"));
    CHECK(snapshot(destination).size() == 2);  // no temporary left
}

// Found by a second hostile-user run: a copy compared identical, then edited in the destination before the removal
// reached its source file, let the source go (only its type and size were looked at again). The removal of a move
// being finished requires each copy unchanged since it was compared.
TEST_CASE("finishing a move keeps a source file whose copy was edited after the comparison", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = make_session(tmp.path() / "src");
    const fs::path destination = tmp.path() / "dst";
    transfer(source, destination, {.verify_integrity = true});
    remove_half(source);
    fs::remove(destination / "ax_checksum.txt");
    fs::remove(source / "ax_checksum.txt");
    axds::detail::write_move_marker(source, destination);
    const std::string original = read_file(source / "d2" / "f002.bin");
    axds::detail::transfer_hooks edit;
    edit.after_plan = [&] {  // same size, so only its times tell
        std::string edited = original;
        edited[0] = '#';
        write_file(destination / "d2" / "f002.bin", edited);
    };
    const auto report = transfer(source, destination, {.remove_source = true}, std::move(edit));
    CHECK(report.resumed_move);
    CHECK(report.source_files_kept == std::vector<std::string>{"d2/f002.bin"});
    CHECK(read_file(source / "d2" / "f002.bin") == original);
}

// Found by the hostile-user run: a move into another destination of a source still marked as being moved elsewhere
// split its data silently, and a user's file of the marker's name was removed without being copied.
TEST_CASE("a move refuses a source marked as moved elsewhere, or holding a file of the marker's name", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = make_tree(tmp.path() / "src");
    const fs::path first = tmp.path() / "first";
    fs::create_directories(first);
    axds::detail::write_move_marker(source, first);
    const auto before = snapshot(source);
    CHECK_THROWS_MATCHES(transfer(source, tmp.path() / "second", {.remove_source = true}), axds::runtime_error,
                         message_contains("marker of an earlier move into " + first.string()) &&
                             message_contains("Nothing was copied and nothing was deleted"));
    CHECK(snapshot(source) == before);
    CHECK_FALSE(fs::exists(tmp.path() / "second"));
    transfer(source, tmp.path() / "copy");  // a plain copy leaves the marker out
    CHECK_FALSE(fs::exists(tmp.path() / "copy" / ".axds-move-in-progress"));
    write_file(source / ".axds-move-in-progress", "the user's own notes\n");
    CHECK_THROWS_MATCHES(transfer(source, tmp.path() / "third", {.remove_source = true}), axds::runtime_error,
                         message_contains("is not one") && message_contains("Rename it"));
    CHECK(read_file(source / ".axds-move-in-progress") == "the user's own notes\n");
    transfer(source, tmp.path() / "copy2");  // a plain copy copies it as the data it is
    CHECK(read_file(tmp.path() / "copy2" / ".axds-move-in-progress") == "the user's own notes\n");
}

// A run finishing a verified move removes the destination's ax_checksum.txt before it replaces a copy (noting it in
// the marker); killed with kill -9 mid-copy, the next run (unverified: nothing is left to verify against) finishes
// the move and computes the checksum again.
TEST_CASE("a rerun of a move killed with kill -9 while it copied files again finishes it", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = make_session(tmp.path() / "src");
    const fs::path destination = tmp.path() / "dst";
    transfer(source, destination, {.verify_integrity = true});
    remove_half(source);
    append_file(source / "d2" / "f002.bin", "recorded after the copy");
    const std::string grown = read_file(source / "d2" / "f002.bin");
    {
        axds::test::child_process worker({AXDS_FS_WORKER, "move-copy-stall", source.string(), destination.string()});
        REQUIRE(worker.read_line() == "stalled");
        worker.kill9();
        CHECK(worker.wait() == 128 + SIGKILL);
    }
    CHECK_FALSE(fs::exists(destination / "ax_checksum.txt"));
    CHECK(read_file(destination / "d2" / "f002.bin") != grown);
    const auto left = snapshot(source);
    CHECK_THROWS_MATCHES(transfer(source, destination, {.verify_integrity = true, .remove_source = true}),
                         axds::runtime_error, message_contains("run the move again without verify_integrity"));
    CHECK(snapshot(source) == left);
    const auto report = transfer(source, destination, {.remove_source = true});
    CHECK(report.resumed_move);
    CHECK(report.files_copied == 1);
    CHECK_FALSE(fs::exists(source));
    auto copied = snapshot(destination);
    CHECK(copied.size() == 41);  // the 40 files and ax_checksum.txt: no temporary left
    CHECK(copied["d2/f002.bin"] == grown);
    CHECK(copied["ax_checksum.txt"] == checksum_of(destination));
}

TEST_CASE("an unverified move interrupted during its removal is finished from the marker it leaves in the source",
          "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = make_session(tmp.path() / "src");
    const auto original = snapshot(source);
    const fs::path destination = tmp.path() / "dst";
    axds::detail::transfer_hooks interrupt;
    interrupt.source_file_removed = [](std::size_t removed) {
        if (removed == 15) {
            throw std::runtime_error("interrupted");
        }
    };
    CHECK_THROWS_WITH(transfer(source, destination, {.remove_source = true}, interrupt), "interrupted");
    REQUIRE(fs::exists(source / ".axds-move-in-progress"));
    CHECK(snapshot(destination) == original);  // no ax_checksum.txt: only the marker tells what happened
    CHECK_THROWS_MATCHES(transfer(source, destination, {.reset_dirty_destination = true}), axds::runtime_error,
                         message_contains("carries the marker"));
    fs::rename(source / ".axds-move-in-progress", tmp.path() / "marker");
    CHECK_THROWS_MATCHES(transfer(source, destination, {.remove_source = true}), axds::runtime_error,
                         message_contains("Nothing shows that the destination is the complete copy"));
    fs::rename(tmp.path() / "marker", source / ".axds-move-in-progress");
    CHECK(snapshot(destination) == original);
    const auto report = transfer(source, destination, {.remove_source = true});
    CHECK(report.resumed_move);
    CHECK_FALSE(report.verified);
    CHECK(report.source_files_removed == 25);
    CHECK_FALSE(fs::exists(source));
    CHECK(snapshot(destination) == original);
}

TEST_CASE("a move killed with kill -9 during its source removal is finished by running it again", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = make_session(tmp.path() / "src");
    const fs::path destination = tmp.path() / "dst";
    {
        axds::test::child_process worker({AXDS_FS_WORKER, "move-stall", source.string(), destination.string(), "12"});
        REQUIRE(worker.read_line() == "stalled");
        worker.kill9();
        CHECK(worker.wait() == 128 + SIGKILL);
    }
    const auto complete = snapshot(destination);
    CHECK(complete.size() == 41);  // the 40 files and ax_checksum.txt
    // With ax_checksum.txt (copied last, removed last) and the marker of the move in progress.
    CHECK(snapshot(source).size() == 40 - 12 + 2);
    CHECK(fs::exists(source / ".axds-move-in-progress"));
    CHECK_THROWS_MATCHES(transfer(source, destination, {.remove_source = true, .reset_dirty_destination = true}),
                         axds::runtime_error, message_contains("only copy"));
    CHECK(snapshot(destination) == complete);
    const auto report = transfer(source, destination, {.verify_integrity = true, .remove_source = true});
    CHECK(report.resumed_move);
    CHECK(report.source_files_removed == 29);
    CHECK_FALSE(fs::exists(source));
    CHECK(snapshot(destination) == complete);
}

TEST_CASE("a transfer killed with kill -9 mid-copy leaves no partial file under a final name", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = make_tree(tmp.path() / "src");
    const fs::path destination = tmp.path() / "dst";
    {
        axds::test::child_process worker({AXDS_FS_WORKER, "copy-stall", source.string(), destination.string()});
        REQUIRE(worker.read_line() == "stalled");
        worker.kill9();
        CHECK(worker.wait() == 128 + SIGKILL);
    }
    const auto original = snapshot(source);
    std::size_t partials = 0;
    for (const auto& [relative, content] : snapshot(destination)) {
        if (relative.size() > 13 && relative.compare(relative.size() - 13, 13, ".axds-partial") == 0) {
            ++partials;
            continue;
        }
        CHECK(original.count(relative) == 1);
        CHECK(content == original.at(relative));
    }
    CHECK(partials == 1);
    transfer(source, destination);  // the rerun cleans the temporary up: it is no stray
    CHECK(snapshot(destination) == original);
}

TEST_CASE("the stray-files error lists the first 20 names and counts the rest", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = make_tree(tmp.path() / "src");
    for (int i = 0; i < 30; ++i) {
        write_file(tmp.path() / "dst" / fmt::format("junk{:02}.bin", i), "x");
    }
    CHECK_THROWS_MATCHES(transfer(source, tmp.path() / "dst"), axds::runtime_error,
                         message_contains("holds 30 file(s)") && message_contains("junk19.bin, and 10 more.") &&
                             !message_contains("junk20.bin"));
}

TEST_CASE("reset_dirty_destination still removes what an unrelated earlier attempt left", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = make_tree(tmp.path() / "src");
    const fs::path destination = tmp.path() / "dst";
    transfer(source, destination, {.verify_integrity = true});
    write_file(destination / "sub" / "old_attempt.bin", "junk");  // the destination no longer verifies
    const auto report = transfer(source, destination, {.verify_integrity = true, .reset_dirty_destination = true});
    CHECK(report.strays_removed == std::vector<std::string>{"sub/old_attempt.bin"});
    CHECK_FALSE(fs::exists(destination / "sub" / "old_attempt.bin"));
    CHECK(fs::exists(source / "a.bin"));
}

TEST_CASE("a destination that is a file is refused as not a directory", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = make_tree(tmp.path() / "src");
    write_file(tmp.path() / "afile", "data");
    CHECK_THROWS_MATCHES(transfer(source, tmp.path() / "afile"), axds::not_a_directory_error,
                         message_contains((tmp.path() / "afile").string() + " is not a directory: it is an existing "
                                                                            "file"));
    CHECK_THROWS_MATCHES(transfer(source, tmp.path() / "afile" / "sub"), axds::not_a_directory_error,
                         message_contains("a component of its path is a file"));
    CHECK(read_file(tmp.path() / "afile") == "data");
}

TEST_CASE("delete never follows a symlink, with or without a trailing slash", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path target = make_tree(tmp.path() / "target");
    const auto before = snapshot(target);
    const std::string spelled = GENERATE(std::string(""), std::string("/"), std::string("//"), std::string("/."));
    fs::create_directory_symlink(target, tmp.path() / "LINK");
    delete_tree(tmp.path().string() + "/LINK" + spelled);
    CHECK_FALSE(fs::exists(fs::symlink_status(tmp.path() / "LINK")));
    CHECK(snapshot(target) == before);
}

TEST_CASE("delete refuses empty, '.', '..', the working directory and its ancestors", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path work = make_tree(tmp.path() / "work");
    const auto before = snapshot(tmp.path());
    const scoped_cwd cwd(work / "sub");
    CHECK_THROWS_MATCHES(delete_tree(""), axds::value_error, message_contains("empty path"));
    CHECK_THROWS_MATCHES(delete_tree("."), axds::value_error, message_contains("Name the directory itself"));
    CHECK_THROWS_MATCHES(delete_tree(".."), axds::value_error, message_contains("Name the directory itself"));
    CHECK_THROWS_MATCHES(delete_tree("deep/.."), axds::value_error, message_contains("Name the directory itself"));
    CHECK_THROWS_MATCHES(
        delete_tree(work / "sub"), axds::protected_directory_error,
        message_contains("it is the current working directory") && message_contains("delete_options::force_root"));
    CHECK_THROWS_MATCHES(delete_tree(work), axds::value_error,
                         message_contains("it contains the current working directory"));
    CHECK_THROWS_MATCHES(delete_tree(tmp.path()), axds::value_error,
                         message_contains("contains the current working directory"));
    CHECK(snapshot(tmp.path()) == before);
    // Explicitly forced, the working directory itself can go.
    delete_tree(work / "sub", {.force_root = true});
    CHECK_FALSE(fs::exists(work / "sub"));
    CHECK(fs::exists(work / "a.bin"));
}

TEST_CASE("delete works from a working directory that was itself deleted", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path target = make_tree(tmp.path() / "target");
    fs::create_directory(tmp.path() / "gone");
    {
        const scoped_cwd cwd(tmp.path() / "gone");
        fs::remove(tmp.path() / "gone");  // the shell's directory removed under it (it used to fail: "cannot get
        delete_tree(target);              // current path")
    }
    CHECK_FALSE(fs::exists(target));
}

TEST_CASE("delete refuses the home directory and a mount point unless forced", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path home = make_tree(tmp.path() / "home");
    const char* saved = std::getenv("HOME");  // NOLINT
    const std::string previous = saved != nullptr ? saved : "";
    ::setenv("HOME", home.c_str(), 1);
    CHECK_THROWS_MATCHES(delete_tree(home), axds::value_error, message_contains("home directory"));
    // Nor any directory above it (found by a hostile-user run: `/home` went without force_root).
    const fs::path user_home = make_tree(tmp.path() / "users" / "alice");
    ::setenv("HOME", user_home.c_str(), 1);
    CHECK_THROWS_MATCHES(delete_tree(tmp.path() / "users"), axds::value_error,
                         message_contains("it contains the home directory"));
    ::setenv("HOME", previous.c_str(), 1);
    CHECK(fs::exists(home / "a.bin"));
    CHECK(fs::exists(user_home / "a.bin"));

    const fs::path mount_point = tmp.path() / "mnt";
    fs::create_directory(mount_point);
    AXDS_SKIP_IF(::mount("tmpfs", mount_point.c_str(), "tmpfs", 0, "size=1m") != 0,
                 "mounting is not permitted here (needs root): the mount-point case is not tested");
    write_file(mount_point / "data.bin", "on the mounted filesystem");
    CHECK_THROWS_MATCHES(delete_tree(mount_point), axds::value_error, message_contains("mount point"));
    CHECK(read_file(mount_point / "data.bin") == "on the mounted filesystem");
    ::umount2(mount_point.c_str(), MNT_DETACH);
}

TEST_CASE("delete refuses the filesystem root (tried inside a chroot, so a regression cannot reach the real one)",
          "[fs][safety]") {
    AXDS_SKIP_IF(!axds::test::running_as_root(), "chroot needs root: the '/' case is not tested");
    const temp_dir jail;
    write_file(jail.path() / "precious.bin", "irreplaceable");
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::alarm(20);  // a regression that starts deleting must not hang the suite either
        if (::chroot(jail.path().c_str()) != 0 || ::chdir("/") != 0) {
            ::_exit(3);
        }
        int status = 1;  // not refused
        for (const char* root : {"/", "//", "/."}) {
            try {
                axds::block_on(axds::async_delete_directory(root));
                status = 1;
            } catch (const axds::value_error& e) {
                status = std::string(e.what()).find("root of the filesystem") != std::string::npos ? 0 : 2;
            } catch (...) {
                status = 2;
            }
            if (status != 0) {
                break;
            }
        }
        ::_exit(status);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(read_file(jail.path() / "precious.bin") == "irreplaceable");
}

TEST_CASE("transfer never writes through a destination file that is a hard link or a symlink", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = make_tree(tmp.path() / "src");
    const auto before = snapshot(source);
    // A `cp -al` copy shares every inode with the source; a symlink in the destination points at an outside file.
    const fs::path destination = tmp.path() / "dst";
    fs::copy(source, destination, fs::copy_options::recursive | fs::copy_options::create_hard_links);
    write_file(tmp.path() / "outside.txt", "not part of any transfer");
    fs::remove(destination / "sub" / "b.txt");
    fs::create_symlink(tmp.path() / "outside.txt", destination / "sub" / "b.txt");
    write_file(source / "a.bin", std::string(5000, 'z'));  // the source changes after the hard-link copy
    auto expected = before;
    expected["a.bin"] = std::string(5000, 'z');
    transfer(source, destination, {.verify_integrity = true});
    auto source_after = snapshot(source);
    source_after.erase("ax_checksum.txt");
    CHECK(source_after == expected);
    CHECK(read_file(tmp.path() / "outside.txt") == "not part of any transfer");
    auto copied = snapshot(destination);
    copied.erase("ax_checksum.txt");
    CHECK(copied == expected);
    CHECK(fs::is_regular_file(fs::symlink_status(destination / "sub" / "b.txt")));
}

TEST_CASE("saving ax_checksum.txt never writes through a symlink or hard link of that name", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path directory = make_tree(tmp.path() / "session");
    write_file(tmp.path() / "precious.txt", "someone else's file");
    const bool hard = GENERATE(false, true);
    if (hard) {
        fs::create_hard_link(tmp.path() / "precious.txt", directory / "ax_checksum.txt");
    } else {
        fs::create_symlink(tmp.path() / "precious.txt", directory / "ax_checksum.txt");
    }
    const std::string digest = axds::block_on(axds::async_calculate_directory_checksum(directory, {}));
    CHECK(read_file(tmp.path() / "precious.txt") == "someone else's file");
    CHECK(fs::is_regular_file(fs::symlink_status(directory / "ax_checksum.txt")));
    CHECK(read_file(directory / "ax_checksum.txt") == digest);
}

TEST_CASE("transfer refuses a destination whose directories lead back into the source or out of the destination",
          "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = make_tree(tmp.path() / "S");
    const auto before = snapshot(source);
    write_file(tmp.path() / "precious" / "c.txt", "gold");
    SECTION("a symlink to a source directory where the source has a directory") {
        fs::create_directories(tmp.path() / "D");
        fs::create_directory_symlink(source / "sub", tmp.path() / "D" / "sub");
        CHECK_THROWS_MATCHES(transfer(source, tmp.path() / "D", {.verify_integrity = true, .remove_source = true}),
                             axds::value_error, message_contains("symbolic link where the source has a directory"));
    }
    SECTION("a symlink to an outside directory") {
        fs::create_directories(tmp.path() / "D" / "sub");
        fs::create_directory_symlink(tmp.path() / "precious", tmp.path() / "D" / "sub" / "deep");
        CHECK_THROWS_MATCHES(transfer(source, tmp.path() / "D"), axds::value_error,
                             message_contains("never written through links"));
    }
    SECTION("the source bind-mounted inside the destination") {
        fs::create_directories(tmp.path() / "D" / "view");
        AXDS_SKIP_IF(::mount(source.c_str(), (tmp.path() / "D" / "view").c_str(), nullptr, MS_BIND, nullptr) != 0,
                     "bind mounts are not permitted here (needs root): not tested");
        CHECK_THROWS_MATCHES(transfer(source, tmp.path() / "D", {.reset_dirty_destination = true}), axds::value_error,
                             message_contains("directory of the source itself"));
        ::umount2((tmp.path() / "D" / "view").c_str(), MNT_DETACH);
    }
    SECTION("a source subdirectory bind-mounted where the destination's copy of it goes") {
        fs::create_directories(tmp.path() / "D" / "sub");
        AXDS_SKIP_IF(
            ::mount((source / "sub").c_str(), (tmp.path() / "D" / "sub").c_str(), nullptr, MS_BIND, nullptr) != 0,
            "bind mounts are not permitted here (needs root): not tested");
        CHECK_THROWS_MATCHES(transfer(source, tmp.path() / "D", {.verify_integrity = true, .remove_source = true}),
                             axds::value_error, message_contains("directory of the source itself"));
        ::umount2((tmp.path() / "D" / "sub").c_str(), MNT_DETACH);
    }
    CHECK(snapshot(source) == before);
    CHECK(read_file(tmp.path() / "precious" / "c.txt") == "gold");
}

TEST_CASE("moving a source with hard links removes every link without a false 'changed' warning", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = make_tree(tmp.path() / "S");
    fs::create_hard_link(source / "a.bin", source / "sub" / "a_again.bin");
    const axds::scoped_warning_capture warnings;
    const auto report = transfer(source, tmp.path() / "D", {.verify_integrity = true, .remove_source = true});
    CHECK(report.source_files_kept.empty());
    CHECK_FALSE(fs::exists(source));
    CHECK(warnings.messages().empty());
    CHECK(read_file(tmp.path() / "D" / "sub" / "a_again.bin") == std::string(5000, 'a'));
}

TEST_CASE("delete refuses a tree with a mount point inside, and empties nothing mounted there", "[fs][safety]") {
    const temp_dir tmp;
    write_file(tmp.path() / "precious" / "gold.txt", "gold");
    const fs::path victim = make_tree(tmp.path() / "victim");
    fs::create_directories(victim / "sub" / "bind");
    AXDS_SKIP_IF(
        ::mount((tmp.path() / "precious").c_str(), (victim / "sub" / "bind").c_str(), nullptr, MS_BIND, nullptr) != 0,
        "bind mounts are not permitted here (needs root): not tested");
    CHECK_THROWS_MATCHES(delete_tree(victim), axds::value_error,
                         message_contains("mount point") && message_contains("Nothing was deleted"));
    CHECK(read_file(tmp.path() / "precious" / "gold.txt") == "gold");
    CHECK(fs::exists(victim / "a.bin"));
    ::umount2((victim / "sub" / "bind").c_str(), MNT_DETACH);
    delete_tree(victim);
    CHECK_FALSE(fs::exists(victim));
    CHECK(read_file(tmp.path() / "precious" / "gold.txt") == "gold");
}

namespace {

void delete_with_hooks(const fs::path& directory, axds::detail::delete_hooks hooks) {
    axds::block_on(axds::detail::async_delete_directory(directory, {}, std::move(hooks)));
}

}  // namespace

// A hostile-user run emptied a directory outside the tree in 5 of 11 tries: the walk checked a subdirectory with
// lstat, then opened it by its path, following the symlink another process had put in its place meanwhile.
TEST_CASE("delete never follows a directory that is swapped for a symlink while it runs", "[fs][safety]") {
    const temp_dir tmp;
    write_file(tmp.path() / "precious" / "gold.txt", "gold");
    write_file(tmp.path() / "precious" / "vault" / "silver.txt", "silver");
    const auto precious = snapshot(tmp.path() / "precious");
    const fs::path victim = tmp.path() / "victim";
    for (int d = 0; d < 6; ++d) {
        for (int f = 0; f < 20; ++f) {
            write_file(victim / fmt::format("d{}", d) / "inner" / fmt::format("f{}.bin", f), "x");
        }
    }
    // Deterministic: right before the walk opens them, a top-level subtree and a nested directory are moved away
    // and replaced by links to `precious`.
    const std::string swap_top = (victim / "d2").string();
    const std::string swap_nested = (victim / "d4" / "inner").string();
    int moved = 0;
    delete_with_hooks(victim, {.before_open = [&](const fs::path& directory) {
                          if (directory == swap_top || directory == swap_nested) {
                              fs::rename(directory, tmp.path() / fmt::format("moved{}", moved++));
                              fs::create_directory_symlink(tmp.path() / "precious", directory);
                          }
                      }});
    CHECK(moved == 2);
    CHECK_FALSE(fs::exists(fs::symlink_status(victim)));
    CHECK(snapshot(tmp.path() / "precious") == precious);
    CHECK(fs::exists(tmp.path() / "moved0"));  // moved out of the tree before it was reached: not deleted
    // And racing for real: another thread keeps swapping subtrees for links while the delete runs.
    for (int round = 0; round < 8; ++round) {
        for (int d = 0; d < 8; ++d) {
            for (int f = 0; f < 30; ++f) {
                write_file(victim / fmt::format("s{}", d) / "a" / "b" / fmt::format("f{}.bin", f), "x");
            }
        }
        std::atomic<bool> stop{false};
        std::thread swapper([&] {
            for (int i = 0; !stop.load(); ++i) {
                const fs::path target = victim / fmt::format("s{}", 1 + (i % 4) * 2);
                std::error_code ec;
                fs::remove_all(target, ec);
                fs::create_directory_symlink(tmp.path() / "precious", target, ec);
            }
        });
        try {
            delete_tree(victim);
        } catch (const std::exception&) {
            // the tree changing under it may stop the delete with an error; what matters is what it touched
        }
        stop = true;
        swapper.join();
        INFO("round " << round);
        REQUIRE(snapshot(tmp.path() / "precious") == precious);
        std::error_code ec;
        fs::remove_all(victim, ec);
    }
}

// The walk climbs back up through "..": a directory moved out of the tree while the walk is inside it would lead
// the walk out of the tree too. The delete stops there, with an error naming the tree, and touches nothing outside.
TEST_CASE("delete stops when a directory it is inside is moved out of the tree", "[fs][safety]") {
    const temp_dir tmp;
    write_file(tmp.path() / "outside" / "gold.txt", "gold");
    const fs::path victim = tmp.path() / "victim";
    write_file(victim / "a" / "b" / "c" / "f.bin", "x");
    write_file(victim / "z" / "g.bin", "x");
    const fs::path moving = victim / "a" / "b";
    CHECK_THROWS_MATCHES(delete_with_hooks(victim, {.before_open =
                                                        [&](const fs::path& directory) {
                                                            if (directory == moving / "c") {
                                                                fs::rename(moving, tmp.path() / "outside" / "b");
                                                            }
                                                        }}),
                         axds::runtime_error, message_contains("moved elsewhere while it was deleted"));
    CHECK(read_file(tmp.path() / "outside" / "gold.txt") == "gold");
    CHECK(fs::exists(tmp.path() / "outside"));
}

TEST_CASE("delete refuses a mount that appears inside the tree while it runs", "[fs][safety]") {
    const temp_dir tmp;
    write_file(tmp.path() / "precious" / "gold.txt", "gold");
    const fs::path victim = make_tree(tmp.path() / "victim");
    fs::create_directories(victim / "sub" / "later");
    const fs::path mount_point = victim / "sub" / "later";
    bool mounted = false;
    bool refused = false;
    try {
        delete_with_hooks(victim, {.before_open = [&](const fs::path& directory) {
                              if (directory == mount_point) {
                                  mounted = ::mount((tmp.path() / "precious").c_str(), mount_point.c_str(), nullptr,
                                                    MS_BIND, nullptr) == 0;
                              }
                          }});
    } catch (const axds::value_error& e) {
        refused = std::string(e.what()).find("mounted inside the tree") != std::string::npos;
    }
    if (mounted) {
        ::umount2(mount_point.c_str(), MNT_DETACH);
    }
    AXDS_SKIP_IF(!mounted, "bind mounts are not permitted here (needs root): not tested");
    CHECK(refused);
    CHECK(read_file(tmp.path() / "precious" / "gold.txt") == "gold");
}

// The walk used paths from the root: past PATH_MAX (4096 bytes) every step failed with "File name too long", where
// rm -rf succeeds.
TEST_CASE("delete removes a tree whose paths are longer than PATH_MAX", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path victim = tmp.path() / "deep";
    fs::create_directories(victim);
    const std::string name(200, 'n');
    for (int branch = 0; branch < 2; ++branch) {
        int fd = ::open(victim.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        REQUIRE(fd >= 0);
        const std::string top = fmt::format("b{}", branch);
        for (int level = 0; level < 60; ++level) {  // ~12 KB of path
            const std::string here = level == 0 ? top : name;
            REQUIRE(::mkdirat(fd, here.c_str(), 0755) == 0);
            const int next = ::openat(fd, here.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            REQUIRE(next >= 0);
            const int file = ::openat(next, "data.bin", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
            REQUIRE(file >= 0);
            ::close(file);
            ::close(fd);
            fd = next;
        }
        ::close(fd);
    }
    delete_tree(victim);
    CHECK_FALSE(fs::exists(victim));
}

// Source files named like the temporaries of other source files (`.NAME.axds-partial`, and the `.1` the next one
// would take): each copy's temporary must avoid every source file's name, or two copies write through each other
// (a hostile-user run lost 34-40 of 80 such files, and a move then removed their only originals).
TEST_CASE("source files named like the temporaries of other files are copied and moved intact", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = tmp.path() / "src";
    for (std::size_t i = 0; i < 40; ++i) {
        const std::string name = fmt::format("f{:02}", i);
        write_file(source / "d" / name, std::string(30000 + i, static_cast<char>('a' + i % 26)));
        write_file(source / "d" / fmt::format(".{}.axds-partial", name), std::string(20000 + i, 'P'));
    }
    write_file(source / "d" / ".f00.axds-partial.1", "the name the first alternative would take");
    write_file(source / ".ax_checksum.txt.axds-partial", "named like the checksum file's temporary");
    const auto original = snapshot(source);
    for (const bool verify : {false, true}) {
        const fs::path destination = tmp.path() / fmt::format("copy-{}", verify);
        transfer(source, destination, {.workers = 4, .verify_integrity = verify});
        auto copied = snapshot(destination);
        copied.erase("ax_checksum.txt");
        CHECK(copied == original);
        (void)fs::remove(source / "ax_checksum.txt");
    }
    const fs::path moved = tmp.path() / "moved";
    const auto report = transfer(source, moved, {.workers = 4, .verify_integrity = true, .remove_source = true});
    CHECK(report.source_files_removed == original.size() + 1);  // and ax_checksum.txt
    auto copied = snapshot(moved);
    copied.erase("ax_checksum.txt");
    CHECK(copied == original);
}

// Found by a hostile-user run: a 240- or 241-byte name N gets the plain temporary `.N.axds-partial` (254-255 bytes);
// a source file of that very name pushed it to `.N.axds-partial.1` (256-257 bytes: "File name too long") on every
// run, and a source *directory* named like a temporary was not avoided at all ("Is a directory").
TEST_CASE("temporaries avoid source entries of their name without exceeding the name limit", "[fs][safety]") {
    const temp_dir tmp;
    const fs::path source = tmp.path() / "src";
    for (const std::size_t length : {std::size_t{239}, std::size_t{240}, std::size_t{241}}) {  // 242: hashed form
        const std::string name(length, static_cast<char>('a' + length % 26));
        write_file(source / name, fmt::format("data of {}", length));
        write_file(source / fmt::format(".{}.axds-partial", name),
                   fmt::format("named like the temporary of {}", length));
    }
    write_file(source / "b.bin", "b");
    write_file(source / ".b.bin.axds-partial" / "inside", "a directory named like b.bin's temporary");
    write_file(source / ".ax_checksum.txt.axds-partial" / "inside", "a directory named like the checksum's");
    const auto original = snapshot(source);
    for (const bool verify : {false, true}) {
        const fs::path destination = tmp.path() / fmt::format("copy-{}", verify);
        REQUIRE_NOTHROW(transfer(source, destination, {.verify_integrity = verify}));
        auto copied = snapshot(destination);
        copied.erase("ax_checksum.txt");
        CHECK(copied == original);
        (void)fs::remove(source / "ax_checksum.txt");
    }
}

// A move refused because some source files have no identical copy in the destination never deletes anything there,
// not even what looks like a leftover temporary (it removed them before deciding, though the plan promised not to).
TEST_CASE("a refused move leaves a destination file named like a temporary untouched", "[fs][safety]") {
    const temp_dir tmp;
    write_file(tmp.path() / "src" / "f", "source");
    write_file(tmp.path() / "dst" / ".f.axds-partial", "user data");
    write_file(tmp.path() / "dst" / "sub" / "unrelated", "x");
    CHECK_THROWS_AS(transfer(tmp.path() / "src", tmp.path() / "dst", {.remove_source = true}), axds::runtime_error);
    CHECK(read_file(tmp.path() / "dst" / ".f.axds-partial") == "user data");
    CHECK(read_file(tmp.path() / "src" / "f") == "source");
}

TEST_CASE("a refused transfer leaves a destination file named like a temporary untouched", "[fs][safety]") {
    const temp_dir tmp;
    write_file(tmp.path() / "src" / "f", "source");
    write_file(tmp.path() / "dst" / ".f.axds-partial", "user data");
    write_file(tmp.path() / "dst" / "unrelated", "x");
    CHECK_THROWS_MATCHES(transfer(tmp.path() / "src", tmp.path() / "dst"), axds::runtime_error,
                         message_contains("nothing was deleted"));
    CHECK(read_file(tmp.path() / "dst" / ".f.axds-partial") == "user data");
    // Going ahead (the stray removed by the user) then removes the leftover as a killed run's temporary.
    fs::remove(tmp.path() / "dst" / "unrelated");
    transfer(tmp.path() / "src", tmp.path() / "dst");
    CHECK_FALSE(fs::exists(tmp.path() / "dst" / ".f.axds-partial"));
    CHECK(read_file(tmp.path() / "dst" / "f") == "source");
}
