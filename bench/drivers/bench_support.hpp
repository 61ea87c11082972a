#pragma once
// Shared pieces of the end-to-end benchmark drivers: timing, shell baselines, medians and flag parsing.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include <unistd.h>

namespace axds::bench {

using clock_type = std::chrono::steady_clock;

inline double seconds_since(clock_type::time_point start) {
    return std::chrono::duration<double>(clock_type::now() - start).count();
}

/// Flushes dirty data to disk (untimed), so a timed step does not pay for the previous one's writeback.
inline void settle() {
    ::sync();
}

/// Runs a shell command and returns its wall time in seconds (-1 if it failed); its stdout goes to `output` if given.
inline double timed_shell(const std::string& command, std::string* output = nullptr) {
    const auto start = clock_type::now();
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) {
        return -1;
    }
    char buffer[4096];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) {
        if (output != nullptr) {
            output->append(buffer, n);
        }
    }
    const int status = ::pclose(pipe);
    return status == 0 ? seconds_since(start) : -1;
}

/// The median of `runs` after dropping the first (a warm-up run).
inline double median_after_warmup(std::vector<double> runs) {
    runs.erase(runs.begin());
    std::sort(runs.begin(), runs.end());
    return runs[runs.size() / 2];
}

/// Where a flag's value goes: a path, a count or an int.
using flag_target = std::variant<std::filesystem::path*, std::size_t*, int*>;

/// Parses `--flag value` pairs into their targets. Prints the offending flag and returns false for an unknown flag or
/// a missing value.
inline bool parse_flags(int argc, char** argv, const std::map<std::string, flag_target>& flags) {
    for (int i = 1; i < argc; i += 2) {
        const auto flag = flags.find(argv[i]);
        if (flag == flags.end() || i + 1 >= argc) {
            std::fprintf(stderr, "unknown flag or missing value: %s\n", argv[i]);
            return false;
        }
        const std::string value = argv[i + 1];
        std::visit(
            [&value](auto* target) {
                using type = std::remove_pointer_t<decltype(target)>;
                if constexpr (std::is_same_v<type, std::filesystem::path>) {
                    *target = value;
                } else if constexpr (std::is_same_v<type, int>) {
                    *target = std::stoi(value);
                } else {
                    *target = std::stoul(value);
                }
            },
            flag->second);
    }
    return true;
}

}  // namespace axds::bench
