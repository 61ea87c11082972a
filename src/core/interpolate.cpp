#include <axds/core/interpolate.hpp>

#include <fmt/format.h>

namespace axds::detail {

void throw_empty_interpolation_source(std::size_t coordinates, std::size_t values) {
    throw value_error(fmt::format(
        "Unable to interpolate the data values at the requested coordinates. The 'source_coordinates' and "
        "'source_values' arguments must each hold at least one element, but got {} coordinate(s) and {} value(s).",
        coordinates, values));
}

void throw_interpolation_length_mismatch() {
    throw value_error("fp and xp are not of the same length.");
}

}  // namespace axds::detail
