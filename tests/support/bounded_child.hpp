#pragma once
// Runs a piece of code in a forked child with a bounded address space and reports what it threw, how long it took and
// how much memory it used: the hostile-input tests use it so that a crash or a runaway allocation fails one test
// instead of killing the test program.

#include <cstdint>
#include <functional>
#include <string>

namespace axds::test {

struct bounded_outcome {
    bool exited_normally = false;  ///< the child returned in time (not killed by a signal or the timeout)
    /// "no error", "yaml_error", "overflow_error", "value_error" (and its subclasses), "bad_alloc" or "other";
    /// empty when the child died before it could say.
    std::string kind;
    std::string message;  ///< what() of the exception, or why the child died
    double seconds = 0;
    long rss_growth_kib = 0;  ///< the child's peak RSS minus the parent's RSS when it forked

    /// "kind: message", for INFO() and substring checks.
    [[nodiscard]] std::string describe() const { return kind + ": " + message; }
};

/// Runs `fn` in a forked child whose address space may grow by at most 1 GiB + `extra_address_space` bytes (for
/// example a file the code maps) beyond what it inherits (RLIMIT_AS; not under sanitizers, whose shadow memory needs
/// terabytes of address space: there the RSS figure is the bound). A child still running after 60 s is killed.
bounded_outcome run_bounded(const std::function<void()>& fn, std::uint64_t extra_address_space = 0);

}  // namespace axds::test
