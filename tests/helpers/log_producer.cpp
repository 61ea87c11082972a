// A producer in another process for the log socket tests: sends packages to a log_socket_server and closes.
//
//   ads_test_log_producer SOCKET SOURCE COUNT PAYLOAD_SIZE
//     sends the onset entry of SOURCE, then COUNT packages at times 1..COUNT whose payload byte j of package i is
//     (i * 31 + j * 7 + SOURCE) & 0xFF; prints "confirmed N" (N = packages the server accepted, onset included)
//     and exits 0, or prints the error and exits 1.

#include <axds/log/log_package.hpp>
#include <axds/log/log_socket.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

int main(int argc, char** argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: ads_test_log_producer SOCKET SOURCE COUNT PAYLOAD_SIZE\n");
        return 2;
    }
    try {
        const auto source = static_cast<std::uint8_t>(std::stoul(argv[2]));
        const std::uint64_t count = std::stoull(argv[3]);
        const std::size_t size = std::stoul(argv[4]);
        axds::log_socket_producer producer(argv[1]);
        producer.log_onset(source);
        axds::log_package package{.source_id = source};
        package.payload.resize(size);
        for (std::uint64_t i = 1; i <= count; ++i) {
            package.acquisition_time = i;
            for (std::size_t j = 0; j < size; ++j) {
                package.payload[j] = static_cast<std::uint8_t>((i * 31 + j * 7 + source) & 0xFFU);
            }
            producer.log(package);
        }
        std::printf("confirmed %llu\n", static_cast<unsigned long long>(producer.close()));
        return 0;
    } catch (const std::exception& e) {
        std::printf("error %s\n", e.what());
        return 1;
    }
}
