// The io_uring engine (src/sys/uring.*): typed tags, completion results as error_code, and the one availability rule
// (AXDS_NO_IO_URING) that every io_uring user follows.

#include "sys/uring.hpp"
#include "detail/uring_copy.hpp"
#include "detail/uring_reader.hpp"
#include "sys/unique_fd.hpp"

#include "support/child_process.hpp"
#include "support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace fs = std::filesystem;
using axds::sys::op;

namespace {

/// Sets AXDS_NO_IO_URING for one scope (the suite runs on one thread; the pool threads are idle meanwhile).
class no_io_uring_scope {
public:
    no_io_uring_scope() : was_set_(std::getenv("AXDS_NO_IO_URING") != nullptr) {  // NOLINT(concurrency-mt-unsafe)
        ::setenv("AXDS_NO_IO_URING", "1", 1);                                     // NOLINT(concurrency-mt-unsafe)
    }

    ~no_io_uring_scope() {
        if (!was_set_) {
            ::unsetenv("AXDS_NO_IO_URING");  // NOLINT(concurrency-mt-unsafe)
        }
    }

    no_io_uring_scope(const no_io_uring_scope&) = delete;
    no_io_uring_scope& operator=(const no_io_uring_scope&) = delete;

private:
    bool was_set_;
};

/// Deletes `tree` in the fs helper process (with use_io_uring) and returns how many io_urings it held afterwards.
std::string delete_in_helper(const fs::path& tree) {
    if (::geteuid() == 0) {  // the helper runs as nobody: give it the tree
        REQUIRE(::lchown(tree.parent_path().c_str(), 65534, 65534) == 0);
        REQUIRE(::lchown(tree.c_str(), 65534, 65534) == 0);
        for (const auto& entry : fs::recursive_directory_iterator(tree)) {
            REQUIRE(::lchown(entry.path().c_str(), 65534, 65534) == 0);
        }
    }
    axds::test::child_process child({AXDS_FS_WORKER, "delete", tree.string(), "io_uring"});
    std::string line = child.read_line();
    (void)child.wait();
    return line;
}

}  // namespace

TEST_CASE("io_uring tags round-trip every operation kind and index", "[sys][io_uring]") {
    for (const op kind : {op::read, op::write, op::open, op::close, op::unlink, op::futex_wait, op::aux}) {
        for (const std::uint64_t index : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{63},
                                          std::uint64_t{1} << 40U, (std::uint64_t{1} << 61U) - 1}) {
            const axds::sys::completion c = axds::sys::unpack_tag(axds::sys::pack_tag(index, kind), -EIO);
            CHECK(c.index == index);
            CHECK(c.kind == kind);
            CHECK(c.error() == std::errc::io_error);
            CHECK(c.bytes() == 0);
        }
    }
    CHECK_FALSE(axds::sys::unpack_tag(0, 4096).error());
    CHECK(axds::sys::unpack_tag(0, 4096).bytes() == 4096);
}

TEST_CASE("a failed io_uring operation completes with its errno as an error_code", "[sys][io_uring]") {
    axds::sys::uring* ring = axds::sys::thread_ring();
    if (ring == nullptr) {
        WARN("io_uring is not enabled here: nothing to check");
        return;
    }
    const axds::test::temp_dir tmp;
    axds::test::write_file(tmp.path() / "f", "0123456789");
    const axds::sys::unique_fd file(::open((tmp.path() / "f").c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(file);
    std::array<char, 16> buffer{};
    io_uring_sqe* bad = ring->sqe();
    io_uring_prep_read(bad, -1, buffer.data(), 4, 0);  // no such descriptor
    axds::sys::set_tag(bad, 7, op::read);
    io_uring_sqe* good = ring->sqe();
    io_uring_prep_read(good, file.get(), buffer.data(), static_cast<unsigned>(buffer.size()), 0);
    axds::sys::set_tag(good, 8, op::read);
    std::vector<axds::sys::completion> seen;
    while (seen.size() < 2) {
        REQUIRE_FALSE(ring->submit_and_reap([&seen](const axds::sys::completion& c) { seen.push_back(c); }));
    }
    for (const auto& c : seen) {
        CHECK(c.kind == op::read);
        if (c.index == 7) {
            CHECK(c.error() == std::errc::bad_file_descriptor);
        } else {
            CHECK(c.index == 8);
            CHECK_FALSE(c.error());
            CHECK(c.bytes() == 10);
        }
    }
    // The same mapping through a user: a copy whose source cannot be read reports EBADF, not a short count.
    const axds::sys::unique_fd write_only(::open((tmp.path() / "f").c_str(), O_WRONLY | O_CLOEXEC));
    const axds::sys::io_result copied = axds::detail::uring_copy(write_only.get(), -1, 10);
    CHECK(copied.error == std::errc::bad_file_descriptor);
    CHECK(copied.bytes == 0);
}

TEST_CASE("AXDS_NO_IO_URING turns every io_uring user to its plain path", "[sys][io_uring][fs]") {
    const axds::test::temp_dir tmp;
    axds::test::write_file(tmp.path() / "tree" / "a.txt", "a");
    axds::test::write_file(tmp.path() / "tree" / "sub" / "b.txt", "b");
    {
        const no_io_uring_scope off;
        for (const auto feature : {axds::sys::uring_feature::ring, axds::sys::uring_feature::direct_descriptors,
                                   axds::sys::uring_feature::futex_wait}) {
            CHECK_FALSE(axds::sys::uring_enabled(feature));
        }
        CHECK(axds::sys::thread_ring() == nullptr);
        CHECK(axds::detail::uring_copy(0, -1, 1).error == std::errc::function_not_supported);
        std::array<std::uint8_t, 4> buffer{};
        const std::string path = (tmp.path() / "tree" / "a.txt").string();
        std::array<axds::detail::prefix_read, 1> reads{{{.path = path.c_str(), .buffer = buffer}}};
        CHECK_FALSE(axds::detail::read_file_prefixes(reads));
        CHECK_FALSE(reads[0].error);
        CHECK(reads[0].bytes == 1);
        // delete (which ignored the variable before): the helper holds no ring after deleting with use_io_uring.
        CHECK(delete_in_helper(tmp.path() / "tree") == "ok deleted rings=0");
    }
    CHECK_FALSE(fs::exists(tmp.path() / "tree"));
    if (axds::sys::uring_enabled()) {  // the same count shows a ring when io_uring is allowed
        axds::test::write_file(tmp.path() / "again" / "a.txt", "a");
        const std::string outcome = delete_in_helper(tmp.path() / "again");
        CHECK(outcome.rfind("ok deleted rings=", 0) == 0);
        CHECK(outcome != "ok deleted rings=0");  // one per CPU-pool thread that ran a batch
    }
}
