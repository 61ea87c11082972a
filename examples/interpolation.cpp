// The Python README's interpolate_data section in C++: aligning a continuous and a discrete stream to new times.
//
//   ads_example_interpolation
//
// The results are bit-identical to numpy's np.interp (continuous) and searchsorted(side="right") (discrete).

#include <axds/core/interpolate.hpp>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <vector>

int main() {
    try {
        // Source data with timestamps and values.
        const std::vector<std::uint64_t> source_timestamps{0, 100, 200, 300, 400};
        const std::vector<double> source_values{10.0, 20.0, 15.0, 25.0, 30.0};

        // Target timestamps for interpolation.
        const std::vector<std::uint64_t> target_timestamps{50, 150, 250, 350};

        // Continuous interpolation (linear).
        const auto continuous =
            axds::interpolate_data(source_timestamps, source_values, target_timestamps, axds::continuous);
        std::printf("Continuous: [%.1f, %.1f, %.1f, %.1f]\n", continuous[0], continuous[1], continuous[2],
                    continuous[3]);

        // Discrete interpolation (last known value); the result keeps the source type (uint8 here).
        const std::vector<std::uint8_t> discrete_values{1, 2, 3, 4, 5};
        const auto discrete =
            axds::interpolate_data(source_timestamps, discrete_values, target_timestamps, axds::discrete);
        std::printf("Discrete: [%u, %u, %u, %u]\n", discrete[0], discrete[1], discrete[2], discrete[3]);

        const bool expected = continuous == std::vector<double>{15.0, 17.5, 20.0, 27.5} &&
                              discrete == std::vector<std::uint8_t>{1, 2, 3, 4};
        return expected ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "interpolation failed: %s\n", e.what());
        return 1;
    }
}
