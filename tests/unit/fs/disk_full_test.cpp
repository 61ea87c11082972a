// Assembly and transfer on a really full disk (a small tmpfs mounted by the test; root only, skipped otherwise):
// the operation fails with ENOSPC, nothing that was on disk before is lost, and a rerun with space completes.
#include <axds/fs/transfer.hpp>
#include <axds/log/log_archive.hpp>

#include "support/log_entries.hpp"
#include "support/matchers.hpp"
#include "support/temp_dir.hpp"
#include "support/tmpfs_mount.hpp"

#include <axds/core/runtime.hpp>
#include <axds/error.hpp>
#include <axds/npy/npz_archive.hpp>
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <string>

namespace fs = std::filesystem;
using axds::test::message_contains;
using axds::test::read_file;
using axds::test::snapshot;
using axds::test::temp_dir;
using axds::test::tmpfs_mount;

namespace {

axds::assemble_report assemble(const fs::path& directory, axds::assemble_options options = {}) {
    return axds::block_on(axds::async_assemble_log_archives(directory, std::move(options)));
}

}  // namespace

TEST_CASE("assembly on a full disk fails, keeps every entry and the archive it had, and completes with space",
          "[log][disk_full][safety]") {
    const temp_dir tmp;
    tmpfs_mount disk(tmp.path() / "disk", "512k");
    AXDS_SKIP_IF(!disk.mounted(), "mounting a tmpfs is not permitted here (needs root): full-disk assembly untested");
    const fs::path logs = disk.path();
    // An archive from an earlier run, then entries that fill most of the disk (one 4 KiB page each on tmpfs).
    axds::test::write_fixture_entries(logs, 1, 10, 100);
    REQUIRE(assemble(logs).entries == 11);
    const std::string archive_before = read_file(logs / "1_log.npz");
    for (std::size_t i = 0; i < 90; ++i) {
        axds::test::write_entry(logs, 1, 100000 + i, axds::test::fixture_payload(i, 3000));
    }
    const auto entries_before = snapshot(logs);
    CHECK_THROWS_MATCHES(assemble(logs, {.verify_integrity = true}), axds::os_error,
                         message_contains("1_log.npz") && message_contains("No space left on device"));
    CHECK(snapshot(logs) == entries_before);  // every entry, and the old archive byte for byte; no temporary file
    CHECK(read_file(logs / "1_log.npz") == archive_before);
    REQUIRE(disk.resize("4m"));  // the user frees space; the rerun completes
    const auto report = assemble(logs, {.verify_integrity = true});
    CHECK(report.entries == 90);
    CHECK(report.merged == 11);
    CHECK(axds::npz_reader(logs / "1_log.npz").members().size() == 101);
}

TEST_CASE("a transfer onto a full disk fails and leaves the source whole, even with remove_source",
          "[fs][disk_full][safety]") {
    const temp_dir tmp;
    const fs::path source = tmp.path() / "source";
    for (int i = 0; i < 40; ++i) {
        axds::test::write_file(source / fmt::format("d{}", i % 4) / fmt::format("f{}.bin", i),
                               std::string(20000, static_cast<char>('a' + i % 26)));
    }
    const auto before = snapshot(source);
    tmpfs_mount disk(tmp.path() / "disk", "256k");
    AXDS_SKIP_IF(!disk.mounted(), "mounting a tmpfs is not permitted here (needs root): full-disk transfer untested");
    const fs::path destination = disk.path() / "copy";
    CHECK_THROWS_MATCHES(axds::block_on(axds::async_transfer_directory(
                             source, destination, {.workers = 2, .verify_integrity = true, .remove_source = true})),
                         axds::os_error, message_contains("No space left on device"));
    auto after = snapshot(source);
    after.erase("ax_checksum.txt");  // a verified transfer may save the source checksum before it copies
    CHECK(after == before);
    // The copy that hit the full disk is not left, short, under its final name (nor under its temporary one).
    for (const auto& [relative, content] : snapshot(destination)) {
        INFO(relative);
        CHECK(before.count(relative) == 1);
        CHECK(content == (before.count(relative) == 1 ? before.at(relative) : std::string()));
    }
    REQUIRE(disk.resize("8m"));
    const auto report = axds::block_on(axds::async_transfer_directory(
        source, destination, {.workers = 2, .verify_integrity = true, .remove_source = true}));
    CHECK(report.verified);
    CHECK_FALSE(fs::exists(source));
    auto copied = snapshot(destination);
    copied.erase("ax_checksum.txt");
    CHECK(copied == before);
}

TEST_CASE("a verified transfer of a large file to another filesystem that fills up fails, then completes with space",
          "[fs][disk_full][safety]") {
    // copy_file_range refuses to copy between filesystems: a file this large then goes through the pipelined copy
    // through buffers (detail::copy_and_hash, copy_method::buffers), which must report the full disk as any copy.
    const temp_dir tmp;
    const fs::path source = tmp.path() / "source";
    axds::test::write_file(source / "big.bin", axds::test::random_bytes(std::size_t{12} << 20, 12));
    axds::test::write_file(source / "small.txt", "kept");
    const auto before = snapshot(source);
    tmpfs_mount disk(tmp.path() / "disk", "6m");
    AXDS_SKIP_IF(!disk.mounted(), "mounting a tmpfs is not permitted here (needs root): full-disk transfer untested");
    const fs::path destination = disk.path() / "copy";
    CHECK_THROWS_MATCHES(
        axds::block_on(axds::async_transfer_directory(source, destination, {.workers = 2, .verify_integrity = true})),
        axds::os_error, message_contains("No space left on device"));
    CHECK_FALSE(fs::exists(destination / "big.bin"));  // never short under its final name
    REQUIRE(disk.resize("40m"));
    const auto report =
        axds::block_on(axds::async_transfer_directory(source, destination, {.workers = 2, .verify_integrity = true}));
    CHECK(report.verified);
    auto copied = snapshot(destination);
    copied.erase("ax_checksum.txt");
    auto original = snapshot(source);
    original.erase("ax_checksum.txt");
    CHECK(copied == original);
    CHECK(original == before);
}
