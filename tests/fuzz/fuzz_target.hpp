#pragma once
// The fuzz harness's targets: one per parser of bytes that come from outside (files from other machines and failing
// disks, socket peers, command lines). Each target takes one input and checks the properties every input must keep:
// no crash, no sanitizer report, bounded time and memory (the driver enforces those), and a clean outcome. Clean
// means the input was accepted (and then passes the target's own consistency checks), or refused with one of the
// library's error types whose message names the input; a bare std:: exception (no file named) or a broken
// consistency check throws fuzz_failure.

#include <axds/error.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace axds::fuzz {

/// A property an input broke; the driver saves the input and fails the run.
class fuzz_failure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

enum class outcome { accepted, refused };

struct target {
    std::string_view name;
    std::string_view about;
    /// Checks one input; throws fuzz_failure when a property breaks.
    outcome (*one_input)(std::span<const std::uint8_t> input) = nullptr;
    /// Once before the first input, with a scratch directory of the run's own (optional).
    void (*set_up)(const std::string& scratch) = nullptr;
    /// Once after the last input: checks over the whole run (optional); throws fuzz_failure.
    void (*tear_down)() = nullptr;
    /// Tokens the mutator inserts and overwrites with (magic numbers, keywords, syntax).
    std::vector<std::string> dictionary;
    /// Longest input the mutator makes.
    std::size_t max_length = 4096;
};

/// Registers a target (one static instance per target source file).
struct registration {
    explicit registration(target t);
};

const std::vector<target>& targets();

/// Runs `parse`; an exception of the library's own types must name `source` (else fuzz_failure), any other
/// exception is a fuzz_failure (std::bad_alloc included: an input made the parser allocate past the memory cap).
/// Returns accepted when `parse` returned.
outcome expect_clean(const std::function<void()>& parse, std::string_view source);

/// What the input is, for messages: its size and first bytes in hex.
std::string describe(std::span<const std::uint8_t> input);

}  // namespace axds::fuzz
