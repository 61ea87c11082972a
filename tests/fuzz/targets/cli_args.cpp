// The axds command line: arguments (the input split at NUL bytes) parsed and validated, nothing run.

#include "fuzz_target.hpp"

#include "cli/axds_cli.hpp"

#include <fmt/format.h>

#include <sstream>

namespace axds::fuzz {
namespace {

outcome one_input(std::span<const std::uint8_t> input) {
    std::vector<std::string> args{"axds"};
    std::string word;
    for (const std::uint8_t c : input) {
        if (c == 0) {
            args.push_back(std::move(word));
            word.clear();
        } else {
            word.push_back(static_cast<char>(c));
        }
    }
    args.push_back(std::move(word));
    if (args.size() > 64) {
        args.resize(64);
    }
    std::vector<char*> argv;
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    std::ostringstream out;
    std::ostringstream err;
    int code = 0;
    try {
        code = cli::run(static_cast<int>(args.size()), argv.data(), {.parse_only = true, .out = &out, .err = &err});
    } catch (const std::exception& e) {
        throw fuzz_failure(fmt::format("an exception escaped the argument parser: {}", e.what()));
    }
    if (code != 0 && err.str().empty() && out.str().empty()) {
        throw fuzz_failure(fmt::format("exit code {} with no message", code));
    }
    if (code != 0 && code != 2) {
        throw fuzz_failure(fmt::format("argument parsing ended with exit code {} (0 or 2 expected)", code));
    }
    return code == 0 ? outcome::accepted : outcome::refused;
}

const registration cli{{
    .name = "cli_args",
    .about = "axds command-line arguments (parse and validate only)",
    .one_input = one_input,
    .dictionary = {std::string("\0", 1),
                   "checksum",
                   "transfer",
                   "delete",
                   "assemble",
                   "archive",
                   "info",
                   "dump",
                   "tracker",
                   "show",
                   "summary",
                   "reset",
                   "retry",
                   "log",
                   "serve",
                   "--json",
                   "--quiet",
                   "-q",
                   "--help",
                   "-h",
                   "--workers",
                   "--workers=",
                   "--threads",
                   "--verify",
                   "--remove-source",
                   "--reset-dirty-destination",
                   "--force-root",
                   "--keep-sources",
                   "--keys",
                   "--limit",
                   "--create",
                   "--socket",
                   "--assemble",
                   "--exclude",
                   "--no-save",
                   "--",
                   "-",
                   "=",
                   "-1",
                   "0",
                   "99999999999999999999",
                   "1e3",
                   " ",
                   "\xff",
                   "/tmp/x"},
    .max_length = 512,
}};

}  // namespace
}  // namespace axds::fuzz
