#pragma once

#include <axds/npy/npz_archive.hpp>

#include <asio/awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace axds {

/// One message as a view into the archive's memory map: valid while the log_archive_reader that produced it lives.
struct log_message_view {
    std::uint64_t timestamp_us = 0;         ///< absolute: onset + elapsed (uint64 wrap-around, as numpy)
    std::span<const std::uint8_t> payload;  ///< the message bytes, not copied
};

/// An owned message (the Python LogMessage): timestamp and a copy of the payload.
struct log_message {
    std::uint64_t timestamp_us = 0;
    std::vector<std::uint8_t> payload;

    friend bool operator==(const log_message&, const log_message&) = default;
};

/// Reads one source's `{source}_log.npz` archive (spec §8.5): onset discovery, message keys, batching, and zero-copy
/// iteration. Archives written by axds, by the Python library, by np.savez and np.savez_compressed are accepted.
///
/// Lifetime: views (log_message_view::payload) point into a read-only memory map owned by the reader; they stay valid
/// until the reader is destroyed or moved from. Deflated members are inflated once and cached by the reader.
///
/// Damaged or hostile archives (see npz_reader): opening refuses overlapping members; every message accessor
/// (read_message, messages, read_all_messages, async_read_messages, async_for_each_batch) checks a member's CRC-32 the
/// first time it is read, once per member and reader, and raises value_error naming the archive and member on a
/// mismatch. `options` ({.verify_crc = false}) turns the check off for trusted archives in hot loops, and caps the
/// size a deflated member may inflate to. Counting and listing messages read no message: only the onset member is
/// read (when no onset is provided), and members named after a nonzero time (`SSS_TTTTTTTTTTTTTTTTTTTT`) are
/// never read to look for it.
/// Thread safety: const members may be called from any thread (discovery runs once).
class log_archive_reader {
public:
    /// Stores the path, an optional pre-known onset (µs since the Unix epoch) and the archive reader's options; the
    /// archive is opened on first use.
    /// @throws file_not_found_error if nothing exists at `archive_path` ("Unable to open log archive. The file does
    /// not exist at the expected path: …").
    explicit log_archive_reader(std::filesystem::path archive_path, std::optional<std::uint64_t> onset_us = {},
                                npz_reader_options options = {});
    log_archive_reader(log_archive_reader&&) noexcept;
    log_archive_reader& operator=(log_archive_reader&&) noexcept;
    ~log_archive_reader();

    [[nodiscard]] const std::filesystem::path& archive_path() const noexcept;

    /// `LogArchiveReader(archive_path=…, onset_us=…)`, showing the constructor's onset or "not discovered".
    [[nodiscard]] std::string repr() const;

    /// The UTC onset in µs: the pre-provided value, else the payload of the first member whose elapsed time is 0
    /// (spec §7.3; members whose names give a nonzero time are skipped unread); cached.
    /// @throws value_error ("Unable to discover onset timestamp in log archive…") if no member has time 0, or if the
    /// onset payload is not exactly 8 bytes; value_error for a damaged archive or member.
    [[nodiscard]] std::uint64_t onset_timestamp_us() const;

    /// Member keys (names without ".npy") of the messages after the onset message, in archive order.
    [[nodiscard]] const std::vector<std::string>& message_keys() const;

    /// Number of messages after the onset message (makes no keys).
    [[nodiscard]] std::size_t message_count() const;

    /// The message keys split for parallel processing (spec §8.5): one batch when there are fewer than 2000
    /// messages (none when there are no messages), else consecutive slices of
    /// max(1, ceil(count / (resolve_worker_count(workers) × batch_multiplier))) keys. `workers` follows the library's
    /// rule (resolve_workers_option): 0 = automatic (all cores but two; the Python default -1 means the same there).
    /// @throws value_error if workers < 0 or batch_multiplier < 1.
    [[nodiscard]] std::vector<std::vector<std::string>> get_batches(int workers = 0, int batch_multiplier = 4) const;

    /// The message stored under `key`. @throws key_error for an unknown key; value_error for a damaged member (a bad
    /// CRC-32 included, unless the options turn the check off).
    [[nodiscard]] log_message_view read_message(std::string_view key) const;

    class message_range;

    /// Every message, in key order, as zero-copy views. Onset discovery happens first (and may throw).
    [[nodiscard]] message_range messages() const;

    /// The messages under `keys`, in that order. @throws key_error for an unknown key, before iterating.
    [[nodiscard]] message_range messages(std::span<const std::string> keys) const;

    /// All messages as (absolute timestamps, owned payloads), in key order.
    [[nodiscard]] std::pair<std::vector<std::uint64_t>, std::vector<std::vector<std::uint8_t>>> read_all_messages()
        const;

    /// From a coroutine: resolves and parses `keys` (all messages when empty) on the CPU pool, then resumes on the
    /// caller's executor with the views.
    [[nodiscard]] asio::awaitable<std::vector<log_message_view>> async_read_messages(
        std::vector<std::string> keys = {}) const;

private:
    friend class message_range;
    [[nodiscard]] log_message_view decode(const npz_member& member) const;
    [[nodiscard]] std::vector<const npz_member*> resolve(std::span<const std::string> keys) const;

    struct impl;
    std::unique_ptr<impl> impl_;
};

/// A forward range of log_message_view over members (all messages: the archive's own member list; chosen keys: the
/// resolved members); decodes each message when dereferenced.
class log_archive_reader::message_range {
public:
    class iterator {
    public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = log_message_view;
        using difference_type = std::ptrdiff_t;
        using pointer = void;
        using reference = log_message_view;

        iterator() = default;

        /// Over consecutive members.
        iterator(const log_archive_reader* reader, const npz_member* position) : reader_(reader), direct_(position) {}

        /// Over a list of members.
        iterator(const log_archive_reader* reader, const npz_member* const* position)
            : reader_(reader), listed_(position) {}

        log_message_view operator*() const { return reader_->decode(listed_ != nullptr ? **listed_ : *direct_); }

        iterator& operator++() {
            if (listed_ != nullptr) {
                ++listed_;
            } else {
                ++direct_;
            }
            return *this;
        }

        iterator operator++(int) {
            iterator old = *this;
            ++*this;
            return old;
        }

        friend bool operator==(const iterator& a, const iterator& b) {
            return a.direct_ == b.direct_ && a.listed_ == b.listed_;
        }

    private:
        const log_archive_reader* reader_ = nullptr;
        const npz_member* direct_ = nullptr;
        const npz_member* const* listed_ = nullptr;
    };

    /// Every member of `members`, in order (no list is made).
    message_range(const log_archive_reader* reader, std::span<const npz_member> members)
        : reader_(reader), consecutive_(members) {}

    message_range(const log_archive_reader* reader, std::vector<const npz_member*> members)
        : reader_(reader), listed_(std::move(members)), is_listed_(true) {}

    [[nodiscard]] iterator begin() const {
        return is_listed_ ? iterator{reader_, listed_.data()} : iterator{reader_, consecutive_.data()};
    }

    [[nodiscard]] iterator end() const {
        return is_listed_ ? iterator{reader_, listed_.data() + listed_.size()}
                          : iterator{reader_, consecutive_.data() + consecutive_.size()};
    }

    [[nodiscard]] std::size_t size() const noexcept { return is_listed_ ? listed_.size() : consecutive_.size(); }

private:
    const log_archive_reader* reader_;
    std::span<const npz_member> consecutive_;
    std::vector<const npz_member*> listed_;
    bool is_listed_ = false;
};

/// Processes an archive's batches in parallel on the CPU pool (the C++ counterpart of the Python README's
/// ProcessPoolExecutor example): fn(batch_index, messages) runs once per batch of get_batches(workers,
/// batch_multiplier), at most resolve_worker_count(workers) at a time (0 = automatic; negative refused with
/// value_error before anything is read); completes on the caller's executor when all batches are done and rethrows
/// the first exception. fn may be called concurrently from several threads.
asio::awaitable<void> async_for_each_batch(const log_archive_reader& reader,
                                           std::function<void(std::size_t, std::span<const log_message_view>)> fn,
                                           int workers = 0, int batch_multiplier = 4);

}  // namespace axds
