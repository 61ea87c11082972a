// A separate process for the processing tracker's multi-process tests.
//
//   ads_test_tracker_worker transitions FILE PREFIX COUNT   start+complete the jobs (PREFIX, "0".."COUNT-1")
//   ads_test_tracker_worker rounds FILE PREFIX JOBS ROUNDS  ROUNDS times start+complete each job (PREFIX, "0"..);
//                                                           before each round, check the job still holds what this
//                                                           process wrote last (a lost update would revert it): exit 3
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
        if (mode == "rounds" && argc == 6) {
            axds::processing_tracker tracker(argv[2], {.lock_timeout = std::chrono::seconds(120)});
            const int jobs = std::atoi(argv[4]);
            const int rounds = std::atoi(argv[5]);
            int lost = 0;
            for (int r = 0; r < rounds; ++r) {
                for (int k = 0; k < jobs; ++k) {
                    const std::string id = axds::processing_tracker::generate_job_id(argv[3], std::to_string(k));
                    if (r > 0) {
                        const axds::job_state last = tracker.get_job_info(id);
                        const std::string expected = std::string(argv[3]) + "-" + std::to_string(r - 1);
                        lost += last.status != axds::processing_status::succeeded || last.executor_id != expected;
                    }
                    tracker.start_job(id, std::string(argv[3]) + "-" + std::to_string(r));
                    tracker.complete_job(id);
                }
            }
            if (lost != 0) {
                std::fprintf(stderr, "%d lost updates seen\n", lost);
                return 3;
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
