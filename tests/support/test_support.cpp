#include "support/matchers.hpp"
#include "support/pyyaml.hpp"
#include "support/temp_dir.hpp"

#include <fmt/format.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include <sys/wait.h>
#include <unistd.h>

namespace axds::test {

namespace {

std::string fold_whitespace(std::string_view text) {
    std::string out;
    bool in_space = false;
    for (const char c : text) {
        if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
            in_space = true;
            continue;
        }
        if (in_space && !out.empty()) {
            out.push_back(' ');
        }
        in_space = false;
        out.push_back(c);
    }
    return out;
}

std::string shell_quote(const std::string& text) {
    std::string out = "'";
    for (const char c : text) {
        if (c == '\'') {
            out += "'\\''";
        } else {
            out.push_back(c);
        }
    }
    out.push_back('\'');
    return out;
}

}  // namespace

bool message_contains_matcher::match(const std::exception& e) const {
    return fold_whitespace(e.what()).find(fold_whitespace(fragment_)) != std::string::npos;
}

std::map<std::string, std::string> snapshot(const std::filesystem::path& root) {
    std::map<std::string, std::string> out;
    for (const auto& item : std::filesystem::recursive_directory_iterator(root)) {
        if (std::filesystem::is_regular_file(std::filesystem::symlink_status(item.path()))) {
            out[item.path().lexically_relative(root).generic_string()] = read_file(item.path());
        }
    }
    return out;
}

temp_dir::temp_dir() {
    static std::atomic<int> counter{0};
    const char* base = std::getenv("TMPDIR");  // NOLINT(concurrency-mt-unsafe)
    const std::filesystem::path root = base != nullptr ? base : "/tmp";
    std::string pattern = (root / fmt::format("axds-test-{}-{}-XXXXXX", ::getpid(), counter++)).string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        throw std::runtime_error("temp_dir: mkdtemp failed for " + pattern);
    }
    path_ = pattern;
}

temp_dir::~temp_dir() {
    std::error_code ignored;
    // Restore permissions a test may have removed, so the tree can be deleted.
    for (auto it = std::filesystem::recursive_directory_iterator(
             path_, std::filesystem::directory_options::skip_permission_denied, ignored);
         !ignored && it != std::filesystem::recursive_directory_iterator(); it.increment(ignored)) {
        if (it->is_directory(ignored) && !it->is_symlink(ignored)) {
            std::filesystem::permissions(it->path(), std::filesystem::perms::owner_all,
                                         std::filesystem::perm_options::add, ignored);
        }
    }
    std::filesystem::remove_all(path_, ignored);
}

void write_file(const std::filesystem::path& path, std::string_view content) {
    if (path.has_parent_path()) {
        std::filesystem::create_directories(path.parent_path());
    }
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out) {
        throw std::runtime_error("write_file failed for " + path.string());
    }
}

std::string random_bytes(std::size_t size, std::uint64_t seed) {
    std::string content(size, '\0');
    std::mt19937_64 random(seed);
    for (auto& c : content) {
        c = static_cast<char>(random());
    }
    return content;
}

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw std::runtime_error("read_file: cannot open " + path.string());
    }
    std::ostringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

bool running_as_root() {
    return ::geteuid() == 0;
}

process_result run_python(const std::string& script, const std::vector<std::string>& args) {
    std::string command = fmt::format("{} -c {}", AXDS_PYTHON3, shell_quote(script));
    for (const auto& arg : args) {
        command += ' ' + shell_quote(arg);
    }
    command += " 2>&1";
    process_result result;
    FILE* pipe = ::popen(command.c_str(), "r");  // NOLINT(cert-env33-c)
    if (pipe == nullptr) {
        throw std::runtime_error("run_python: popen failed");
    }
    std::array<char, 4096> buffer{};
    std::size_t n = 0;
    while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) {
        result.output.append(buffer.data(), n);
    }
    const int status = ::pclose(pipe);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

namespace {

std::string checked_python(const std::string& script, const std::vector<std::string>& args) {
    auto result = run_python(script, args);
    if (result.exit_code != 0) {
        throw std::runtime_error("python3 failed (exit " + std::to_string(result.exit_code) + "): " + result.output);
    }
    return std::move(result.output);
}

}  // namespace

void pyyaml_write(const std::filesystem::path& file, const std::string& data_expression) {
    (void)checked_python(fmt::format("import sys, yaml\n"
                                     "data = {}\n"
                                     "open(sys.argv[1], 'w').write(yaml.dump(data, Dumper=yaml.CDumper, {}))\n",
                                     data_expression, pyyaml_dump_options),
                         {file.string()});
}

std::string pyyaml_redump(const std::filesystem::path& file) {
    return checked_python(fmt::format("import sys, yaml\n"
                                      "class Expanded(yaml.CDumper):\n"
                                      "    def ignore_aliases(self, data):\n"
                                      "        return True\n"
                                      "data = yaml.load(open(sys.argv[1], encoding='utf-8'), Loader=yaml.CSafeLoader)\n"
                                      "sys.stdout.write(yaml.dump(data, Dumper=Expanded, {}))\n",
                                      pyyaml_dump_options),
                          {file.string()});
}

std::string pyyaml_redump_text(const std::string& document) {
    const temp_dir tmp;
    write_file(tmp.path() / "doc.yaml", document);
    return pyyaml_redump(tmp.path() / "doc.yaml");
}

}  // namespace axds::test
