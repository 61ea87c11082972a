// The Python README's YamlConfig section in C++: a struct saved to YAML, edited by hand, and loaded back.
//
//   ads_example_yaml_config
//
// The file is byte-identical to what the Python library's `MyConfig(integer=123, string="hello").to_yaml(path)`
// writes, so either language can load what the other saved.

#include <axds/config/yaml_config.hpp>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

#include "scratch_directory.hpp"
#include <unistd.h>

namespace fs = std::filesystem;

// The counterpart of `@dataclass class MyConfig(YamlConfig)`: declare the fields once.
struct my_config {
    int integer = 0;
    std::string string = "random";
};
AXDS_YAML_FIELDS(my_config, integer, string)

namespace {

std::string read_text(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::string text(static_cast<std::size_t>(fs::file_size(file)), '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    return text;
}

int run(const fs::path& directory) {
    // Instantiates the struct with values that differ from the defaults.
    const my_config config{.integer = 123, .string = "hello"};

    // Saves it (atomically, mode 0600). The saved file can be edited by hand.
    const fs::path out_path = directory / "my_config.yaml";
    axds::to_yaml(config, out_path);
    if (!fs::exists(out_path)) {
        std::fprintf(stderr, "the file was not written\n");
        return 1;
    }
    std::printf("%s:\n%s", out_path.c_str(), read_text(out_path).c_str());

    // Loads a new instance from the file and checks it matches the original.
    const auto loaded = axds::from_yaml<my_config>(out_path);
    if (loaded.integer != config.integer || loaded.string != config.string) {
        std::fprintf(stderr, "loaded values differ\n");
        return 1;
    }
    std::printf("loaded: integer=%d string=%s\n", loaded.integer, loaded.string.c_str());

    // An edit by hand (or by the Python library) is picked up by the next load.
    std::string text = read_text(out_path);
    text.replace(text.find("123"), 3, "456");
    std::ofstream(out_path, std::ios::binary | std::ios::trunc) << text;
    const auto edited = axds::from_yaml<my_config>(out_path);
    std::printf("after editing the file: integer=%d\n", edited.integer);

    // A value of the wrong type is a clear error naming the file and the field.
    std::ofstream(out_path, std::ios::binary | std::ios::trunc) << "integer: many\nstring: hello\n";
    try {
        (void)axds::from_yaml<my_config>(out_path);
        std::fprintf(stderr, "a bad value was accepted\n");
        return 1;
    } catch (const std::exception& e) {
        std::printf("a bad value is refused: %s\n", e.what());
    }
    return edited.integer == 456 ? 0 : 1;
}

}  // namespace

int main() {
    try {
        const axds_examples::scratch_directory scratch("axds-yaml-");
        return run(scratch.path());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "yaml_config failed: %s\n", e.what());
        return 1;
    }
}
