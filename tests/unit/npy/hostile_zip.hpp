#pragma once
// Hand-built zip archives for the hostile-input tests ([hostile]): every offset, size, CRC and directory record is
// under the test's control, so records can share data, overlap the directory or lie about sizes.

#include <axds/error.hpp>

#include "support/bounded_child.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace axds::test::hostile {

inline void put16(std::string& out, std::uint64_t v) {
    for (unsigned i = 0; i < 2; ++i) {
        out.push_back(static_cast<char>((v >> (8U * i)) & 0xFFU));
    }
}

inline void put32(std::string& out, std::uint64_t v) {
    for (unsigned i = 0; i < 4; ++i) {
        out.push_back(static_cast<char>((v >> (8U * i)) & 0xFFU));
    }
}

inline void put64(std::string& out, std::uint64_t v) {
    for (unsigned i = 0; i < 8; ++i) {
        out.push_back(static_cast<char>((v >> (8U * i)) & 0xFFU));
    }
}

inline std::uint32_t crc_of(std::string_view data) {
    return static_cast<std::uint32_t>(
        ::crc32(0, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
}

/// Raw deflate (as zip stores it) of `data` at `level` (0: stored deflate blocks, so every output byte is readable).
inline std::string deflate_raw(std::string_view data, int level = Z_BEST_COMPRESSION) {
    z_stream stream{};
    if (deflateInit2(&stream, level, Z_DEFLATED, -MAX_WBITS, 9, Z_DEFAULT_STRATEGY) != Z_OK) {
        throw std::runtime_error("deflateInit2 failed");
    }
    std::string out(deflateBound(&stream, static_cast<uLong>(data.size())), '\0');
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    stream.avail_in = static_cast<uInt>(data.size());
    stream.next_out = reinterpret_cast<Bytef*>(out.data());
    stream.avail_out = static_cast<uInt>(out.size());
    const int status = deflate(&stream, Z_FINISH);
    out.resize(stream.total_out);
    deflateEnd(&stream);
    if (status != Z_STREAM_END) {
        throw std::runtime_error("deflate failed");
    }
    return out;
}

/// One central-directory record: what the directory claims about a member.
struct record {
    std::string name;
    std::uint16_t method = 0;
    std::uint32_t crc = 0;
    std::uint64_t compressed_size = 0;
    std::uint64_t uncompressed_size = 0;
    std::uint64_t local_header_offset = 0;
    std::uint64_t data_offset = 0;  ///< informational: where the data starts (not written)
};

/// Lays out local headers and data (possibly with holes, written sparse), then a central directory of any records.
class zip_builder {
public:
    /// Appends a local header for `name` followed by `stored` (the bytes as they sit in the file); returns the honest
    /// directory record for it.
    record add(std::string name, std::uint16_t method, std::string_view stored, std::uint32_t crc,
               std::uint64_t uncompressed_size) {
        record r{name, method, crc, stored.size(), uncompressed_size, offset_, 0};
        std::string header;
        put32(header, 0x04034b50);
        put16(header, 20);
        put16(header, 0);
        put16(header, method);
        put16(header, 0);
        put16(header, 0x0021);
        put32(header, crc);
        put32(header, std::min<std::uint64_t>(stored.size(), 0xFFFFFFFFU));
        put32(header, std::min<std::uint64_t>(uncompressed_size, 0xFFFFFFFFU));
        put16(header, name.size());
        put16(header, 0);
        header += name;
        r.data_offset = offset_ + header.size();
        append(header);
        append(stored);
        return r;
    }

    record add_stored(std::string name, std::string_view data) {
        return add(std::move(name), 0, data, crc_of(data), data.size());
    }

    record add_deflated(std::string name, std::string_view data, int level = Z_BEST_COMPRESSION) {
        return add(std::move(name), 8, deflate_raw(data, level), crc_of(data), data.size());
    }

    /// Appends a local header whose data is `size` bytes of hole (zeros, not stored in memory or on disk).
    record add_hole(std::string name, std::uint16_t method, std::uint64_t size, std::uint64_t uncompressed_size) {
        record r = add(std::move(name), method, {}, 0, uncompressed_size);
        r.compressed_size = size;
        offset_ += size;
        return r;
    }

    [[nodiscard]] std::uint64_t offset() const noexcept { return offset_; }

    /// Appends the central directory of `records` and the end record (ZIP64 extras where a value needs them);
    /// returns the directory's offset.
    std::uint64_t finish(const std::vector<record>& records) {
        const std::uint64_t cd_offset = offset_;
        for (const auto& r : records) {
            std::string extra;
            const bool big_u = r.uncompressed_size >= 0xFFFFFFFFU;
            const bool big_c = r.compressed_size >= 0xFFFFFFFFU;
            const bool big_o = r.local_header_offset >= 0xFFFFFFFFU;
            if (big_u || big_c || big_o) {
                put16(extra, 0x0001);
                put16(extra, 8U * ((big_u ? 1U : 0U) + (big_c ? 1U : 0U) + (big_o ? 1U : 0U)));
                if (big_u) {
                    put64(extra, r.uncompressed_size);
                }
                if (big_c) {
                    put64(extra, r.compressed_size);
                }
                if (big_o) {
                    put64(extra, r.local_header_offset);
                }
            }
            std::string c;
            put32(c, 0x02014b50);
            put16(c, 0x0314);
            put16(c, big_u || big_c || big_o ? 45 : 20);
            put16(c, 0);
            put16(c, r.method);
            put16(c, 0);
            put16(c, 0x0021);
            put32(c, r.crc);
            put32(c, std::min<std::uint64_t>(r.compressed_size, 0xFFFFFFFFU));
            put32(c, std::min<std::uint64_t>(r.uncompressed_size, 0xFFFFFFFFU));
            put16(c, r.name.size());
            put16(c, extra.size());
            put16(c, 0);
            put16(c, 0);
            put16(c, 0);
            put32(c, 0600U << 16U);
            put32(c, std::min<std::uint64_t>(r.local_header_offset, 0xFFFFFFFFU));
            c += r.name;
            c += extra;
            append(c);
        }
        const std::uint64_t cd_size = offset_ - cd_offset;
        std::string end;
        put32(end, 0x06054b50);
        put16(end, 0);
        put16(end, 0);
        put16(end, records.size());
        put16(end, records.size());
        put32(end, cd_size);
        put32(end, cd_offset);
        put16(end, 0);
        append(end);
        return cd_offset;
    }

    /// Writes the archive to `path` (holes stay sparse).
    void write(const std::filesystem::path& path) const {
        const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            throw std::runtime_error("cannot create " + path.string());
        }
        bool ok = true;
        for (const auto& [at, bytes] : pieces_) {
            ok = ok &&
                 ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(at)) == static_cast<ssize_t>(bytes.size());
        }
        ok = ok && ::ftruncate(fd, static_cast<off_t>(offset_)) == 0;
        ::close(fd);
        if (!ok) {
            throw std::runtime_error("cannot write " + path.string());
        }
    }

private:
    void append(std::string_view bytes) {
        if (!bytes.empty()) {
            pieces_.emplace_back(offset_, std::string(bytes));
        }
        offset_ += bytes.size();
    }

    std::vector<std::pair<std::uint64_t, std::string>> pieces_;
    std::uint64_t offset_ = 0;
};

using axds::test::run_bounded;
using outcome = axds::test::bounded_outcome;

}  // namespace axds::test::hostile
