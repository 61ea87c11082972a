// A tour of what axds offers today: a YAML configuration shared with the Python library, discovery of session
// directories by marker file, unique roots, interpolation onto a common time base, and the blocking entry point.
//
//   ads_example_foundation_tour [work-directory]
//
// Without an argument it works in a fresh temporary directory and removes it afterwards.

#include <axds/config/yaml_config.hpp>
#include <axds/core/interpolate.hpp>
#include <axds/core/runtime.hpp>
#include <axds/core/workers.hpp>
#include <axds/fs/walk.hpp>

#include <asio/this_coro.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "scratch_directory.hpp"
#include <unistd.h>

namespace fs = std::filesystem;

namespace rig {

enum class trigger { internal, external };
AXDS_YAML_ENUM_NAMES(trigger, internal, external)

struct camera_settings {
    std::string model = "acA1920";
    double frame_rate_hz = 30.0;
    trigger mode = trigger::internal;
};
AXDS_YAML_FIELDS(camera_settings, model, frame_rate_hz, mode)

struct session_config {
    std::string animal = "A001";
    fs::path raw_data = "raw_data";
    std::optional<std::string> notes;
    std::map<std::string, camera_settings> cameras;
    std::vector<int> microcontroller_ids{101, 152};
};
AXDS_YAML_FIELDS(session_config, animal, raw_data, notes, cameras, microcontroller_ids)

}  // namespace rig

namespace {

asio::awaitable<int> count_sessions(fs::path root) {
    // Runs on block_on's private io_context; a server would co_await the same coroutine on its own executor.
    co_await asio::this_coro::executor;
    co_return static_cast<int>(axds::discover_marker_roots(root, "session.yaml").size());
}

int run(const fs::path& work) {
    // 1. A configuration per session, written exactly as the Python library's YamlConfig writes it.
    for (const char* animal : {"A001", "A002"}) {
        rig::session_config config;
        config.animal = animal;
        config.cameras["face"] = {.model = "acA640", .frame_rate_hz = 120.0, .mode = rig::trigger::external};
        config.cameras["body"] = {};
        axds::to_yaml(config, work / animal / "2026-11-27" / "session.yaml");
    }
    const fs::path first = work / "A001" / "2026-11-27" / "session.yaml";
    std::printf("wrote %s:\n", first.c_str());
    if (std::FILE* file = std::fopen(first.c_str(), "rb")) {
        char buffer[4096];
        std::size_t n = 0;
        while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) {
            std::fwrite(buffer, 1, n, stdout);
        }
        std::fclose(file);
    }
    const auto loaded = axds::from_yaml<rig::session_config>(first);
    std::printf("read back: animal=%s, face camera at %.1f Hz\n", loaded.animal.c_str(),
                loaded.cameras.at("face").frame_rate_hz);

    // 2. Discovery: sessions are the directories holding a session.yaml marker.
    const auto sessions = axds::discover_marker_roots(work, "session.yaml");
    for (const auto& session : sessions) {
        std::printf("session: %s\n", session.c_str());
    }
    const auto roots = axds::resolve_unique_roots(sessions);
    std::printf("unique roots: %zu (first: %s)\n", roots.size(), roots.front().c_str());
    std::printf("sessions counted from a coroutine: %d\n", axds::block_on(count_sessions(work)));

    // 3. Put two streams on one time base (µs).
    const std::vector<std::uint64_t> frame_times{0, 100, 200, 300, 400};
    const std::vector<double> speed{10, 20, 15, 25, 30};
    const std::vector<std::uint8_t> state{1, 2, 3, 4, 5};
    const std::vector<std::uint64_t> sample_times{50, 150, 250, 350};
    const auto speed_at = axds::interpolate_data(frame_times, speed, sample_times, axds::continuous);
    const auto state_at = axds::interpolate_data(frame_times, state, sample_times, axds::discrete);
    for (std::size_t i = 0; i < sample_times.size(); ++i) {
        std::printf("t=%3llu us  speed=%5.2f  state=%u\n", static_cast<unsigned long long>(sample_times[i]),
                    speed_at[i], static_cast<unsigned>(state_at[i]));
    }
    std::printf("workers for a parallel job on this machine: %d\n", axds::resolve_worker_count());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc > 1) {
            fs::create_directories(argv[1]);
            return run(argv[1]);
        }
        const axds_examples::scratch_directory scratch("axds-tour-");
        return run(scratch.path() / "work");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "foundation_tour failed: %s\n", e.what());
        return 1;
    }
}
