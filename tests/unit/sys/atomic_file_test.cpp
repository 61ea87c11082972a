// sys::atomic_file and its users (the YAML writer, npz_writer): a failed replacement leaves the old file as it was
// and no temporary file behind. Writes fail for real: ENOSPC on a tiny tmpfs (root only) and EFBIG under a file size
// limit (RLIMIT_FSIZE, any user).
#include "sys/atomic_file.hpp"
#include "config/yaml_files.hpp"

#include "support/temp_dir.hpp"
#include "support/tmpfs_mount.hpp"

#include <axds/config/yaml_config.hpp>
#include <axds/error.hpp>
#include <axds/npy/npz_archive.hpp>
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cerrno>
#include <csignal>
#include <filesystem>
#include <string>
#include <vector>

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;
using axds::sys::atomic_file;
using axds::sys::replace_step;

namespace {

std::string test_name(std::string_view file_name, std::uint64_t random) {
    return fmt::format(".{}.{:016x}.test", file_name, random);
}

std::vector<std::string> names_in(const fs::path& directory) {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(directory)) {
        names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
}

/// Files written by this process may not grow past `bytes` for the guard's lifetime (writes past it fail with
/// EFBIG; SIGXFSZ is ignored meanwhile).
class file_size_limit {
public:
    explicit file_size_limit(rlim_t bytes) {
        REQUIRE(::getrlimit(RLIMIT_FSIZE, &previous_) == 0);
        previous_handler_ = std::signal(SIGXFSZ, SIG_IGN);
        rlimit limit = previous_;
        limit.rlim_cur = bytes;
        REQUIRE(::setrlimit(RLIMIT_FSIZE, &limit) == 0);
    }

    file_size_limit(const file_size_limit&) = delete;
    file_size_limit& operator=(const file_size_limit&) = delete;

    ~file_size_limit() {
        ::setrlimit(RLIMIT_FSIZE, &previous_);
        std::signal(SIGXFSZ, previous_handler_);
    }

private:
    rlimit previous_{};
    void (*previous_handler_)(int) = nullptr;
};

/// write_yaml_text of `size` bytes over an existing "old: 1" file must fail with `expected_errno`, leaving it.
void check_failed_yaml_write_keeps_old(const fs::path& directory, std::size_t size, int expected_errno) {
    const fs::path file = directory / "config.yaml";
    axds::test::write_file(file, "old: 1\n");
    const std::string text = "key: " + std::string(size, 'x') + "\n";
    try {
        axds::detail::write_yaml_text(file, text);
        FAIL("the write did not fail");
    } catch (const axds::os_error& e) {
        CHECK(e.code().value() == expected_errno);
        CHECK_THAT(e.what(), Catch::Contains("Unable to write the YAML file " + file.string()));
    }
    CHECK(axds::test::read_file(file) == "old: 1\n");
    CHECK(names_in(directory) == std::vector<std::string>{"config.yaml"});
}

}  // namespace

TEST_CASE("atomic_file replaces the destination on commit and leaves no temporary file", "[sys][atomic_file]") {
    const axds::test::temp_dir tmp;
    const fs::path destination = tmp.path() / "data.bin";
    axds::test::write_file(destination, "old");
    atomic_file file;
    REQUIRE_FALSE(file.create(destination, {.name = test_name, .mode = 0600}));
    CHECK(file.temp_path().parent_path() == tmp.path());
    CHECK(file.temp_path().filename().string().starts_with(".data.bin."));
    REQUIRE(::write(file.fd(), "new", 3) == 3);
    CHECK(axds::test::read_file(destination) == "old");  // untouched until commit
    REQUIRE_FALSE(file.commit(true));
    CHECK(axds::test::read_file(destination) == "new");
    CHECK(names_in(tmp.path()) == std::vector<std::string>{"data.bin"});
}

TEST_CASE("atomic_file removes its temporary file when not committed", "[sys][atomic_file]") {
    const axds::test::temp_dir tmp;
    const fs::path destination = tmp.path() / "data.bin";
    axds::test::write_file(destination, "old");
    {
        atomic_file file;
        REQUIRE_FALSE(file.create(destination, {.name = test_name}));
        REQUIRE(::write(file.fd(), "new", 3) == 3);
        CHECK(names_in(tmp.path()).size() == 2);
    }
    CHECK(axds::test::read_file(destination) == "old");
    CHECK(names_in(tmp.path()) == std::vector<std::string>{"data.bin"});
}

TEST_CASE("atomic_file reports a failed rename as its step and removes the temporary file", "[sys][atomic_file]") {
    const axds::test::temp_dir tmp;
    const fs::path destination = tmp.path() / "occupied";
    axds::test::write_file(destination / "inside", "keep");  // a non-empty directory cannot be renamed over
    atomic_file file;
    REQUIRE_FALSE(file.create(destination, {.name = test_name}));
    const axds::sys::replace_error failure = file.commit(false);
    CHECK(failure.step == replace_step::rename);
    CHECK(failure.error.value() == EISDIR);
    CHECK(names_in(tmp.path()) == std::vector<std::string>{"occupied"});
    CHECK(axds::test::read_file(destination / "inside") == "keep");
}

TEST_CASE("atomic_file create reports a missing directory unless asked to create it", "[sys][atomic_file]") {
    const axds::test::temp_dir tmp;
    atomic_file file;
    const axds::sys::replace_error failure = file.create(tmp.path() / "no" / "such" / "f", {.name = test_name});
    CHECK(failure.step == replace_step::create);
    CHECK(failure.error.value() == ENOENT);
    REQUIRE_FALSE(file.create(tmp.path() / "made" / "f", {.name = test_name, .create_parents = true}));
    REQUIRE_FALSE(file.commit(false));
    CHECK(fs::is_regular_file(tmp.path() / "made" / "f"));
}

TEST_CASE("a YAML write that fails for a file size limit keeps the old file and leaves no temp", "[sys][atomic_file]") {
    const axds::test::temp_dir tmp;
    const file_size_limit limit(64 * 1024);
    check_failed_yaml_write_keeps_old(tmp.path(), 256 * 1024, EFBIG);
}

TEST_CASE("a YAML write that fills the disk keeps the old file and leaves no temp", "[sys][atomic_file]") {
    const axds::test::temp_dir tmp;
    const axds::test::tmpfs_mount disk(tmp.path() / "disk", "64k");  // declared after tmp: unmounted first
    AXDS_SKIP_IF(!disk.mounted(),
                 "SKIPPED: the full-disk test needs to mount a tmpfs (root / CAP_SYS_ADMIN): " << disk.why_not());
    check_failed_yaml_write_keeps_old(disk.path(), 256 * 1024, ENOSPC);
}

TEST_CASE("an npz archive whose writing fails keeps the old archive and leaves no .partial file",
          "[sys][atomic_file]") {
    const axds::test::temp_dir tmp;
    const fs::path archive = tmp.path() / "a.npz";
    {
        axds::npz_writer old(archive);
        old.add("old.npy", std::vector<std::uint8_t>{1, 2, 3});
        old.finish(false);
    }
    const std::string before = axds::test::read_file(archive);
    {
        const file_size_limit limit(before.size() + 64 * 1024);
        const std::vector<std::uint8_t> big(std::size_t{8} << 20, 7);  // larger than the writer's 4 MiB staging
        axds::npz_writer writer(archive);
        CHECK_THROWS_AS(
            [&] {
                writer.add("big.npy", big);
                writer.finish(true);
            }(),
            axds::os_error);
    }
    CHECK(axds::test::read_file(archive) == before);
    CHECK(names_in(tmp.path()) == std::vector<std::string>{"a.npz"});
}

TEST_CASE("a YAML write that cannot rename names both files and leaves no temp", "[sys][atomic_file]") {
    const axds::test::temp_dir tmp;
    const fs::path file = tmp.path() / "config.yaml";
    axds::test::write_file(file / "inside", "keep");  // a non-empty directory where the file should go
    try {
        axds::detail::write_yaml_text(file, "a: 1\n");
        FAIL("the write did not fail");
    } catch (const axds::is_a_directory_error& e) {
        const std::string message = e.what();
        CHECK_THAT(message, Catch::StartsWith("Unable to replace the YAML file " + file.string() + " (via " +
                                              (tmp.path() / ".config.yaml.").string()));
        CHECK_THAT(message, Catch::EndsWith(".tmp): Is a directory."));
    }
    CHECK(names_in(tmp.path()) == std::vector<std::string>{"config.yaml"});
}

TEST_CASE("directory_needs_sync skips only memory file systems", "[sys][atomic_file]") {
    // A directory on tmpfs: nothing there survives a power loss, its fsync does nothing.
    const axds::test::temp_dir tmp;
    const axds::test::tmpfs_mount memory(tmp.path() / "memory", "64k");
    if (memory.mounted()) {
        CHECK_FALSE(axds::sys::directory_needs_sync(tmp.path() / "memory" / "tracker.yaml"));
    }
    CHECK(axds::sys::directory_needs_sync("/proc/self/anything"));  // procfs: not a memory file system we know
    CHECK(axds::sys::directory_needs_sync(tmp.path() / "missing" / "x.yaml"));  // unknown: sync
    // A file replaced on tmpfs without the directory fsync is still replaced whole.
    if (memory.mounted()) {
        const fs::path destination = tmp.path() / "memory" / "data.bin";
        atomic_file file;
        REQUIRE_FALSE(file.create(destination, {.name = test_name, .mode = 0600}));
        REQUIRE(::write(file.fd(), "new", 3) == 3);
        REQUIRE_FALSE(file.commit(true, false));
        CHECK(axds::test::read_file(destination) == "new");
        CHECK(names_in(tmp.path() / "memory") == std::vector<std::string>{"data.bin"});
    }
}
