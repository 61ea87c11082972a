#include <axds/config/yaml_config.hpp>

#include <axds/error.hpp>

#include "config/yaml_diagnostics.hpp"
#include "config/yaml_files.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <random>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace axds::detail {

namespace fs = std::filesystem;

namespace {

std::string describe(const yaml_context& context) {
    return context.file != nullptr ? context.file->string() : std::string("<memory>");
}

/// Closes the descriptor and removes the temp file unless released (spec §3.3 step 5).
class temp_file {
public:
    explicit temp_file(const fs::path& destination) {
        const fs::path directory = destination.has_parent_path() ? destination.parent_path() : fs::path(".");
        static constexpr std::string_view alphabet = "abcdefghijklmnopqrstuvwxyz0123456789_";
        // One seeded generator per thread: constructing std::random_device per file cost more than the write.
        thread_local std::mt19937_64 entropy{std::random_device{}() ^
                                             (std::uint64_t{static_cast<std::uint32_t>(::getpid())} << 32U)};
        std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
        for (int attempt = 0; attempt < 100; ++attempt) {
            std::string random(8, 'x');
            for (char& c : random) {
                c = alphabet[pick(entropy)];
            }
            path_ = directory / fmt::format(".{}.{}.tmp", destination.filename().string(), random);
            fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (fd_ >= 0) {
                return;
            }
            if (errno == ENOENT && attempt == 0 && destination.has_parent_path()) {
                // Parent directories only when missing: one failed open here rather than a stat on every write.
                std::error_code ec;
                fs::create_directories(directory, ec);
                if (ec) {
                    throw_os_error(ec, fmt::format("Unable to create the directory {} for the YAML file {}: {}.",
                                                   directory.string(), destination.string(), ec.message()));
                }
                continue;
            }
            if (errno != EEXIST) {
                const int error = errno;
                throw_errno(error, fmt::format("Unable to create a temporary file next to {}: {}.",
                                               destination.string(), std::strerror(error)));
            }
        }
        throw_errno(EEXIST, fmt::format("Unable to create a temporary file next to {}.", destination.string()));
    }

    temp_file(const temp_file&) = delete;
    temp_file& operator=(const temp_file&) = delete;

    ~temp_file() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
        if (!committed_) {
            ::unlink(path_.c_str());
        }
    }

    void write_all(std::string_view data, const fs::path& destination) {
        while (!data.empty()) {
            const ssize_t n = ::write(fd_, data.data(), data.size());
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                fail("write", destination);
            }
            data.remove_prefix(static_cast<std::size_t>(n));
        }
        // mkstemp semantics: the final file is 0600 whatever the umask (spec §3.3 step 4).
        if (::fchmod(fd_, 0600) != 0 || ::fsync(fd_) != 0) {
            fail("flush", destination);
        }
        if (::close(std::exchange(fd_, -1)) != 0) {
            fail("close", destination);
        }
    }

    void commit(const fs::path& destination) {
        if (::rename(path_.c_str(), destination.c_str()) != 0) {
            fail("replace", destination);
        }
        committed_ = true;
    }

private:
    [[noreturn]] void fail(std::string_view step, const fs::path& destination) const {
        const int error = errno;
        throw_errno(error, fmt::format("Unable to {} the YAML file {} (via {}): {}.", step, destination.string(),
                                       path_.string(), std::strerror(error)));
    }

    fs::path path_;
    int fd_ = -1;
    bool committed_ = false;
};

}  // namespace

void throw_yaml_field_error(const yaml_context& context, std::string_view problem) {
    throw type_error(fmt::format(
        "Unable to create the dataclass instance using the data from the {} .yaml file. The field '{}' holds an "
        "invalid value: {}.",
        describe(context), context.where.empty() ? "<document>" : yaml_bounded_path(context.where), problem));
}

void throw_yaml_missing_field(const yaml_context& context) {
    throw missing_value_error(
        fmt::format("Unable to create the dataclass instance using the data from the {} .yaml file: missing value for "
                    "field \"{}\".",
                    describe(context), yaml_bounded_path(context.where)));
}

void throw_yaml_enum_value(std::string_view enum_value, std::string_view problem) {
    throw value_error(fmt::format("Unable to serialize the enum value {}: it {}.", enum_value, problem));
}

std::string yaml_excerpt(std::string_view text, std::size_t limit) {
    if (text.size() <= limit) {
        return std::string(text);
    }
    std::size_t cut = limit;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0U) == 0x80U) {
        --cut;  // do not split a multi-byte character
    }
    return fmt::format("{}... ({} bytes)", text.substr(0, cut), text.size());
}

std::string yaml_key_text(const yaml_value& key) {
    if (key.type() == yaml_value::kind::string) {
        return key.as_string();
    }
    std::string text = emit_yaml(key);  // "--- 1\n...\n"
    const auto start = text.find_first_not_of("- ");
    const auto end = text.find('\n');
    return text.substr(start, end - start);
}

void check_yaml_suffix(const fs::path& file, bool writing) {
    const auto extension = file.extension();
    if (extension == ".yaml" || extension == ".yml") {
        return;
    }
    if (writing) {
        throw value_error(fmt::format(
            "Unable to write the dataclass instance to a .yaml file using the provided file path. The 'file_path' "
            "argument must end in the '.yaml' or '.yml' extension, but got {}.",
            file.string()));
    }
    throw value_error(fmt::format(
        "Unable to create the dataclass instance using the data from a .yaml file. The 'file_path' argument must end "
        "in the '.yaml' or '.yml' extension, but got {}.",
        file.string()));
}

void write_yaml_file(const fs::path& file, const yaml_value& document) {
    write_yaml_text(file, emit_yaml_for_file(document, file));  // emit fails before anything touches the disk
}

void write_yaml_text(const fs::path& file, const std::string& text) {
    temp_file temp(file);  // creates missing parent directories
    temp.write_all(text, file);
    temp.commit(file);
}

yaml_value read_yaml_file(const fs::path& file) {
    yaml_value document = parse_yaml(read_yaml_text(file), file.string());
    if (document.type() != yaml_value::kind::mapping) {
        throw value_error(fmt::format(
            "Unable to create the dataclass instance using the data from the {} .yaml file. The file must contain a "
            "top-level mapping, but got {}.",
            file.string(), document.python_type_name()));
    }
    return document;
}

std::string read_yaml_text(const fs::path& file) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const int error = errno;
        throw_errno(error, fmt::format("Unable to read the YAML file {}: {}.", file.string(), std::strerror(error)));
    }
    std::string text;
    std::array<char, 65536> buffer{};
    while (true) {
        const ssize_t n = ::read(fd, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            const int error = errno;
            ::close(fd);
            throw_errno(error,
                        fmt::format("Unable to read the YAML file {}: {}.", file.string(), std::strerror(error)));
        }
        if (n == 0) {
            break;
        }
        text.append(buffer.data(), static_cast<std::size_t>(n));
    }
    ::close(fd);
    return text;
}

}  // namespace axds::detail
