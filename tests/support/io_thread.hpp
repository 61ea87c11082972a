#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <thread>

namespace axds::test {

/// An io_context run by its own thread until destroyed (the executor of loggers and servers that threads or other
/// processes feed while the test thread waits).
class io_thread {
public:
    io_thread() : guard_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}

    io_thread(const io_thread&) = delete;
    io_thread& operator=(const io_thread&) = delete;

    ~io_thread() {
        guard_.reset();
        thread_.join();
    }

    asio::io_context& context() { return io_; }

    asio::any_io_executor executor() { return io_.get_executor(); }

private:
    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> guard_;
    std::thread thread_;
};

}  // namespace axds::test
