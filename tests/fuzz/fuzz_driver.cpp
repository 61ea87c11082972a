// axds_fuzz: a seeded mutation fuzzer for the parsers of outside bytes (see fuzz_target.hpp and docs/TESTING.md).
//
//   axds_fuzz --list
//   axds_fuzz TARGET --corpus DIR [--runs N] [--seconds S] [--seed X] [--artifacts DIR] [--timeout S]
//   axds_fuzz TARGET --replay FILE...
//
// Each run replays every seed of the corpus, then mutates: a base input (a seed, or an earlier mutant the target
// accepted, which lets mutations stack into deeper states) gets 1-8 edits from the havoc set (bit flips, interesting
// integers at any offset, arithmetic on fields, block deletes/copies/repeats, dictionary tokens, splices with another
// seed, long digit runs in text). It stops at --runs inputs or --seconds, whichever comes first, and prints how many
// inputs it ran. The seed (default 1, or $AXDS_FUZZ_SEED) makes a run repeatable.
//
// Bounds: an input that runs past --timeout seconds fails the run. Memory: in sanitizer builds AddressSanitizer
// refuses any single allocation over 1 GiB and kills the process past 3 GiB resident (__asan_default_options below);
// in plain builds the address space is capped at 2 GiB (as `ulimit -v`). Either way the failing input is saved
// to the artifacts directory and printed in hex before the process dies.

#include "fuzz_target.hpp"

#include <axds/core/console.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <new>
#include <random>
#include <string>
#include <vector>

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

namespace fs = std::filesystem;

#if defined(__SANITIZE_ADDRESS__)
extern "C" const char* __asan_default_options() {  // NOLINT(bugprone-reserved-identifier)
    return "max_allocation_size_mb=1024:hard_rss_limit_mb=3072:detect_leaks=1";
}
#endif
extern "C" void __sanitizer_set_death_callback(void (*callback)()) __attribute__((weak));  // NOLINT

namespace axds::fuzz {

namespace {

std::vector<target>& registry() {
    static std::vector<target> all;
    return all;
}

// The input being run, for the crash and timeout handlers (async-signal-safe: plain arrays and write()).
volatile bool running_input = false;  // an empty input's data() may be null
const std::uint8_t* current_data = nullptr;
std::size_t current_size = 0;
std::array<char, 4096> crash_prefix{};  // <artifacts>/failure-<target>-
std::array<char, 4200> crash_path{};    // the prefix + the input's FNV-1a hash: one file per failing input
std::array<char, 256> crash_target{};

void write_all(int fd, const void* data, std::size_t size) {
    const auto* p = static_cast<const char*>(data);
    while (size > 0) {
        const ssize_t n = ::write(fd, p, size);
        if (n <= 0) {
            return;
        }
        p += n;
        size -= static_cast<std::size_t>(n);
    }
}

void write_text(const char* text) {
    write_all(STDERR_FILENO, text, std::strlen(text));
}

/// Saves the current input and says where (async-signal-safe).
void save_current_input(const char* why) {
    if (!running_input) {
        return;
    }
    running_input = false;
    std::uint64_t hash = 0xcbf29ce484222325ULL;
    for (std::size_t i = 0; i < current_size; ++i) {
        hash = (hash ^ current_data[i]) * 0x100000001b3ULL;
    }
    std::size_t at = 0;
    while (at + 1 < crash_path.size() && crash_prefix[at] != '\0') {
        crash_path[at] = crash_prefix[at];
        ++at;
    }
    for (int digit = 15; digit >= 0 && at + 1 < crash_path.size(); --digit) {
        crash_path[at++] = "0123456789abcdef"[(hash >> (4 * digit)) & 0xFU];
    }
    crash_path[at] = '\0';
    write_text("\naxds_fuzz: ");
    write_text(crash_target.data());
    write_text(": ");
    write_text(why);
    write_text("; the input is saved as ");
    write_text(crash_path.data());
    write_text("\naxds_fuzz: reproduce with: axds_fuzz ");
    write_text(crash_target.data());
    write_text(" --replay ");
    write_text(crash_path.data());
    write_text("\n");
    const int fd = ::open(crash_path.data(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        write_all(fd, current_data, current_size);
        ::close(fd);
    }
}

void on_death() {
    save_current_input("the process died on this input (sanitizer report above)");
}

void on_signal(int signal) {
    save_current_input(signal == SIGALRM ? "the input ran past the timeout" : "the process crashed on this input");
    ::signal(signal, SIG_DFL);
    if (signal == SIGALRM) {
        ::_exit(1);
    }
    ::raise(signal);
}

void arm_timeout(double seconds) {
    itimerval timer{};
    const auto whole = static_cast<long>(seconds);
    timer.it_value.tv_sec = whole;
    timer.it_value.tv_usec = static_cast<long>((seconds - static_cast<double>(whole)) * 1e6);
    ::setitimer(ITIMER_REAL, &timer, nullptr);
}

using bytes = std::vector<std::uint8_t>;

/// The havoc mutator.
class mutator {
public:
    mutator(std::uint64_t seed, const target& t, const std::vector<bytes>& seeds)
        : rng_(seed), target_(t), seeds_(seeds) {}

    bytes next(const std::vector<bytes>& accepted) {
        bytes data;
        if (!accepted.empty() && pick(5) < 2) {
            data = accepted[pick(accepted.size())];
        } else if (!seeds_.empty()) {
            data = seeds_[pick(seeds_.size())];
        }
        const std::size_t edits = std::size_t{1} << pick(4);
        for (std::size_t k = 0; k < edits; ++k) {
            edit(data);
        }
        if (data.size() > target_.max_length) {
            data.resize(target_.max_length);
        }
        return data;
    }

private:
    std::mt19937_64 rng_;
    const target& target_;
    const std::vector<bytes>& seeds_;

    std::size_t pick(std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(rng_() % n); }

    template <typename T>
    void put(bytes& data, std::size_t at, T value, bool big_endian) {
        for (std::size_t i = 0; i < sizeof(T) && at + i < data.size(); ++i) {
            const std::size_t shift = 8 * (big_endian ? sizeof(T) - 1 - i : i);
            data[at + i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(value) >> shift);
        }
    }

    template <typename T>
    T get(const bytes& data, std::size_t at) {
        std::uint64_t value = 0;
        for (std::size_t i = 0; i < sizeof(T) && at + i < data.size(); ++i) {
            value |= std::uint64_t{data[at + i]} << (8 * i);
        }
        return static_cast<T>(value);
    }

    std::uint64_t interesting(std::size_t width, std::size_t length) {
        static constexpr std::array<std::uint64_t, 22> values{0,
                                                              1,
                                                              2,
                                                              8,
                                                              9,
                                                              16,
                                                              64,
                                                              127,
                                                              128,
                                                              255,
                                                              256,
                                                              1024,
                                                              4096,
                                                              0x7FFF,
                                                              0x8000,
                                                              0xFFFF,
                                                              0x10000,
                                                              0x7FFFFFFF,
                                                              0x80000000,
                                                              0xFFFFFFFF,
                                                              0x100000000ULL,
                                                              0x7FFFFFFFFFFFFFFFULL};
        const std::size_t choice = pick(values.size() + 5);
        std::uint64_t value = 0;
        if (choice < values.size()) {
            value = values[choice];
        } else if (choice == values.size()) {
            value = ~std::uint64_t{0};
        } else {  // sizes and offsets near the input's own length: the edges of every bounds check
            value = length + pick(3) - 1;
        }
        if (width < 8) {
            value &= (std::uint64_t{1} << (8 * width)) - 1;
        }
        return value;
    }

    void insert(bytes& data, std::size_t at, const std::uint8_t* from, std::size_t count) {
        if (data.size() + count > target_.max_length) {
            count = target_.max_length > data.size() ? target_.max_length - data.size() : 0;
        }
        const bytes copy(from, from + count);  // `from` may point into `data`
        data.insert(data.begin() + static_cast<std::ptrdiff_t>(at), copy.begin(), copy.end());
    }

    void edit(bytes& data) {
        const std::size_t size = data.size();
        const std::size_t at = pick(size + 1);  // insertion point; also an offset when < size
        const std::size_t width = std::size_t{1} << pick(4);
        switch (pick(16)) {
            case 0:
                if (size > 0) {
                    data[pick(size)] ^= static_cast<std::uint8_t>(1U << pick(8));
                }
                break;
            case 1:
                if (size > 0) {
                    data[pick(size)] = static_cast<std::uint8_t>(rng_());
                }
                break;
            case 2:
            case 3:
                if (size > 0) {
                    put(data, pick(size), interesting(width, size), pick(4) == 0);
                }
                break;
            case 4:
                if (size > 0) {  // arithmetic on a little-endian field
                    const std::size_t offset = pick(size);
                    const std::uint64_t delta = 1 + pick(35);
                    const std::uint64_t value = get<std::uint64_t>(data, offset);
                    const std::uint64_t changed = pick(2) == 0 ? value + delta : value - delta;
                    put(data, offset, changed, false);
                    if (width < 8) {  // keep the bytes past the field
                        put(data, offset + width, value >> (8 * width), false);
                    }
                }
                break;
            case 5:
                if (size > 0) {  // delete a block
                    const std::size_t from = pick(size);
                    const std::size_t count = 1 + pick(std::min<std::size_t>(size - from, pick(2) == 0 ? 8 : 256));
                    data.erase(data.begin() + static_cast<std::ptrdiff_t>(from),
                               data.begin() + static_cast<std::ptrdiff_t>(from + count));
                }
                break;
            case 6:
                if (size > 0) {  // copy a block elsewhere
                    const std::size_t from = pick(size);
                    const std::size_t count = 1 + pick(std::min<std::size_t>(size - from, 64));
                    insert(data, at, data.data() + from, count);
                }
                break;
            case 7:
                if (size > 0) {  // repeat a short block many times: nesting, long runs
                    const std::size_t from = pick(size);
                    const std::size_t count = 1 + pick(std::min<std::size_t>(size - from, 4));
                    const bytes unit(data.begin() + static_cast<std::ptrdiff_t>(from),
                                     data.begin() + static_cast<std::ptrdiff_t>(from + count));
                    bytes run;
                    const std::size_t times = 2 + pick(pick(2) == 0 ? 16 : target_.max_length / count);
                    for (std::size_t i = 0; i < times && run.size() < target_.max_length; ++i) {
                        run.insert(run.end(), unit.begin(), unit.end());
                    }
                    insert(data, from, run.data(), run.size());
                }
                break;
            case 8: {  // random bytes
                std::array<std::uint8_t, 16> noise{};
                for (auto& b : noise) {
                    b = static_cast<std::uint8_t>(rng_());
                }
                insert(data, at, noise.data(), 1 + pick(noise.size()));
                break;
            }
            case 9:
            case 10:
            case 11:
                if (!target_.dictionary.empty()) {
                    const std::string& token = target_.dictionary[pick(target_.dictionary.size())];
                    const auto* p = reinterpret_cast<const std::uint8_t*>(token.data());
                    if (pick(2) == 0 || size == 0) {
                        insert(data, at, p, token.size());
                    } else {
                        const std::size_t offset = pick(size);
                        for (std::size_t i = 0; i < token.size() && offset + i < data.size(); ++i) {
                            data[offset + i] = p[i];
                        }
                    }
                }
                break;
            case 12:
                if (!seeds_.empty() && size > 0) {  // splice: our head, another seed's tail
                    const bytes& other = seeds_[pick(seeds_.size())];
                    const std::size_t cut = pick(size);
                    const std::size_t from = pick(other.size() + 1);
                    data.resize(cut);
                    insert(data, cut, other.data() + from, other.size() - from);
                }
                break;
            case 13:
                if (size > 0) {
                    data.resize(pick(size));
                }
                break;
            case 14: {  // a digit run becomes an extreme number (text formats)
                static constexpr std::array<std::string_view, 12> numbers{"0",
                                                                          "-1",
                                                                          "-0",
                                                                          "255",
                                                                          "256",
                                                                          "2147483648",
                                                                          "4294967296",
                                                                          "9223372036854775807",
                                                                          "18446744073709551615",
                                                                          "18446744073709551616",
                                                                          "99999999999999999999999999999999",
                                                                          "1e400"};
                const auto first = std::find_if(data.begin() + static_cast<std::ptrdiff_t>(pick(size + 1)), data.end(),
                                                [](std::uint8_t c) { return c >= '0' && c <= '9'; });
                if (first != data.end()) {
                    const auto last =
                        std::find_if(first, data.end(), [](std::uint8_t c) { return c < '0' || c > '9'; });
                    const std::string_view number = numbers[pick(numbers.size())];
                    const auto offset = static_cast<std::size_t>(first - data.begin());
                    data.erase(first, last);
                    insert(data, offset, reinterpret_cast<const std::uint8_t*>(number.data()), number.size());
                }
                break;
            }
            default:
                if (size > 1) {  // swap two bytes
                    std::swap(data[pick(size)], data[pick(size)]);
                }
                break;
        }
    }
};

bytes read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<bytes> read_corpus(const fs::path& directory) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(directory)) {
        if (entry.is_regular_file()) {
            files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end());
    std::vector<bytes> seeds;
    seeds.reserve(files.size());
    for (const auto& file : files) {
        seeds.push_back(read_file(file));
    }
    return seeds;
}

struct settings {
    std::string target_name;
    fs::path corpus;
    std::vector<fs::path> replay;
    std::uint64_t runs = 1'000'000;
    double seconds = 10;
    std::uint64_t seed = 1;
    fs::path artifacts = ".";
    double timeout = 10;
};

int usage(const char* why) {
    std::fprintf(stderr,
                 "axds_fuzz: %s\nusage: axds_fuzz --list\n"
                 "       axds_fuzz TARGET --corpus DIR [--runs N] [--seconds S] [--seed X] [--artifacts DIR] "
                 "[--timeout S]\n"
                 "       axds_fuzz TARGET --replay FILE...\n",
                 why);
    return 2;
}

}  // namespace

registration::registration(target t) {
    registry().push_back(std::move(t));
}

const std::vector<target>& targets() {
    return registry();
}

outcome expect_clean(const std::function<void()>& parse, std::string_view source) {
    const auto must_name_source = [&](const char* what, std::string_view type) {
        if (std::string_view(what).find(source) == std::string_view::npos) {
            throw fuzz_failure(fmt::format("a {} that does not name '{}': {}", type, source, what));
        }
        return outcome::refused;
    };
    try {
        parse();
        return outcome::accepted;
    } catch (const fuzz_failure&) {
        throw;
    } catch (const axds::missing_value_error& e) {
        return must_name_source(e.what(), "missing_value_error");
    } catch (const axds::value_error& e) {
        return must_name_source(e.what(), "value_error");
    } catch (const axds::type_error& e) {
        return must_name_source(e.what(), "type_error");
    } catch (const axds::key_error& e) {
        return must_name_source(e.what(), "key_error");
    } catch (const axds::index_error& e) {
        return must_name_source(e.what(), "index_error");
    } catch (const axds::overflow_error& e) {
        return must_name_source(e.what(), "overflow_error");
    } catch (const axds::yaml_error& e) {
        return must_name_source(e.what(), "yaml_error");
    } catch (const axds::runtime_error& e) {
        return must_name_source(e.what(), "runtime_error");
    } catch (const axds::os_error& e) {
        return must_name_source(e.what(), "os_error");
    } catch (const std::bad_alloc&) {
        throw fuzz_failure("std::bad_alloc: the input made the parser allocate past the memory cap");
    } catch (const std::exception& e) {
        throw fuzz_failure(
            fmt::format("a bare std:: exception (no file named, not one of the library's error "
                        "types): {}",
                        e.what()));
    }
}

std::string describe(std::span<const std::uint8_t> input) {
    std::string hex;
    for (std::size_t i = 0; i < input.size() && i < 96; ++i) {
        hex += fmt::format("{:02x}", input[i]);
    }
    return fmt::format("{} bytes: {}{}", input.size(), hex, input.size() > 96 ? "…" : "");
}

}  // namespace axds::fuzz

int main(int argc, char** argv) {
    using namespace axds::fuzz;
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() == 1 && args[0] == "--list") {
        for (const auto& t : targets()) {
            fmt::print("{:<12} {}\n", t.name, t.about);
        }
        return 0;
    }
    if (args.empty()) {
        return usage("no target named");
    }
    settings s;
    s.target_name = args[0];
    if (const char* seed = std::getenv("AXDS_FUZZ_SEED")) {
        s.seed = std::strtoull(seed, nullptr, 10);
    }
    try {
        for (std::size_t i = 1; i < args.size(); ++i) {
            const auto value = [&]() -> const std::string& {
                if (i + 1 >= args.size()) {
                    throw std::invalid_argument(args[i] + " needs a value");
                }
                return args[++i];
            };
            if (args[i] == "--corpus") {
                s.corpus = value();
            } else if (args[i] == "--runs") {
                s.runs = std::stoull(value());
            } else if (args[i] == "--seconds") {
                s.seconds = std::stod(value());
            } else if (args[i] == "--seed") {
                s.seed = std::stoull(value());
            } else if (args[i] == "--artifacts") {
                s.artifacts = value();
            } else if (args[i] == "--timeout") {
                s.timeout = std::stod(value());
            } else if (args[i] == "--replay") {
                s.replay.assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
                break;
            } else {
                throw std::invalid_argument("unknown option " + args[i]);
            }
        }
    } catch (const std::exception& e) {
        return usage(e.what());
    }
    const auto found =
        std::find_if(targets().begin(), targets().end(), [&](const target& t) { return t.name == s.target_name; });
    if (found == targets().end()) {
        return usage(fmt::format("no target '{}' (see --list)", s.target_name).c_str());
    }
    const target& t = *found;
    if (s.replay.empty() && (s.corpus.empty() || !fs::is_directory(s.corpus))) {
        return usage(fmt::format("the corpus '{}' is not a directory", s.corpus.string()).c_str());
    }

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    // The memory cap of plain builds, as `ulimit -v 2097152`: an input that makes a parser allocate without bound
    // ends in std::bad_alloc (a failure, see expect_clean) instead of taking the machine.
    const rlimit cap{std::uint64_t{2} << 30U, std::uint64_t{2} << 30U};
    ::setrlimit(RLIMIT_AS, &cap);
    for (const int signal : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) {
        ::signal(signal, on_signal);
    }
#endif
    ::signal(SIGALRM, on_signal);
    ::signal(SIGPIPE, SIG_IGN);
    if (__sanitizer_set_death_callback != nullptr) {
        __sanitizer_set_death_callback(on_death);
    }
    std::error_code ec;
    fs::create_directories(s.artifacts, ec);
    const std::string path = (fs::absolute(s.artifacts) / fmt::format("failure-{}-", t.name)).string();
    std::snprintf(crash_prefix.data(), crash_prefix.size(), "%s", path.c_str());
    std::snprintf(crash_target.data(), crash_target.size(), "%.*s", static_cast<int>(t.name.size()), t.name.data());

    // The library's warnings (a dropped producer, a skipped member) are expected by the thousand: counted, not printed.
    std::atomic<std::uint64_t> warnings{0};
    axds::set_warning_sink([&](std::string_view) { warnings.fetch_add(1, std::memory_order_relaxed); });

    // Scratch directories of runs that died (a crash or a timeout cannot clean up) are removed by the next run.
    for (const auto& entry : fs::directory_iterator(fs::temp_directory_path(), ec)) {
        const std::string name = entry.path().filename().string();
        const auto underscore = name.rfind('_');
        if (name.starts_with("axds_fuzz_") && underscore != std::string::npos) {
            const auto pid = static_cast<pid_t>(std::strtol(name.c_str() + underscore + 1, nullptr, 10));
            if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) {
                fs::remove_all(entry.path(), ec);
            }
        }
    }
    const fs::path scratch = fs::temp_directory_path() / fmt::format("axds_fuzz_{}_{}", t.name, ::getpid());
    fs::create_directories(scratch);
    std::uint64_t ran = 0;
    std::uint64_t accepted = 0;
    std::uint64_t mutants = 0;
    int status = 0;
    bool reported = false;  // run_one printed the failing input already
    const auto started = std::chrono::steady_clock::now();
    const auto run_one = [&](const bytes& input) {
        current_data = input.data();
        current_size = input.size();
        running_input = true;
        arm_timeout(s.timeout);
        outcome result = outcome::refused;
        try {
            result = t.one_input(input);
        } catch (const fuzz_failure& e) {
            arm_timeout(0);
            fmt::print(stderr, "axds_fuzz: {}: input {} broke a property: {}\n  input: {}\n", t.name, ran + 1, e.what(),
                       describe(input));
            save_current_input("this input broke the property above");
            reported = true;
            throw;
        } catch (const std::exception& e) {  // a target's own bug, or std::bad_alloc from outside expect_clean
            arm_timeout(0);
            fmt::print(stderr, "axds_fuzz: {}: input {}: an exception escaped the target: {}\n  input: {}\n", t.name,
                       ran + 1, e.what(), describe(input));
            save_current_input("an exception escaped the target on this input");
            reported = true;
            throw fuzz_failure(e.what());
        }
        arm_timeout(0);
        running_input = false;
        ++ran;
        accepted += result == outcome::accepted ? 1 : 0;
        return result;
    };
    try {
        if (t.set_up != nullptr) {
            t.set_up(scratch.string());
        }
        if (!s.replay.empty()) {
            for (const auto& file : s.replay) {
                const outcome result = run_one(read_file(file));
                fmt::print("{}: {}\n", file.string(), result == outcome::accepted ? "accepted" : "refused cleanly");
            }
        } else {
            const std::vector<bytes> seeds = read_corpus(s.corpus);
            std::vector<bytes> kept;  // mutants the target accepted: bases for further mutation
            for (const auto& seed : seeds) {
                if (run_one(seed) == outcome::accepted) {
                    kept.push_back(seed);
                }
            }
            const std::uint64_t seeds_accepted = accepted;
            mutator mutate(s.seed, t, seeds);
            const auto deadline = started + std::chrono::duration<double>(s.seconds);
            while (ran < s.runs && std::chrono::steady_clock::now() < deadline) {
                bytes input = mutate.next(kept);
                ++mutants;
                if (run_one(input) == outcome::accepted) {
                    if (kept.size() < 256) {
                        kept.push_back(std::move(input));
                    } else {
                        kept[ran % kept.size()] = std::move(input);
                    }
                }
            }
            if (seeds_accepted == 0 && !seeds.empty()) {
                throw fuzz_failure("the target accepted none of its seeds: the corpus or the target is broken");
            }
        }
        if (t.tear_down != nullptr) {
            t.tear_down();
        }
    } catch (const fuzz_failure& e) {
        if (!reported) {
            fmt::print(stderr, "axds_fuzz: {}: {}\n", t.name, e.what());
        }
        status = 1;
    }
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    fmt::print(
        "axds_fuzz {}: {} inputs run ({} mutants), {} accepted, {} refused cleanly, {} warnings; {:.1f} s, "
        "seed {}, peak RSS {} MiB: {}\n",
        t.name, ran, mutants, accepted, ran - accepted, warnings.load(), elapsed, s.seed, usage.ru_maxrss / 1024,
        status == 0 ? "OK" : "FAILED");
    fs::remove_all(scratch, ec);
    return status;
}
