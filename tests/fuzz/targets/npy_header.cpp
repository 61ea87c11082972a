// .npy headers (numpy format 1.0/2.0/3.0): the first bytes of every log entry and archive member.

#include "fuzz_target.hpp"

#include <axds/npy/npy_format.hpp>
#include <fmt/format.h>

#include <regex>

namespace axds::fuzz {
namespace {

constexpr std::string_view source = "fuzz_entry.npy";

bool simple_descr(const std::string& descr) {
    static const std::regex pattern("[<>|=][biufc][1-9][0-9]?");
    return std::regex_match(descr, pattern);
}

outcome one_input(std::span<const std::uint8_t> input) {
    return expect_clean(
        [&] {
            const npy_header header = parse_npy_header(input, source);
            if (header.data_offset > input.size()) {
                throw fuzz_failure(
                    fmt::format("data_offset {} lies past the {} bytes given", header.data_offset, input.size()));
            }
            (void)header.element_count();
            (void)header.item_size();
            if (simple_descr(header.descr)) {
                // What we would write for the same array must read back as the same header.
                const std::string again = encode_npy_header(header.descr, header.fortran_order, header.shape);
                const auto* p = reinterpret_cast<const std::uint8_t*>(again.data());
                const npy_header back = parse_npy_header({p, again.size()}, "re-encoded header");
                if (back.descr != header.descr || back.shape != header.shape ||
                    back.fortran_order != header.fortran_order || back.data_offset != again.size()) {
                    throw fuzz_failure("a header re-encoded by encode_npy_header parses differently");
                }
            }
            const auto payload = npy_u1_payload(input, source);
            if (payload.data() < input.data() || payload.data() + payload.size() > input.data() + input.size()) {
                throw fuzz_failure("npy_u1_payload returned bytes outside its input");
            }
        },
        source);
}

const registration npy{{
    .name = "npy_header",
    .about = ".npy header and 1-D uint8 payload (every log entry and archive member)",
    .one_input = one_input,
    .dictionary = {std::string("\x93NUMPY", 6),
                   std::string("\x01\x00", 2),
                   std::string("\x02\x00", 2),
                   std::string("\x03\x00", 2),
                   "{'descr': '|u1', 'fortran_order': False, 'shape': (",
                   "'descr'",
                   "'fortran_order'",
                   "'shape'",
                   "True",
                   "False",
                   "(",
                   ")",
                   ",)",
                   ", ",
                   "|u1",
                   "<u8",
                   ">f8",
                   "<U3",
                   "[('a', '<i4')]",
                   "'",
                   "\"",
                   "\\",
                   "{",
                   "}",
                   ":",
                   "\n",
                   "    ",
                   "L",
                   "0x10"},
    .max_length = 1024,
}};

}  // namespace
}  // namespace axds::fuzz
