#pragma once

#include <axds/error.hpp>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace axds {

/// Selects interpolate_data's mode (the Python keyword `is_discrete`).
struct discrete_t {
    explicit discrete_t() = default;
};

struct continuous_t {
    explicit continuous_t() = default;
};

/// Step interpolation: every target takes the value of the last source point at or before it (spec §9.4).
inline constexpr discrete_t discrete{};
/// Linear interpolation, bit-identical to numpy.interp (spec §9.4).
inline constexpr continuous_t continuous{};

namespace detail {

template <typename T>
concept numeric = std::is_arithmetic_v<T> && !std::is_same_v<T, bool>;

[[noreturn]] void throw_empty_interpolation_source(std::size_t coordinates, std::size_t values);
[[noreturn]] void throw_interpolation_length_mismatch();

/// a < b in numpy's common type of A and B: uint64 against a signed integer, and anything against a float,
/// compare as float64; other integer pairs compare exactly. A NaN `a` is greater than everything.
template <numeric A, numeric B>
constexpr bool numpy_less(A a, B b) noexcept {
    if constexpr (std::is_floating_point_v<A> || std::is_floating_point_v<B>) {
        const auto x = static_cast<double>(a);
        const auto y = static_cast<double>(b);
        if (std::isnan(x)) {
            return false;
        }
        return std::isnan(y) || x < y;
    } else if constexpr (std::is_signed_v<A> != std::is_signed_v<B> &&
                         ((std::is_unsigned_v<A> && sizeof(A) == 8) || (std::is_unsigned_v<B> && sizeof(B) == 8))) {
        return static_cast<double>(a) < static_cast<double>(b);
    } else {
        return std::cmp_less(a, b);
    }
}

/// Index of the first coordinate strictly greater than `target` (numpy searchsorted(side="right")).
template <numeric C, numeric T>
std::size_t upper_bound_index(std::span<const C> coordinates, T target) noexcept {
    std::size_t low = 0;
    std::size_t high = coordinates.size();
    while (low < high) {
        const std::size_t mid = low + (high - low) / 2;
        if (numpy_less(target, coordinates[mid])) {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    return low;
}

template <typename R>
auto as_const_span(const R& range) {
    using element = std::remove_cvref_t<decltype(*std::data(range))>;
    return std::span<const element>(std::data(range), std::size(range));
}

}  // namespace detail

/// Discrete (step) interpolation (spec §9.4): for each target t, the value at index
/// clamp(upper_bound(coordinates, t) - 1, 0, values.size() - 1). The output keeps the values' type and the targets'
/// order. Coordinates must be non-decreasing (not checked).
/// @throws value_error if either source holds no element (anchor: "must each hold at least one element").
template <detail::numeric C, detail::numeric V, detail::numeric T>
std::vector<V> interpolate_data(std::span<const C> source_coordinates, std::span<const V> source_values,
                                std::span<const T> target_coordinates, discrete_t /*mode*/) {
    if (source_coordinates.empty() || source_values.empty()) {
        detail::throw_empty_interpolation_source(source_coordinates.size(), source_values.size());
    }
    std::vector<V> out;
    out.reserve(target_coordinates.size());
    for (const T target : target_coordinates) {
        std::size_t i = detail::upper_bound_index(source_coordinates, target);
        i = i == 0 ? 0 : std::min(i - 1, source_values.size() - 1);
        out.push_back(source_values[i]);
    }
    return out;
}

/// Linear interpolation evaluated exactly as numpy.interp on float64 copies of the inputs (spec §9.4): targets
/// outside the coordinates clamp to the end values, NaN targets give NaN, duplicate coordinates resolve to the last
/// of the equal points. Output is float64 in target order.
/// @throws value_error if either source is empty, or if the sources differ in length ("fp and xp are not of the same
/// length.").
template <detail::numeric C, detail::numeric V, detail::numeric T>
std::vector<double> interpolate_data(std::span<const C> source_coordinates, std::span<const V> source_values,
                                     std::span<const T> target_coordinates, continuous_t /*mode*/) {
    if (source_coordinates.empty() || source_values.empty()) {
        detail::throw_empty_interpolation_source(source_coordinates.size(), source_values.size());
    }
    if (source_coordinates.size() != source_values.size()) {
        detail::throw_interpolation_length_mismatch();
    }
    const std::size_t n = source_coordinates.size();
    const auto xp = [&](std::size_t i) {
        return static_cast<double>(source_coordinates[i]);
    };
    const auto fp = [&](std::size_t i) {
        return static_cast<double>(source_values[i]);
    };
    const double left = fp(0);
    const double right = fp(n - 1);

    std::vector<double> out;
    out.reserve(target_coordinates.size());
    for (const T raw_target : target_coordinates) {
        const auto x = static_cast<double>(raw_target);
        if (n == 1) {
            out.push_back(x < xp(0) ? left : (x > xp(0) ? right : fp(0)));
            continue;
        }
        if (std::isnan(x)) {
            out.push_back(x);
            continue;
        }
        if (x < xp(0)) {
            out.push_back(left);
            continue;
        }
        if (x > xp(n - 1)) {
            out.push_back(right);
            continue;
        }
        // j with xp[j] <= x < xp[j+1]; the last of equal coordinates.
        std::size_t low = 0;
        std::size_t high = n;
        while (low < high) {
            const std::size_t mid = low + (high - low) / 2;
            if (x < xp(mid)) {
                high = mid;
            } else {
                low = mid + 1;
            }
        }
        const std::size_t j = low - 1;
        if (j == n - 1 || xp(j) == x) {
            out.push_back(fp(j));
            continue;
        }
        const double slope = (fp(j + 1) - fp(j)) / (xp(j + 1) - xp(j));
        double y = slope * (x - xp(j)) + fp(j);
        if (std::isnan(y)) {
            y = slope * (x - xp(j + 1)) + fp(j + 1);
            if (std::isnan(y) && fp(j) == fp(j + 1)) {
                y = fp(j);
            }
        }
        out.push_back(y);
    }
    return out;
}

/// Convenience overload for containers (std::vector, std::array, ...).
template <typename CR, typename VR, typename TR, typename Mode>

requires(std::is_same_v<Mode, discrete_t> || std::is_same_v<Mode, continuous_t>) auto interpolate_data(
    const CR& source_coordinates, const VR& source_values, const TR& target_coordinates, Mode mode) {
    return interpolate_data(detail::as_const_span(source_coordinates), detail::as_const_span(source_values),
                            detail::as_const_span(target_coordinates), mode);
}

}  // namespace axds
