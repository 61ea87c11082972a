#include <axds/fs/transfer.hpp>

#include "detail/fault_hooks.hpp"
#include "fs/file_digest.hpp"
#include "support/matchers.hpp"
#include "support/temp_dir.hpp"

#include <axds/core/runtime.hpp>
#include <axds/error.hpp>
#include <axds/fs/checksum.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace fs = std::filesystem;
using axds::transfer_options;
using axds::test::message_contains;
using axds::test::read_file;
using axds::test::temp_dir;
using axds::test::write_file;

namespace {

void transfer(const fs::path& from, const fs::path& to, transfer_options options = {},
              axds::detail::transfer_hooks hooks = {}) {
    axds::block_on(axds::detail::async_transfer_directory(from, to, std::move(options), std::move(hooks)));
}

std::string digest(const fs::path& directory) {
    return axds::block_on(axds::async_calculate_directory_checksum(directory, {.save_checksum = false}));
}

fs::path make_source(const fs::path& root) {
    write_file(root / "a.txt", "alpha");
    write_file(root / "sub" / "b.bin", std::string(100000, 'b'));
    write_file(root / "sub" / "deep" / "c.txt", "gamma");
    for (int i = 0; i < 70; ++i) {
        write_file(root / "many" / fmt::format("f{}.txt", i), std::to_string(i));
    }
    fs::create_directories(root / "empty" / "emptier");
    return root;
}

/// Runs `operation` on `io` with `cancel`'s slot bound; it must end with an os_error of operation_aborted, whose
/// message is returned.
template <typename Operation>
std::string cancelled_with(asio::io_context& io, asio::cancellation_signal& cancel, Operation operation) {
    std::exception_ptr outcome;
    asio::co_spawn(
        io, std::move(operation),
        asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, const auto&) { outcome = e; }));
    io.run();
    REQUIRE(outcome);
    try {
        std::rethrow_exception(outcome);
    } catch (const axds::os_error& e) {
        CHECK(e.code() == asio::error::operation_aborted);
        return std::string(e.what());
    }
    return std::string();
}

}  // namespace

TEST_CASE("transfer across filesystems (no in-kernel copy) moves large and small files intact", "[fs][io_uring]") {
    // /dev/shm (tmpfs) to the temporary directory: copy_file_range refuses (EXDEV) when they are different
    // filesystems, so content goes through buffers: io_uring for files of 8 MiB and more, pread/pwrite for the rest.
    struct stat shm {};

    const temp_dir tmp;

    struct stat here {};

    if (::stat("/dev/shm", &shm) != 0 || ::stat(tmp.path().c_str(), &here) != 0 || shm.st_dev == here.st_dev) {
        WARN("/dev/shm is missing or on the same filesystem as the temporary directory: nothing to test");
        return;
    }
    const fs::path source = fs::path("/dev/shm") / fmt::format("axds-xfs-{}", ::getpid());
    fs::remove_all(source);
    std::string large((std::size_t{9} << 20) + 12345, '\0');
    for (std::size_t i = 0; i < large.size(); ++i) {
        large[i] = static_cast<char>((i * 2654435761U) >> 13U);
    }
    write_file(source / "large.bin", large);
    write_file(source / "sub" / "small.txt", "small");
    fs::permissions(source / "large.bin", fs::perms::owner_read | fs::perms::group_read);
    transfer(source, tmp.path() / "dest", {.workers = 2, .verify_integrity = true});
    CHECK(read_file(tmp.path() / "dest" / "large.bin") == large);
    CHECK(read_file(tmp.path() / "dest" / "sub" / "small.txt") == "small");
    CHECK((fs::status(tmp.path() / "dest" / "large.bin").permissions() & fs::perms::all) ==
          (fs::perms::owner_read | fs::perms::group_read));
    transfer(source, tmp.path() / "plain", {.workers = 1});  // unverified: the io_uring pipeline itself
    CHECK(read_file(tmp.path() / "plain" / "large.bin") == large);
    fs::remove_all(source);
}

// upstream: transfer_tools_test.py::test_transfer_basic / _threads / _mtime / _empty_dirs
TEST_CASE("transfer copies the tree with empty directories, modes and times, at any thread count", "[fs]") {
    const temp_dir tmp;
    const fs::path source = make_source(tmp.path() / "source");
    ::chmod((source / "a.txt").c_str(), 0640);
    const auto old_time = fs::last_write_time(source / "a.txt") - std::chrono::hours(48);
    fs::last_write_time(source / "a.txt", old_time);
    for (const int threads : {1, 4, 0}) {  // 0 = automatic (the Python test's -1; negative counts are refused here)
        const fs::path destination = tmp.path() / fmt::format("dest.{}", threads + 1);  // dotted name: a directory
        std::size_t reports = 0;
        transfer(source, destination, {.workers = threads, .progress = [&](const axds::transfer_progress& p) {
                                           ++reports;
                                           CHECK(p.files_done <= p.files_total);
                                       }});
        CHECK(reports >= 1);
        CHECK(fs::is_directory(destination / "empty" / "emptier"));
        CHECK(read_file(destination / "sub" / "deep" / "c.txt") == "gamma");
        CHECK(digest(destination) == digest(source));
        CHECK((fs::status(destination / "a.txt").permissions() & fs::perms::all) ==
              (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read));
        CHECK(fs::last_write_time(destination / "a.txt") == old_time);
    }
    CHECK(fs::exists(source / "a.txt"));  // the source is kept by default
    CHECK_FALSE(fs::exists(source / "ax_checksum.txt"));
}

// Copies whose bits the umask keeps are created with them (no fchmod); the others are chmodded. The umask is read
// per transfer: one changed between two transfers of the same process must not leave stale bits.
TEST_CASE("each copy gets its source's permission bits whatever the umask and after the umask changed", "[fs]") {
    const temp_dir tmp;
    const fs::path source = tmp.path() / "source";
    const std::vector<::mode_t> modes{0644, 0600, 0755, 0640, 0444, 0666, 0777, 0604};
    for (std::size_t i = 0; i < modes.size(); ++i) {
        const fs::path file = source / fmt::format("f{}.bin", i);
        write_file(file, std::string(i * 1000 + 1, 'x'));
        REQUIRE(::chmod(file.c_str(), modes[i]) == 0);
    }

    struct umask_restorer {  // a failed REQUIRE must not leave the other tests with this test's umask
        ::mode_t saved = ::umask(022);

        ~umask_restorer() { ::umask(saved); }
    } restore;

    for (const ::mode_t mask : {::mode_t{022}, ::mode_t{077}, ::mode_t{0}, ::mode_t{027}}) {
        ::umask(mask);
        for (const bool verify : {false, true}) {
            const fs::path destination = tmp.path() / fmt::format("dest-{:o}-{}", mask, verify);
            transfer(source, destination, {.workers = 2, .verify_integrity = verify});
            for (std::size_t i = 0; i < modes.size(); ++i) {
                struct stat st {};

                REQUIRE(::stat((destination / fmt::format("f{}.bin", i)).c_str(), &st) == 0);
                INFO("umask " << std::oct << mask << ", source mode " << modes[i] << ", verified " << verify);
                CHECK((st.st_mode & 07777) == modes[i]);
            }
            (void)fs::remove(source / "ax_checksum.txt");
        }
    }
}

// upstream: transfer_tools_test.py::test_transfer_integrity_* / test_transfer_remove_source
TEST_CASE("verified transfer creates or reuses the source checksum and removes the source only after it", "[fs]") {
    const temp_dir tmp;
    const fs::path source = make_source(tmp.path() / "source");
    transfer(source, tmp.path() / "first", {.workers = 2, .verify_integrity = true});
    const std::string saved = read_file(source / "ax_checksum.txt");
    CHECK(saved.size() == 32);
    CHECK(saved == digest(source));  // hashed while copying: the same digest calculate_directory_checksum gives
    CHECK(read_file(tmp.path() / "first" / "ax_checksum.txt") == saved);
    transfer(source, tmp.path() / "second", {.verify_integrity = true, .remove_source = true});  // reused
    CHECK_FALSE(fs::exists(source));
    CHECK(digest(tmp.path() / "second") == saved);
}

TEST_CASE("the checksum hashed during a verified transfer leaves nested ax_checksum.txt files out, as §9.1 does",
          "[fs]") {
    const temp_dir tmp;
    const fs::path source = make_source(tmp.path() / "source");
    write_file(source / "sub" / "ax_checksum.txt", "an old checksum of a subdirectory");
    write_file(source / "large.bin", std::string((std::size_t{3} << 20) + 17, 'L'));  // several copy buffers
    transfer(source, tmp.path() / "dest", {.workers = 3, .verify_integrity = true});
    CHECK(read_file(source / "ax_checksum.txt") == digest(source));
    CHECK(read_file(tmp.path() / "dest" / "sub" / "ax_checksum.txt") == "an old checksum of a subdirectory");
    CHECK(digest(tmp.path() / "dest") == digest(source));
}

// upstream: transfer_tools_test.py::test_transfer_corruption_detected / test_stale_checksum_message
TEST_CASE("a corrupted or stale transfer fails verification with the right cause and keeps the source", "[fs]") {
    const temp_dir tmp;
    const fs::path source = make_source(tmp.path() / "a" / "b" / "c" / "d" / "e" / "f" / "source");
    const axds::detail::transfer_hooks corrupt{.after_copy = [](const fs::path& destination) {
        std::string content = read_file(destination / "sub" / "b.bin");
        content[500] = 'X';  // one flipped byte
        write_file(destination / "sub" / "b.bin", content);
    }};
    const fs::path destination = tmp.path() / "z" / "y" / "x" / "w" / "v" / "u" / "dest";
    CHECK_THROWS_MATCHES(transfer(source, destination, {.verify_integrity = true, .remove_source = true}, corrupt),
                         axds::runtime_error,
                         message_contains("Unable to verify the integrity of the directory transferred from "
                                          "b/c/d/e/f/source to y/x/w/v/u/dest.") &&
                             message_contains("This indicates that the data was corrupted in transmission.") &&
                             message_contains("The destination files that differ from the source as it was read: "
                                              "sub/b.bin."));
    CHECK(fs::exists(source / "a.txt"));  // never removed after a failure
    // A path of six parts or fewer, its root `/` counted (`Path(*parts[-6:])`), is shown whole, from its root.
    const fs::path near = tmp.path() / "near";
    const fs::path flat = make_source(tmp.path() / "flat");
    if (std::distance(near.begin(), near.end()) <= 6) {
        CHECK_THROWS_MATCHES(transfer(flat, near, {.verify_integrity = true}, corrupt), axds::runtime_error,
                             message_contains(fmt::format("transferred from {} to {}.", flat.string(), near.string())));
    }
    write_file(source / "a.txt", "changed after the checksum was saved");
    try {
        transfer(source, tmp.path() / "stale", {.verify_integrity = true});
        FAIL("a stale checksum must not verify");
    } catch (const axds::runtime_error& e) {
        const std::string message = e.what();
        CHECK(message.find("predates the current contents of the source") != std::string::npos);
        CHECK(message.find("Remove that file") != std::string::npos);
    }
    CHECK(read_file(tmp.path() / "stale" / "a.txt") == "changed after the checksum was saved");  // all copied
    // Files named: one rewritten, one removed, one that appeared in the destination (pipelined read-backs too).
    fs::remove(source / "ax_checksum.txt");  // computed while copying: each file's source digest is known
    write_file(source / "big.bin", std::string(std::size_t{9} << 20, 'g'));
    const axds::detail::transfer_hooks several{.after_copy = [](const fs::path& copy) {
        write_file(copy / "a.txt", "ALPHA");
        fs::remove(copy / "many" / "f3.txt");
        write_file(copy / "many" / "stray.txt", "not from the source");
    }};
    CHECK_THROWS_MATCHES(transfer(source, tmp.path() / "several", {.verify_integrity = true}, several),
                         axds::runtime_error,
                         message_contains("The destination files that differ from the source as it was read: a.txt, "
                                          "many/f3.txt (missing), many/stray.txt (not in the source)."));
}

// Found by a hostile-user run: a source ax_checksum.txt that holds no checksum (empty after a crash, text, a
// directory) was reused, and the verification failed after the whole copy, blaming the data ("corrupted in
// transmission, or ... predates"). It is now refused before anything is written, saying what the file holds.
TEST_CASE("a verified transfer refuses a source ax_checksum.txt that holds no checksum before writing", "[fs]") {
    const temp_dir tmp;
    const fs::path source = tmp.path() / "source";
    write_file(source / "a.txt", "data");
    const fs::path checksum = source / "ax_checksum.txt";
    for (const std::string held : {"", "not-a-digest", "0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef"}) {
        INFO("'" << held << "'");
        write_file(checksum, held);
        CHECK_THROWS_MATCHES(transfer(source, tmp.path() / "dest", {.verify_integrity = true}), axds::value_error,
                             message_contains(checksum.string()) && message_contains(fmt::format("holds '{}'", held)) &&
                                 message_contains("Nothing was copied"));
        CHECK_FALSE(fs::exists(tmp.path() / "dest"));
    }
    fs::remove(checksum);
    fs::create_directory(checksum);
    CHECK_THROWS_MATCHES(transfer(source, tmp.path() / "dest", {.verify_integrity = true}), axds::value_error,
                         message_contains("is not a regular file"));
    CHECK_FALSE(fs::exists(tmp.path() / "dest"));
    fs::remove(checksum);
    CHECK_NOTHROW(transfer(source, tmp.path() / "dest", {.verify_integrity = true}));  // computed, saved, verified
    CHECK(read_file(tmp.path() / "dest" / "a.txt") == "data");
}

// upstream: transfer_tools_test.py (errors raised before anything is written)
TEST_CASE("transfer refuses missing, symlinked, link-holding and file-less sources before writing", "[fs]") {
    const temp_dir tmp;
    CHECK_THROWS_MATCHES(transfer(tmp.path() / "missing", tmp.path() / "d1"), axds::file_not_found_error,
                         message_contains(fmt::format("Unable to transfer the source directory {}, as it does not "
                                                      "exist.",
                                                      (tmp.path() / "missing").string())));
    CHECK_THROWS_MATCHES(transfer(tmp.path() / "missing", tmp.path() / "d1"), axds::file_not_found_error,
                         !message_contains("nothing is left to do"));  // no destination: no hint
    const fs::path real = make_source(tmp.path() / "real");
    fs::create_directory_symlink(real, tmp.path() / "link");
    CHECK_THROWS_MATCHES(transfer(tmp.path() / "link", tmp.path() / "d2"), axds::runtime_error,
                         message_contains("symbolic link rather than a real directory"));
    CHECK_FALSE(fs::exists(tmp.path() / "d2"));
    fs::create_symlink(real / "a.txt", real / "sub" / "alias");
    CHECK_THROWS_MATCHES(transfer(real, tmp.path() / "d3", {.verify_integrity = true}), axds::runtime_error,
                         message_contains("contains 1 symbolic link(s)") &&
                             message_contains("Resolve the following link(s) into real data before transferring the "
                                              "tree: sub/alias."));
    CHECK_FALSE(fs::exists(tmp.path() / "d3"));
    CHECK_FALSE(fs::exists(real / "ax_checksum.txt"));
    fs::create_directories(tmp.path() / "fileless" / "only_dirs");
    write_file(tmp.path() / "d4" / "stray.txt", "kept");
    CHECK_THROWS_MATCHES(transfer(tmp.path() / "fileless", tmp.path() / "d4", {.verify_integrity = true}),
                         axds::runtime_error, message_contains("holds no file the checksum can cover"));
    CHECK(read_file(tmp.path() / "d4" / "stray.txt") == "kept");
    transfer(tmp.path() / "fileless", tmp.path() / "d5");  // without verification: the empty tree is reproduced
    CHECK(fs::is_directory(tmp.path() / "d5" / "only_dirs"));
    // The same move run twice: the second run finds no source, and says where its data went.
    const fs::path moved = make_source(tmp.path() / "moved");
    transfer(moved, tmp.path() / "d6", {.verify_integrity = true, .remove_source = true});
    REQUIRE_FALSE(fs::exists(moved));
    CHECK_THROWS_MATCHES(transfer(moved, tmp.path() / "d6", {.verify_integrity = true, .remove_source = true}),
                         axds::file_not_found_error,
                         message_contains(fmt::format("as it does not exist. The destination {} exists: if a move "
                                                      "(remove_source) of this source into it finished earlier, the "
                                                      "data is there and nothing is left to do.",
                                                      (tmp.path() / "d6").string())));
    CHECK(read_file(tmp.path() / "d6" / "a.txt") == "alpha");
}

// upstream: transfer_tools_test.py::test_dirty_destination_*
TEST_CASE("a dirty destination is refused as found, or reset when asked", "[fs]") {
    const temp_dir tmp;
    const fs::path source = make_source(tmp.path() / "source");
    const fs::path destination = tmp.path() / "dest";
    write_file(destination / "stray.txt", "old");
    write_file(destination / "sub" / "nested_stray.bin", "old");
    write_file(destination / "a.txt", "will be overwritten");
    CHECK_THROWS_MATCHES(transfer(source, destination), axds::runtime_error,
                         message_contains("holds 2 file(s) the source does not account for") &&
                             message_contains("stray.txt, sub/nested_stray.bin"));
    CHECK(read_file(destination / "a.txt") == "will be overwritten");  // left as found
    transfer(source, destination, {.verify_integrity = true, .reset_dirty_destination = true});
    CHECK_FALSE(fs::exists(destination / "stray.txt"));
    CHECK_FALSE(fs::exists(destination / "sub" / "nested_stray.bin"));
    CHECK(read_file(destination / "a.txt") == "alpha");
}

TEST_CASE("a cancelled transfer stops between batches and leaves the source intact", "[fs]") {
    const temp_dir tmp;
    const fs::path source = make_source(tmp.path() / "source");
    asio::io_context io;
    asio::cancellation_signal cancel;
    std::size_t batches = 0;
    transfer_options options{.workers = 1, .remove_source = true};
    options.progress = [&](const axds::transfer_progress&) {
        ++batches;
        cancel.emit(asio::cancellation_type::terminal);  // after the first batch
    };
    const std::string what =
        cancelled_with(io, cancel, axds::async_transfer_directory(source, tmp.path() / "dest", std::move(options)));
    CHECK_THAT(what, Catch::Matchers::Contains("the source is intact"));
    CHECK(batches == 1);
    CHECK(digest(source) == digest(make_source(tmp.path() / "reference")));  // nothing removed or changed
    std::size_t copied = 0;
    for (const auto& entry : fs::recursive_directory_iterator(tmp.path() / "dest")) {
        copied += entry.is_regular_file() ? 1U : 0U;
    }
    CHECK(copied < 73);  // stopped early
}

TEST_CASE("transfer refuses a named pipe in the source instead of waiting on it forever", "[fs]") {
    const temp_dir tmp;
    const fs::path source = make_source(tmp.path() / "source");
    REQUIRE(::mkfifo((source / "sub" / "pipe").c_str(), 0600) == 0);
    // Refused before anything is written (found by a hostile-user run: the refusal came at the copy, after the
    // destination's directories were made); a socket too (it failed with "No such device or address").
    const int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string socket_path = (source / "sock").string();
    REQUIRE(socket_path.size() < sizeof address.sun_path);
    std::copy(socket_path.begin(), socket_path.end(), address.sun_path);
    REQUIRE(::bind(sock, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
    CHECK_THROWS_MATCHES(transfer(source, tmp.path() / "dest"), axds::runtime_error,
                         message_contains("2 special file(s)") && message_contains("sub/pipe (a named pipe)") &&
                             message_contains("sock (a socket)") && message_contains("Nothing was copied"));
    ::close(sock);
    CHECK_FALSE(fs::exists(tmp.path() / "dest"));
    CHECK(fs::exists(source / "sub" / "pipe"));

    // A tree of many (a device directory copied by mistake): the message names 20 and counts the others.
    for (int i = 0; i < 30; ++i) {
        REQUIRE(::mkfifo((source / fmt::format("pipe{:02}", i)).c_str(), 0600) == 0);
    }
    CHECK_THROWS_MATCHES(
        transfer(source, tmp.path() / "dest"), axds::runtime_error,
        message_contains("32 special file(s)") && message_contains(", and 12 more.") && !message_contains("pipe29"));
    CHECK_FALSE(fs::exists(tmp.path() / "dest"));
}

TEST_CASE("the checksum and the transfer walk their trees off the caller's executor thread", "[fs]") {
    // A library embedded in a server must not stall the server's event loop while it lists a large tree.
    const temp_dir tmp;
    const fs::path source = make_source(tmp.path() / "source");
    const std::thread::id caller = std::this_thread::get_id();  // block_on runs the executor on this thread
    std::thread::id walked_on;
    const auto checksum = axds::block_on(axds::detail::async_directory_checksum(
        source, {.save_checksum = false}, nullptr, [&] { walked_on = std::this_thread::get_id(); }));
    CHECK(checksum == digest(source));
    CHECK(walked_on != std::thread::id());
    CHECK(walked_on != caller);

    std::thread::id planned_on;
    transfer(source, tmp.path() / "destination", {}, {.after_plan = [&] {
                 planned_on = std::this_thread::get_id();
             }});
    CHECK(digest(tmp.path() / "destination") == checksum);
    CHECK(planned_on != std::thread::id());
    CHECK(planned_on != caller);
}

TEST_CASE("a Ctrl-C while the tree is walked stops the checksum and the transfer with their own message", "[fs]") {
    // The walks run on the CPU pool; a cancellation that arrives meanwhile must end the operation as a cancellation
    // between files does (a clear message, nothing written), not as a bare "co_await: Operation aborted".
    const temp_dir tmp;
    const fs::path source = make_source(tmp.path() / "source");
    {
        asio::io_context io;
        asio::cancellation_signal cancel;
        const auto during_walk = [&] {  // runs on the pool: the emit goes to the (idle) executor thread
            asio::post(io, [&] { cancel.emit(asio::cancellation_type::terminal); });
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        };
        const std::string what =
            cancelled_with(io, cancel, axds::detail::async_directory_checksum(source, {}, nullptr, during_walk));
        CHECK_THAT(what, Catch::Matchers::Contains("was cancelled after 0 of") &&
                             Catch::Matchers::Contains("nothing was saved"));
        CHECK_FALSE(fs::exists(source / "ax_checksum.txt"));
    }
    {
        asio::io_context io;
        asio::cancellation_signal cancel;
        axds::detail::transfer_hooks hooks{.after_plan = [&] {
            asio::post(io, [&] { cancel.emit(asio::cancellation_type::terminal); });
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }};
        const std::string what = cancelled_with(
            io, cancel, axds::detail::async_transfer_directory(source, tmp.path() / "dest", {}, std::move(hooks)));
        CHECK_THAT(what, Catch::Matchers::Contains("cancelled after 0 of") &&
                             Catch::Matchers::Contains("the source is intact"));
        CHECK(digest(source) == digest(make_source(tmp.path() / "reference")));
    }
}
