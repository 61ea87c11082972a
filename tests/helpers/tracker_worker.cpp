// A separate process for the processing tracker's multi-process tests.
//
//   ads_test_tracker_worker transitions FILE PREFIX COUNT   start+complete the jobs (PREFIX, "0".."COUNT-1")
//   ads_test_tracker_worker hold LOCKFILE                   flock LOCKFILE, print "locked", sleep until killed

#include <axds/jobs/processing_tracker.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

int main(int argc, char** argv) {
    try {
        const std::string mode = argc > 1 ? argv[1] : "";
        if (mode == "transitions" && argc == 5) {
            axds::processing_tracker tracker(argv[2], {.lock_timeout = std::chrono::seconds(120)});
            const int count = std::atoi(argv[4]);
            for (int k = 0; k < count; ++k) {
                const std::string id = axds::processing_tracker::generate_job_id(argv[3], std::to_string(k));
                tracker.start_job(id, std::string(argv[3]));
                tracker.complete_job(id);
            }
            return 0;
        }
        if (mode == "hold" && argc == 3) {
            const int fd = ::open(argv[2], O_RDWR | O_CREAT | O_CLOEXEC, 0644);
            if (fd < 0 || ::flock(fd, LOCK_EX) != 0) {
                std::perror("hold");
                return 1;
            }
            std::puts("locked");
            std::fflush(stdout);
            ::sleep(60);
            return 0;
        }
        std::fprintf(stderr, "usage: ads_test_tracker_worker transitions FILE PREFIX COUNT | hold LOCKFILE\n");
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "worker failed: %s\n", e.what());
        return 1;
    }
}
