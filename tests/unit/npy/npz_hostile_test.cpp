// Hostile and damaged archives (archives come from other machines and failing disks): records that share or overlap
// data, members that run into the central directory, deflate streams that lie about their size, and flipped payload
// bytes. Each must give a clear value_error naming the archive, quickly, in bounded memory: the open and the reads run
// in a forked child whose address space may grow by at most 1 GiB (plus the archive's map).

#include <axds/npy/npz_archive.hpp>

#include "hostile_zip.hpp"
#include "support/matchers.hpp"
#include "support/temp_dir.hpp"

#include <axds/error.hpp>
#include <axds/log/log_archive_reader.hpp>
#include <axds/log/log_package.hpp>
#include <catch2/catch.hpp>

#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace fs = std::filesystem;
using axds::test::message_contains;
using axds::test::temp_dir;
namespace hostile = axds::test::hostile;

namespace {

/// Opens `path` and reads every member (as `axds archive info` / `dump` do), in a bounded child.
hostile::outcome open_and_read(const fs::path& path, std::uint64_t mapped = 0) {
    return hostile::run_bounded(
        [&] {
            const axds::npz_reader reader(path);
            std::uint64_t total = 0;
            for (const auto& member : reader.members()) {
                total += reader.data(member).size();
            }
            (void)total;
        },
        mapped);
}

/// The checks every hostile archive must pass: a value_error naming `fragments`, within 10 s and 256 MiB.
void check_rejected(const hostile::outcome& out, const std::vector<std::string>& fragments) {
    INFO(out.describe());
    INFO("seconds: " << out.seconds << ", peak RSS growth: " << out.rss_growth_kib << " KiB");
    CHECK(out.exited_normally);
    CHECK(out.kind == "value_error");
    for (const auto& fragment : fragments) {
        INFO("expected fragment: " << fragment);
        CHECK(out.describe().find(fragment) != std::string::npos);
    }
    CHECK(out.seconds < 10.0);
    CHECK(out.rss_growth_kib < 256 * 1024);
}

std::string npy_entry(std::uint64_t time, std::size_t payload_size, std::uint8_t fill = 0x5A) {
    axds::log_package package{.source_id = 1, .acquisition_time = time};
    package.payload.assign(payload_size, fill);
    const auto bytes = package.npy_file_bytes();
    return {bytes.begin(), bytes.end()};
}

}  // namespace

TEST_CASE("records sharing one deflated member's data are rejected at open, before any inflation", "[npy][hostile]") {
    temp_dir tmp;
    const fs::path path = tmp.path() / "shared.npz";
    hostile::zip_builder zip;
    const std::string big(128U << 20U, '\0');  // 128 MiB of zeros deflates to ~130 KB
    const auto member = zip.add_deflated("a.npy", big, Z_DEFAULT_COMPRESSION);
    std::vector<hostile::record> records;
    for (char c = 'a'; c < 'a' + 16; ++c) {
        auto r = member;
        r.name = std::string(1, c) + ".npy";
        records.push_back(r);
    }
    zip.finish(records);
    zip.write(path);
    check_rejected(open_and_read(path),
                   {"shared.npz", "'b.npy'", "'a.npy'", "overlap", std::to_string(member.local_header_offset)});
}

TEST_CASE("a record whose local header lies inside another member's stored data is rejected", "[npy][hostile]") {
    temp_dir tmp;
    const fs::path path = tmp.path() / "nested.npz";
    // The outer member's data holds a complete forged local header + data: every signature check passes.
    hostile::zip_builder inner;
    const auto forged = inner.add_stored("inner.npy", npy_entry(7, 40));
    std::string inner_bytes;
    {
        const fs::path scratch = tmp.path() / "inner.bin";
        inner.write(scratch);
        inner_bytes = axds::test::read_file(scratch);
    }
    hostile::zip_builder zip;
    const auto pad = zip.add_stored("pad.npy", npy_entry(1, 10));
    const auto outer = zip.add_stored("outer.npy", inner_bytes);
    auto nested = forged;
    nested.local_header_offset = outer.data_offset;
    zip.finish({pad, outer, nested});
    zip.write(path);
    check_rejected(open_and_read(path),
                   {"nested.npz", "'inner.npy'", "'outer.npy'", "overlap", std::to_string(outer.data_offset)});
}

TEST_CASE("a member whose data runs into the central directory is rejected", "[npy][hostile]") {
    temp_dir tmp;
    const fs::path path = tmp.path() / "into_cd.npz";
    hostile::zip_builder zip;
    const auto first = zip.add_stored("first.npy", npy_entry(1, 20));
    auto second = zip.add_stored("second.npy", npy_entry(2, 20));
    const std::uint64_t cd_offset = zip.offset();
    second.compressed_size += 30;  // 30 bytes into the first directory record
    second.uncompressed_size += 30;
    zip.finish({first, second});
    zip.write(path);
    check_rejected(open_and_read(path),
                   {"into_cd.npz", "'second.npy'", "central directory", std::to_string(cd_offset)});
}

TEST_CASE("a deflated member whose stream inflates beyond (or short of) its declared size is rejected",
          "[npy][hostile]") {
    temp_dir tmp;
    const std::string data = npy_entry(5, 100000, 0x11);
    for (const std::uint64_t declared : {std::uint64_t{1000}, std::uint64_t{data.size() + 5000}}) {
        INFO("declared " << declared << " of " << data.size());
        const fs::path path = tmp.path() / "liar.npz";
        hostile::zip_builder zip;
        auto member = zip.add_deflated("liar.npy", data);
        member.uncompressed_size = declared;
        zip.finish({member});
        zip.write(path);
        check_rejected(open_and_read(path), {"liar.npz", "'liar.npy'", std::to_string(declared),
                                             declared < data.size() ? "more than" : "only"});
    }
}

TEST_CASE("a declared size of 2^40 bytes is refused before anything is allocated", "[npy][hostile]") {
    temp_dir tmp;
    constexpr std::uint64_t claim = 1ULL << 40U;
    SECTION("behind a few bytes of deflate stream") {
        const fs::path path = tmp.path() / "claim.npz";
        hostile::zip_builder zip;
        auto member = zip.add_deflated("huge.npy", npy_entry(1, 100));
        member.uncompressed_size = claim;
        zip.finish({member});
        zip.write(path);
        check_rejected(open_and_read(path), {"claim.npz", "'huge.npy'", std::to_string(claim)});
    }
    SECTION("behind 1 GiB of (sparse) compressed data, so deflate's 1032:1 bound alone would allow it") {
        const fs::path path = tmp.path() / "sparse_claim.npz";
        hostile::zip_builder zip;
        const auto member = zip.add_hole("huge.npy", 8, claim / 1032 + 1, claim);
        zip.finish({member});
        zip.write(path);
        check_rejected(open_and_read(path, zip.offset()), {"sparse_claim.npz", "'huge.npy'", std::to_string(claim)});
    }
}

TEST_CASE("a flipped payload byte in a stored member is caught by the CRC-32 on first read", "[npy][hostile]") {
    temp_dir tmp;
    const fs::path path = tmp.path() / "flipped.npz";
    hostile::zip_builder zip;
    std::vector<hostile::record> records;
    for (std::uint64_t t = 0; t < 4; ++t) {
        records.push_back(zip.add_stored(axds::log_entry_file_name(1, t), npy_entry(t, 64)));
    }
    zip.finish(records);
    zip.write(path);
    std::string bytes = axds::test::read_file(path);
    bytes[records[2].data_offset + 128 + 9 + 30] ^= 0x01;  // one payload bit
    axds::test::write_file(path, bytes);
    check_rejected(open_and_read(path), {"flipped.npz", "'" + records[2].name + "'", "CRC-32"});
}

TEST_CASE("a flipped payload byte in a deflated member is caught by the CRC-32 on first read", "[npy][hostile]") {
    temp_dir tmp;
    const fs::path path = tmp.path() / "flipped_deflated.npz";
    hostile::zip_builder zip;
    // Level 0: stored deflate blocks, so the flipped byte inflates fine and only the CRC can tell.
    const auto a = zip.add_deflated("a.npy", npy_entry(1, 64), 0);
    const auto b = zip.add_deflated("b.npy", npy_entry(2, 300), 0);
    zip.finish({a, b});
    zip.write(path);
    std::string bytes = axds::test::read_file(path);
    bytes[b.data_offset + b.compressed_size - 20] ^= 0x40;
    axds::test::write_file(path, bytes);
    check_rejected(open_and_read(path), {"flipped_deflated.npz", "'b.npy'", "CRC-32"});
}

TEST_CASE("a truncated deflate stream and an empty deflated member are told apart", "[npy][hostile]") {
    temp_dir tmp;
    const fs::path path = tmp.path() / "cut.npz";
    const std::string data = npy_entry(5, 20000, 0x33);
    hostile::zip_builder zip;
    const auto empty = zip.add_deflated("empty.npy", "");
    const std::string stream = hostile::deflate_raw(data, 0);
    auto cut = zip.add("cut.npy", 8, std::string_view(stream).substr(0, stream.size() / 2), hostile::crc_of(data),
                       data.size());
    zip.finish({empty, cut});
    zip.write(path);
    const axds::npz_reader reader(path);
    CHECK(reader.data(reader.members()[0]).empty());
    CHECK_THROWS_MATCHES(reader.data(reader.members()[1]), axds::value_error,
                         message_contains("cut.npz") && message_contains("'cut.npy'") &&
                             message_contains("truncated") && message_contains(std::to_string(data.size())));
}

TEST_CASE("the CRC-32 check is cached per member, can be turned off, and verify_crc() checks regardless",
          "[npy][hostile]") {
    temp_dir tmp;
    const fs::path path = tmp.path() / "flipped.npz";
    hostile::zip_builder zip;
    const auto good = zip.add_stored("good.npy", npy_entry(1, 64));
    const auto bad = zip.add_stored("bad.npy", npy_entry(2, 64));
    const auto deflated = zip.add_deflated("deflated.npy", npy_entry(3, 64));
    zip.finish({good, bad, deflated});
    zip.write(path);
    std::string bytes = axds::test::read_file(path);
    bytes[bad.data_offset + 150] ^= 0x01;
    axds::test::write_file(path, bytes);

    const axds::npz_reader checking(path);
    CHECK(checking.options().verify_crc);
    CHECK(checking.options().max_inflated_size == axds::npz_default_max_inflated_size);
    for (int pass = 0; pass < 2; ++pass) {  // an error every time, not only the first
        CHECK(checking.data(checking.members()[0]).size() == good.uncompressed_size);
        CHECK_THROWS_MATCHES(
            checking.data(checking.members()[1]), axds::value_error,
            message_contains("flipped.npz") && message_contains("'bad.npy'") && message_contains("CRC-32"));
        CHECK(checking.data(checking.members()[2]).size() == deflated.uncompressed_size);
    }

    const axds::npz_reader trusting(path, {.verify_crc = false});
    const auto served = trusting.data(trusting.members()[1]);
    CHECK(served.size() == bad.uncompressed_size);
    CHECK(served[150] == static_cast<std::uint8_t>(bytes[bad.data_offset + 150]));  // the damaged byte, unchecked
    CHECK_THROWS_MATCHES(trusting.verify_crc(trusting.members()[1]), axds::value_error,
                         message_contains("'bad.npy'") && message_contains("CRC-32"));
    CHECK_NOTHROW(trusting.verify_crc(trusting.members()[0]));

    const axds::npz_reader other(tmp.path() / "flipped.npz");
    CHECK_THROWS_MATCHES(checking.data(other.members()[0]), axds::value_error,
                         message_contains("not one of this reader's members"));
}

TEST_CASE("npz_reader_options::max_inflated_size caps the size a deflated member may declare", "[npy][hostile]") {
    temp_dir tmp;
    const fs::path path = tmp.path() / "capped.npz";
    const std::string data = npy_entry(5, 5000, 0x22);
    hostile::zip_builder zip;
    const auto member = zip.add_deflated("big.npy", data);
    zip.finish({member});
    zip.write(path);
    const axds::npz_reader capped(path, {.max_inflated_size = data.size() - 1});
    CHECK_THROWS_MATCHES(capped.data(capped.members()[0]), axds::value_error,
                         message_contains("capped.npz") && message_contains("'big.npy'") &&
                             message_contains(std::to_string(data.size())) && message_contains("max_inflated_size"));
    const axds::npz_reader exact(path, {.max_inflated_size = data.size()});
    const auto out = exact.data(exact.members()[0]);
    CHECK(std::string(out.begin(), out.end()) == data);
}

// Found by the fuzz harness (tests/fuzz, target npz_archive): a member name holding a NUL byte ended what() at the NUL,
// before the message named the archive; a newline or escape sequence printed raw.
TEST_CASE("member names with NUL and control bytes are escaped in errors that still name the archive",
          "[npy][hostile]") {
    temp_dir tmp;
    const fs::path path = tmp.path() / "nul_name.npz";
    hostile::zip_builder zip;
    const std::string name("bad\0name\n\x1b[2J.npy", 17);
    std::vector<hostile::record> records{zip.add(name, 99, "data", hostile::crc_of("data"), 4)};
    zip.finish(records);
    zip.write(path);
    check_rejected(open_and_read(path), {"'bad\\x00name\\x0a\\x1b[2J.npy'", "nul_name.npz", "compression method 99"});

    // The same name on an entry that is not a log entry, read as a log archive.
    const fs::path log_path = tmp.path() / "nul_log.npz";
    hostile::zip_builder log_zip;
    std::vector<hostile::record> log_records{log_zip.add_stored(name, "not an npy")};
    log_zip.finish(log_records);
    log_zip.write(log_path);
    const auto out = hostile::run_bounded([&] {
        const axds::log_archive_reader reader(log_path);
        (void)reader.read_all_messages();
    });
    check_rejected(out, {"bad\\x00name\\x0a\\x1b[2J.npy", "nul_log.npz"});
}

// Found by the review of the fuzz harness (the three cases below): numpy and zipfile read central-directory records
// until the directory's size is used up; this reader read exactly the end record's count, so a damaged count (3 -> 1)
// hid members and `axds archive info` reported "0 messages" with exit 0.
TEST_CASE("an end record whose member count disagrees with the directory is refused", "[npy][hostile]") {
    temp_dir tmp;
    const fs::path path = tmp.path() / "count.npz";
    hostile::zip_builder zip;
    std::vector<hostile::record> records;
    for (std::uint64_t t = 0; t < 3; ++t) {
        records.push_back(zip.add_stored(axds::log_entry_file_name(1, t), npy_entry(t, 16)));
    }
    zip.finish(records);
    zip.write(path);
    std::string bytes = axds::test::read_file(path);
    const std::size_t end = bytes.size() - 22;  // the end record (no comment)
    bytes[end + 8] = 1;                         // members on this disk
    bytes[end + 10] = 1;                        // members in all
    axds::test::write_file(path, bytes);
    check_rejected(open_and_read(path), {"count.npz", "claims 1 members", "member count is damaged"});
}

// Two records with one name: numpy reads the last copy, this reader read the first, so `axds archive dump` and
// np.load disagreed about the same archive.
TEST_CASE("two members with the same name are refused", "[npy][hostile]") {
    temp_dir tmp;
    const fs::path path = tmp.path() / "twice.npz";
    hostile::zip_builder zip;
    const std::string name = axds::log_entry_file_name(1, 5);
    std::vector<hostile::record> records{zip.add_stored(name, npy_entry(5, 16, 0x11)),
                                         zip.add_stored(name, npy_entry(5, 16, 0x22))};
    zip.finish(records);
    zip.write(path);
    check_rejected(open_and_read(path), {"twice.npz", "'" + name + "'", "two members have this name"});
}

// Inflated members stay cached while a reader lives: the limit bounds their total, not only each one (a 3 MB file of
// twelve 256 MiB members took 3.1 GB).
TEST_CASE("max_inflated_size bounds the total a reader holds inflated", "[npy][hostile]") {
    temp_dir tmp;
    const fs::path path = tmp.path() / "many.npz";
    hostile::zip_builder zip;
    std::vector<hostile::record> records;
    for (std::uint64_t t = 0; t < 4; ++t) {
        records.push_back(zip.add_deflated(axds::log_entry_file_name(1, t), npy_entry(t, 300'000)));
    }
    zip.finish(records);
    zip.write(path);
    const axds::npz_reader reader(path, {.max_inflated_size = 1'000'000});
    CHECK(reader.data(reader.members()[0]).size() == records[0].uncompressed_size);
    CHECK(reader.data(reader.members()[1]).size() == records[1].uncompressed_size);
    CHECK(reader.data(reader.members()[2]).size() == records[2].uncompressed_size);
    CHECK_THROWS_MATCHES(reader.data(reader.members()[3]), axds::value_error,
                         message_contains("many.npz") && message_contains("max_inflated_size") &&
                             message_contains("would make this reader hold"));
    CHECK(reader.data(reader.members()[0]).size() == records[0].uncompressed_size);  // cached ones still served
}

// Found by the review of the fuzz harness: a ZIP64 locator naming another disk was accepted; zipfile refuses it
// ("zipfiles that span multiple disks are not supported").
TEST_CASE("a ZIP64 locator that names several disks is refused as multi-disk", "[npy][hostile]") {
    temp_dir tmp;
    hostile::zip_builder zip;
    std::vector<hostile::record> records{zip.add_stored(axds::log_entry_file_name(1, 0), npy_entry(0, 16))};
    const std::uint64_t cd_offset = zip.finish(records);
    const fs::path plain = tmp.path() / "plain.npz";
    zip.write(plain);
    const std::string bytes = axds::test::read_file(plain);
    const std::size_t end = bytes.size() - 22;
    const auto with_locator = [&](std::uint32_t disks) {
        std::string zip64;
        hostile::put32(zip64, 0x06064b50);  // ZIP64 end record
        hostile::put64(zip64, 44);
        hostile::put16(zip64, 45);
        hostile::put16(zip64, 45);
        hostile::put32(zip64, 0);
        hostile::put32(zip64, 0);
        hostile::put64(zip64, 1);
        hostile::put64(zip64, 1);
        hostile::put64(zip64, end - cd_offset);
        hostile::put64(zip64, cd_offset);
        hostile::put32(zip64, 0x07064b50);  // locator
        hostile::put32(zip64, 0);
        hostile::put64(zip64, end);
        hostile::put32(zip64, disks);
        return bytes.substr(0, end) + zip64 + bytes.substr(end);
    };
    const fs::path one = tmp.path() / "one_disk.npz";
    axds::test::write_file(one, with_locator(1));
    CHECK(open_and_read(one).kind == "no error");
    const fs::path seven = tmp.path() / "seven_disks.npz";
    axds::test::write_file(seven, with_locator(7));
    check_rejected(open_and_read(seven), {"seven_disks.npz", "multi-disk"});
}

namespace {

/// Sets the 16-bit little-endian field at `at` of `bytes`.
void patch16(std::string& bytes, std::uint64_t at, std::uint16_t value) {
    bytes[at] = static_cast<char>(value & 0xFFU);
    bytes[at + 1] = static_cast<char>(value >> 8U);
}

/// The checks on a member whose local header is damaged: the archive opens (only the central directory is read),
/// the damaged member is refused on every read path naming the archive and the member, the others read cleanly,
/// and a reader of every member (as `axds archive info`) reports it.
void check_refused_on_read(const fs::path& path, std::string_view damaged, const std::string& fragment) {
    const std::string quoted = "'" + std::string(damaged) + "'";
    // With and without the CRC-32 check (the reader records each member's checks: a failed one is never recorded).
    for (const bool crc : {true, false}) {
        const axds::npz_reader reader(path, {.verify_crc = crc});
        REQUIRE(reader.members().size() == 3);
        for (int pass = 0; pass < 2; ++pass) {  // the second pass reads the others from the reader's record
            for (const auto& member : reader.members()) {
                if (member.name != damaged) {
                    CHECK_NOTHROW(reader.data(member));
                    continue;
                }
                CHECK(reader.find(damaged) == &member);  // finding reads no local header
                const auto refused = [&](const std::function<void()>& read) {
                    CHECK_THROWS_MATCHES(
                        read(), axds::value_error,
                        message_contains(path.string()) && message_contains(quoted) && message_contains(fragment));
                };
                refused([&] { (void)reader.data(member); });
                refused([&] { (void)reader.data(member); });  // every time, not only the first
                refused([&] { reader.verify_crc(member); });
                refused([&] { (void)reader.data_offset(member); });
            }
        }
    }
    check_rejected(open_and_read(path), {path.string(), quoted, fragment});
}

}  // namespace

TEST_CASE("a damaged local header is refused when its member is read, naming the archive and the member",
          "[npy][hostile]") {
    temp_dir tmp;
    const fs::path path = tmp.path() / "local.npz";
    {
        axds::npz_writer writer(path);
        for (const std::string name : {"a.npy", "b.npy", "c.npy"}) {
            const std::string entry = npy_entry(static_cast<unsigned char>(name[0]), 40);
            writer.add(name, std::span(reinterpret_cast<const std::uint8_t*>(entry.data()), entry.size()));
        }
        writer.finish(false);
    }
    std::string bytes = axds::test::read_file(path);
    const axds::npz_reader honest(path);
    const std::uint64_t b = honest.members()[1].local_header_offset;
    const std::uint64_t c = honest.members()[2].local_header_offset;
    SECTION("a bad signature") {
        bytes[b + 1] ^= 0x10;
        axds::test::write_file(path, bytes);
        check_refused_on_read(path, "b.npy",
                              "the local header at offset " + std::to_string(b) + " has a bad signature");
    }
    SECTION("an extra length that puts the data over the next member's local header") {
        patch16(bytes, b + 28, 0x4000);
        axds::test::write_file(path, bytes);
        check_refused_on_read(path, "b.npy",
                              "overlap the local header of the member 'c.npy' at offset " + std::to_string(c));
    }
    SECTION("a name length that puts the last member's data into the central directory") {
        patch16(bytes, c + 26, 0xFFFF);
        axds::test::write_file(path, bytes);
        check_refused_on_read(path, "c.npy", "runs into the central directory");
    }
}

TEST_CASE("local headers out of directory order are checked against the next member in the file", "[npy][hostile]") {
    temp_dir tmp;
    const fs::path path = tmp.path() / "shuffled.npz";
    hostile::zip_builder zip;
    const auto a = zip.add_stored("a.npy", npy_entry(1, 30));
    const auto b = zip.add_stored("b.npy", npy_entry(2, 30));
    const auto c = zip.add_stored("c.npy", npy_entry(3, 30));
    zip.finish({c, a, b});  // the directory lists the last member in the file first
    zip.write(path);
    CHECK(open_and_read(path).kind == "no error");
    std::string bytes = axds::test::read_file(path);
    SECTION("the first in the file runs over the second") {
        patch16(bytes, a.local_header_offset + 28, 40);
        axds::test::write_file(path, bytes);
        check_refused_on_read(
            path, "a.npy",
            "overlap the local header of the member 'b.npy' at offset " + std::to_string(b.local_header_offset));
    }
    SECTION("the last in the file (first in the directory) runs into the central directory") {
        patch16(bytes, c.local_header_offset + 28, 40);
        axds::test::write_file(path, bytes);
        check_refused_on_read(path, "c.npy", "runs into the central directory");
    }
}
