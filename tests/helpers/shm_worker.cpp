// A separate process for the shared memory array's multi-process tests (int64 arrays of shape {N}).
//
//   ads_test_shm_worker increment NAME N COUNT    COUNT times: lock, add 1 to every element, unlock
//   ads_test_shm_worker write NAME N INDEX VALUE  set one element
//   ads_test_shm_worker hold NAME N               lock, print "locked", sleep until killed
//   ads_test_shm_worker attach-wrong NAME         attach as float64 of shape {1}: prints the error
//   ads_test_shm_worker recreate-as UID NAME      as user UID (root only): create(exists_ok) over NAME, prints the error

#include <axds/shm/shared_memory_array.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include <unistd.h>

int main(int argc, char** argv) {
    try {
        const std::string mode = argc > 1 ? argv[1] : "";
        if (mode == "attach-wrong" && argc == 3) {
            try {
                auto wrong = axds::shared_memory_array<double>::attach(argv[2], {1});
            } catch (const axds::value_error& e) {
                std::printf("%s\n", e.what());
                return 0;
            }
            return 1;
        }
        if (mode == "recreate-as" && argc == 4) {
            const auto uid = static_cast<uid_t>(std::stoul(argv[2]));
            if (::setgid(uid) != 0 || ::setuid(uid) != 0) {
                std::printf("cannot become user %u\n", static_cast<unsigned>(uid));
                return 3;
            }
            try {
                auto replacement = axds::shared_memory_array<std::int64_t>::create(argv[3], {1}, 0, true);
            } catch (const std::exception& e) {
                std::printf("%s\n", e.what());
                return 0;
            }
            return 1;
        }
        if (argc < 4) {
            return 2;
        }
        auto array = axds::shared_memory_array<std::int64_t>::attach(argv[2], {std::stoul(argv[3])});
        if (mode == "increment" && argc == 5) {
            const int count = std::atoi(argv[4]);
            for (int k = 0; k < count; ++k) {
                auto view = array.array();
                for (auto& value : view.data()) {
                    ++value;
                }
            }
            return 0;
        }
        if (mode == "write" && argc == 6) {
            array.set(std::stol(argv[4]), std::stoll(argv[5]));
            return 0;
        }
        if (mode == "hold") {
            const auto guard = array.lock();
            array.array(false)[0] = 777;  // half-done update the next holder must be told about
            std::puts("locked");
            std::fflush(stdout);
            ::sleep(60);
            return 0;
        }
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "shm worker failed: %s\n", e.what());
        return 1;
    }
}
