#pragma once

#include <axds/log/log_package.hpp>

#include "support/temp_dir.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace axds::test {

/// Writes one entry file as np.save (and the data logger) would; returns its path.
inline std::filesystem::path write_entry(const std::filesystem::path& directory, std::uint8_t source,
                                         std::uint64_t time, std::vector<std::uint8_t> payload) {
    const axds::log_package package{.source_id = source, .acquisition_time = time, .payload = std::move(payload)};
    const auto bytes = package.npy_file_bytes();
    const auto path = directory / package.file_name();
    write_file(path, std::string(bytes.begin(), bytes.end()));
    return path;
}

/// A package whose payload bytes depend on source, time and position, so any mix-up shows.
inline axds::log_package make_package(std::uint8_t source, std::uint64_t time, std::size_t size) {
    axds::log_package package{.source_id = source, .acquisition_time = time};
    package.payload.resize(size);
    for (std::size_t i = 0; i < size; ++i) {
        package.payload[i] = static_cast<std::uint8_t>((time * 31 + i * 7 + source) & 0xFFU);
    }
    return package;
}

/// The spec §8.6 fixture payload of message i: [(i + j) % 256 for j in range(size)].
inline std::vector<std::uint8_t> fixture_payload(std::size_t i, std::size_t size) {
    std::vector<std::uint8_t> payload(size);
    for (std::size_t j = 0; j < size; ++j) {
        payload[j] = static_cast<std::uint8_t>((i + j) % 256);
    }
    return payload;
}

/// Writes the onset entry (payload = onset_us LE) and `count` messages at (i + 1) * 1000 µs.
inline void write_fixture_entries(const std::filesystem::path& directory, std::uint8_t source, std::size_t count,
                                  std::size_t payload_size = 4, std::uint64_t onset_us = 1700000000000000ULL) {
    write_entry(directory, source, 0, axds::make_onset_package(source, onset_us).payload);
    for (std::size_t i = 0; i < count; ++i) {
        write_entry(directory, source, (i + 1) * 1000, fixture_payload(i, payload_size));
    }
}

}  // namespace axds::test
