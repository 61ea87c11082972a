#include "cli/command.hpp"

#include <axds/error.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <cstdio>

#include <sys/stat.h>

namespace axds::cli {

double context::seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
}

void add_json_flag(CLI::App& sub, bool& json, const std::string& description) {
    sub.add_flag("--json", json, description);
}

CLI::Validator worker_count() {
    return CLI::Validator(
        [](const std::string& text) -> std::string {
            int value = 0;
            const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
            if (ec != std::errc() || end != text.data() + text.size() || value < 0) {
                return fmt::format("'{}' is not a worker count: use 0 (automatic) or a positive whole number", text);
            }
            return {};
        },
        "0 (automatic) or a positive number");
}

namespace {

/// The bidirectional formatting character (U+202A..U+202E, U+2066..U+2069: E2 80 AA..AE, E2 81 A6..A9) that starts
/// at `text[i]`, or 0.
unsigned bidi_control(std::string_view text, std::size_t i) {
    if (i + 2 >= text.size() || static_cast<unsigned char>(text[i]) != 0xE2U) {
        return 0;
    }
    const auto b1 = static_cast<unsigned char>(text[i + 1]);
    const auto b2 = static_cast<unsigned char>(text[i + 2]);
    const bool embedding = b1 == 0x80U && b2 >= 0xAAU && b2 <= 0xAEU;
    const bool isolate = b1 == 0x81U && b2 >= 0xA6U && b2 <= 0xA9U;
    return embedding || isolate ? 0x2000U + ((b1 & 0x3FU) << 6U) + (b2 & 0x3FU) : 0;
}

}  // namespace

void say_completed_after_interrupt() {
    std::fputs(
        "axds: the interruption came too late to stop it: the command had reached a step that is always "
        "finished (a removal, once begun, is never left half done), and it completed.\n",
        stderr);
}

void say_quitting() {
    std::fputs(
        "axds: interrupted again; quitting at once. What was under way is left as it was: no file is half written "
        "under its final name, and a move stopped while it removed its source is finished by running the same "
        "command again.\n",
        stderr);
}

std::string printable(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        const auto next = i + 1 < text.size() ? static_cast<unsigned char>(text[i + 1]) : 0U;
        if (c == '\n' || c == '\r' || c == '\t') {
            out += c == '\n' ? "\\n" : c == '\r' ? "\\r" : "\\t";
        } else if (c < 0x20U || c == 0x7FU) {
            out += fmt::format("\\x{:02x}", c);
        } else if (c == 0xC2U && next >= 0x80U && next <= 0x9FU) {  // U+0080..U+009F: the C1 controls
            out += fmt::format("\\u{:04x}", next);
            ++i;
        } else if (const unsigned bidi = bidi_control(text, i); bidi != 0) {  // reorders what follows on screen
            out += fmt::format("\\u{:04x}", bidi);
            i += 2;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

bool check_tracker_file(const std::filesystem::path& path, bool create, bool offers_create) {
    struct stat st {};

    if (::stat(path.c_str(), &st) != 0) {
        const int error = errno;
        if (error == ENOENT && ::lstat(path.c_str(), &st) != 0) {
            return false;
        }
        if (create && error == ENOENT) {
            return false;  // a dangling link: --create makes the tracker at its target
        }
        std::string why;
        if (error == ENOENT) {
            why = " (a symbolic link to a file that does not exist: a share not mounted yet?)";
            if (offers_create) {
                why += "; --create makes a new tracker there";
            }
        }
        throw axds::os_error(std::error_code(error, std::generic_category()),
                             fmt::format("The processing tracker file '{}' cannot be opened: {}. It was left "
                                         "untouched{}.",
                                         path.string(), std::generic_category().message(error), why));
    }
    if (!S_ISREG(st.st_mode)) {
        throw axds::value_error(
            fmt::format("The file '{}' is not a processing tracker: it is not a regular file. It was left untouched.",
                        path.string()));
    }
    return true;
}

void require_existing(const std::filesystem::path& path, std::string_view what, bool directory) {
    struct stat st {};

    if (path.empty()) {
        throw axds::value_error(fmt::format("The {} is an empty path.", what));
    }
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOTDIR) {  // `file.txt/` or `file.txt/x`: a component is a file, not a missing path
            throw axds::not_a_directory_error(
                std::make_error_code(std::errc::not_a_directory),
                fmt::format("The {} '{}' cannot be reached: a component of the path is a file, not a directory.", what,
                            path.string()));
        }
        if (errno != ENOENT) {
            const int error = errno;
            throw axds::os_error(std::error_code(error, std::generic_category()),
                                 fmt::format("The {} '{}' cannot be inspected: {}.", what, path.string(),
                                             std::generic_category().message(error)));
        }
        throw axds::file_not_found_error(std::make_error_code(std::errc::no_such_file_or_directory),
                                         fmt::format("The {} '{}' does not exist.", what, path.string()));
    }
    if (directory && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) {
        throw axds::not_a_directory_error(std::make_error_code(std::errc::not_a_directory),
                                          fmt::format("The {} '{}' is not a directory.", what, path.string()));
    }
}

progress_bar::progress_bar(bool enabled, std::string label, std::string unit)
    : enabled_(enabled), label_(std::move(label)), unit_(std::move(unit)), start_(clock::now()) {}

void progress_bar::update(std::size_t done, std::size_t total, std::uint64_t bytes) {
    if (!enabled_) {
        return;
    }
    const auto now = clock::now();
    if (done < total && now - last_draw_ < std::chrono::milliseconds(100)) {
        return;
    }
    last_draw_ = now;
    draw(done, total, bytes, now);
    drawn_ = true;
    if (done >= total) {
        finish();
    }
}

void progress_bar::draw(std::size_t done, std::size_t total, std::uint64_t bytes, clock::time_point now) {
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double fraction = total == 0 ? 1.0 : static_cast<double>(done) / static_cast<double>(total);
    constexpr int width = 24;
    const int filled = static_cast<int>(fraction * width);
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.append(static_cast<std::size_t>(width - filled), '-');
    std::string eta = "--:--";
    if (fraction > 0.0 && done < total) {
        const auto remaining = static_cast<long>(elapsed / fraction - elapsed);
        eta = fmt::format("{}:{:02}", remaining / 60, remaining % 60);
    } else if (done >= total) {
        eta = fmt::format("{:.1f} s", elapsed);
    }
    const double rate = elapsed > 0.0 ? static_cast<double>(bytes) / elapsed / 1e6 : 0.0;
    std::fprintf(stderr, "\r%s [%s] %3d%% %zu/%zu %s  %.1f MB/s  %s %s\x1b[K", label_.c_str(), bar.c_str(),
                 static_cast<int>(fraction * 100.0), done, total, unit_.c_str(), rate, done >= total ? "in" : "ETA",
                 eta.c_str());
}

void progress_bar::finish() {
    if (drawn_) {
        std::fputc('\n', stderr);
        drawn_ = false;
    }
}

}  // namespace axds::cli
