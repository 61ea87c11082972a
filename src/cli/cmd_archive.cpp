// axds archive info|dump ARCHIVE: what a log archive (.npz) holds.

#include "cli/command.hpp"
#include "cli/json_writer.hpp"

#include <axds/log/log_archive.hpp>
#include <axds/log/log_archive_reader.hpp>
#include <axds/log/log_package.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <memory>

namespace axds::cli {

namespace {

struct archive_settings {
    std::string archive;
    std::vector<std::string> keys;  // dump
    std::size_t limit = 0;          // dump
    bool json = false;
};

/// Time span and payload sizes of an archive's messages (members need not be in time order).
struct archive_stats {
    std::uint64_t first = 0;
    std::uint64_t last = 0;
    std::size_t min_size = 0;
    std::size_t max_size = 0;
    std::uint64_t total = 0;
    std::size_t count = 0;

    [[nodiscard]] double mean() const {
        return count == 0 ? 0.0 : static_cast<double>(total) / static_cast<double>(count);
    }
};

archive_stats measure(const axds::log_archive_reader& reader) {
    archive_stats s;
    for (const auto message : reader.messages()) {
        if (s.count == 0) {
            s.first = message.timestamp_us;
            s.last = message.timestamp_us;
            s.min_size = message.payload.size();
        }
        s.first = std::min(s.first, message.timestamp_us);
        s.last = std::max(s.last, message.timestamp_us);
        s.min_size = std::min(s.min_size, message.payload.size());
        s.max_size = std::max(s.max_size, message.payload.size());
        s.total += message.payload.size();
        ++s.count;
    }
    return s;
}

/// `axds archive info` on a streaming logger's working file: unfinished, and how much of it is recoverable.
int run_working_info(const archive_settings& settings) {
    const axds::working_archive_info w = axds::inspect_working_archive(settings.archive);
    // The bytes after the last member are either a torn end (cut) or damaged bytes (listed below, saved first).
    const bool torn_end = !w.stop_reason.empty() &&
                          (w.damaged.empty() || w.damaged.back().offset + w.damaged.back().length != w.file_size);
    if (settings.json) {
        json_writer json;
        json.begin_object()
            .field("archive", settings.archive)
            .field("unfinished", true)
            .field("source", w.source)
            .field("recoverable_members", w.recoverable_members)
            .field("recoverable_bytes", w.recoverable_bytes)
            .field("file_size", w.file_size);
        damaged_json(json, w.damaged);
        json.end_object();
        fmt::print("{}\n", json.str());
    } else {
        fmt::print(
            "{}\n  unfinished streaming archive of source {} (its logger is running or was killed)\n"
            "  {} members recoverable ({} of {} bytes){}\n  axds assemble on its directory finishes it (once no "
            "logger writes there)\n",
            settings.archive, w.source, w.recoverable_members, w.recoverable_bytes, w.file_size,
            torn_end ? "; the torn end after them is cut: " + w.stop_reason : "");
        for (const auto& d : w.damaged) {
            fmt::print(
                "  damaged bytes {} to {} ({}): a recovery keeps the intact members around them and saves "
                "these bytes to a file of their own\n",
                d.offset, d.offset + d.length, d.reason);
        }
    }
    return 0;
}

int run_info(const archive_settings& settings) {
    require_existing(settings.archive, "archive", false);
    if (axds::is_working_archive_name(std::filesystem::path(settings.archive).filename().string())) {
        return run_working_info(settings);
    }
    const axds::log_archive_reader reader(settings.archive);
    const archive_stats s = measure(reader);
    const std::uint64_t onset = reader.onset_timestamp_us();
    if (settings.json) {
        json_writer json;
        json.begin_object()
            .field("archive", settings.archive)
            .field("onset_us", onset)
            .field("onset", axds::utc_iso8601(onset))
            .field("message_count", s.count)
            .field("first_us", s.first)
            .field("last_us", s.last)
            .field("payload_bytes", s.total)
            .field("payload_min", s.min_size)
            .field("payload_max", s.max_size)
            .field("payload_mean", s.mean())
            .end_object();
        fmt::print("{}\n", json.str());
    } else {
        fmt::print(
            "{}\n  onset {} ({} us)\n  {} messages spanning {:.6f} s\n  payloads: {} bytes, min {}, max {}, mean "
            "{:.1f}\n",
            settings.archive, axds::utc_iso8601(onset), onset, s.count, static_cast<double>(s.last - s.first) / 1e6,
            s.total, s.min_size, s.max_size, s.mean());
    }
    return 0;
}

int run_dump(const archive_settings& settings) {
    require_existing(settings.archive, "archive", false);
    const axds::log_archive_reader reader(settings.archive);
    const auto range = settings.keys.empty() ? reader.messages() : reader.messages(settings.keys);
    std::size_t shown = 0;
    for (const auto message : range) {
        if (settings.limit != 0 && shown == settings.limit) {
            break;
        }
        std::string hex;
        hex.reserve(message.payload.size() * 2);
        for (const std::uint8_t byte : message.payload) {
            hex += fmt::format("{:02x}", byte);
        }
        if (settings.json) {
            json_writer json;
            json.begin_object()
                .field("timestamp_us", message.timestamp_us)
                .field("size", message.payload.size())
                .field("payload_hex", hex)
                .end_object();
            fmt::print("{}\n", json.str());
        } else {
            fmt::print("{}  {:>8} B  {}\n", message.timestamp_us, message.payload.size(), hex);
        }
        ++shown;
    }
    return 0;
}

}  // namespace

void add_archive(CLI::App& app, command_list& commands) {
    auto* archive = app.add_subcommand("archive", "Inspect a log archive");
    archive->require_subcommand(1);

    auto info = std::make_shared<archive_settings>();
    auto* info_sub = archive->add_subcommand("info", "Onset, message count, time span and payload sizes");
    info_sub->add_option("ARCHIVE", info->archive, "Archive (.npz)")->required();
    add_json_flag(*info_sub, info->json);
    commands.push_back({info_sub, [info](const context&) {
                            return run_info(*info);
                        }});

    auto dump = std::make_shared<archive_settings>();
    auto* dump_sub = archive->add_subcommand("dump", "Timestamp, size and hex payload of each message");
    dump_sub->add_option("ARCHIVE", dump->archive, "Archive (.npz)")->required();
    dump_sub->add_option("--keys", dump->keys, "Only these message keys (e.g. 001_00000000000000000042)");
    dump_sub->add_option("--limit", dump->limit, "At most this many messages (0 = all)");
    add_json_flag(*dump_sub, dump->json, "One JSON object per line");
    commands.push_back({dump_sub, [dump](const context&) {
                            return run_dump(*dump);
                        }});
}

}  // namespace axds::cli
