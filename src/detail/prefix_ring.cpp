#include "detail/prefix_ring.hpp"

#include <algorithm>
#include <stdexcept>
#include <system_error>

namespace axds::detail {

prefix_ring::prefix_ring(std::size_t count, std::span<std::uint8_t> scratch, std::size_t slot_size,
                         bool prefer_io_uring, bool helper, describe_fn describe)
    : count_(count),
      chunks_((count + chunk_files - 1) / chunk_files),
      ring_chunks_(scratch.size() / slot_size / chunk_files),
      slot_size_(slot_size),
      scratch_(scratch),
      prefer_io_uring_(prefer_io_uring),
      want_helper_(helper && chunks_ >= 4 && ring_chunks_ >= 2),
      describe_(std::move(describe)),
      reads_(ring_chunks_ * chunk_files),
      ready_chunk_(ring_chunks_, 0) {
    if (ring_chunks_ == 0) {
        throw std::invalid_argument("prefix_ring: the scratch holds less than one chunk of slots");
    }
}

prefix_ring::~prefix_ring() {
    stop_helper();
}

void prefix_ring::stop_helper() {
    if (!helper_.joinable()) {
        return;
    }
    {
        const std::lock_guard lock(mutex_);
        stop_ = true;
    }
    space_.notify_all();
    helper_.join();
}

bool prefix_ring::claim(std::size_t& chunk) {
    if (stop_ || next_claim_ >= chunks_ || next_claim_ >= consumed_ + ring_chunks_) {
        return false;
    }
    chunk = next_claim_++;
    return true;
}

void prefix_ring::read_chunk(std::size_t chunk) {
    const std::size_t first = chunk * chunk_files;
    const std::size_t files = std::min(chunk_files, count_ - first);
    const std::size_t slot = (chunk % ring_chunks_) * chunk_files;
    const std::span<prefix_read> reads(reads_.data() + slot, files);
    for (std::size_t i = 0; i < files; ++i) {
        reads[i] = prefix_read{};
        reads[i].buffer = scratch_.subspan((slot + i) * slot_size_, slot_size_);
        describe_(first + i, reads[i]);
    }
    read_file_prefixes(reads, prefer_io_uring_);
}

void prefix_ring::helper_loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
        std::size_t chunk = 0;
        bool claimed = false;
        space_.wait(lock, [&] { return stop_ || next_claim_ >= chunks_ || (claimed = claim(chunk)); });
        if (!claimed) {
            return;  // stopped, or every chunk is claimed
        }
        lock.unlock();
        read_chunk(chunk);
        lock.lock();
        ready_chunk_[chunk % ring_chunks_] = chunk + 1;
        ready_.notify_one();
    }
}

bool prefix_ring::run(const consume_fn& consume, const after_chunk_fn& after_chunk) {
    if (want_helper_ && !helper_.joinable()) {
        try {
            helper_ = std::thread([this] { helper_loop(); });
        } catch (const std::system_error&) {
            // no thread to be had: this thread reads every chunk
        }
    }
    for (std::size_t chunk = 0; chunk < chunks_; ++chunk) {
        const std::size_t position = chunk % ring_chunks_;
        {
            std::unique_lock lock(mutex_);
            while (ready_chunk_[position] != chunk + 1) {
                std::size_t other = 0;
                if (claim(other)) {  // read ahead instead of waiting (it may be this very chunk)
                    lock.unlock();
                    read_chunk(other);
                    lock.lock();
                    ready_chunk_[other % ring_chunks_] = other + 1;
                    continue;
                }
                ready_.wait(lock);
            }
        }
        const std::size_t first = chunk * chunk_files;
        const std::size_t files = std::min(chunk_files, count_ - first);
        for (std::size_t i = 0; i < files; ++i) {
            consume(first + i, reads_[position * chunk_files + i]);
        }
        if (after_chunk && !after_chunk(first + files)) {
            stop_helper();
            return false;
        }
        {
            const std::lock_guard lock(mutex_);
            consumed_ = chunk + 1;
        }
        space_.notify_one();
    }
    stop_helper();
    return true;
}

}  // namespace axds::detail
