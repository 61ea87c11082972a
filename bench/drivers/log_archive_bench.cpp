// End-to-end benchmarks of log archives (issue: Log archives), each with its baseline measured in the same run:
//   1. assemble N entries x 256 B           vs python3 + numpy (np.load each entry, np.savez)
//   2. assemble M entries x S MiB           vs `cat` of the same files into one file
//   3. iterate K messages x 64 B, summing payload bytes   vs python3 + numpy reading members through np.load;
//      and the cost of the CRC-32 check on first read: fresh readers with and without it (npz_reader_options
//      {.verify_crc = false}), alternating, one warm-up each then the median of five, and a second pass over a
//      checked reader (the check is cached per member, so that pass costs nothing extra); and open + onset
//      discovery   vs reading the archive's central directory bytes once (pread), alternating, median of five
// Files live under --dir (default: the current directory); the page cache is warm (entries were just written).
//
//   ads_bench_log_archive [--dir D] [--entries N] [--big-count M] [--big-mib S] [--messages K] [--python-sample P]
//                         [--assemble 0]   (0: only the iteration benchmarks)

#include <axds/core/runtime.hpp>
#include <axds/log/log_archive.hpp>
#include <axds/log/log_archive_reader.hpp>
#include <axds/log/log_package.hpp>
#include <axds/npy/npz_archive.hpp>

#include "bench_support.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace fs = std::filesystem;
using axds::bench::clock_type;
using axds::bench::seconds_since;
using axds::bench::timed_shell;

namespace {

struct settings {
    fs::path dir = fs::current_path();
    std::size_t entries = 20000;
    std::size_t big_count = 64;
    std::size_t big_mib = 16;
    std::size_t messages = 1000000;
    std::size_t python_sample = 20000;
    int assemble = 1;
};

/// The CPU model from /proc/cpuinfo ("unknown" when it cannot be read).
std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with("model name")) {
            const auto colon = line.find(':');
            return colon == std::string::npos ? line : line.substr(line.find_first_not_of(' ', colon + 1));
        }
    }
    return "unknown";
}

void write_entries(const fs::path& dir, std::size_t count, std::size_t payload) {
    fs::create_directories(dir);
    axds::log_package package{.source_id = 1};
    package.payload.assign(payload, 0xAB);
    for (std::size_t i = 0; i < count; ++i) {
        package.acquisition_time = i;
        const auto bytes = package.npy_file_bytes();
        std::ofstream out(dir / package.file_name(), std::ios::binary);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    }
}

bool have_numpy() {
    return std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0;
}

void bench_small(const settings& s) {
    const fs::path dir = s.dir / "small_data_log";
    fs::remove_all(dir);
    write_entries(dir, s.entries, 256);
    // One warm-up run, then the median of three (each one's archive removed before the next; entries kept).
    std::vector<double> runs;
    for (int run = 0; run < 4; ++run) {
        const auto start = clock_type::now();
        axds::block_on(axds::async_assemble_log_archives(dir, {.remove_sources = false}));
        runs.push_back(seconds_since(start));
        fs::remove(dir / "1_log.npz");
    }
    fmt::print("assemble {} entries x 256 B: first run {:.3f} s, then {:.3f} / {:.3f} / {:.3f} s\n", s.entries, runs[0],
               runs[1], runs[2], runs[3]);
    runs.erase(runs.begin());
    std::sort(runs.begin(), runs.end());
    const double ours = runs[1];
    fmt::print("  median {:.3f} s = {:.0f} entries/s\n", ours, static_cast<double>(s.entries) / ours);
    if (have_numpy()) {
        std::string out;
        // The same protocol in Python: a warm-up run, then the median of three, in one interpreter.
        const std::string script = fmt::format(
            "import glob, os, time, numpy as np\n"
            "runs = []\n"
            "for run in range(4):\n"
            "    t = time.perf_counter()\n"
            "    files = sorted(glob.glob('{0}/*.npy'))\n"
            "    arrays = {{f.rsplit('/', 1)[1][:-4]: np.load(f) for f in files}}\n"
            "    np.savez('{0}/python_1_log.npz', **arrays)\n"
            "    runs.append(time.perf_counter() - t)\n"
            "    os.remove('{0}/python_1_log.npz')\n"
            "print(sorted(runs[1:])[1])\n",
            dir.string());
        timed_shell("/usr/bin/python3 -c \"" + script + "\"", &out);
        const double python = std::atof(out.c_str());
        fmt::print(
            "  baseline python3+numpy (np.load + np.savez), median of three after a warm-up: {:.3f} s = {:.0f} "
            "entries/s; axds is {:.1f}x\n",
            python, static_cast<double>(s.entries) / python, python / ours);
    } else {
        fmt::print("  baseline python3+numpy: numpy not installed, skipped\n");
    }
    fs::remove_all(dir);
}

void bench_big(const settings& s) {
    const fs::path dir = s.dir / "big_data_log";
    fs::remove_all(dir);
    write_entries(dir, s.big_count, s.big_mib << 20U);
    const double megabytes = static_cast<double>(s.big_count * (s.big_mib << 20U)) / 1e6;
    const std::string sync_all = fmt::format("sync -f {}", dir.string());
    (void)timed_shell(sync_all);  // untimed: every timed run below reads clean, cached entries
    const auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    // 1. Page-cache speed: cat vs assembly keeping the entries (no fsync), alternating, median of three each after
    //    one untimed warm-up of each (on a VM, the first use of never-touched guest memory for the page cache costs
    //    up to 6x: whichever ran first would be penalized).
    std::vector<double> cats;
    std::vector<double> ours;
    for (int run = 0; run < 4; ++run) {
        cats.push_back(timed_shell(fmt::format("cat {0}/*.npy > {0}/cat.out", dir.string())));
        fs::remove(dir / "cat.out");
        (void)timed_shell(sync_all);
        const auto start = clock_type::now();
        axds::block_on(axds::async_assemble_log_archives(dir, {.remove_sources = false}));
        ours.push_back(seconds_since(start));
        fs::remove(dir / "1_log.npz");
        (void)timed_shell(sync_all);
    }
    cats.erase(cats.begin());
    ours.erase(ours.begin());
    fmt::print("assemble {} entries x {} MiB, entries kept: {:.3f} / {:.3f} / {:.3f} s, median {:.0f} MB/s\n",
               s.big_count, s.big_mib, ours[0], ours[1], ours[2], megabytes / median(ours));
    fmt::print("  baseline cat > file: {:.3f} / {:.3f} / {:.3f} s, median {:.0f} MB/s; axds is {:.2f}x\n", cats[0],
               cats[1], cats[2], megabytes / median(cats), median(cats) / median(ours));
    // 2. Durable: cat + sync vs the default assembly (archive fsynced, then the entries removed).
    const double cat_sync =
        timed_shell(fmt::format("cat {0}/*.npy > {0}/cat.out && sync -f {0}/cat.out", dir.string()));
    fs::remove(dir / "cat.out");
    (void)timed_shell(sync_all);
    const auto start = clock_type::now();
    axds::block_on(axds::async_assemble_log_archives(dir));
    const double durable = seconds_since(start);
    fmt::print("assemble {} entries x {} MiB, default (archive fsynced, entries removed): {:.3f} s = {:.0f} MB/s\n",
               s.big_count, s.big_mib, durable, megabytes / durable);
    fmt::print("  baseline cat > file + sync: {:.3f} s = {:.0f} MB/s; axds is {:.2f}x\n", cat_sync,
               megabytes / cat_sync, cat_sync / durable);
    fs::remove_all(dir);
}

std::uint64_t le(const std::uint8_t* p, unsigned bytes) {
    std::uint64_t value = 0;
    for (unsigned i = 0; i < bytes; ++i) {
        value |= static_cast<std::uint64_t>(p[i]) << (8U * i);
    }
    return value;
}

/// The floor under opening an archive: open, find the end records in the last 64 KiB, pread the whole central
/// directory once and touch every 8-byte word of it. Returns the seconds taken.
double read_central_directory(const fs::path& archive, std::uint64_t& checksum) {
    const auto start = clock_type::now();
    const int fd = ::open(archive.c_str(), O_RDONLY | O_CLOEXEC);
    const auto size = static_cast<std::uint64_t>(fs::file_size(archive));
    const std::uint64_t tail_size = std::min<std::uint64_t>(size, 65536 + 22);
    std::vector<std::uint8_t> tail(tail_size);
    (void)::pread(fd, tail.data(), tail.size(), static_cast<off_t>(size - tail_size));
    std::size_t end = tail.size() - 22;
    while (end > 0 && le(tail.data() + end, 4) != 0x06054b50) {
        --end;
    }
    std::uint64_t cd_size = le(tail.data() + end + 12, 4);
    std::uint64_t cd_offset = le(tail.data() + end + 16, 4);
    if (end >= 20 && le(tail.data() + end - 20, 4) == 0x07064b50) {
        std::array<std::uint8_t, 56> zip64{};
        (void)::pread(fd, zip64.data(), zip64.size(), static_cast<off_t>(le(tail.data() + end - 20 + 8, 8)));
        cd_size = le(zip64.data() + 40, 8);
        cd_offset = le(zip64.data() + 48, 8);
    }
    std::vector<std::uint8_t> directory(cd_size);
    (void)::pread(fd, directory.data(), directory.size(), static_cast<off_t>(cd_offset));
    ::close(fd);
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i + 8 <= directory.size(); i += 8) {
        sum += le(directory.data() + i, 8);
    }
    checksum += sum;
    return seconds_since(start);
}

void bench_iterate(const settings& s) {
    const fs::path archive = s.dir / "iterate_log.npz";
    std::size_t member_bytes = 0;  // one message's .npy member: what the CRC-32 check hashes
    {
        axds::npz_writer writer(archive);
        const auto onset = axds::make_onset_package(1, 1700000000000000ULL);
        writer.add(onset.file_name(), onset.npy_file_bytes());
        axds::log_package package{.source_id = 1};
        package.payload.assign(64, 0x5A);
        member_bytes = package.npy_file_bytes().size();
        for (std::size_t i = 1; i <= s.messages; ++i) {
            package.acquisition_time = i;
            writer.add(package.file_name(), package.npy_file_bytes());
        }
        writer.finish();
    }
    // Open + onset discovery against reading the central directory once, alternating, one warm-up each then the
    // median of five.
    std::vector<double> opens;
    std::vector<double> floors;
    std::uint64_t directory_sum = 0;
    for (int run = 0; run < 6; ++run) {
        const auto t = clock_type::now();
        const axds::log_archive_reader r(archive);
        (void)r.message_count();
        opens.push_back(seconds_since(t));
        floors.push_back(read_central_directory(archive, directory_sum));
    }
    const double open_median = axds::bench::median_after_warmup(opens);
    const double floor_median = axds::bench::median_after_warmup(floors);
    fmt::print(
        "open + onset discovery of a {}-member archive: median {:.3f} s; baseline read the central directory once "
        "(pread + touch): median {:.3f} s; axds takes {:.2f}x the time (checksum {})\n",
        s.messages + 1, open_median, floor_median, open_median / floor_median, directory_sum % 1000);

    auto start = clock_type::now();
    const axds::log_archive_reader reader(archive);
    const std::size_t count = reader.message_count();
    const double open = seconds_since(start);
    start = clock_type::now();
    std::uint64_t bytes = 0;
    std::uint64_t last = 0;
    for (const auto message : reader.messages()) {
        bytes += message.payload.size();
        last = message.timestamp_us;
    }
    const double first_pass = seconds_since(start);
    fmt::print(
        "iterate {} messages x 64 B: open+discover {:.3f} s, first pass (CRC-32 checked) {:.4f} s = {:.3g} "
        "messages/s ({} payload bytes, last t={})\n",
        count, open, first_pass, static_cast<double>(count) / first_pass, bytes, last);

    // The CRC-32 check's cost: a fresh reader's first pass with the check (the default) and without it, alternating;
    // one warm-up of each, then the median of five. Opening and onset discovery are not timed.
    const auto timed_pass = [&](const axds::log_archive_reader& r) {
        const auto t = clock_type::now();
        std::uint64_t sum = 0;
        for (const auto message : r.messages()) {
            sum += message.payload.size();
        }
        const double seconds = seconds_since(t);
        if (sum != bytes) {
            fmt::print(stderr, "payload byte count mismatch: {} != {}\n", sum, bytes);
            std::exit(1);
        }
        return seconds;
    };
    std::vector<double> checked;
    std::vector<double> unchecked;
    std::vector<double> second_pass;
    for (int run = 0; run < 6; ++run) {
        {
            const axds::log_archive_reader r(archive);
            (void)r.message_count();
            checked.push_back(timed_pass(r));
            second_pass.push_back(timed_pass(r));  // every member already verified
        }
        {
            const axds::log_archive_reader r(archive, {}, {.verify_crc = false});
            (void)r.message_count();
            unchecked.push_back(timed_pass(r));
        }
    }
    const double with_crc = axds::bench::median_after_warmup(checked);
    const double without_crc = axds::bench::median_after_warmup(unchecked);
    const double cached = axds::bench::median_after_warmup(second_pass);
    const double per_message_ns = (with_crc - without_crc) / static_cast<double>(count) * 1e9;
    fmt::print(
        "  CRC-32 on first read (default): median {:.4f} s = {:.3g} messages/s; unchecked ({{.verify_crc = false}}): "
        "median {:.4f} s = {:.3g} messages/s; the check costs {:.2f}x the time ({:+.1f} ns per message, {} B "
        "hashed each); second pass over a checked reader: median {:.4f} s ({:.2f}x unchecked)\n",
        with_crc, static_cast<double>(count) / with_crc, without_crc, static_cast<double>(count) / without_crc,
        with_crc / without_crc, per_message_ns, member_bytes, cached, cached / without_crc);
    const double rate = static_cast<double>(count) / with_crc;
    if (have_numpy()) {
        std::string out;
        const std::string script = fmt::format(
            "import time, numpy as np\n"
            "z = np.load('{}')\n"
            "keys = z.files[1:{}]\n"
            "t = time.perf_counter(); total = 0\n"
            "for k in keys:\n"
            "    total += z[k][9:].size\n"
            "print((time.perf_counter() - t) / len(keys))\n",
            archive.string(), s.python_sample + 1);
        timed_shell("/usr/bin/python3 -c \"" + script + "\"", &out);
        const double per_message = std::atof(out.c_str());
        fmt::print("  baseline python3+numpy z[key] per message (sample of {}): {:.3g} messages/s; axds is {:.0f}x\n",
                   s.python_sample, 1.0 / per_message, rate * per_message);
    }
    fs::remove(archive);
}

}  // namespace

int main(int argc, char** argv) {
    settings s;
    const bool parsed = axds::bench::parse_flags(argc, argv,
                                                 {{"--dir", &s.dir},
                                                  {"--entries", &s.entries},
                                                  {"--big-count", &s.big_count},
                                                  {"--big-mib", &s.big_mib},
                                                  {"--messages", &s.messages},
                                                  {"--python-sample", &s.python_sample},
                                                  {"--assemble", &s.assemble}});
    if (!parsed) {
        return 2;
    }
    s.dir /= fmt::format("axds-bench-{}", ::getpid());
    fs::create_directories(s.dir);
    fmt::print("log archive benchmarks in {} (warm page cache), CPU: {}\n", s.dir.string(), cpu_model());
    if (s.assemble != 0) {  // --assemble 0: only the iteration benchmarks
        bench_small(s);
        bench_big(s);
    }
    bench_iterate(s);
    fs::remove_all(s.dir);
    return 0;
}
