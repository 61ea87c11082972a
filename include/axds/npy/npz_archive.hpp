#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace axds {

/// Alignment of every member's data in archives npz_writer produces: readers can map payloads zero-copy.
inline constexpr std::size_t npz_member_alignment = 64;

/// Writes a `.npz` (zip) archive of stored members (spec §7.6): CRC-32, fixed 1980-01-01 timestamps (reproducible
/// bytes), ZIP64 local extras as CPython ≥ 3.12 writes with force_zip64, ZIP64 end records when there are more than
/// 65,535 members or a size/offset exceeds 4 GiB, and each member's data 64-byte aligned (padding in the local
/// header's extra field, as zipalign does). numpy's np.load opens the result.
///
/// The archive is written to a hidden temporary file next to `path` and renamed into place by finish(), so a crash or
/// an exception never leaves a partial archive under the final name.
/// Thread safety: none; use one writer per thread.
class npz_writer {
public:
    /// @throws os_error family if the temporary file cannot be created.
    explicit npz_writer(std::filesystem::path path);
    npz_writer(const npz_writer&) = delete;
    npz_writer& operator=(const npz_writer&) = delete;
    /// Removes the temporary file if finish() was not reached. Never throws.
    ~npz_writer();

    /// Appends a member named `name` (e.g. "001_00000000000000000200.npy") holding `data` verbatim.
    /// @throws value_error for an empty or over-long name; os_error family on a write failure.
    void add(std::string_view name, std::span<const std::uint8_t> data);

    /// Room for `members` members in all (a hint: the table of members then grows once instead of by doubling).
    void reserve(std::size_t members);

    /// Writes the central directory, flushes, fsyncs (when `durable`) and renames the archive into place. Returns its
    /// size in bytes.
    std::uint64_t finish(bool durable = true);

    [[nodiscard]] std::size_t member_count() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

/// One member of a zip archive, as its central directory describes it.
struct npz_member {
    /// The member's name: a view of the reader's map of the central directory, valid while the npz_reader that
    /// listed it lives (as data() views are). Copy it into a std::string to keep it longer.
    std::string_view name;
    std::uint16_t method = 0;  ///< 0 stored, 8 deflated
    std::uint32_t crc32 = 0;
    std::uint64_t compressed_size = 0;
    std::uint64_t uncompressed_size = 0;
    std::uint64_t local_header_offset = 0;
};

/// Default of npz_reader_options::max_inflated_size: 4 GiB.
inline constexpr std::uint64_t npz_default_max_inflated_size = std::uint64_t{4} << 30U;

/// How an npz_reader treats the archive's data (the defaults suit archives from anywhere: other machines, failing
/// disks).
struct npz_reader_options {
    /// Check each member's CRC-32 the first time data() serves it, as numpy / zipfile do ("Bad CRC-32"). The result
    /// is cached per member, so the check costs one pass over each member's bytes per reader. Turn it off only for
    /// trusted archives in hot loops (verify_crc() still checks on request).
    bool verify_crc = true;
    /// Largest uncompressed size a deflated member may declare, in bytes, and the most inflated bytes one reader
    /// holds at once (inflated members stay cached while it lives). Inflating allocates the declared size, so a
    /// declaration above this limit (or above deflate's 1032:1 bound for its compressed size), or one that would take
    /// the reader's cached total past it, is refused before anything is allocated. Stored members are never copied
    /// and are not limited.
    std::uint64_t max_inflated_size = npz_default_max_inflated_size;
};

/// Reads any zip archive numpy writes (ours, np.savez under CPython 3.11 and 3.12+, np.savez_compressed) from a
/// read-only memory map. Stored members are served as zero-copy views into the map; deflated members are inflated
/// once and cached. Every offset and size is checked against the file before use: corrupt input raises value_error
/// naming the archive, the member and the problem, and never reads out of bounds.
///
/// Hostile input: the constructor checks every directory record (methods, sizes, ZIP64 fields, each member's local
/// header and data lying before the central directory) and refuses records whose local headers + data overlap as
/// far as the directory shows (zip bombs that point many records at one deflated member). Each member's local
/// header is read when the member is first read (data(), verify_crc(), data_offset()), so that opening touches only
/// the directory: its signature is checked, and its name and extra lengths must put the data before the next
/// member's local header (or the central directory); a damaged one raises value_error there, naming the archive and
/// the member, on that read and every later one. Passed checks (local header, CRC-32) are recorded per member (4
/// bytes each, atomics), so later reads of a stored member cost one load and no re-check. Members that are read never
/// share a byte. data() inflates a member only up to its declared size (more output, or less, is an error), bounded by
/// options().max_inflated_size and by deflate's 1032:1 ratio, and checks the member's CRC-32 on first use unless the
/// options turn that off. Listing members or finding one reads no member data and no local header.
///
/// Thread safety: const members may be called from any thread.
class npz_reader {
public:
    /// Maps `path` and parses its central directory (ZIP64 included).
    /// @throws file_not_found_error if it does not exist; value_error if it is not a readable zip archive, or if its
    /// directory records overlap each other or the central directory (naming the archive, the members and the
    /// offsets).
    explicit npz_reader(std::filesystem::path path, npz_reader_options options = {});
    npz_reader(npz_reader&&) noexcept;
    npz_reader& operator=(npz_reader&&) noexcept;
    ~npz_reader();

    [[nodiscard]] const std::filesystem::path& path() const noexcept;
    [[nodiscard]] const npz_reader_options& options() const noexcept;
    /// Members in central-directory (archive) order.
    [[nodiscard]] const std::vector<npz_member>& members() const noexcept;
    /// The member named `name`, or nullptr.
    [[nodiscard]] const npz_member* find(std::string_view name) const noexcept;
    /// The uncompressed bytes of `member` (one of members()); valid while this reader lives. The first call for a
    /// member checks its CRC-32 (unless options().verify_crc is false).
    /// @throws value_error naming the archive and member for an unsupported method, corrupt compressed data, a
    /// declared size that is impossible or over the limit, a stream that inflates to another size, or a CRC-32
    /// mismatch; value_error naming both for a damaged local header (see above).
    [[nodiscard]] std::span<const std::uint8_t> data(const npz_member& member) const;
    /// Where the member's (possibly compressed) data starts in the file, from its local header, checked as data()
    /// checks it. @throws value_error naming the archive and member for a damaged local header.
    [[nodiscard]] std::uint64_t data_offset(const npz_member& member) const;
    /// Checks the member's CRC-32 whatever the options say (a member already verified is not hashed again).
    /// @throws value_error naming the archive and member on a mismatch.
    void verify_crc(const npz_member& member) const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

/// CRC-32 (zlib polynomial) of `data`, continuing from `crc`.
[[nodiscard]] std::uint32_t crc32(std::span<const std::uint8_t> data, std::uint32_t crc = 0) noexcept;

/// The CRC-32 of A followed by B, from crc32(A), crc32(B) and B's length (zlib's crc32_combine): a CRC computed in
/// pieces, or of a payload before its header is known.
[[nodiscard]] std::uint32_t crc32_combine(std::uint32_t first, std::uint32_t second,
                                          std::uint64_t second_length) noexcept;

}  // namespace axds
