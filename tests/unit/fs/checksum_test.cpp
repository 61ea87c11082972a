#include <axds/fs/checksum.hpp>

#include "fs/file_digest.hpp"
#include "support/matchers.hpp"
#include "support/run_async.hpp"
#include "support/temp_dir.hpp"

#include <axds/core/runtime.hpp>
#include <axds/error.hpp>
#include <asio/error.hpp>
#include <asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <csignal>

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using axds::checksum_options;
using axds::test::message_contains;
using axds::test::temp_dir;
using axds::test::write_file;

namespace {

std::string checksum(const fs::path& directory, checksum_options options = {}) {
    return axds::block_on(axds::async_calculate_directory_checksum(directory, std::move(options)));
}

void make_tree(const fs::path& root, const std::map<std::string, std::string>& files) {
    fs::create_directories(root);
    for (const auto& [relative, content] : files) {
        write_file(root / relative, content);
    }
}

}  // namespace

// upstream: checksum_tools_test.py::test_calculate_directory_checksum_golden (and the spec §9.1 vectors)
TEST_CASE("directory checksum matches the Python library's golden digests", "[fs]") {
    const temp_dir tmp;
    const auto golden = [&](const std::string& name, const std::map<std::string, std::string>& files) {
        make_tree(tmp.path() / name, files);
        return checksum(tmp.path() / name, {.save_checksum = false});
    };
    CHECK(golden("flat", {{"data.txt", "payload"}, {".gitignore", "ignored"}, {"archive.tar.gz", "compressed"}}) ==
          "697ab93b2e5603ddc5ba5556a7f3954c");
    CHECK(golden("fixture", {{"file1.txt", "content1"},
                             {"file2.txt", "content2"},
                             {"subdir1/file3.txt", "content3"},
                             {"subdir1/file4.txt", "content4"},
                             {"subdir1/nested/file6.txt", "content6"},
                             {"subdir2/file5.txt", "content5"}}) == "af48d02069c6bd51c399ce70db341a5c");
    CHECK(golden("order", {{"B.txt", "z"}, {"a.txt", "y"}, {"a/b.txt", "x"}, {"é.txt", "u"}}) ==
          "b372303542ca00c51b6f967c6da5d8d4");
    CHECK(golden("empty", {{"empty.bin", ""}}) == "7d7249093a57ed368fa627e3b3b0ebc8");
    make_tree(tmp.path() / "link", {{"f", "1"}});
    fs::create_symlink("f", tmp.path() / "link" / "lnk");
    CHECK(checksum(tmp.path() / "link", {.save_checksum = false}) == "cb94919e5c3174fa3ea0d2fa8dd03834");
    // A nested ax_checksum.txt is excluded like the top-level one; empty directories never count.
    make_tree(tmp.path() / "nested", {{"f", "1"}, {"sub/ax_checksum.txt", "q"}});
    make_tree(tmp.path() / "plain", {{"f", "1"}});
    fs::create_directories(tmp.path() / "plain" / "sub");
    CHECK(checksum(tmp.path() / "nested", {.save_checksum = false}) ==
          checksum(tmp.path() / "plain", {.save_checksum = false}));
}

// upstream: checksum_tools_test.py (save, determinism, workers, exclusions, errors)
TEST_CASE("directory checksum saving, exclusions, worker counts and errors", "[fs]") {
    const temp_dir tmp;
    const fs::path root = tmp.path() / "data";
    make_tree(root, {{"a.bin", std::string(3 << 20, 'x')}, {"b/c.txt", "c"}, {"b/d/e.txt", "e"}});
    std::size_t reports = 0;
    checksum_options with_progress;
    with_progress.progress = [&](const axds::checksum_progress& p) {
        ++reports;
        CHECK(p.files_done <= p.files_total);
        CHECK(p.bytes_done <= p.bytes_total);
    };
    const std::string digest = checksum(root, std::move(with_progress));
    CHECK(reports >= 1);
    CHECK(digest.size() == 32);
    CHECK(digest.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(axds::test::read_file(root / "ax_checksum.txt") == digest);  // 32 bytes, no newline
    for (const int workers : {1, 2, 4, 0}) {
        CHECK(checksum(root, {.workers = workers}) == digest);  // its own ax_checksum.txt is excluded
    }
    write_file(root / "ax_checksum.txt", "stale");
    CHECK(checksum(root) == digest);
    CHECK(axds::test::read_file(root / "ax_checksum.txt") == digest);  // overwritten
    CHECK(checksum(root, {.save_checksum = false, .excluded_files = std::set<std::string>{}}) != digest);
    CHECK(checksum(root, {.save_checksum = false,
                          .excluded_files = std::set<std::string>{"c.txt", "ax_checksum.txt"}}) != digest);
    write_file(root / "b" / "c.txt", "changed");
    CHECK(checksum(root, {.save_checksum = false}) != digest);

    fs::create_directories(tmp.path() / "empty" / "sub");
    CHECK_THROWS_MATCHES(checksum(tmp.path() / "empty"), axds::value_error,
                         message_contains(fmt::format("Unable to calculate the checksum for the {} directory. The "
                                                      "directory must hold at least one file the checksum can cover, "
                                                      "but it holds none.",
                                                      (tmp.path() / "empty").string())));
    make_tree(tmp.path() / "only", {{"ax_checksum.txt", "x"}});
    CHECK_THROWS_AS(checksum(tmp.path() / "only"), axds::value_error);
    CHECK_THROWS_AS(checksum(tmp.path() / "missing"), axds::file_not_found_error);
    CHECK_THROWS_AS(checksum(root / "a.bin"), axds::not_a_directory_error);
    CHECK_THROWS_AS(checksum(root, {.workers = -1}), axds::value_error);
}

TEST_CASE("directory checksum equals an independent python3-xxhash computation on 50 random trees", "[fs][python]") {
    const temp_dir tmp;
    std::mt19937 rng(97);
    const std::vector<std::string> names{"a", "B", "é", "data.bin", "x y", "z-1", "ünï", "_", "0", "日本"};
    std::string ours;
    for (int t = 0; t < 50; ++t) {
        const fs::path root = tmp.path() / std::to_string(t);
        fs::create_directories(root);
        const int count = 1 + static_cast<int>(rng() % 8);
        for (int f = 0; f < count; ++f) {
            fs::path relative;
            const int depth = static_cast<int>(rng() % 3);
            for (int d = 0; d < depth; ++d) {
                relative /= names[rng() % names.size()] + "_d";
            }
            relative /= names[rng() % names.size()] + std::to_string(f);
            // Mostly small files, some of a few MiB, a few above 8 MiB (those stream through io_uring).
            std::size_t size = rng() % 2000;
            if (rng() % 10 == 0) {
                size = rng() % 3 == 0 ? (8U << 20) + rng() % (4U << 20) : rng() % (3U << 20);
            }
            std::string content(size, '\0');
            for (auto& c : content) {
                c = static_cast<char>(rng());
            }
            write_file(root / relative, content);
        }
        if (rng() % 3 == 0) {
            fs::create_directories(root / "empty_dir");
        }
        ours += checksum(root, {.save_checksum = false}) + "\n";
    }
    const auto result = axds::test::run_python(
        "import os, sys, xxhash\n"
        "root = sys.argv[1]\n"
        "for t in range(50):\n"
        "    base = os.path.join(root, str(t))\n"
        "    pairs = []\n"
        "    for d, _, files in os.walk(base):\n"
        "        for f in files:\n"
        "            full = os.path.join(d, f)\n"
        "            rel = os.path.relpath(full, base).encode('utf-8')\n"
        "            h = xxhash.xxh3_128(rel)\n"
        "            with open(full, 'rb') as fh:\n"
        "                h.update(fh.read())\n"
        "            pairs.append((rel, h.digest()))\n"
        "    pairs.sort()\n"
        "    total = xxhash.xxh3_128(b''.join(r + d for r, d in pairs))\n"
        "    print(total.hexdigest())\n",
        {tmp.path().string()});
    REQUIRE(result.exit_code == 0);
    CHECK(result.output == ours);
}

TEST_CASE("a cancelled checksum stops between files and saves nothing", "[fs]") {
    const temp_dir tmp;
    for (int i = 0; i < 300; ++i) {
        write_file(tmp.path() / fmt::format("d{}", i % 7) / fmt::format("f{:03}.bin", i), std::string(100, 'x'));
    }
    asio::io_context io;
    asio::cancellation_signal cancel;
    std::size_t updates = 0;
    checksum_options options{.workers = 1};
    options.progress = [&](const axds::checksum_progress&) {
        ++updates;
        cancel.emit(asio::cancellation_type::terminal);
    };
    const auto error =
        axds::test::run_cancellable(io, axds::async_calculate_directory_checksum(tmp.path(), options), cancel);
    REQUIRE(error);
    try {
        std::rethrow_exception(error);
    } catch (const axds::os_error& e) {
        CHECK(e.code() == asio::error::operation_aborted);
        CHECK_THAT(std::string(e.what()),
                   Catch::Matchers::Contains("cancelled after 64 of 300 files; nothing was saved"));
    }
    CHECK(updates == 1);
    CHECK_FALSE(fs::exists(tmp.path() / "ax_checksum.txt"));
}

// Found by reading the code (a hostile-user review): a stream of the rest of a large file that failed midway had
// already hashed its first chunks, and the plain reads that took over hashed them again: a wrong digest, silently.
TEST_CASE("a file's digest is the same when streaming its rest fails midway and plain reads take over", "[fs]") {
    const temp_dir tmp;
    std::string content(std::size_t{12} << 20, '\0');
    std::mt19937_64 random(7);
    for (auto& c : content) {
        c = static_cast<char>(random());
    }
    const fs::path file = tmp.path() / "big.bin";
    axds::test::write_file(file, content);
    const auto expected = axds::detail::file_digest_of(file.string(), "big.bin");
    const auto fails_after = [](std::size_t chunks) {
        return [chunks](int fd, std::uint64_t offset, std::uint64_t, const auto& observe) {
            std::vector<char> chunk(std::size_t{1} << 20);
            for (std::size_t i = 0; i < chunks; ++i) {
                const ssize_t n = ::pread(fd, chunk.data(), chunk.size(), static_cast<off_t>(offset));
                REQUIRE(n == static_cast<ssize_t>(chunk.size()));
                observe(std::span<const char>(chunk.data(), chunk.size()));
                offset += chunk.size();
            }
            return axds::sys::io_result{.bytes = 0, .error = std::make_error_code(std::errc::io_error)};
        };
    };
    for (const std::size_t chunks : {std::size_t{0}, std::size_t{1}, std::size_t{3}}) {
        const auto got = axds::detail::file_digest_of(file.string(), "big.bin", fails_after(chunks));
        CHECK(got.second == content.size());
        CHECK(got.first == expected.first);
    }
}

TEST_CASE("a listed file replaced by a FIFO is an error naming it, never a checksum that waits forever", "[fs]") {
    const temp_dir tmp;
    const fs::path fifo = tmp.path() / "was_a_file";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    CHECK_THROWS_MATCHES(
        axds::detail::file_digest_of(fifo.string(), "was_a_file"), axds::runtime_error,
        axds::test::message_contains(fifo.string()) && axds::test::message_contains("no longer a regular file"));
}

// Found by a hostile-user run: ax_checksum.txt was truncated and rewritten in place, so a save that failed part way
// (here a file size limit, as `ulimit -f 0` gives) left an empty file and the previous checksum was lost.
TEST_CASE("a checksum save that fails leaves the previous ax_checksum.txt as it was", "[fs]") {
    const temp_dir tmp;
    axds::test::write_file(tmp.path() / "data.bin", "data");
    axds::test::write_file(tmp.path() / "ax_checksum.txt", "0123456789abcdef0123456789abcdef");
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::signal(SIGXFSZ, SIG_IGN);  // the write fails with EFBIG instead of ending the process
        const rlimit none{0, 0};
        ::setrlimit(RLIMIT_FSIZE, &none);
        try {
            axds::detail::save_checksum_file(tmp.path(), "ffffffffffffffffffffffffffffffff");
        } catch (const axds::os_error& error) {
            ::_exit(std::string_view(error.what()).find("ffffffffffffffffffffffffffffffff") != std::string_view::npos
                        ? 0
                        : 2);  // the error names the digest that could not be saved
        }
        ::_exit(1);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(axds::test::read_file(tmp.path() / "ax_checksum.txt") == "0123456789abcdef0123456789abcdef");
    std::size_t entries = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator(tmp.path())) {
        ++entries;
    }
    CHECK(entries == 2);  // no temporary left behind
}

// ax_checksum.txt was renamed over the previous one without a sync: a power loss could then leave the new name with
// no data (an empty checksum, which every later verification fails). The data is now synced before the rename, and a
// sync that fails fails the save like a write that fails.
TEST_CASE("a checksum save syncs its data before the rename, and a failed sync keeps the previous file", "[fs]") {
    const temp_dir tmp;
    axds::test::write_file(tmp.path() / "ax_checksum.txt", "0123456789abcdef0123456789abcdef");
    std::vector<std::string> seen;  // what each synced file held (read through /proc: the fd is write-only)
    const auto record = [&](int fd) {
        seen.push_back(axds::test::read_file(fmt::format("/proc/self/fd/{}", fd)));
        CHECK(axds::test::read_file(tmp.path() / "ax_checksum.txt") == "0123456789abcdef0123456789abcdef");
        return 0;
    };
    axds::detail::save_checksum_file(tmp.path(), "ffffffffffffffffffffffffffffffff", record);
    CHECK(seen == std::vector<std::string>{"ffffffffffffffffffffffffffffffff"});
    CHECK(axds::test::read_file(tmp.path() / "ax_checksum.txt") == "ffffffffffffffffffffffffffffffff");

    const auto fail = [](int /*fd*/) {
        return EIO;
    };
    CHECK_THROWS_MATCHES(axds::detail::save_checksum_file(tmp.path(), "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", fail),
                         axds::os_error,
                         axds::test::message_contains((tmp.path() / "ax_checksum.txt").string()) &&
                             axds::test::message_contains("eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"));
    CHECK(axds::test::read_file(tmp.path() / "ax_checksum.txt") == "ffffffffffffffffffffffffffffffff");
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(tmp.path())) {
        names.push_back(entry.path().filename().string());
    }
    CHECK(names == std::vector<std::string>{"ax_checksum.txt"});  // no temporary left behind
}

// Found by review: a save killed part way (kill -9, a power loss, here SIGXFSZ's default action at the write) left
// its named temporary file in the directory, and every later checksum of the directory included it.
TEST_CASE("a checksum save killed part way leaves no file behind", "[fs]") {
    const temp_dir tmp;
    axds::test::write_file(tmp.path() / "data.bin", "data");
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::signal(SIGXFSZ, SIG_DFL);  // the write of the digest ends the process, as a kill at that instant would
        const rlimit none{0, 0};
        ::setrlimit(RLIMIT_FSIZE, &none);
        try {
            axds::detail::save_checksum_file(tmp.path(), "ffffffffffffffffffffffffffffffff");
        } catch (...) {
        }
        ::_exit(1);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGXFSZ);
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(tmp.path())) {
        names.push_back(entry.path().filename().string());
    }
    CHECK(names == std::vector<std::string>{"data.bin"});
}
