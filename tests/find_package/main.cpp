#include <axds/config/yaml_value.hpp>
#include <axds/core/interpolate.hpp>
#include <axds/core/runtime.hpp>

#include <cstdio>
#include <vector>

namespace {

asio::awaitable<int> forty_two() {
    co_return 42;
}

}  // namespace

int main() {
    const std::vector<double> x{0, 1};
    const std::vector<double> y{0, 10};
    const auto out = axds::interpolate_data(x, y, std::vector<double>{0.5}, axds::continuous);
    const std::string doc = axds::emit_yaml(axds::yaml_value(out[0]));
    std::printf("%s", doc.c_str());
    return (out[0] == 5.0 && doc == "--- 5.0\n...\n" && axds::block_on(forty_two()) == 42) ? 0 : 1;
}
