// End-to-end benchmarks of the data logger (issue: DataLogger), each with its baseline measured in the same run:
//   1. write N entries x 256 B through data_logger (producer thread -> queue -> entry writer), timed from the
//      first log() to the return of stop()      vs  a plain C loop of open/write/close for the same files
//                                               vs  python3 + numpy np.save per entry in a loop
//                                               vs  the Python library's DataLogger pipeline (§6.4) rebuilt with
//                                                   multiprocessing + numpy (both when numpy is present)
//      and the same entries from a producer behind log_socket_server (producers in other processes), and from a
//      Python producer through it (examples/python/axds_log_socket.py) vs the Python DataLogger pipeline
//   2. producer latency of try_log() with 256 B payloads while the writer drains: p50/p99/p99.9 over C calls,
//      with 1 and 4 producer threads (unique entry names: the logger refuses to overwrite an entry file), each call
//      followed by an empty timed interval as the same-run control; --attribute-faults 1 brackets each call with
//      getrusage (outside the timed interval) and reports how many of the calls over 2 us took a page fault.
//   3. the streaming layout (log_layout::archives, issue 19; --only-stream 1: only this part, 2: d., 3: a., 4: e.):
//      a. 4 producers log 256 B messages for --stream-seconds (default 5) through log() vs a plain C loop appending
//         the same member bytes (zip local header + .npy) to one file with one write() per message; messages/s;
//         and vs the filesystem's ceiling: the bytes of the run written sequentially in 8 MiB writes + fdatasync
//      b. the same messages vs np.save per message (python3 + numpy)
//      c. entry-file logger + async_assemble_log_archives vs streaming logger + stop, end to end, same messages
//      d. 1 MiB payloads: streaming logger MB/s vs a plain append loop (one write per member)
//      e. try_log p50/p99/p99.9 with 4 producers while the streaming writer drains
// Files live under --dir (default: the current directory); run it once on the repo's disk and once on /dev/shm.
//
//   ads_bench_data_logger [--dir D] [--entries N] [--calls C] [--python-sample P] [--writes W] [--throughput 0]

#include <axds/core/runtime.hpp>
#include <axds/log/data_logger.hpp>
#include <axds/log/log_archive.hpp>
#include <axds/log/log_package.hpp>
#include <axds/log/log_socket.hpp>
#include <axds/npy/npy_format.hpp>
#include <axds/npy/npz_archive.hpp>

#include <asio/co_spawn.hpp>
#include <asio/use_future.hpp>

#include <fmt/format.h>

#include "bench_support.hpp"
#include "detail/fault_hooks.hpp"  // src/: the logger's node pool counts
#include "log/entry_writer.hpp"    // src/: what the logger's queue charges per entry besides its payload
#include "npy/zip_records.hpp"     // src/: the member encoder the baseline appends with
#include "support/io_thread.hpp"   // tests/support: the same helper the logger tests use
#include "sys/endian.hpp"          // src/: the little-endian codecs of the formats

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

namespace fs = std::filesystem;
using axds::bench::clock_type;
using axds::bench::seconds_since;
using axds::bench::settle;
using axds::test::io_thread;

namespace {

struct settings {
    fs::path dir = fs::current_path();
    std::size_t entries = 200000;
    std::size_t calls = 1000000;
    std::size_t python_sample = 20000;
    std::size_t writes = 32;  // data_logger_options::workers for the throughput run
    std::size_t throughput = 1;
    std::size_t stream_seconds = 5;  // 0: a 0.2 s smoke run (ctest)
    std::size_t only_stream = 0;
    std::size_t attribute_faults = 0;  // 1: getrusage around each try_log call to tell which calls faulted
    std::size_t latency_only = 0;      // 1: only the try_log latency runs
};

axds::log_package make_package(std::uint64_t time) {
    axds::log_package package{.source_id = 1, .acquisition_time = time};
    package.payload.assign(256, static_cast<std::uint8_t>(time));
    return package;
}

/// The baseline: what a C programmer writes by hand — build the bytes, open/write/close, one file after another.
double plain_loop(const fs::path& dir, std::size_t count) {
    fs::create_directories(dir);
    const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const auto start = clock_type::now();
    for (std::size_t i = 0; i < count; ++i) {
        const axds::log_package package = make_package(i + 1);
        const std::vector<std::uint8_t> bytes = package.npy_file_bytes();
        char name[40];
        std::snprintf(name, sizeof name, "%03u_%020llu.npy", 1U, static_cast<unsigned long long>(i + 1));
        const int fd = ::openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
        if (fd < 0 || ::write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
            std::perror("baseline write");
            std::exit(1);
        }
        ::close(fd);
    }
    const double elapsed = seconds_since(start);
    ::close(dir_fd);
    return elapsed;
}

double logger_run(const fs::path& parent, std::size_t count, std::size_t writes, bool use_io_uring,
                  axds::data_logger_report& report) {
    io_thread loop;
    axds::data_logger_options options;
    options.workers = static_cast<int>(writes);
    options.use_io_uring = use_io_uring;
    axds::data_logger logger(loop.executor(), parent, "bench", options);
    logger.start();
    const auto start = clock_type::now();
    for (std::size_t i = 0; i < count; ++i) {
        logger.log(make_package(i + 1));
    }
    report = logger.stop();
    return seconds_since(start);
}

/// True when `dir` is on tmpfs (/dev/shm).
bool on_tmpfs(const fs::path& dir) {
    struct statfs info {};

    return ::statfs(dir.c_str(), &info) == 0 && info.f_type == TMPFS_MAGIC;
}

/// Ends a timed step (untimed). On tmpfs its files are removed: on a VM, memory the guest has never touched costs a
/// fault to back, and a step that kept its 200,000 files (~800 MB) would make the next one pay for that instead of
/// writing. On a disk they stay until the end: a journal-less ext4 (as on our CI machines) skips inodes deleted in
/// the last 60 s when it allocates new ones, so creates right after a mass deletion crawl (measured 3.5k files/s).
void end_step(const fs::path& dir) {
    if (on_tmpfs(dir)) {
        fs::remove_all(dir);
    }
    settle();
}

/// The Python side, in one python3 process: (1) np.save per entry in a loop, median of three passes; (2) the Python
/// library's DataLogger pipeline as §6.3/§6.4 describe it: a multiprocessing manager queue, a logger process polling
/// it every 5 ms, and a pool of thread_count = 5 threads running np.save per entry; timed from the first put to the
/// join of the logger process after the terminator is set (the logger was started before timing, as ours is).
constexpr const char* python_baselines = R"(
import multiprocessing as mp, os, queue, shutil, sys, time
from concurrent.futures import ThreadPoolExecutor
import numpy as np

def entry(source, stamp, payload):
    return np.concatenate([np.array([source], dtype=np.uint8), np.array([stamp], dtype=np.uint64).view(np.uint8),
                           payload])

def save_loop(count, directory, keep):
    os.makedirs(directory)
    payload = np.full(256, 7, dtype=np.uint8)
    start = time.perf_counter()
    for i in range(count):
        np.save(os.path.join(directory, '001_%020d.npy' % (i + 1)), entry(1, i + 1, payload))
    elapsed = time.perf_counter() - start
    if not keep:
        shutil.rmtree(directory)
    return elapsed

def logger_process(input_queue, terminator, directory, thread_count, poll_ms):
    with ThreadPoolExecutor(thread_count) as pool:
        pending = []
        while terminator.value == 0 or not input_queue.empty():
            try:
                source, stamp, payload = input_queue.get_nowait()
            except queue.Empty:
                time.sleep(poll_ms / 1000)
                continue
            name = os.path.join(directory, '%03d_%020d.npy' % (source, stamp))
            pending.append(pool.submit(np.save, name, entry(source, stamp, payload)))
            running = []
            for future in pending:
                if future.done():
                    future.result()
                else:
                    running.append(future)
            pending = running
        for future in pending:
            future.result()

def pipeline(count, directory, keep):
    os.makedirs(directory)
    manager = mp.Manager()
    input_queue = manager.Queue()
    terminator = mp.Value('B', 0)
    process = mp.Process(target=logger_process, args=(input_queue, terminator, directory, 5, 5), daemon=True)
    process.start()
    payload = np.full(256, 7, dtype=np.uint8)
    start = time.perf_counter()
    for i in range(count):
        input_queue.put((np.uint8(1), np.uint64(i + 1), payload))
    terminator.value = 1
    process.join()
    elapsed = time.perf_counter() - start
    written = len(os.listdir(directory))
    manager.shutdown()
    if not keep:
        shutil.rmtree(directory)
    if process.exitcode != 0 or written != count:
        sys.exit('python pipeline: exit code %s, %d of %d entries' % (process.exitcode, written, count))
    return elapsed

count, base, keep = int(sys.argv[1]), sys.argv[2], sys.argv[3] == 'keep'
save_loop(count // 4, os.path.join(base, 'warmup'), keep)
passes = sorted(save_loop(count, os.path.join(base, 'np_save_%d' % k), keep) for k in range(3))
print(count / passes[1], count / pipeline(count, os.path.join(base, 'pipeline'), keep))
)";

/// One logger configuration, `runs` times (each in a fresh directory, see end_step); returns the median seconds.
double timed_logger(const settings& s, std::size_t writes, bool use_io_uring, int runs, bool& io_uring_used) {
    static std::size_t next_step = 0;  // numbers the logger runs' directories
    std::vector<double> seconds;
    for (int r = 0; r < runs; ++r) {
        axds::data_logger_report report;
        const fs::path parent = s.dir / fmt::format("logger{}", next_step++);
        seconds.push_back(logger_run(parent, s.entries, writes, use_io_uring, report));
        end_step(parent);
        if (report.entries_written != s.entries || !report.clean()) {
            fmt::print(stderr, "data logger wrote {} of {} entries: {}\n", report.entries_written, s.entries,
                       report.first_error);
            std::exit(1);
        }
        io_uring_used = report.used_io_uring;
    }
    std::sort(seconds.begin(), seconds.end());
    return seconds[seconds.size() / 2];
}

/// Producers in another process: the same entries sent through a log_socket_producer (a thread here; the socket does
/// not care which process it is in) to a log_socket_server in front of the logger, timed from the connect to the
/// return of stop() after the server has confirmed every package.
double socket_run(const fs::path& parent, std::size_t count, axds::data_logger_report& report) {
    io_thread loop;
    axds::data_logger logger(loop.executor(), parent, "bench");
    logger.start();
    axds::log_socket_server server(loop.executor(), logger, parent / "bench.sock");
    auto served = asio::co_spawn(loop.executor(), server.async_run(), asio::use_future);
    const auto start = clock_type::now();
    std::uint64_t confirmed = 0;
    {
        axds::log_socket_producer producer(parent / "bench.sock");
        for (std::size_t i = 0; i < count; ++i) {
            producer.log(make_package(i + 1));
        }
        confirmed = producer.close();
    }
    server.close();
    const axds::log_socket_report served_report = served.get();
    report = logger.stop();
    const double seconds = seconds_since(start);
    if (confirmed != count || !served_report.clean()) {
        fmt::print(stderr, "log socket confirmed {} of {} packages: {}\n", confirmed, count, served_report.first_error);
        std::exit(1);
    }
    return seconds;
}

/// A Python producer (examples/python/axds_log_socket.py) logging through a log_socket_server: what a Python
/// acquisition script gets from an axds logger instead of the Python DataLogger. Timed from its first log()
/// (CLOCK_MONOTONIC, printed by the producer; steady_clock here) to the return of stop(). Entries/s, or 0.
double python_socket_rate(const settings& s) {
    const fs::path parent = s.dir / "python_socket";
    fs::create_directories(parent);
    io_thread loop;
    axds::data_logger logger(loop.executor(), parent, "bench");
    logger.start();
    axds::log_socket_server server(loop.executor(), logger, parent / "bench.sock");
    auto served = asio::co_spawn(loop.executor(), server.async_run(), asio::use_future);
    const std::string command = fmt::format(
        "/usr/bin/python3 -c \"\n"
        "import sys, time, numpy as np\n"
        "sys.path.insert(0, '{0}')\n"
        "from axds_log_socket import LogSocketProducer\n"
        "payload = np.full(256, 7, dtype=np.uint8)\n"
        "producer = LogSocketProducer('{1}')\n"
        "start = time.monotonic()\n"
        "for i in range({2}):\n"
        "    producer.log(1, i + 1, payload)\n"
        "producer.close()\n"
        "print(start)\n\"",
        AXDS_PYTHON_CLIENT_DIR, (parent / "bench.sock").string(), s.python_sample);
    std::string out;
    const double took = axds::bench::timed_shell(command, &out);
    server.close();
    const axds::log_socket_report served_report = served.get();
    const axds::data_logger_report report = logger.stop();
    const double end = std::chrono::duration<double>(clock_type::now().time_since_epoch()).count();
    end_step(parent);
    const double start = took < 0 ? 0 : std::atof(out.c_str());
    if (start <= 0 || report.entries_written != s.python_sample || !served_report.clean()) {
        return 0;
    }
    return static_cast<double>(s.python_sample) / (end - start);
}

void bench_throughput(const settings& s) {
    const double n = static_cast<double>(s.entries);
    fmt::print("write {} entries x 256 B (median of 3 runs after a warm-up; one run per other configuration):\n",
               s.entries);
    std::vector<double> plain_runs;
    for (int r = 0; r < 4; ++r) {  // the first is the warm-up
        const fs::path plain_dir = s.dir / fmt::format("plain{}", r);
        plain_runs.push_back(plain_loop(plain_dir, s.entries));
        end_step(plain_dir);
    }
    const double plain = axds::bench::median_after_warmup(plain_runs);
    fmt::print("  baseline plain open/write/close loop: {:.3f} s = {:.0f} entries/s\n", plain, n / plain);
    double default_ours = 0;  // the default options: plain syscalls on the CPU pool, 5 writes in flight
    for (const bool use_io_uring : {false, true}) {
        if (use_io_uring && !axds::io_uring_available()) {
            continue;
        }
        for (const std::size_t writes : {std::size_t{5}, s.writes}) {
            const bool is_default = !use_io_uring && writes == 5;
            bool used = false;
            const double ours = timed_logger(s, writes, use_io_uring, is_default ? 3 : 1, used);
            fmt::print(
                "  axds data_logger ({}, {} writes in flight{}): {:.3f} s = {:.0f} entries/s; {:.2f}x the loop\n",
                used ? "io_uring" : "plain syscalls on the CPU pool", writes, is_default ? ", default options" : "",
                ours, n / ours, plain / ours);
            if (is_default) {
                default_ours = ours;
            }
        }
    }
    {
        axds::data_logger_report report;
        const fs::path parent = s.dir / "socket";
        fs::create_directories(parent);
        const double socket = socket_run(parent, s.entries, report);
        end_step(parent);
        if (report.entries_written != s.entries || !report.clean()) {
            fmt::print(stderr, "data logger wrote {} of {} socket entries\n", report.entries_written, s.entries);
            std::exit(1);
        }
        fmt::print(
            "  through log_socket_server (1 socket producer, default options): {:.3f} s = {:.0f} entries/s; "
            "{:.2f}x the loop, {:.2f}x the in-process producer\n",
            socket, n / socket, plain / socket, default_ours / socket);
    }
    if (std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
        fmt::print("  baselines python3+numpy: numpy not installed, skipped\n");
        return;
    }
    const fs::path script = s.dir / "python_baselines.py";
    std::FILE* file = std::fopen(script.c_str(), "w");
    if (file == nullptr || std::fputs(python_baselines, file) < 0 || std::fclose(file) != 0) {
        fmt::print(stderr, "cannot write {}\n", script.string());
        std::exit(1);
    }
    std::string out;
    const double took =
        axds::bench::timed_shell(fmt::format("/usr/bin/python3 '{}' {} '{}' {}", script.string(), s.python_sample,
                                             s.dir.string(), on_tmpfs(s.dir) ? "remove" : "keep"),
                                 &out);
    double save_rate = 0;
    double pipeline_rate = 0;
    if (took < 0 || std::sscanf(out.c_str(), "%lf %lf", &save_rate, &pipeline_rate) != 2) {
        fmt::print("  baselines python3+numpy: failed to run\n");
        return;
    }
    const double ours_rate = default_ours > 0 ? n / default_ours : 0.0;
    fmt::print(
        "  baseline python3+numpy np.save per entry in a loop ({} entries, median of 3): {:.0f} entries/s; axds "
        "(default options) is {:.1f}x, the plain C loop {:.1f}x\n",
        s.python_sample, save_rate, ours_rate / save_rate, (n / plain) / save_rate);
    fmt::print(
        "  baseline Python DataLogger pipeline (manager queue -> logger process -> 5 np.save threads, {} entries): "
        "{:.0f} entries/s; axds (default options) is {:.1f}x\n",
        s.python_sample, pipeline_rate, ours_rate / pipeline_rate);
    const double python_socket = python_socket_rate(s);
    if (python_socket <= 0) {
        fmt::print("  Python producer through log_socket_server: failed to run\n");
        return;
    }
    fmt::print(
        "  Python producer through log_socket_server (examples/python/axds_log_socket.py, {} entries, until stop()): "
        "{:.0f} entries/s; {:.1f}x the Python DataLogger pipeline, {:.1f}x np.save in a loop\n",
        s.python_sample, python_socket, python_socket / pipeline_rate, python_socket / save_rate);
}

double percentile(std::vector<std::uint32_t>& ns, double q) {
    const auto index = static_cast<std::size_t>(q * static_cast<double>(ns.size() - 1));
    std::nth_element(ns.begin(), ns.begin() + static_cast<std::ptrdiff_t>(index), ns.end());
    return ns[index];
}

/// What one producer thread of the latency run measured.
struct producer_samples {
    std::vector<std::uint32_t> calls;    // ns per try_log call (refused calls included)
    std::vector<std::uint32_t> control;  // ns of an empty timed interval right after each call: the machine's noise
    std::vector<char> faulted;           // per call (--attribute-faults 1): a page fault happened inside the call
    std::vector<char> switched;          // per call (--attribute-faults 1): the thread was switched out inside it
    std::size_t refused = 0;
    long faults = 0;  // minor page faults of the thread over the whole loop
};

long minor_faults() {
    rusage usage{};
    ::getrusage(RUSAGE_THREAD, &usage);
    return usage.ru_minflt;
}

/// Minor page faults and context switches (voluntary + involuntary) of this thread so far.
std::pair<long, long> faults_and_switches() {
    rusage usage{};
    ::getrusage(RUSAGE_THREAD, &usage);
    return {usage.ru_minflt, usage.ru_nvcsw + usage.ru_nivcsw};
}

std::uint32_t nanoseconds(clock_type::time_point a, clock_type::time_point b) {
    return static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
}

/// One producer: `count` calls of try_log with unique names (source `p`, times 1..count), each timed, followed by an
/// empty timed interval (the control). With `attribute`, getrusage brackets each call (outside the timed interval)
/// to tell which calls took a page fault.
void produce(axds::data_logger& logger, std::size_t p, std::size_t count, bool attribute, producer_samples& out) {
    out.calls.reserve(count + count / 4);
    out.control.reserve(count + count / 4);
    out.faulted.reserve(attribute ? count + count / 4 : 0);
    out.switched.reserve(attribute ? count + count / 4 : 0);
    const long faults_before = minor_faults();
    for (std::size_t i = 0; i < count; ++i) {
        axds::log_package package = make_package(i + 1);
        package.source_id = static_cast<std::uint8_t>(p);
        for (;;) {
            // The brackets end before the samples are stored: a fault on the sample vectors is not the call's.
            const auto before_call = attribute ? faults_and_switches() : std::pair<long, long>{};
            const auto before = clock_type::now();
            const bool accepted = logger.try_log(std::move(package));
            const auto after = clock_type::now();
            const auto control_end = clock_type::now();
            const auto after_call = attribute ? faults_and_switches() : std::pair<long, long>{};
            out.calls.push_back(nanoseconds(before, after));
            out.control.push_back(nanoseconds(after, control_end));
            if (attribute) {
                out.faulted.push_back(static_cast<char>(after_call.first != before_call.first));
                out.switched.push_back(static_cast<char>(after_call.second != before_call.second));
            }
            if (accepted) {
                break;
            }
            ++out.refused;
            std::this_thread::yield();
        }
    }
    out.faults = minor_faults() - faults_before;
}

void print_fault_attribution(const std::vector<producer_samples>& samples) {
    std::size_t faulted = 0;
    std::size_t slow = 0;
    std::size_t slow_faulted = 0;
    std::size_t slow_switched = 0;  // not faulted, but the thread was switched out (preempted or blocked)
    for (const auto& p : samples) {
        for (std::size_t i = 0; i < p.faulted.size(); ++i) {
            const bool is_slow = p.calls[i] > 2000;
            faulted += p.faulted[i] != 0 ? 1U : 0U;
            slow += is_slow ? 1U : 0U;
            slow_faulted += is_slow && p.faulted[i] != 0 ? 1U : 0U;
            slow_switched += is_slow && p.faulted[i] == 0 && p.switched[i] != 0 ? 1U : 0U;
        }
    }
    const auto share = [slow](std::size_t n) {
        return slow == 0 ? 0.0 : 100.0 * static_cast<double>(n) / static_cast<double>(slow);
    };
    fmt::print(
        "  fault attribution: {} calls took a page fault inside the call; of the {} calls over 2 us, {} ({:.1f}%) "
        "took one, {} ({:.1f}%) took none but the thread was switched out inside the call, {} ({:.1f}%) neither\n",
        faulted, slow, slow_faulted, share(slow_faulted), slow_switched, share(slow_switched),
        slow - slow_faulted - slow_switched, share(slow - slow_faulted - slow_switched));
}

void bench_latency(const settings& s, std::size_t producers, axds::log_layout layout = axds::log_layout::entry_files) {
    io_thread loop;
    axds::data_logger_options options;
    options.workers = static_cast<int>(s.writes);
    options.layout = layout;
    const bool streaming = layout == axds::log_layout::archives;
    axds::data_logger logger(loop.executor(), s.dir, streaming ? "stream_latency" : "latency", options);
    logger.start();
    std::vector<producer_samples> samples(producers);
    std::vector<std::thread> threads;
    for (std::size_t p = 0; p < producers; ++p) {
        threads.emplace_back([&, p] { produce(logger, p, s.calls / producers, s.attribute_faults != 0, samples[p]); });
    }
    for (auto& t : threads) {
        t.join();
    }
    const axds::data_logger_report report = logger.stop();
    std::vector<std::uint32_t> all;
    std::vector<std::uint32_t> control;
    std::size_t refusals = 0;
    long fault_count = 0;
    for (const auto& p : samples) {
        all.insert(all.end(), p.calls.begin(), p.calls.end());
        control.insert(control.end(), p.control.begin(), p.control.end());
        refusals += p.refused;
        fault_count += p.faults;
    }
    const double over_2us =
        static_cast<double>(std::count_if(all.begin(), all.end(), [](std::uint32_t ns) { return ns > 2000; }));
    const double control_over_2us =
        static_cast<double>(std::count_if(control.begin(), control.end(), [](std::uint32_t ns) { return ns > 2000; }));
    fmt::print(
        "{}try_log latency, {} producer thread(s), {} calls ({} refused: queue full): p50 {:.0f} ns, p99 {:.0f} ns, "
        "p99.9 {:.0f} ns, max {:.0f} ns; control (empty timed interval after each call, same threads): p50 {:.0f} ns, "
        "p99 {:.0f} ns, p99.9 {:.0f} ns, over 2 us {:.3f}%; writer wrote {} entries (failed {}); calls over 2 us: "
        "{:.0f} ({:.3f}%); minor page faults in the producer threads: {} ({:.3f} per call)\n",
        streaming ? "  streaming writer draining: " : "", producers, all.size(), refusals, percentile(all, 0.5),
        percentile(all, 0.99), percentile(all, 0.999), percentile(all, 1.0), percentile(control, 0.5),
        percentile(control, 0.99), percentile(control, 0.999),
        100.0 * control_over_2us / static_cast<double>(control.size()), report.entries_written, report.entries_failed,
        over_2us, 100.0 * over_2us / static_cast<double>(all.size()), fault_count,
        static_cast<double>(fault_count) / static_cast<double>(all.size()));
    if (s.attribute_faults != 0) {
        print_fault_attribution(samples);
    }
    const auto pool = axds::detail::data_logger_test_access::pool_stats(logger);
    fmt::print(
        "  node pool: {} of at most {} nodes populated, {} nodes taken from the heap (pool empty), {} free after the "
        "stop\n",
        pool.populated, pool.max_nodes, pool.heap_nodes, pool.free_nodes);
    end_step(logger.output_directory());
}

// ------------------------------------------------------------------------------------------- streaming layout

/// fdatasync and close of a baseline's file (the process exits if the sync fails); the seconds since `start`, the
/// sync included.
double sync_and_close(int fd, const char* what, clock_type::time_point start) {
    if (::fdatasync(fd) != 0) {
        std::perror(what);
        std::exit(1);
    }
    const double elapsed = seconds_since(start);
    ::close(fd);
    return elapsed;
}

/// The baseline a careful C programmer would write: per message, encode the member's head (zip local header, .npy
/// header, source and time) into a reused buffer, CRC-32 it with the payload, and append head + payload with one
/// writev() (the payload is not copied). The bytes are the streaming writer's (the same member encoder). It ends
/// with fdatasync, as the logger's timed run ends with the return of stop() (which syncs its archives): without it,
/// on a disk, the loop would be timed writing into the page cache and the logger writing to the disk.
double append_loop(const fs::path& dir, std::size_t count, std::size_t payload) {
    fs::create_directories(dir);
    const int fd = ::open((dir / "1_log.npz").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    axds::log_package package{.source_id = 1};
    package.payload.assign(payload, 7);
    const std::string npy_header = axds::encode_npy_u1_header(9 + payload);
    const std::uint32_t header_crc =
        axds::crc32({reinterpret_cast<const std::uint8_t*>(npy_header.data()), npy_header.size()});
    std::vector<std::uint8_t> head(1024);  // local header with its alignment padding + .npy header + prefix
    std::uint64_t offset = 0;
    const auto start = clock_type::now();
    for (std::size_t i = 0; i < count; ++i) {
        package.acquisition_time = i + 1;
        const std::size_t local = axds::detail::zip_local_header_size(offset, 28);
        std::uint8_t* prefix = head.data() + local + npy_header.size();
        std::copy(npy_header.begin(), npy_header.end(), head.begin() + static_cast<std::ptrdiff_t>(local));
        prefix[0] = package.source_id;
        axds::sys::store_le64(prefix + 1, package.acquisition_time);
        const std::uint32_t crc = axds::crc32(package.payload, axds::crc32({prefix, 9}, header_crc));
        const std::uint64_t data_size = npy_header.size() + 9 + payload;
        axds::detail::encode_zip_local_header(head.data(), offset, package.file_name(), crc, data_size);
        const std::size_t head_size = local + npy_header.size() + 9;
        std::array<iovec, 2> parts{{{head.data(), head_size}, {package.payload.data(), payload}}};
        if (::writev(fd, parts.data(), 2) != static_cast<ssize_t>(head_size + payload)) {
            std::perror("baseline append");
            std::exit(1);
        }
        offset += local + data_size;
    }
    return sync_and_close(fd, "baseline append fdatasync", start);
}

/// The best any queue of `ring_bytes` can do, as a reference for the logger at large payloads: a producer thread
/// fills each `payload`-byte message (as the benchmark's producer does) and CRCs it (as the logger's producer does),
/// into the slots of a ring of `ring_bytes`; this thread appends them in order, head + payload in one writev() as
/// append_loop. Two counters hand the slots over (no allocation, no lock, no member encoder, no sync until the end).
/// When the producer is faster, the ring is full and every payload waits behind `ring_bytes` of others: it is read
/// back from memory, not from the cache, while the producer keeps the memory bus busy. Seconds for `count` messages.
double ring_loop(const fs::path& dir, std::size_t count, std::size_t payload, std::size_t ring_bytes) {
    fs::create_directories(dir);
    const int fd = ::open((dir / "1_log.npz").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    const std::size_t slots = std::max<std::size_t>(1, ring_bytes / payload);
    std::vector<std::vector<std::uint8_t>> ring(slots, std::vector<std::uint8_t>(payload, 0));
    std::vector<std::uint32_t> crcs(slots);
    const std::string npy_header = axds::encode_npy_u1_header(9 + payload);
    const std::uint32_t header_crc =
        axds::crc32({reinterpret_cast<const std::uint8_t*>(npy_header.data()), npy_header.size()});
    std::atomic<std::size_t> filled{0};
    std::atomic<std::size_t> written{0};
    const auto start = clock_type::now();
    std::thread producer([&] {
        std::array<std::uint8_t, 9> prefix{1};
        for (std::size_t i = 0; i < count; ++i) {
            while (i - written.load(std::memory_order_acquire) >= slots) {
                std::this_thread::yield();
            }
            std::vector<std::uint8_t>& slot = ring[i % slots];
            std::fill(slot.begin(), slot.end(), static_cast<std::uint8_t>(i + 1));
            axds::sys::store_le64(prefix.data() + 1, i + 1);
            crcs[i % slots] = axds::crc32(slot, axds::crc32(prefix, header_crc));
            filled.store(i + 1, std::memory_order_release);
        }
    });
    std::vector<std::uint8_t> head(1024);
    std::uint64_t offset = 0;
    for (std::size_t i = 0; i < count; ++i) {
        while (filled.load(std::memory_order_acquire) <= i) {
            std::this_thread::yield();
        }
        const std::size_t local = axds::detail::zip_local_header_size(offset, 28);
        std::copy(npy_header.begin(), npy_header.end(), head.begin() + static_cast<std::ptrdiff_t>(local));
        std::uint8_t* prefix = head.data() + local + npy_header.size();
        prefix[0] = 1;
        axds::sys::store_le64(prefix + 1, i + 1);
        const std::uint64_t data_size = npy_header.size() + 9 + payload;
        const axds::log_package names{.source_id = 1, .acquisition_time = i + 1};
        axds::detail::encode_zip_local_header(head.data(), offset, names.file_name(), crcs[i % slots], data_size);
        const std::size_t head_size = local + npy_header.size() + 9;
        std::array<iovec, 2> parts{{{head.data(), head_size}, {ring[i % slots].data(), payload}}};
        if (::writev(fd, parts.data(), 2) != static_cast<ssize_t>(head_size + payload)) {
            std::perror("ring append");
            std::exit(1);
        }
        offset += local + data_size;
        written.store(i + 1, std::memory_order_release);
    }
    producer.join();
    return sync_and_close(fd, "ring append fdatasync", start);
}

/// The filesystem's own ceiling for a durable stream: `bytes` appended to one file in 8 MiB write() calls, then
/// fdatasync, as the streaming logger's run ends with its durable finish; returns the seconds. No logger writes a
/// stream faster than this, so on a disk it shows how much of the disk's rate a logger run used (its figure differs
/// from run to run on a VM's shared disk).
double sequential_write(const fs::path& dir, std::uint64_t bytes) {
    fs::create_directories(dir);
    const int fd = ::open((dir / "sequential.bin").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    const std::vector<std::uint8_t> block(std::size_t{8} << 20U, 7);
    const auto start = clock_type::now();
    for (std::uint64_t done = 0; done < bytes;) {
        const std::size_t step = static_cast<std::size_t>(std::min<std::uint64_t>(block.size(), bytes - done));
        if (fd < 0 || ::write(fd, block.data(), step) != static_cast<ssize_t>(step)) {
            std::perror("sequential write");
            std::exit(1);
        }
        done += step;
    }
    return sync_and_close(fd, "sequential write fdatasync", start);
}

/// Bytes of the regular files under `dir` (what a logger run wrote).
std::uint64_t bytes_under(const fs::path& dir) {
    std::uint64_t total = 0;
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
        if (entry.is_regular_file()) {
            total += entry.file_size();
        }
    }
    return total;
}

struct stream_result {
    double seconds = 0;
    std::uint64_t messages = 0;
    double steady_seconds = 0;          ///< with warm_messages: from the end of the warm-up to the return of stop()
    std::uint64_t steady_messages = 0;  ///< ... and the messages written in that time (the queue's backlog included)
};

/// `producers` threads log `payload`-byte messages through log() (source = thread) until `seconds` passed (or each
/// sent `per_producer` when that is non-zero); timed from the start to the return of stop(). With `warm_messages`
/// (seconds-bounded runs), the `seconds` start once the first producer logged that many, and the steady figures are
/// timed from there; they count what the writer wrote in that time: the messages logged after the warm-up and those
/// still queued when it ended (a full 256 MiB queue holds 256 messages of 1 MiB, 10-25% of a 1 s run).
stream_result stream_run(const fs::path& parent, std::size_t producers, std::size_t payload, double seconds,
                         std::size_t per_producer, axds::log_layout layout = axds::log_layout::archives,
                         std::uint64_t warm_messages = 0, std::size_t queue_bytes = 0) {
    io_thread loop;
    axds::data_logger_options options;
    options.layout = layout;
    if (queue_bytes != 0) {
        options.queue_capacity_bytes = queue_bytes;
    }
    axds::data_logger logger(loop.executor(), parent, "stream", options);
    logger.start();
    std::atomic<bool> stop{false};
    std::atomic<bool> warm{warm_messages == 0};
    clock_type::time_point warm_end{};   // written by the first producer before `warm` is set
    std::size_t queued_at_warm_end = 0;  // likewise
    std::vector<std::thread> threads;
    const auto start = clock_type::now();
    for (std::size_t p = 0; p < producers; ++p) {
        threads.emplace_back([&, p] {
            axds::log_package package{.source_id = static_cast<std::uint8_t>(p + 1)};
            for (std::uint64_t i = 1; per_producer == 0 ? !stop.load(std::memory_order_relaxed) : i <= per_producer;
                 ++i) {
                package.acquisition_time = i;
                package.payload.assign(payload, static_cast<std::uint8_t>(i));
                logger.log(std::move(package));
                if (p == 0 && i == warm_messages) {
                    warm_end = clock_type::now();
                    queued_at_warm_end = logger.queued_bytes();
                    warm.store(true);
                }
            }
        });
    }
    if (per_producer == 0) {
        while (!warm.load()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
        stop.store(true);
    }
    for (auto& t : threads) {
        t.join();
    }
    const axds::data_logger_report report = logger.stop();
    stream_result r{seconds_since(start), report.entries_written};
    if (warm_messages != 0) {
        r.steady_seconds = seconds_since(warm_end);
        r.steady_messages = report.entries_written - warm_messages * producers +
                            queued_at_warm_end / (payload + axds::detail::entry_bookkeeping_bytes);
    }
    if (!report.clean()) {
        fmt::print(stderr, "streaming logger failed: {}\n", report.first_error);
        std::exit(1);
    }
    return r;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

/// np.save per message (python3 + numpy), median of 3 passes of `count`; 0 without numpy.
double np_save_rate(const fs::path& dir, std::size_t count) {
    const std::string script = fmt::format(
        "import numpy as np, os, time\n"
        "d = '{}'\nos.makedirs(d, exist_ok=True)\nr = []\n"
        "for k in range(3):\n"
        "    t = time.perf_counter()\n"
        "    for i in range({}):\n"
        "        np.save(os.path.join(d, '001_%020d.npy' % i), np.zeros(265, np.uint8))\n"
        "    r.append(time.perf_counter() - t)\n"
        "print({} / sorted(r)[1])\n",
        dir.string(), count, count);
    const std::string command = "/usr/bin/python3 -c \"" + script + "\" 2>/dev/null";
    std::FILE* pipe = ::popen(command.c_str(), "r");
    double rate = 0;
    if (pipe != nullptr) {
        if (std::fscanf(pipe, "%lf", &rate) != 1) {
            rate = 0;
        }
        ::pclose(pipe);
    }
    fs::remove_all(dir);
    return rate;
}

void bench_stream_throughput(const settings& s) {
    const double seconds = s.stream_seconds == 0 ? 0.2 : static_cast<double>(s.stream_seconds);
    fmt::print(
        "streaming layout (log_layout::archives), 256 B messages, 4 producers, {:.1f} s per run, "
        "runs alternated with the baseline, medians of 3:\n",
        seconds);
    std::vector<double> ours;
    std::vector<double> base;
    std::vector<double> ceiling;
    std::uint64_t messages = 0;
    double member_bytes = 0;
    for (int r = 0; r < 3; ++r) {
        const fs::path dir = s.dir / fmt::format("stream{}", r);
        const stream_result run = stream_run(dir, 4, 256, seconds, 0);
        ours.push_back(static_cast<double>(run.messages) / run.seconds);
        messages = run.messages;
        const std::uint64_t written = bytes_under(dir);
        member_bytes = static_cast<double>(written) / static_cast<double>(messages);
        end_step(dir);
        const fs::path plain = s.dir / fmt::format("append{}", r);
        base.push_back(static_cast<double>(messages) / append_loop(plain, messages, 256));
        end_step(plain);
        const fs::path sequential = s.dir / fmt::format("sequential{}", r);
        ceiling.push_back(static_cast<double>(messages) / sequential_write(sequential, written));
        end_step(sequential);
    }
    const double rate = median(ours);
    const double base_rate = median(base);
    fmt::print(
        "  axds streaming logger: {:.0f} messages/s ({} messages in the last run, {:.0f} bytes each in the "
        "archives)\n",
        rate, messages, member_bytes);
    fmt::print("  baseline plain append loop, one write() per member: {:.0f} messages/s  -> {:.2f}x\n", base_rate,
               rate / base_rate);
    fmt::print(
        "  ceiling: the same bytes written sequentially in 8 MiB writes + fdatasync: {:.0f} messages/s "
        "({:.0f} MB/s)  -> the logger ran at {:.2f}x of it\n",
        median(ceiling), median(ceiling) * member_bytes / 1e6, rate / median(ceiling));
    const double np_rate = np_save_rate(s.dir / "np_save", s.stream_seconds == 0 ? 200 : 20000);
    if (np_rate > 0) {
        fmt::print("  baseline np.save per message: {:.0f} messages/s  -> {:.1f}x\n", np_rate, rate / np_rate);
    }
}

void bench_stream_end_to_end(const settings& s) {
    const std::size_t per_producer = s.stream_seconds == 0 ? 2000 : 50000;
    std::vector<double> entry_runs;
    std::vector<double> stream_runs;
    for (int r = 0; r < 3; ++r) {
        const fs::path a = s.dir / fmt::format("e2e_entries{}", r);
        const auto start = clock_type::now();
        (void)stream_run(a, 4, 256, 0, per_producer, axds::log_layout::entry_files);
        (void)axds::block_on(axds::async_assemble_log_archives(a / "stream_data_log"));
        entry_runs.push_back(seconds_since(start));
        end_step(a);
        const fs::path b = s.dir / fmt::format("e2e_stream{}", r);
        stream_runs.push_back(stream_run(b, 4, 256, 0, per_producer).seconds);
        end_step(b);
    }
    const double n = 4.0 * static_cast<double>(per_producer);
    fmt::print(
        "  end to end, {:.0f} messages: entry files + assembly {:.3f} s ({:.0f}/s), streaming + stop {:.3f} s "
        "({:.0f}/s) -> {:.1f}x\n",
        n, median(entry_runs), n / median(entry_runs), median(stream_runs), n / median(stream_runs),
        median(entry_runs) / median(stream_runs));
}

/// Sustained, not a burst: while the logger's queue (256 MiB by default) fills for the first time, each message the
/// producer builds is a new buffer on memory the process has never touched (~10 us per 4 KiB page on a VM: 2.5 ms per
/// message, the first ~1.2 s of a run on this project's VM), where the append loop rewrites one buffer. The producer
/// gets a recycled buffer for every message only once the queue has cycled. So the time starts after a warm-up of
/// twice the queue's capacity in messages and runs to the return of stop() (the durable finish included); the
/// figure from the logger's start is printed too. The baseline appends as many messages as the timed part logged,
/// from one buffer that stays in the CPU's cache; the logger's payloads wait in its queue behind up to
/// queue_capacity_bytes of others (the producer is faster than the writer, so the queue is full), and come back
/// from memory. The same run with a 32 MiB queue (a cache-sized backlog) shows what that costs. Short steps,
/// alternated 5 times: this VM's memory bandwidth drifts by 2x over seconds.
void bench_stream_big(const settings& s) {
    constexpr std::size_t mib = 1U << 20U;
    constexpr std::size_t small_queue = 32 * mib;
    const double seconds = std::min<double>(1.0, static_cast<double>(s.stream_seconds));
    const std::uint64_t warm = 2 * (axds::data_logger_options{}.queue_capacity_bytes / mib);
    const int rounds = s.stream_seconds == 0 ? 1 : 5;
    std::vector<double> ours;
    std::vector<double> cold;
    std::vector<double> small;
    std::vector<double> base;
    std::vector<double> ring;
    const std::size_t queue_bytes = axds::data_logger_options{}.queue_capacity_bytes;
    std::uint64_t messages = 0;
    constexpr auto archives = axds::log_layout::archives;
    const auto steady = [](stream_result run) {
        if (run.steady_messages == 0) {  // the smoke run (--stream-seconds 0): no warm-up
            run.steady_messages = run.messages;
            run.steady_seconds = run.seconds;
        }
        return run;
    };
    for (int r = 0; r < rounds; ++r) {
        const fs::path a = s.dir / fmt::format("big_stream{}", r);
        const stream_result run = steady(s.stream_seconds == 0 ? stream_run(a, 1, mib, 0, 8)
                                                               : stream_run(a, 1, mib, seconds, 0, archives, warm));
        messages = run.steady_messages;
        ours.push_back(static_cast<double>(run.steady_messages) / run.steady_seconds);
        cold.push_back(static_cast<double>(run.messages) / run.seconds);
        end_step(a);
        const fs::path c = s.dir / fmt::format("big_small_queue{}", r);
        const stream_result with_small = steady(
            s.stream_seconds == 0 ? stream_run(c, 1, mib, 0, 8, archives, 0, small_queue)
                                  : stream_run(c, 1, mib, seconds, 0, archives, 2 * small_queue / mib, small_queue));
        small.push_back(static_cast<double>(with_small.steady_messages) / with_small.steady_seconds);
        end_step(c);
        const fs::path b = s.dir / fmt::format("big_append{}", r);
        base.push_back(static_cast<double>(messages) / append_loop(b, messages, mib));
        end_step(b);
        const fs::path d = s.dir / fmt::format("big_ring{}", r);
        ring.push_back(static_cast<double>(messages) / ring_loop(d, messages, mib, queue_bytes));
        end_step(d);
    }
    fmt::print(
        "  1 MiB payloads, 1 producer ({} messages timed in the last run, after {} of warm-up; medians of {} "
        "alternated runs): streaming {:.0f} MB/s, plain append loop {:.0f} MB/s -> {:.2f}x (from the logger's start, "
        "warm-up included: {:.0f} MB/s, {:.2f}x); with queue_capacity_bytes = 32 MiB: {:.0f} MB/s -> {:.2f}x\n",
        messages, s.stream_seconds == 0 ? 0 : warm, rounds, median(ours) * mib / 1e6, median(base) * mib / 1e6,
        median(ours) / median(base), median(cold) * mib / 1e6, median(cold) / median(base), median(small) * mib / 1e6,
        median(small) / median(base));
    fmt::print(
        "    reference, the best a full queue of the default {} MiB can do (a producer fills and CRCs each payload "
        "into a ring, this thread appends them; no allocation, no lock): {:.0f} MB/s, {:.2f}x the plain loop; the "
        "logger ran at {:.2f}x of it\n",
        queue_bytes / mib, median(ring) * mib / 1e6, median(ring) / median(base), median(ours) / median(ring));
}

}  // namespace

int main(int argc, char** argv) {
    settings s;
    const bool parsed = axds::bench::parse_flags(argc, argv,
                                                 {{"--dir", &s.dir},
                                                  {"--entries", &s.entries},
                                                  {"--calls", &s.calls},
                                                  {"--python-sample", &s.python_sample},
                                                  {"--writes", &s.writes},
                                                  {"--throughput", &s.throughput},
                                                  {"--stream-seconds", &s.stream_seconds},
                                                  {"--only-stream", &s.only_stream},
                                                  {"--attribute-faults", &s.attribute_faults},
                                                  {"--latency-only", &s.latency_only}});
    if (!parsed) {
        return 2;
    }
    s.dir /= fmt::format("axds-bench-{}", ::getpid());
    fs::create_directories(s.dir);
    ::sync();
    fmt::print("data logger benchmarks in {} (warm page cache)\n", s.dir.string());
    // Latency first: after the throughput runs, the queue's fresh allocations land on memory a VM has yet to back,
    // which shows up as 10+ µs tails that have nothing to do with try_log.
    if (s.only_stream == 0) {
        bench_latency(s, 1);
        bench_latency(s, 4);
        if (s.latency_only != 0) {
            fs::remove_all(s.dir);
            return 0;
        }
        if (s.throughput != 0) {  // --throughput 0: the latency runs only
            bench_throughput(s);
        }
    }
    if (s.only_stream == 4) {  // 4: only the streaming try_log latency run
        bench_latency(s, 4, axds::log_layout::archives);
        fs::remove_all(s.dir);
        return 0;
    }
    if (s.only_stream == 3) {  // 3: only the 256 B throughput runs (for profiles)
        bench_stream_throughput(s);
        fs::remove_all(s.dir);
        return 0;
    }
    if (s.only_stream != 2) {  // 2: only the 1 MiB run
        bench_latency(s, 4, axds::log_layout::archives);
        bench_stream_throughput(s);
        bench_stream_end_to_end(s);
    }
    bench_stream_big(s);
    fs::remove_all(s.dir);
    return 0;
}
