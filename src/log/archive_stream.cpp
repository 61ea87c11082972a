#include "log/archive_stream.hpp"

#include <axds/core/console.hpp>
#include <axds/error.hpp>
#include <axds/log/log_package.hpp>
#include <axds/npy/npy_format.hpp>
#include <axds/npy/npz_archive.hpp>

#include "detail/cpu_work.hpp"
#include "detail/huge_pages.hpp"
#include "detail/iovec.hpp"
#include "detail/parallel.hpp"
#include "detail/printable.hpp"
#include "npy/zip_records.hpp"
#include "sys/atomic_file.hpp"
#include "sys/endian.hpp"
#include "sys/error.hpp"
#include "sys/io.hpp"
#include "sys/unique_fd.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

namespace axds::detail {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view working_suffix = ".working";
/// Payloads from this size on are written from the package itself (no copy into the staging buffer).
constexpr std::size_t external_payload_bytes = 16 * 1024;
static_assert(detail::payload_crc_bytes >= external_payload_bytes,
              "a payload with the producer's CRC is written from where it is");
/// A batch holds at most this many entries, and stops taking more once its payloads reach batch_byte_limit.
constexpr std::size_t batch_entry_limit = 16384;
constexpr std::size_t batch_byte_limit = 32U << 20U;
/// Entries encoded between two checks of the node pool during a batch.
constexpr std::size_t replenish_interval = 1024;
constexpr int iov_limit = IOV_MAX;
/// Bytes written to a working file between two starts of their writeback (sync_file_range).
constexpr std::uint64_t writeback_step = std::uint64_t{8} << 20U;

/// `SSS_TTTTTTTTTTTTTTTTTTTT.npy` into `name` (log_member_name_size bytes + NUL).
void format_member_name(std::array<char, log_member_name_size + 1>& name, std::uint64_t source,
                        std::uint64_t timestamp) {
    // `{:03d}_{:020d}.npy` by hand: fmt's general path was ~5 % of a streaming logger's time (one name per message).
    // A source id fits 3 digits: it is a uint8 when written, and working file names above 255 are not recognised.
    char* out = name.data();
    for (int i = 2; i >= 0; --i) {
        out[i] = static_cast<char>('0' + source % 10);
        source /= 10;
    }
    out[3] = '_';
    for (int i = 23; i >= 4; --i) {
        out[i] = static_cast<char>('0' + timestamp % 10);
        timestamp /= 10;
    }
    std::memcpy(out + 24, ".npy", 5);  // with its NUL
}

/// The source and timestamp of a canonical member name; false for anything else.
bool parse_member_name(std::string_view name, std::uint64_t& source, std::uint64_t& timestamp) {
    if (name.size() != log_member_name_size || name[3] != '_' || !name.ends_with(".npy")) {
        return false;
    }
    const auto digits = [](std::string_view text, std::uint64_t& out) {
        if (!std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            return false;
        }
        const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
        return ec == std::errc() && ptr == text.data() + text.size();
    };
    return digits(name.substr(0, 3), source) && digits(name.substr(4, 20), timestamp);
}

/// The size of the header at `p` when it is the writer's header of `member` for an offset `pos` is not (its padding
/// depends on the offset modulo 64): a member moved by bytes inserted or lost before it (0 when there is none).
std::size_t shifted_header_size(const std::uint8_t* p, std::uint64_t avail, std::uint64_t pos, std::string_view name,
                                const stream_member& member) {
    std::array<std::uint8_t, 256> expected{};
    for (std::uint64_t shift = 1; shift < npz_member_alignment; ++shift) {
        const std::size_t head = zip_local_header_size(pos + shift, name.size());
        if (head > avail) {
            continue;
        }
        encode_zip_local_header(expected.data(), pos + shift, name, member.crc, member.size);
        if (std::memcmp(expected.data(), p, head) == 0) {
            return head;
        }
    }
    return 0;
}

/// Why the member at `pos` is not intact (empty when it is); fills `member`. `torn` is set when the reason is one a
/// crash leaves at the end of a working file: a member cut short, or the central directory of an unfinished publish.
std::string check_member(std::span<const std::uint8_t> bytes, std::uint64_t pos, std::uint64_t source,
                         stream_member& member, bool& torn) {
    const std::uint64_t avail = bytes.size() - pos;
    const std::uint8_t* p = bytes.data() + pos;
    torn = true;
    if (avail >= 4 && sys::load_le32(p) == zip_central_signature) {
        return "a central directory starts here (the archive was finished up to this point)";
    }
    constexpr std::size_t fixed = zip_local_fixed_size + log_member_name_size + zip_local_zip64_extra_size;
    if (avail < fixed) {
        return fmt::format("only {} bytes of a local header are present (a torn member)", avail);
    }
    torn = false;
    if (sys::load_le32(p) != zip_local_signature || sys::load_le16(p + 26) != log_member_name_size) {
        return "no local header of a log member starts here";
    }
    const std::string_view name(reinterpret_cast<const char*>(p + zip_local_fixed_size), log_member_name_size);
    std::uint64_t name_source = 0;
    if (!parse_member_name(name, name_source, member.timestamp) || name_source != source) {
        return fmt::format("the member name '{}' is not a log entry name of source {}", printable(name), source);
    }
    member.offset = pos;
    member.crc = sys::load_le32(p + 14);
    member.size = sys::load_le64(p + zip_local_fixed_size + log_member_name_size + 4);
    std::size_t head = zip_local_header_size(pos, log_member_name_size);
    if (avail < head) {
        torn = true;
        return fmt::format("only {} of the local header's {} bytes are present (a torn member)", avail, head);
    }
    std::array<std::uint8_t, 256> expected{};
    encode_zip_local_header(expected.data(), pos, name, member.crc, member.size);
    if (std::memcmp(expected.data(), p, head) != 0) {
        head = shifted_header_size(p, avail, pos, name, member);
        if (head == 0) {
            return fmt::format("the local header of '{}' differs from the one the writer encodes", name);
        }
    }
    member.header = static_cast<std::uint32_t>(head);
    if (member.size > avail - head) {
        torn = true;
        return fmt::format("'{}' declares {} bytes of data, but only {} are present (a torn member)", name, member.size,
                           avail - head);
    }
    const std::span<const std::uint8_t> data(p + head, static_cast<std::size_t>(member.size));
    if (crc32(data) != member.crc) {
        return fmt::format("the data of '{}' does not match its CRC-32 (a torn or damaged member)", name);
    }
    std::span<const std::uint8_t> payload;
    try {
        payload = npy_u1_payload(data, name);
    } catch (const value_error& e) {
        return e.what();
    }
    const std::uint64_t stamp = payload.size() >= 9 ? sys::load_le64(payload.data() + 1) : 0;
    if (payload.size() < 9 || payload[0] != source || stamp != member.timestamp) {
        return fmt::format("the source and time inside '{}' disagree with its name", name);
    }
    return {};
}

[[noreturn]] void throw_file_error(int error, std::string_view what, const fs::path& path) {
    throw_errno(error, fmt::format("Unable to {} {}: {}.", what, path.string(), sys::errno_message(error)));
}

void pwrite_all(int fd, std::string_view bytes, std::uint64_t offset, const fs::path& path) {
    const sys::io_result written = sys::pwrite_full(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (written.error) {
        throw_file_error(written.error.value(), "write the central directory of", path);
    }
}

/// The existing archive's members, checked as assembly checks them, sorted by timestamp (stable).
std::vector<std::pair<std::uint64_t, const npz_member*>> load_existing(const npz_reader& archive, std::uint64_t source,
                                                                       const fs::path& working) {
    const auto refuse = [&](std::string_view problem) {
        throw value_error(fmt::format(
            "Unable to finish the streaming archive {} of source {}: the existing file {} {}. It was left untouched; "
            "the working file keeps every member (move the existing file out of the directory and run axds "
            "assemble to finish it).",
            working.string(), source, archive.path().string(), problem));
    };
    std::vector<std::pair<std::uint64_t, const npz_member*>> members;
    for (const auto& member : archive.members()) {
        const std::string_view name(member.name);
        const auto underscore = name.find('_');
        std::uint64_t member_source = 0;
        std::uint64_t timestamp = 0;
        const auto second = name.find_first_of("_.", underscore + 1);
        const bool parsed =
            name.ends_with(".npy") && underscore != std::string_view::npos &&
            std::from_chars(name.data(), name.data() + underscore, member_source).ptr == name.data() + underscore &&
            std::from_chars(name.data() + underscore + 1, name.data() + second, timestamp).ptr == name.data() + second;
        if (!parsed || member_source != source) {
            refuse(
                fmt::format("holds the member '{}', which is not a log entry of source {}", printable(name), source));
        }
        try {
            archive.verify_crc(member);
        } catch (const value_error& e) {
            refuse(fmt::format("is damaged ({})", e.what()));
        }
        members.emplace_back(timestamp, &member);
    }
    std::stable_sort(members.begin(), members.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    return members;
}

/// Writes the union of `final_path` (already there) and the finished working file into `final_path` (assembly's
/// merge: timestamp order, the existing members first at equal times, one key with the same bytes kept once).
void merge_into_existing(const fs::path& final_path, const fs::path& working, std::uint64_t source) {
    struct stat st {};

    if (::lstat(final_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
        throw value_error(
            fmt::format("Unable to finish the streaming archive {}: {} exists but is not a regular "
                        "file. It was left untouched; the working file keeps every member.",
                        working.string(), final_path.string()));
    }
    std::unique_ptr<npz_reader> previous;
    try {
        previous = std::make_unique<npz_reader>(final_path);
    } catch (const value_error& e) {
        throw value_error(
            fmt::format("Unable to finish the streaming archive {}: the existing file {} cannot be read "
                        "as an archive ({}). It was left untouched; the working file keeps every "
                        "member.",
                        working.string(), final_path.string(), e.what()));
    }
    const auto old = load_existing(*previous, source, working);
    const npz_reader fresh(working, {.verify_crc = false});  // its members were checked when written or scanned
    npz_writer out(final_path);
    std::size_t i = 0;
    for (const auto& member : fresh.members()) {
        std::uint64_t member_source = 0;
        std::uint64_t timestamp = 0;
        (void)parse_member_name(member.name, member_source, timestamp);
        for (; i < old.size() && old[i].first <= timestamp; ++i) {
            out.add(old[i].second->name, previous->data(*old[i].second));
        }
        const npz_member* same = previous->find(member.name);
        if (same == nullptr) {
            out.add(member.name, fresh.data(member));
            continue;
        }
        const auto a = previous->data(*same);
        const auto b = fresh.data(member);
        if (!std::equal(a.begin(), a.end(), b.begin(), b.end())) {
            throw value_error(fmt::format(
                "Unable to finish the streaming archive {}: its member '{}' and the member of the same name in the "
                "existing archive {} hold different data. The existing archive was not changed; the working file keeps "
                "every member. "
                "Keep the one that is right and move the other out of the directory.",
                working.string(), member.name, final_path.string()));
        }
    }
    for (; i < old.size(); ++i) {
        out.add(old[i].second->name, previous->data(*old[i].second));
    }
    out.finish(true);
}

void sync_directory(int directory_fd, const fs::path& directory) {
    if (::fsync(directory_fd) != 0) {
        throw_file_error(errno, "flush the directory", directory);
    }
}

/// A growable byte buffer that does not zero what it hands out.
class raw_buffer {
public:
    std::uint8_t* grow(std::size_t n) {
        if (size_ + n > capacity_) {
            const std::size_t capacity = std::max({capacity_ * 2, size_ + n, std::size_t{1} << 16U});
            auto bigger = std::make_unique_for_overwrite<std::uint8_t[]>(capacity);
            if (size_ != 0) {
                std::memcpy(bigger.get(), data_.get(), size_);
            }
            data_ = std::move(bigger);
            capacity_ = capacity;
        }
        std::uint8_t* out = data_.get() + size_;
        size_ += n;
        return out;
    }

    [[nodiscard]] std::uint8_t* data() const noexcept { return data_.get(); }

    [[nodiscard]] std::size_t size() const noexcept { return size_; }

    void clear() noexcept { size_ = 0; }

private:
    std::unique_ptr<std::uint8_t[]> data_;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
};

/// The offset of the next intact member of `source` at or after `from` whose time is not in `keys`; bytes.size()
/// when there is none. Candidates are the local header signatures; check_member rejects all but the writer's own
/// header for that very offset, so bytes inside a payload are not taken for a member.
std::uint64_t find_next_member(std::span<const std::uint8_t> bytes, std::uint64_t from, std::uint64_t source,
                               const std::unordered_set<std::uint64_t>& keys) {
    std::array<std::uint8_t, 4> signature{};
    sys::store_le32(signature.data(), zip_local_signature);
    while (from < bytes.size()) {
        const void* hit = ::memmem(bytes.data() + from, bytes.size() - from, signature.data(), signature.size());
        if (hit == nullptr) {
            break;
        }
        const auto pos = static_cast<std::uint64_t>(static_cast<const std::uint8_t*>(hit) - bytes.data());
        stream_member member;
        bool torn = false;
        if (check_member(bytes, pos, source, member, torn).empty() && keys.count(member.timestamp) == 0) {
            return pos;
        }
        from = pos + 1;
    }
    return bytes.size();
}

enum class file_match { missing, same, different };

/// Whether the file at `path` holds exactly `bytes`.
file_match compare_file(const fs::path& path, std::span<const std::uint8_t> bytes) {
    const sys::unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) {
        if (errno == ENOENT) {
            return file_match::missing;
        }
        return file_match::different;  // something else holds the name: use another
    }

    struct stat st {};

    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_size) != bytes.size()) {
        return file_match::different;
    }
    std::vector<std::uint8_t> chunk(std::min<std::size_t>(bytes.size(), std::size_t{1} << 20U));
    for (std::size_t done = 0; done < bytes.size();) {
        const std::size_t n = std::min(chunk.size(), bytes.size() - done);
        const sys::io_result got = sys::pread_full(fd.get(), chunk.data(), n, static_cast<off_t>(done));
        if (got.error || got.bytes != n || std::memcmp(chunk.data(), bytes.data() + done, n) != 0) {
            return file_match::different;
        }
        done += n;
    }
    return file_match::same;
}

std::string damaged_temp_name(std::string_view file_name, std::uint64_t random) {
    return fmt::format(".{}.{:08x}.partial", file_name, static_cast<std::uint32_t>(random));
}

}  // namespace

void warn_damage(const fs::path& working, const working_scan& scan) {
    for (const auto& range : scan.damaged) {
        warn(fmt::format(
            "The working file {} holds {} damaged bytes at offset {} ({}); the {} intact members found in it "
            "were kept. The damaged bytes were saved unchanged to {}.",
            working.string(), range.length, range.offset, range.reason, scan.members.size(), range.saved_to.string()));
    }
}

fs::path save_damaged_range(const fs::path& working, std::uint64_t source, std::uint64_t offset,
                            std::span<const std::uint8_t> bytes) {
    const std::string base = fmt::format("{}{}.damaged-at-{}", source, log_archive_suffix, offset);
    for (int copy = 1; copy <= 100; ++copy) {
        const fs::path candidate = working.parent_path() / (copy == 1 ? base : fmt::format("{}.{}", base, copy));
        const file_match match = compare_file(candidate, bytes);
        if (match == file_match::same) {
            return candidate;  // saved by an earlier scan of the same working file
        }
        if (match == file_match::different) {
            continue;
        }
        sys::atomic_file file;
        sys::replace_error failure = file.create(candidate, {.name = damaged_temp_name, .mode = 0444});
        if (!failure) {
            const sys::io_result written = sys::write_full(file.fd(), bytes.data(), bytes.size());
            failure = written.error ? sys::replace_error{sys::replace_step::write, written.error} : file.commit(true);
        }
        if (failure) {
            throw_errno(failure.error.value(),
                        fmt::format("Unable to save the damaged bytes {} to {} of the working file {} to {}: {}. "
                                    "Nothing was cut from the working file.",
                                    offset, offset + bytes.size(), working.string(), candidate.string(),
                                    sys::errno_message(failure.error.value())));
        }
        return candidate;
    }
    throw value_error(
        fmt::format("Unable to save the damaged bytes {} to {} of the working file {}: 100 files named "
                    "{}* already hold other bytes. Nothing was cut from the working file.",
                    offset, offset + bytes.size(), working.string(), base));
}

std::string working_file_name(std::uint64_t source) {
    return fmt::format(".{}{}{}", source, log_archive_suffix, working_suffix);
}

bool parse_working_file_name(std::string_view name, std::uint64_t& source) {
    const std::string suffix = std::string(log_archive_suffix) + std::string(working_suffix);
    if (name.size() <= suffix.size() + 1 || name.front() != '.' || !name.ends_with(suffix)) {
        return false;
    }
    const std::string_view digits = name.substr(1, name.size() - 1 - suffix.size());
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), source);
    return ec == std::errc() && ptr == digits.data() + digits.size() && source <= 255;
}

working_scan scan_working_bytes(std::span<const std::uint8_t> bytes, std::uint64_t source) {
    working_scan out;
    out.file_size = bytes.size();
    std::unordered_set<std::uint64_t> keys;
    std::uint64_t pos = 0;
    while (pos < bytes.size()) {
        stream_member member;
        bool torn = false;
        std::string reason = check_member(bytes, pos, source, member, torn);
        if (reason.empty() && !keys.insert(member.timestamp).second) {
            reason = fmt::format("a second member with the time {} (the first is kept)", member.timestamp);
        }
        if (reason.empty()) {
            pos = member.offset + member.header + member.size;
            out.members.push_back(member);
            out.valid_end = pos;
            continue;
        }
        // Intact members may follow damaged bytes (a flipped bit, a bad sector): they are kept, and the damaged
        // bytes are reported. Only an end that a crash leaves (a member cut short) is cut without a report.
        const std::uint64_t next = find_next_member(bytes, pos + 1, source, keys);
        if (next < bytes.size() || !torn) {
            out.damaged.push_back({.offset = pos, .length = next - pos, .reason = reason, .saved_to = {}});
        }
        if (next == bytes.size()) {
            out.stop_reason = fmt::format("at offset {}: {}", pos, reason);
            break;
        }
        pos = next;
    }
    return out;
}

working_scan scan_working_fd(int fd, const fs::path& path, std::uint64_t source, bool save_damaged) {
    struct stat st {};

    if (::fstat(fd, &st) != 0) {
        throw_file_error(errno, "inspect the working file", path);
    }
    const auto size = static_cast<std::size_t>(st.st_size);
    if (size == 0) {
        return {};
    }
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        throw_file_error(errno, "map the working file", path);
    }
    working_scan out;
    try {
        const std::span<const std::uint8_t> bytes(static_cast<const std::uint8_t*>(map), size);
        out = scan_working_bytes(bytes, source);
        for (auto& range : out.damaged) {
            if (save_damaged) {
                range.saved_to =
                    save_damaged_range(path, source, range.offset, bytes.subspan(range.offset, range.length));
            }
        }
    } catch (...) {
        ::munmap(map, size);
        throw;
    }
    ::munmap(map, size);
    return out;
}

fs::path publish_working_file(const fs::path& directory, int directory_fd, std::uint64_t source, int fd,
                              std::vector<stream_member> members, std::uint64_t valid_end,
                              const std::string& working_name) {
    const fs::path working = directory / (working_name.empty() ? working_file_name(source) : working_name);
    const fs::path final_path = directory / fmt::format("{}{}", source, log_archive_suffix);
    const auto by_time = [](const stream_member& a, const stream_member& b) {
        return a.timestamp < b.timestamp;
    };
    if (!std::is_sorted(members.begin(), members.end(), by_time)) {  // in order (the usual case): no sort buffer
        std::stable_sort(members.begin(), members.end(), by_time);
    }
    // Written in pieces of ~1 MiB from one reused buffer: a central directory of millions of members (~80 bytes each)
    // built whole would cost a page fault per 4 KiB of memory never touched before (~10 us each on a VM).
    constexpr std::size_t piece_bytes = std::size_t{1} << 20U;
    std::string tail;
    tail.reserve(piece_bytes + 1024);
    std::uint64_t written = 0;
    bool zip64 = false;
    std::array<char, log_member_name_size + 1> name{};
    for (const auto& m : members) {
        format_member_name(name, source, m.timestamp);
        zip64 = append_zip_central_record(tail, {name.data(), log_member_name_size}, m.crc, m.size, m.offset) || zip64;
        if (tail.size() >= piece_bytes) {
            pwrite_all(fd, tail, valid_end + written, working);
            written += tail.size();
            tail.clear();
        }
    }
    append_zip_end_records(tail, members.size(), valid_end, written + tail.size(), zip64);
    pwrite_all(fd, tail, valid_end + written, working);
    written += tail.size();
    if (::ftruncate(fd, static_cast<off_t>(valid_end + written)) != 0) {
        throw_file_error(errno, "truncate", working);
    }
    if (::fsync(fd) != 0) {
        throw_file_error(errno, "flush", working);
    }
    if (::renameat2(directory_fd, working.filename().c_str(), directory_fd, final_path.filename().c_str(),
                    RENAME_NOREPLACE) != 0) {
        if (errno != EEXIST) {
            throw_file_error(errno, fmt::format("rename {} to", working.string()), final_path);
        }
        merge_into_existing(final_path, working, source);
        if (::unlinkat(directory_fd, working.filename().c_str(), 0) != 0) {
            throw_file_error(errno, "remove the merged working file", working);
        }
    }
    sync_directory(directory_fd, directory);
    return final_path;
}

namespace {

/// Whether the working file's first bytes (all `size` of them when fewer than 4) are a member's local header
/// signature: an empty file, or one a logger killed in its first write left, is a working file; text is not.
bool begins_like_member(int fd, std::uint64_t size) {
    std::array<std::uint8_t, 4> head{};
    std::array<std::uint8_t, 4> signature{};
    sys::store_le32(signature.data(), zip_local_signature);
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(4, size));
    const sys::io_result got = sys::pread_full(fd, head.data(), n, 0);
    return !got.error && got.bytes == n && std::memcmp(head.data(), signature.data(), n) == 0;
}

}  // namespace

std::vector<recovered_archive> recover_working_files(const fs::path& directory,
                                                     const std::vector<std::string>* listed) {
    const sys::unique_fd directory_handle(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!directory_handle) {
        return {};  // a missing directory holds nothing to recover
    }
    const int directory_fd = directory_handle.get();
    std::vector<std::pair<std::uint64_t, std::string>> found;
    const auto consider = [&found](std::string_view name) {
        std::uint64_t source = 0;
        if (parse_working_file_name(name, source)) {
            found.emplace_back(source, name);
        }
    };
    if (listed != nullptr) {
        for (const auto& name : *listed) {
            consider(name);
        }
    } else if (DIR* dir = ::fdopendir(::dup(directory_fd))) {
        while (const dirent* d = ::readdir(dir)) {
            consider(d->d_name);
        }
        ::closedir(dir);
    }
    std::sort(found.begin(), found.end());
    std::vector<recovered_archive> out;
    for (const auto& [source, file] : found) {
        recovered_archive rec;
        rec.working_file = directory / file;
        // Never through a link (recovery truncates the file and appends to it: a link would carry that to a file
        // outside the log directory) and never blocking (a FIFO of that name would wait for a writer forever).
        const sys::unique_fd fd(::openat(directory_fd, file.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
        if (!fd) {
            if (errno == ELOOP) {
                throw value_error(fmt::format(
                    "Unable to recover the working file {}: it is a symbolic link, and recovery rewrites the file it "
                    "is given. Nothing was changed. Replace the link with the file it points to, then run again.",
                    rec.working_file.string()));
            }
            throw_file_error(errno, "open the working file", rec.working_file);
        }
        if (struct stat st{}; ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
            throw value_error(
                fmt::format("Unable to recover the working file {}: it is not a regular file (a "
                            "streaming logger writes one). Nothing was changed; move it out of the log "
                            "directory, then run again.",
                            rec.working_file.string()));
        }
        const working_scan scan = scan_working_fd(fd.get(), rec.working_file, source);
        rec.members = scan.members.size();
        rec.bytes_cut = scan.torn_bytes();
        rec.damaged = scan.damaged;
        warn_damage(rec.working_file, scan);
        if (scan.members.empty() && !begins_like_member(fd.get(), scan.file_size)) {
            // Not even a torn first member: another program's file under a working file's name. Left as it is.
            warn(
                fmt::format("{} holds no log member and does not begin like one, so it is not a streaming logger's "
                            "working file: it was left untouched.",
                            rec.working_file.string()));
            continue;
        }
        if (scan.members.empty()) {
            if (::unlinkat(directory_fd, file.c_str(), 0) != 0) {
                throw_file_error(errno, "remove the empty working file", rec.working_file);
            }
        } else {
            rec.archive = publish_working_file(directory, directory_fd, source, fd.get(), scan.members, scan.valid_end);
        }
        out.push_back(std::move(rec));
    }
    return out;
}

// ------------------------------------------------------------------------------------------------------- writer

struct archive_stream_writer::piece {
    const std::uint8_t* external = nullptr;  ///< a payload written from the package; else staging bytes
    std::size_t offset = 0;                  ///< in the staging buffer
    std::size_t length = 0;
};

namespace {

struct pending_member {
    std::size_t index = 0;  ///< in the batch
    std::uint64_t end = 0;  ///< file offset where the member ends
};

}  // namespace

struct archive_stream_writer::source_file {
    std::uint8_t source = 0;
    sys::unique_fd fd;
    std::string open_error;
    std::uint64_t end = 0;  ///< bytes of intact members in the file
    std::vector<stream_member> members;
    std::uint64_t max_timestamp = 0;
    bool keys_built = false;
    std::unordered_set<std::uint64_t> keys;  // built at the first timestamp not above every earlier one
    raw_buffer staging;
    std::vector<piece> pieces;
    std::vector<pending_member> pending;
    std::uint64_t pending_bytes = 0;
    std::uint64_t unsynced = 0;
    std::uint64_t writeback_end = 0;  ///< the disk write of [0, writeback_end) was started (start_writeback)
    bool name_synced = false;         ///< the log directory was fsynced since the file was opened (maybe_sync)
    // The .npy header of the last payload length this source wrote, and its CRC-32 (per source: the sources of a
    // batch are encoded in parallel).
    std::uint64_t header_length = ~std::uint64_t{0};
    std::string header;
    std::uint32_t header_crc = 0;
    std::chrono::steady_clock::time_point last_sync;

    [[nodiscard]] bool key_is_new(std::uint64_t timestamp) {
        if (members.empty() || timestamp > max_timestamp) {
            return true;
        }
        if (!keys_built) {
            keys.reserve(members.size() * 2);
            for (const auto& m : members) {
                keys.insert(m.timestamp);
            }
            keys_built = true;
        }
        return !keys.contains(timestamp);
    }

    void add_member(const stream_member& member) {
        max_timestamp = members.empty() ? member.timestamp : std::max(max_timestamp, member.timestamp);
        if (keys_built) {
            keys.insert(member.timestamp);
        }
        if (members.size() == members.capacity()) {
            grow_members();
        }
        members.push_back(member);
    }

    /// Doubles the member table on transparent huge pages: it grows by 32 bytes per message (millions per run), and
    /// on 4 KiB pages each new page was a fault (~10 us in a VM): a tenth of the writer's time.
    void grow_members() {
        std::vector<stream_member> bigger;
        bigger.reserve(std::max<std::size_t>(std::size_t{1} << 16U, 2 * members.capacity()));
        advise_huge_pages(bigger.data(), bigger.capacity() * sizeof(stream_member));  // before any page is touched
        bigger.insert(bigger.end(), members.begin(), members.end());
        members.swap(bigger);
    }

    void drop_last_member() {
        if (keys_built) {
            keys.erase(members.back().timestamp);
        }
        members.pop_back();
    }

    void append_staging(std::size_t offset, std::size_t length) {
        if (!pieces.empty() && pieces.back().external == nullptr &&
            pieces.back().offset + pieces.back().length == offset) {
            pieces.back().length += length;
        } else {
            pieces.push_back({nullptr, offset, length});
        }
    }
};

archive_stream_writer::archive_stream_writer(fs::path directory, int directory_fd, const data_logger_options& options,
                                             entry_pool& pool, const std::vector<fs::path>& created,
                                             directory_sync_fault_fn fail_sync)
    : entry_writer(pool),
      directory_(std::move(directory)),
      directory_fd_(directory_fd),
      options_(options),
      fail_sync_(std::move(fail_sync)) {
    batch_.reserve(1024);
    for (const fs::path& made : created) {
        const fs::path parent = made.parent_path();
        unsynced_parents_.push_back(parent.empty() ? fs::path(".") : parent);
    }
}

int archive_stream_writer::fsync_directory(int fd, const fs::path& directory) {
    if (fail_sync_ && fail_sync_(directory)) {
        return EIO;
    }
    sys::unique_fd opened;
    if (fd < 0) {
        opened.reset(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!opened) {
            return errno;
        }
        fd = opened.get();
    }
    return ::fsync(fd) != 0 ? errno : 0;
}

int archive_stream_writer::sync_created_directories() {
    if (parents_synced_.load(std::memory_order_acquire)) {
        return 0;  // the usual case after the first sync: every sync of every source passes here
    }
    const std::lock_guard lock(parents_mutex_);
    while (!unsynced_parents_.empty()) {
        if (const int error = fsync_directory(-1, unsynced_parents_.back()); error != 0) {
            return error;
        }
        unsynced_parents_.pop_back();
    }
    parents_synced_.store(true, std::memory_order_release);
    return 0;
}

void archive_stream_writer::sync_parents_or_warn() {
    const int error = sync_created_directories();
    if (error == 0) {
        return;
    }
    // The data is synced: only the new log directory's name may not survive a power loss. Counted and warned about
    // once (a parent that cannot be opened, e.g. write-only, fails every time); the entries are not failed.
    syncs_failed_.fetch_add(1, std::memory_order_relaxed);
    const std::lock_guard lock(shared_mutex_);
    if (parent_sync_error_.empty()) {
        parent_sync_error_ = fmt::format(
            "fsync of the directory holding the log directory {} (which the logger created) failed: {} [errno {}]; "
            "its name, and with it every file in it, may not survive a power loss",
            directory_.string(), sys::errno_message(error), error);
        warn(fmt::format("The data logger's sync: {}. The next sync and the stop retry.", parent_sync_error_));
    }
}

archive_stream_writer::~archive_stream_writer() {
    (void)abandon();
    for (auto& file : files_) {
        if (file) {
            file->fd.reset();  // the working file stays: whatever it holds is recoverable
        }
    }
}

std::size_t archive_stream_writer::capacity_left() const noexcept {
    return batch_bytes_ >= batch_byte_limit ? 0 : batch_entry_limit - batch_.size();
}

void archive_stream_writer::add(queued_entry* entry) {
    std::vector<std::uint32_t>& of_source = by_source_[entry->package.source_id];
    if (of_source.empty()) {
        batch_sources_.push_back(entry->package.source_id);
    }
    of_source.push_back(static_cast<std::uint32_t>(batch_.size()));
    batch_.push_back(entry);
    batch_bytes_ += entry->package.payload.size();
}

asio::awaitable<std::size_t> archive_stream_writer::async_complete_some(const completion_fn& done) {
    errors_.assign(batch_.size(), std::string{});
    // Each source's members go to its own file: the sources of a batch are encoded and written in parallel on the
    // CPU pool (the writer's cost per message is the copy into the page cache, the CRC and the encoding; with one
    // thread it bounded the logger at ~0.6 M messages/s on a 2-core VM).
    auto work = [this](std::size_t k) {
        write_source(batch_sources_[k], k == 0);
    };
    co_await detail::async_parallel_for(batch_sources_.size(), work);
    for (const std::uint8_t source : batch_sources_) {
        by_source_[source].clear();
    }
    batch_sources_.clear();
    std::size_t released = 0;
    entry_pool::release_batch recycled(pool());
    for (std::size_t i = 0; i < batch_.size(); ++i) {
        queued_entry* entry = batch_[i];
        done(*entry, errors_[i]);
        released += entry->charge;
        recycled.add(entry);
    }
    batch_.clear();
    batch_bytes_ = 0;
    co_return released;
}

std::uint64_t archive_stream_writer::abandon() noexcept {
    for (const std::uint8_t source : batch_sources_) {
        by_source_[source].clear();
    }
    batch_sources_.clear();
    const std::uint64_t n = batch_.size();
    for (queued_entry* entry : batch_) {
        release(entry);
    }
    batch_.clear();
    batch_bytes_ = 0;
    return n;
}

archive_stream_writer::source_file& archive_stream_writer::file_for(std::uint8_t source) {
    auto& slot = files_[source];
    if (slot) {
        return *slot;
    }
    slot = std::make_unique<source_file>();
    source_file& f = *slot;
    f.source = source;
    f.last_sync = std::chrono::steady_clock::now();
    const std::string name = working_file_name(source);
    const fs::path path = directory_ / name;
    f.fd.reset(::openat(directory_fd_, name.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666));
    if (!f.fd) {
        const int error = errno;
        f.open_error = fmt::format("open of the working file {} failed: {} [errno {}]", path.string(),
                                   sys::errno_message(error), error);
        return f;
    }
    try {
        working_scan scan = scan_working_fd(f.fd.get(), path, source);
        if (scan.file_size != scan.valid_end && ::ftruncate(f.fd.get(), static_cast<off_t>(scan.valid_end)) != 0) {
            throw_file_error(errno, "cut the torn end of", path);
        }
        {
            const std::lock_guard lock(shared_mutex_);  // the sources of a batch open their files in parallel
            members_recovered_ += scan.members.size();
            bytes_cut_ += scan.torn_bytes();
            warn_damage(path, scan);
            damaged_.insert(damaged_.end(), scan.damaged.begin(), scan.damaged.end());
        }
        f.end = scan.valid_end;
        f.writeback_end = f.end;
        for (const auto& m : scan.members) {
            f.add_member(m);
        }
    } catch (const std::exception& e) {
        f.fd.reset();
        f.open_error = fmt::format("the working file {} could not be resumed: {}", path.string(), e.what());
    }
    return f;
}

void archive_stream_writer::write_source(std::uint8_t source, bool replenishes) {
    source_file& f = file_for(source);
    const std::vector<std::uint32_t>& indices = by_source_[source];
    for (std::size_t n = 0; n < indices.size(); ++n) {
        if (replenishes && n % replenish_interval == 0) {
            // A batch takes milliseconds; producers that log faster than that would empty the node pool meanwhile
            // and take nodes from the heap, with a page fault each (issue 21). Only the first source's task does it:
            // the pool has one replenishing thread at a time (the logger's loop waits for this batch).
            pool().replenish();
        }
        encode(f, indices[n]);
    }
    if (!f.pending.empty()) {
        flush(f);
    }
}

void archive_stream_writer::encode(source_file& f, std::size_t index) {
    const queued_entry& node = *batch_[index];
    const log_package& p = node.package;
    if (!f.fd) {
        errors_[index] = f.open_error;
        return;
    }
    if (!f.key_is_new(p.acquisition_time)) {
        errors_[index] =
            "append failed: the working archive already holds a member with this name (a second package with the "
            "same source and time); the first one was kept";
        return;
    }
    const std::uint64_t length = 9 + p.payload.size();
    if (length != f.header_length) {
        f.header = encode_npy_u1_header(length);
        f.header_crc = crc32({reinterpret_cast<const std::uint8_t*>(f.header.data()), f.header.size()});
        f.header_length = length;
    }
    const std::string& header = f.header;
    const std::uint32_t header_crc = f.header_crc;
    const std::uint64_t data_size = header.size() + length;
    const std::uint64_t offset = f.end + f.pending_bytes;
    const std::size_t head = zip_local_header_size(offset, log_member_name_size);
    const bool external = p.payload.size() >= external_payload_bytes;
    const std::size_t at = f.staging.size();
    const std::size_t staged = head + header.size() + 9 + (external ? 0 : p.payload.size());
    std::uint8_t* out = f.staging.grow(staged);
    std::uint8_t* prefix = out + head + header.size();
    std::memcpy(out + head, header.data(), header.size());
    prefix[0] = p.source_id;
    sys::store_le64(prefix + 1, p.acquisition_time);
    std::uint32_t crc = 0;
    if (p.payload.size() >= payload_crc_bytes) {  // the producer's CRC of the payload (data_logger enqueue)
        crc = crc32_combine(crc32({prefix, 9}, header_crc), node.payload_crc(), p.payload.size());
    } else if (external) {
        crc = crc32(p.payload, crc32({prefix, 9}, header_crc));
    } else {
        if (!p.payload.empty()) {
            std::memcpy(prefix + 9, p.payload.data(), p.payload.size());
        }
        crc = crc32({prefix, 9 + p.payload.size()}, header_crc);
    }
    std::array<char, log_member_name_size + 1> name{};
    format_member_name(name, p.source_id, p.acquisition_time);
    encode_zip_local_header(out, offset, {name.data(), log_member_name_size}, crc, data_size);
    f.append_staging(at, staged);
    if (external) {
        f.pieces.push_back({p.payload.data(), 0, p.payload.size()});
    }
    f.pending_bytes += head + data_size;
    f.pending.push_back({index, offset + head + data_size});
    f.add_member({.timestamp = p.acquisition_time,
                  .offset = offset,
                  .size = data_size,
                  .crc = crc,
                  .header = static_cast<std::uint32_t>(head)});
}

void archive_stream_writer::flush(source_file& f) {
    std::vector<iovec> iov;
    iov.reserve(f.pieces.size());
    for (const piece& pc : f.pieces) {
        const std::uint8_t* base = pc.external != nullptr ? pc.external : f.staging.data() + pc.offset;
        iov.push_back({const_cast<std::uint8_t*>(base), pc.length});  // NOLINT: pwritev never writes through it
    }
    std::uint64_t written = 0;
    int error = 0;
    iovec* first = iov.data();
    std::size_t count = iov.size();
    while (written < f.pending_bytes) {
        const ssize_t n = sys::retry_eintr([&] {
            return ::pwritev(f.fd.get(), first, static_cast<int>(std::min<std::size_t>(count, iov_limit)),
                             static_cast<off_t>(f.end + written));
        });
        if (n <= 0) {
            error = n < 0 ? errno : ENOSPC;
            break;
        }
        written += static_cast<std::uint64_t>(n);
        advance_iovecs(first, count, static_cast<std::size_t>(n));
    }
    std::uint64_t good_end = f.end + f.pending_bytes;
    if (error != 0) {
        good_end = f.end;
        std::size_t complete = 0;
        for (; complete < f.pending.size() && f.pending[complete].end <= f.end + written; ++complete) {
            good_end = f.pending[complete].end;
        }
        std::string text = fmt::format("write failed: {} [errno {}]", sys::errno_message(error), error);
        if (::ftruncate(f.fd.get(), static_cast<off_t>(good_end)) == 0) {
            text += "; the partly written member was cut from the working file";
        } else {
            text += fmt::format("; cutting the partly written member failed too ({}), a recovery cuts it",
                                sys::errno_message(errno));
        }
        for (std::size_t k = complete; k < f.pending.size(); ++k) {
            errors_[f.pending[k].index] = text;
            f.drop_last_member();
        }
        f.pending.resize(complete);
    }
    f.unsynced += good_end - f.end;
    f.end = good_end;
    start_writeback(f);
    maybe_sync(f);
    f.staging.clear();
    f.pieces.clear();
    f.pending.clear();
    f.pending_bytes = 0;
}

void archive_stream_writer::start_writeback(source_file& f) {
    // Starts (does not wait for) the disk write of each further writeback_step bytes: the data reaches the disk
    // while the logger runs instead of all at the stop's fsync (seconds for gigabytes), and a power loss costs less.
    // Only advice: a filesystem without writeback (tmpfs) ignores it, and an error shows at the next fsync.
    if (f.end - f.writeback_end >= writeback_step) {
        (void)::sync_file_range(f.fd.get(), static_cast<off_t>(f.writeback_end),
                                static_cast<off_t>(f.end - f.writeback_end), SYNC_FILE_RANGE_WRITE);
        f.writeback_end = f.end;
    }
}

void archive_stream_writer::maybe_sync(source_file& f) {
    if (f.unsynced == 0) {
        return;
    }
    const auto now = std::chrono::steady_clock::now();
    const bool by_size = options_.sync_every_bytes != 0 && f.unsynced >= options_.sync_every_bytes;
    const bool by_time = options_.sync_every.count() > 0 && now - f.last_sync >= options_.sync_every;
    if (!by_size && !by_time) {
        return;
    }
    // The file's name is made durable with its first data sync (the directory fsync, a disk flush, would otherwise
    // stall the writer's first batch while producers empty the node pool); a stop that publishes the archive syncs
    // the directory after its rename. A failed directory fsync is treated as a failed fdatasync: without a durable
    // name the synced data may not survive a power loss.
    const char* failed = nullptr;
    int error = 0;
    if (::fdatasync(f.fd.get()) != 0) {
        error = errno;
        failed = "fdatasync of the working file";
    } else if (!f.name_synced && (error = fsync_directory(directory_fd_, directory_)) != 0) {
        failed = "fsync of the log directory (the working file's name)";
    } else {
        sync_parents_or_warn();  // the log directory's own name, when the logger created it (never fails entries)
    }
    if (failed != nullptr) {
        syncs_failed_.fetch_add(1, std::memory_order_relaxed);
        const std::string text = fmt::format("{} failed: {} [errno {}]; the member may not be on stable storage",
                                             failed, sys::errno_message(error), error);
        for (const auto& pm : f.pending) {
            errors_[pm.index] = text;
        }
        const std::lock_guard lock(shared_mutex_);
        if (f.pending.empty() && idle_sync_error_.empty()) {  // an idle sync: its entries were already reported
            idle_sync_error_ = fmt::format("{}: {}", working_file_name(f.source), text);
            warn(fmt::format("The data logger's sync of {} failed: {}. The stop reports it; the next sync retries.",
                             (directory_ / working_file_name(f.source)).string(), text));
        }
        f.last_sync = now;  // unsynced stays: the next sync (by size, by time, or the stop) tries again, not at once
        return;
    }
    f.name_synced = true;
    syncs_.fetch_add(1, std::memory_order_relaxed);
    bytes_synced_.fetch_add(f.unsynced, std::memory_order_relaxed);
    f.unsynced = 0;
    f.last_sync = now;
}

std::optional<std::chrono::steady_clock::time_point> archive_stream_writer::idle_deadline() const {
    if (options_.sync_every.count() <= 0) {
        return std::nullopt;
    }
    std::optional<std::chrono::steady_clock::time_point> due;
    for (const auto& slot : files_) {
        if (slot && slot->fd && slot->unsynced > 0) {
            const auto at = slot->last_sync + options_.sync_every;
            due = due ? std::min(*due, at) : at;
        }
    }
    return due;
}

asio::awaitable<void> archive_stream_writer::async_on_idle_deadline() {
    auto work = [this] {
        for (auto& slot : files_) {
            if (slot && slot->fd && slot->unsynced > 0) {
                maybe_sync(*slot);  // syncs only the files whose time has come
            }
        }
    };
    co_await async_run_cpu(work);
}

struct archive_stream_writer::finish_outcome {
    std::optional<std::filesystem::path> archive;  ///< the finished archive
    std::string error;                             ///< non-empty: the working file stays unfinished
};

asio::awaitable<void> archive_stream_writer::async_finish(data_logger_report& report) {
    std::vector<source_file*> open_files;
    for (auto& slot : files_) {
        if (slot && slot->fd) {
            open_files.push_back(slot.get());
        }
    }
    // In parallel: each source's central directory (sorting, encoding) and fsync are independent.
    std::vector<finish_outcome> outcomes(open_files.size());
    auto work = [&](std::size_t k) {
        finish_source(*open_files[k], outcomes[k]);
    };
    co_await detail::async_parallel_for(open_files.size(), work);
    for (std::size_t k = 0; k < open_files.size(); ++k) {  // in source order, as before
        if (outcomes[k].archive) {
            report.archives.push_back(std::move(*outcomes[k].archive));
        } else if (!outcomes[k].error.empty()) {
            report.unfinished_archives.push_back(directory_ / working_file_name(open_files[k]->source));
            if (report.first_error.empty()) {
                report.first_error = outcomes[k].error;
            }
        }
    }
    report.members_recovered = members_recovered_;
    report.bytes_cut = bytes_cut_;
    report.damaged = damaged_;
    // The archives' names are durable (publishing fsynced the log directory); the log directory's own name, when
    // the logger created it, once its parent is synced too.
    sync_parents_or_warn();
    if (!parent_sync_error_.empty() && report.first_error.empty()) {
        report.first_error = parent_sync_error_;
    }
    report.syncs = syncs_.load();
    report.syncs_failed = syncs_failed_.load();
    report.bytes_synced = bytes_synced_.load();
    if (!idle_sync_error_.empty() && report.first_error.empty()) {
        report.first_error = idle_sync_error_;
    }
}

namespace {

/// Copies the first `end` bytes of `from` into the new file `to` (`path` names it in errors).
void copy_prefix(int from, int to, std::uint64_t end, const fs::path& path) {
    std::vector<char> buffer(std::size_t{1} << 20);
    for (std::uint64_t at = 0; at < end;) {
        const std::size_t step = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), end - at));
        const sys::io_result got = sys::pread_full(from, buffer.data(), step, static_cast<off_t>(at));
        if (got.error || got.bytes != step) {
            throw_file_error(got.error ? got.error.value() : EIO, "read back the working file for", path);
        }
        const sys::io_result put = sys::pwrite_full(to, buffer.data(), step, static_cast<off_t>(at));
        if (put.error) {
            throw_file_error(put.error.value(), "write the restored working file", path);
        }
        at += step;
    }
}

/// Makes sure the working file's name still holds the file the logger wrote through `fd`, before it is published
/// by that name. Another process may have removed it (a cleanup script deleting dot-files), moved it away, or put a
/// file of its own in its place; the logger's open file still holds every member. Its `end` bytes are then copied
/// into a new file, under the usual name when that is free, else under a name of its own (what now holds the usual
/// name is never touched), which replaces `fd`. Returns the name to publish (empty: the usual one). A file whose
/// first or last member is no longer where it was written (truncated or overwritten by another process) is not
/// published: the error leaves it for recovery, which keeps what is intact. A removed log directory is said by name.
std::string secure_working_file(int directory_fd, const fs::path& directory, const std::string& name,
                                sys::unique_fd& fd, const std::vector<stream_member>& members, std::uint64_t end) {
    const fs::path path = directory / name;
    for (const auto* m : {&members.front(), &members.back()}) {
        std::array<std::uint8_t, 4> signature{};
        const sys::io_result got = sys::pread_full(fd.get(), signature.data(), 4, static_cast<off_t>(m->offset));
        if (got.error || got.bytes != 4 || sys::load_le32(signature.data()) != zip_local_signature) {
            throw runtime_error(fmt::format(
                "Unable to finish {}: another process changed it while the logger wrote it (the member written at "
                "byte {} is no longer there), so it was not published. axds assemble recovers the members that are "
                "still intact.",
                path.string(), m->offset));
        }
    }

    struct stat mine {};

    struct stat named {};

    if (::fstat(fd.get(), &mine) != 0) {
        throw_file_error(errno, "inspect", path);
    }
    const bool named_exists = ::fstatat(directory_fd, name.c_str(), &named, AT_SYMLINK_NOFOLLOW) == 0;
    if (named_exists && sys::same_file(named, mine)) {
        return {};  // the usual case
    }
    std::string restored = name;
    sys::unique_fd fresh;
    for (int attempt = 0; attempt < 100 && !fresh; ++attempt) {
        if (attempt > 0 || named_exists) {
            restored = fmt::format("{}.restored-{}", name, attempt);
        }
        fresh.reset(::openat(directory_fd, restored.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666));
        if (!fresh && errno != EEXIST) {
            break;
        }
    }
    if (!fresh) {
        const int error = errno;

        struct stat dir {};

        if (::fstat(directory_fd, &dir) == 0 && dir.st_nlink == 0) {
            throw runtime_error(fmt::format(
                "Unable to finish {}: another process removed the log directory {} while the logger wrote to it, "
                "so the members of this working file (open until now) cannot be kept.",
                path.string(), directory.string()));
        }
        throw_file_error(error, "restore the working file changed by another process while it was written", path);
    }
    copy_prefix(fd.get(), fresh.get(), end, directory / restored);
    fd = std::move(fresh);
    warn(
        fmt::format("The streaming logger's working file {} was {} by another process while it was written; its "
                    "members ({} bytes) were copied from the still-open file{} and are kept.",
                    path.string(),
                    named_exists    ? "replaced (what is there now was left untouched)"
                    : mine.st_nlink ? "moved away"
                                    : "removed",
                    end, restored == name ? "" : fmt::format(" into {}", (directory / restored).string())));
    return restored == name ? std::string() : restored;
}

/// Removes the working file of a source none of whose members was written (every write failed), but only while its
/// name still holds the file the logger opened (`fd`) and that file is still empty: what another process put under
/// that name, or appended to the file, meanwhile is left.
void remove_empty_working_file(int directory_fd, const fs::path& directory, const std::string& name, int fd) {
    struct stat mine {};

    struct stat named {};

    if (fd < 0 || ::fstat(fd, &mine) != 0 || ::fstatat(directory_fd, name.c_str(), &named, AT_SYMLINK_NOFOLLOW) != 0 ||
        !sys::same_file(named, mine) || mine.st_size != 0) {
        return;  // gone already, no longer ours, or holding bytes of someone else's
    }
    if (::unlinkat(directory_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
        throw_file_error(errno, "remove the empty working file", directory / name);
    }
}

}  // namespace

void archive_stream_writer::finish_source(source_file& f, finish_outcome& outcome) {
    const std::string name = working_file_name(f.source);
    try {
        if (f.members.empty()) {
            remove_empty_working_file(directory_fd_, directory_, name, f.fd.get());
        } else {
            const std::string publish_as = secure_working_file(directory_fd_, directory_, name, f.fd, f.members, f.end);
            outcome.archive = publish_working_file(directory_, directory_fd_, f.source, f.fd.get(),
                                                   std::move(f.members), f.end, publish_as);
        }
    } catch (const std::exception& e) {
        outcome.error = e.what();
    }
    f.fd.reset();
}

}  // namespace axds::detail
