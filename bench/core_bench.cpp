// Micro-benchmarks of the foundation: interpolation against a plain std::upper_bound loop (the floor any
// implementation has to pay), and YAML emit/parse of a typical configuration.
#include <axds/config/yaml_value.hpp>
#include <axds/core/interpolate.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

namespace {

struct series {
    std::vector<std::uint64_t> coords;
    std::vector<double> values;
    std::vector<std::uint64_t> targets;
};

series make_series(std::size_t n) {
    series s;
    std::mt19937_64 rng(1);
    std::uint64_t t = 0;
    for (std::size_t i = 0; i < n; ++i) {
        t += 1 + rng() % 1000;
        s.coords.push_back(t);
        s.values.push_back(static_cast<double>(rng() % 10000));
    }
    for (std::size_t i = 0; i < n; ++i) {
        s.targets.push_back(rng() % (t + 1000));
    }
    std::sort(s.targets.begin(), s.targets.end());
    return s;
}

void BM_core_interpolate_continuous(benchmark::State& state) {
    const auto s = make_series(static_cast<std::size_t>(state.range(0)));
    for (auto _ : state) {
        auto out = axds::interpolate_data(s.coords, s.values, s.targets, axds::continuous);
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}

void BM_core_interpolate_discrete(benchmark::State& state) {
    const auto s = make_series(static_cast<std::size_t>(state.range(0)));
    for (auto _ : state) {
        auto out = axds::interpolate_data(s.coords, s.values, s.targets, axds::discrete);
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}

/// Baseline: the bare searchsorted + gather loop with std::upper_bound.
void BM_core_interpolate_baseline_upper_bound(benchmark::State& state) {
    const auto s = make_series(static_cast<std::size_t>(state.range(0)));
    for (auto _ : state) {
        std::vector<double> out;
        out.reserve(s.targets.size());
        for (const auto t : s.targets) {
            auto i = static_cast<std::size_t>(std::upper_bound(s.coords.begin(), s.coords.end(), t) - s.coords.begin());
            out.push_back(s.values[i == 0 ? 0 : i - 1]);
        }
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}

axds::yaml_value make_config() {
    axds::yaml_value::mapping cameras;
    for (int i = 0; i < 8; ++i) {
        axds::yaml_value::mapping camera;
        camera.push_back({"model", "acA1920-155um"});
        camera.push_back({"frame_rate_hz", 30.0 + i});
        camera.push_back({"serial", "0012345" + std::to_string(i)});
        camera.push_back({"enabled", i % 2 == 0});
        cameras.push_back({"camera_" + std::to_string(i), camera});
    }
    axds::yaml_value::mapping doc;
    doc.push_back({"animal", "A001"});
    doc.push_back({"cameras", cameras});
    doc.push_back({"ids", axds::yaml_value::sequence{101, 152, 203}});
    return axds::yaml_value(doc);
}

void BM_core_yaml_emit(benchmark::State& state) {
    const auto doc = make_config();
    for (auto _ : state) {
        auto text = axds::emit_yaml(doc);
        benchmark::DoNotOptimize(text.data());
    }
}

void BM_core_yaml_parse(benchmark::State& state) {
    const auto text = axds::emit_yaml(make_config());
    for (auto _ : state) {
        auto doc = axds::parse_yaml(text);
        benchmark::DoNotOptimize(&doc);
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(text.size()));
}

}  // namespace

BENCHMARK(BM_core_interpolate_continuous)->Arg(1 << 16);
BENCHMARK(BM_core_interpolate_discrete)->Arg(1 << 16);
BENCHMARK(BM_core_interpolate_baseline_upper_bound)->Arg(1 << 16);
BENCHMARK(BM_core_yaml_emit);
BENCHMARK(BM_core_yaml_parse);
BENCHMARK_MAIN();
