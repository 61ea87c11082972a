#include <axds/npy/npz_archive.hpp>

#include "support/matchers.hpp"
#include "support/temp_dir.hpp"

#include <axds/error.hpp>
#include <axds/log/log_package.hpp>
#include <axds/npy/npy_format.hpp>
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <zlib.h>

#include <filesystem>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using axds::test::message_contains;
using axds::test::temp_dir;

namespace {

std::vector<std::uint8_t> entry_file(std::uint8_t source, std::uint64_t time, std::size_t payload_size) {
    axds::log_package package{.source_id = source, .acquisition_time = time};
    for (std::size_t j = 0; j < payload_size; ++j) {
        package.payload.push_back(static_cast<std::uint8_t>((time + j) % 256));
    }
    return package.npy_file_bytes();
}

/// Writes `count` entries of source 1 with varied payload sizes; returns the member data in order.
std::vector<std::vector<std::uint8_t>> write_archive(const fs::path& path, std::size_t count) {
    axds::npz_writer writer(path);
    std::vector<std::vector<std::uint8_t>> members;
    for (std::size_t i = 0; i < count; ++i) {
        members.push_back(entry_file(1, i * 1000, i % 37));
        writer.add(axds::log_entry_file_name(1, i * 1000), members.back());
    }
    writer.finish();
    return members;
}

}  // namespace

TEST_CASE("npz_writer output is read back by npz_reader with aligned, zero-copy members", "[npy]") {
    temp_dir tmp;
    const fs::path path = tmp.path() / "1_log.npz";
    const auto members = write_archive(path, 50);
    const axds::npz_reader reader(path);
    REQUIRE(reader.members().size() == 50);
    for (std::size_t i = 0; i < members.size(); ++i) {
        const auto& member = reader.members()[i];
        CHECK(member.name == axds::log_entry_file_name(1, i * 1000));
        CHECK(member.method == 0);
        CHECK(reader.data_offset(member) % axds::npz_member_alignment == 0);
        const auto data = reader.data(member);
        CHECK(std::vector<std::uint8_t>(data.begin(), data.end()) == members[i]);
        CHECK_NOTHROW(reader.verify_crc(member));
    }
    CHECK(reader.find("001_00000000000000002000.npy") == &reader.members()[2]);
    CHECK(reader.find("missing.npy") == nullptr);
}

TEST_CASE("npz_reader serves repeated reads from its per-member record of the checks, with or without CRC-32",
          "[npy]") {
    temp_dir tmp;
    const fs::path path = tmp.path() / "1_log.npz";
    const auto members = write_archive(path, 40);
    for (const bool crc : {true, false}) {
        const axds::npz_reader reader(path, {.verify_crc = crc});
        for (int pass = 0; pass < 3; ++pass) {  // the first pass checks, the later ones are served from the record
            for (std::size_t i = 0; i < members.size(); ++i) {
                const auto& member = reader.members()[i];
                const auto data = reader.data(member);
                CHECK(std::vector<std::uint8_t>(data.begin(), data.end()) == members[i]);
                CHECK(reader.data_offset(member) % axds::npz_member_alignment == 0);
                CHECK(reader.data(member).data() == data.data());  // the same bytes of the map every time
            }
        }
    }
}

TEST_CASE("npz_reader checks each member once when several threads read them at once", "[npy]") {
    temp_dir tmp;
    const fs::path path = tmp.path() / "1_log.npz";
    const auto members = write_archive(path, 300);
    const axds::npz_reader reader(path);
    std::vector<int> mismatches(4, 0);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < mismatches.size(); ++t) {
        threads.emplace_back([&, t] {
            for (int pass = 0; pass < 2; ++pass) {
                for (std::size_t k = 0; k < members.size(); ++k) {
                    const std::size_t i = (k * (t + 1) + t) % members.size();  // a different order per thread
                    const auto data = reader.data(reader.members()[i]);
                    const bool same = std::equal(data.begin(), data.end(), members[i].begin(), members[i].end());
                    mismatches[t] += same && reader.data_offset(reader.members()[i]) % 64 == 0 ? 0 : 1;
                }
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    CHECK(mismatches == std::vector<int>(4, 0));
}

TEST_CASE("npz_writer output is byte-reproducible", "[npy]") {
    temp_dir tmp;
    write_archive(tmp.path() / "a.npz", 20);
    write_archive(tmp.path() / "b.npz", 20);
    CHECK(axds::test::read_file(tmp.path() / "a.npz") == axds::test::read_file(tmp.path() / "b.npz"));
}

TEST_CASE("npz_writer leaves no archive and no temporary file when not finished", "[npy]") {
    temp_dir tmp;
    {
        axds::npz_writer writer(tmp.path() / "x.npz");
        const std::vector<std::uint8_t> data{1, 2, 3};
        writer.add("a.npy", data);
        CHECK(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator()) == 1);  // the temp file
    }
    CHECK(fs::is_empty(tmp.path()));
    CHECK_THROWS_AS(axds::npz_writer(tmp.path() / "missing_dir" / "x.npz"), axds::file_not_found_error);
}

TEST_CASE("numpy and zipfile open our archives, including a ZIP64 one with more than 65535 members", "[npy][python]") {
    temp_dir tmp;
    write_archive(tmp.path() / "small.npz", 30);
    write_archive(tmp.path() / "many.npz", 70000);
    const axds::npz_reader many(tmp.path() / "many.npz");
    CHECK(many.members().size() == 70000);
    const auto result = axds::test::run_python(
        "import sys, zipfile, numpy as np\n"
        "for name, count in (('small.npz', 30), ('many.npz', 70000)):\n"
        "    path = sys.argv[1] + '/' + name\n"
        "    assert zipfile.ZipFile(path).testzip() is None\n"
        "    with np.load(path, allow_pickle=False) as z:\n"
        "        keys = list(z.keys())\n"
        "        assert len(keys) == count, len(keys)\n"
        "        for i in (0, 1, count - 1):\n"
        "            a = z[keys[i]]\n"
        "            assert keys[i] == '001_%020d' % (i * 1000), keys[i]\n"
        "            assert a.dtype == np.uint8 and a.ndim == 1 and a.size == 9 + i % 37\n"
        "            assert int.from_bytes(a[1:9].tobytes(), 'little') == i * 1000\n"
        "print('ok', end='')\n",
        {tmp.path().string()});
    INFO(result.output);
    CHECK(result.output == "ok");
}

TEST_CASE("numpy reads member names that are not ASCII as written (the UTF-8 flag, as zipfile sets it)",
          "[npy][python]") {
    temp_dir tmp;
    {
        axds::npz_writer writer(tmp.path() / "names.npz");
        const std::vector<std::uint8_t> payload = entry_file(1, 5, 3);
        writer.add("1_5_\xC3\xA9.npy", payload);  // "1_5_é.npy"
        writer.add("plain.npy", payload);
        writer.finish();
    }
    const auto result = axds::test::run_python(
        "import sys, zipfile, numpy as np\n"
        "path = sys.argv[1] + '/names.npz'\n"
        "flags = [i.flag_bits for i in zipfile.ZipFile(path).infolist()]\n"
        "assert flags == [0x800, 0], flags\n"
        "with np.load(path) as z:\n"
        "    assert sorted(z.files) == ['1_5_\\u00e9', 'plain'], z.files\n"
        "    assert z['1_5_\\u00e9'].size == 12 and z['plain'].size == 12\n"
        "print('ok', end='')\n",
        {tmp.path().string()});
    INFO(result.output);
    CHECK(result.output == "ok");
    const axds::npz_reader reader(tmp.path() / "names.npz");
    CHECK(reader.find("1_5_\xC3\xA9.npy") != nullptr);
}

TEST_CASE("npz_reader reads np.savez (CPython 3.11 zipfile) and np.savez_compressed archives", "[npy][python]") {
    temp_dir tmp;
    const auto result = axds::test::run_python(
        "import sys, numpy as np\n"
        "arrays = {'a': np.arange(300, dtype=np.uint8), 'b': np.zeros(0, np.uint8), 'c': np.full(5000, 7, np.uint8)}\n"
        "np.savez(sys.argv[1] + '/plain.npz', **arrays)\n"
        "np.savez_compressed(sys.argv[1] + '/compressed.npz', **arrays)\n",
        {tmp.path().string()});
    REQUIRE(result.exit_code == 0);
    for (const char* name : {"plain.npz", "compressed.npz"}) {
        INFO(name);
        const axds::npz_reader reader(tmp.path() / name);
        REQUIRE(reader.members().size() == 3);
        const auto* a = reader.find("a.npy");
        const auto* c = reader.find("c.npy");
        REQUIRE(a != nullptr);
        REQUIRE(c != nullptr);
        CHECK((std::string(name) == "compressed.npz" ? c->method == 8 : c->method == 0));
        const auto a_payload = axds::npy_u1_payload(reader.data(*a), "a");
        REQUIRE(a_payload.size() == 300);
        for (std::size_t i = 0; i < 300; ++i) {
            CHECK(a_payload[i] == static_cast<std::uint8_t>(i));
        }
        CHECK(axds::npy_u1_payload(reader.data(*reader.find("b.npy")), "b").empty());
        const auto c_payload = axds::npy_u1_payload(reader.data(*c), "c");
        CHECK(c_payload.size() == 5000);
        CHECK(c_payload[4999] == 7);
        for (const auto& member : reader.members()) {
            CHECK_NOTHROW(reader.verify_crc(member));
        }
    }
}

TEST_CASE("npz_reader rejects damaged archives with errors naming the archive", "[npy]") {
    temp_dir tmp;
    const fs::path good = tmp.path() / "good.npz";
    write_archive(good, 5);
    const std::string bytes = axds::test::read_file(good);
    const auto damaged = [&](const std::string& content) {
        axds::test::write_file(tmp.path() / "bad.npz", content);
        return tmp.path() / "bad.npz";
    };
    CHECK_THROWS_MATCHES(axds::npz_reader(damaged("")), axds::value_error,
                         message_contains("bad.npz") && message_contains("too short"));
    CHECK_THROWS_MATCHES(axds::npz_reader(damaged(std::string(100, 'x'))), axds::value_error,
                         message_contains("no zip end-of-central-directory record"));
    CHECK_THROWS_MATCHES(axds::npz_reader(damaged(bytes.substr(bytes.size() / 2))), axds::value_error,
                         message_contains("bad.npz"));
    CHECK_THROWS_AS(axds::npz_reader(tmp.path() / "absent.npz"), axds::file_not_found_error);

    // A flipped data byte is caught by the CRC check on request.
    const axds::npz_reader reader(good);
    std::string flipped = bytes;
    flipped[reader.data_offset(reader.members()[2]) + 130] ^= 0x5A;
    const axds::npz_reader flipped_reader(damaged(flipped));
    CHECK_THROWS_MATCHES(flipped_reader.verify_crc(flipped_reader.members()[2]), axds::value_error,
                         message_contains("001_00000000000000002000.npy") && message_contains("CRC-32"));
}

TEST_CASE("npz_reader survives 1500 randomly truncated or corrupted archives without crashing", "[npy][fuzz]") {
    temp_dir tmp;
    const fs::path good = tmp.path() / "good.npz";
    write_archive(good, 12);
    const std::string original = axds::test::read_file(good);
    std::mt19937_64 rng(42);
    int rejected = 0;
    int accepted = 0;
    for (int round = 0; round < 1500; ++round) {
        std::string mutated = original;
        switch (round % 3) {
            case 0: mutated.resize(rng() % mutated.size()); break;
            case 1:
                for (int flips = 1 + static_cast<int>(rng() % 8); flips > 0; --flips) {
                    mutated[rng() % mutated.size()] = static_cast<char>(rng());
                }
                break;
            default: {  // corrupt the directory region, where offsets and sizes live
                const std::size_t tail = 200 + rng() % 800;
                for (int flips = 1 + static_cast<int>(rng() % 4); flips > 0; --flips) {
                    mutated[mutated.size() - 1 - rng() % tail] = static_cast<char>(rng());
                }
            }
        }
        const fs::path path = tmp.path() / "mutated.npz";
        axds::test::write_file(path, mutated);
        try {
            const axds::npz_reader reader(path);
            for (const auto& member : reader.members()) {
                const auto data = reader.data(member);
                reader.verify_crc(member);
                (void)axds::npy_u1_payload(data, member.name);
            }
            ++accepted;
        } catch (const axds::value_error&) {
            ++rejected;
        } catch (const axds::os_error&) {
            ++rejected;
        }
    }
    CHECK(rejected + accepted == 1500);
    CHECK(rejected > 1000);  // almost every mutation is detected (some flips hit padding)
}

TEST_CASE("crc32 matches zlib for every length, alignment and seed (the carry-less multiplication path included)",
          "[npy]") {
    std::mt19937_64 rng(7);
    std::vector<std::uint8_t> buffer(1U << 20U);
    for (auto& byte : buffer) {
        byte = static_cast<std::uint8_t>(rng());
    }
    const auto reference = [](std::span<const std::uint8_t> data, std::uint32_t seed) {
        return static_cast<std::uint32_t>(::crc32(seed, data.data(), static_cast<uInt>(data.size())));
    };
    int mismatches = 0;
    for (std::size_t length = 0; length <= 1100; ++length) {
        for (std::size_t offset = 0; offset < 16; offset += 5) {
            const auto seed = static_cast<std::uint32_t>(rng());
            const std::span<const std::uint8_t> data(buffer.data() + offset, length);
            mismatches += axds::crc32(data, seed) != reference(data, seed) ? 1 : 0;
        }
    }
    for (int round = 0; round < 50; ++round) {
        const std::size_t offset = rng() % 4096;
        const std::span<const std::uint8_t> data(buffer.data() + offset, rng() % (buffer.size() - offset));
        mismatches += axds::crc32(data) != reference(data, 0) ? 1 : 0;
    }
    CHECK(mismatches == 0);
    // Continuing a CRC over pieces gives the CRC of the whole.
    const std::span<const std::uint8_t> whole(buffer.data(), 1000);
    CHECK(axds::crc32(whole.subspan(300), axds::crc32(whole.first(300))) == axds::crc32(whole));
}

// Issue 21: names in ascending order need no table (find() bisects); any other order is indexed, and a repeated name
// anywhere is refused either way.
TEST_CASE("npz_reader finds members in archives whose names ascend or not and refuses repeats in both", "[npy]") {
    temp_dir tmp;
    const auto write = [&](const std::string& file, const std::vector<std::string>& names) {
        axds::npz_writer writer(tmp.path() / file);
        for (std::size_t i = 0; i < names.size(); ++i) {
            const auto bytes = entry_file(1, i, 4);
            writer.add(names[i], bytes);
        }
        writer.finish();
        return tmp.path() / file;
    };
    const std::vector<std::string> shuffled{"c.npy", "a.npy", "e.npy", "b.npy", "d.npy"};
    const axds::npz_reader mixed(write("mixed.npz", shuffled));
    const axds::npz_reader sorted(write("sorted.npz", {"a.npy", "b.npy", "c.npy", "d.npy", "e.npy"}));
    for (std::size_t i = 0; i < shuffled.size(); ++i) {
        REQUIRE(mixed.find(shuffled[i]) == &mixed.members()[i]);
        CHECK(sorted.find(shuffled[i])->name == shuffled[i]);
    }
    for (const char* absent : {"", "0.npy", "aa.npy", "f.npy", "c.np"}) {
        CHECK(mixed.find(absent) == nullptr);
        CHECK(sorted.find(absent) == nullptr);
    }
    // A repeat that is not next to its twin, in an otherwise ascending run.
    const auto repeated = write("repeated.npz", {"a.npy", "b.npy", "c.npy", "b.npy"});
    CHECK_THROWS_MATCHES(axds::npz_reader(repeated), axds::value_error, message_contains("two members have this name"));
}
