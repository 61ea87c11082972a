#include <axds/config/yaml_config.hpp>

#include <axds/error.hpp>

#include "config/yaml_diagnostics.hpp"
#include "config/yaml_files.hpp"
#include "sys/atomic_file.hpp"
#include "sys/error.hpp"
#include "sys/io.hpp"
#include "sys/unique_fd.hpp"

#include <fmt/format.h>

#include <cerrno>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace axds::detail {

namespace fs = std::filesystem;

namespace {

std::string describe(const yaml_context& context) {
    return context.file != nullptr ? context.file->string() : std::string("<memory>");
}

/// ".NAME.XXXXXXXX.tmp", X from [a-z0-9_] (spec §3.3 step 5: a hidden temp file next to the destination).
std::string yaml_temp_name(std::string_view file_name, std::uint64_t random) {
    static constexpr std::string_view alphabet = "abcdefghijklmnopqrstuvwxyz0123456789_";
    std::string tail(8, 'x');
    for (char& c : tail) {
        c = alphabet[random % alphabet.size()];
        random /= alphabet.size();
    }
    return fmt::format(".{}.{}.tmp", file_name, tail);
}

[[noreturn]] void throw_replace_error(const sys::replace_error& failure, const sys::atomic_file& temp,
                                      const fs::path& destination) {
    const int error = failure.error.value();
    switch (failure.step) {
        case sys::replace_step::create_directory: {
            const fs::path directory = destination.has_parent_path() ? destination.parent_path() : fs::path(".");
            throw_os_error(failure.error,
                           fmt::format("Unable to create the directory {} for the YAML file {}: {}.",
                                       directory.string(), destination.string(), failure.error.message()));
        }
        case sys::replace_step::create:
            if (error == EEXIST) {
                throw_errno(EEXIST, fmt::format("Unable to create a temporary file next to {}.", destination.string()));
            }
            throw_errno(error, fmt::format("Unable to create a temporary file next to {}: {}.", destination.string(),
                                           sys::errno_message(error)));
        default: break;
    }
    const std::string_view step = failure.step == sys::replace_step::write            ? "write"
                                  : failure.step == sys::replace_step::flush          ? "flush"
                                  : failure.step == sys::replace_step::close          ? "close"
                                  : failure.step == sys::replace_step::sync_directory ? "flush the directory of"
                                                                                      : "replace";
    throw_errno(error, fmt::format("Unable to {} the YAML file {} (via {}): {}.", step, destination.string(),
                                   temp.temp_path().string(), sys::errno_message(error)));
}

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

void write_yaml_text(const fs::path& file, const std::string& text, bool sync_directory) {
    sys::atomic_file temp;
    sys::replace_error failure = temp.create(file, {.name = yaml_temp_name, .mode = 0600, .create_parents = true});
    if (!failure) {
        const sys::io_result written = sys::write_full(temp.fd(), text.data(), text.size());
        failure = {sys::replace_step::write, written.error};
    }
    // mkstemp semantics: the final file is 0600 whatever the umask (spec §3.3 step 4).
    if (!failure && ::fchmod(temp.fd(), 0600) != 0) {
        failure = {sys::replace_step::flush, sys::last_error()};
    }
    if (!failure) {
        failure = temp.commit(true, sync_directory);
    }
    if (failure) {
        throw_replace_error(failure, temp, file);
    }
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
    const sys::unique_fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    std::string text;
    std::array<char, 65536> buffer{};
    sys::io_result read{.bytes = buffer.size(), .error = fd ? std::error_code() : sys::last_error()};
    while (!read.error && read.bytes == buffer.size()) {  // a short read is the end of the file
        read = sys::read_full(fd.get(), buffer.data(), buffer.size());
        text.append(buffer.data(), read.bytes);
    }
    if (read.error) {
        const int error = read.error.value();
        throw_errno(error,
                    fmt::format("Unable to read the YAML file {}: {}.", file.string(), sys::errno_message(error)));
    }
    return text;
}

}  // namespace axds::detail
