// Why the streaming logger's 1 MiB row depends on the payloads' pages (issue 19). Appends 4 GiB to a file with one
// write() of 1 MiB per message, from a ring of N 1 MiB buffers (1 = the same buffer each time, hot in the cache, as
// the plain append loop of ads_bench_data_logger; 256 = a full 256 MiB logger queue, where every write reads memory
// the producer filled 255 messages earlier, long out of the caches), the ring on ordinary 4 KiB pages or on
// transparent huge pages (madvise(MADV_HUGEPAGE)), written directly or staged: each 1 MiB copied by memcpy in pieces of
// 128 KiB into one page-aligned buffer that stays in the L2 cache, one write() per piece (a "bounce buffer"). Only the
// writer's side is timed (in the logger a producer thread fills the buffers). Prints MB/s per setup, median of 3
// alternating rounds.
//   cc -O2 -o cold_ring bench/tools/cold_ring.c && ./cold_ring /dev/shm/cold_ring.bin
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

enum { mib = 1 << 20, messages = 4096, huge = 2 << 20, piece = 128 << 10 };

static char* stage;  // the bounce buffer (page-aligned)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

// MB/s of one run: `count` buffers of 1 MiB in a 2 MiB-aligned region, on huge pages when `use_huge`, written
// through the bounce buffer when `staged`.
static double run(const char* path, int count, int use_huge, int staged) {
    const size_t size = (size_t)count * mib;
    char* raw = mmap(NULL, size + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    char* ring = (char*)(((unsigned long)raw + huge - 1) & ~((unsigned long)huge - 1));
    if (use_huge) {
        (void)madvise(ring, size, MADV_HUGEPAGE);
    }
    memset(ring, 1, size);  // populated before timing: only the steady state is measured
    const int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror(path);
        exit(1);
    }
    const double start = now();
    for (int i = 0; i < messages; ++i) {
        const char* buffer = ring + (size_t)(i % count) * mib;
        for (size_t at = 0; at < mib; at += staged ? piece : mib) {
            const size_t length = staged ? piece : mib;
            if (staged) {
                memcpy(stage, buffer + at, length);
            }
            if (write(fd, staged ? stage : buffer + at, length) != (ssize_t)length) {
                perror("write");
                exit(1);
            }
        }
    }
    const double seconds = now() - start;
    close(fd);
    unlink(path);
    munmap(raw, size + huge);
    return messages * (double)mib / 1e6 / seconds;
}

static int by_value(const void* a, const void* b) {
    const double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

int main(int argc, char** argv) {
    const char* path = argc > 1 ? argv[1] : "cold_ring.bin";
    enum { setups = 5 };
    const int rings[setups] = {1, 256, 256, 1, 256};
    const int huge_pages[setups] = {0, 0, 1, 0, 0};
    const int staged[setups] = {0, 0, 0, 1, 1};
    const char* names[setups] = {"1 buffer (hot), 4 KiB pages", "256 buffers (cold), 4 KiB pages",
                                 "256 buffers (cold), huge pages", "1 buffer (hot), staged",
                                 "256 buffers (cold), staged"};
    double results[setups][3];
    if (posix_memalign((void**)&stage, 4096, piece) != 0) {
        return 1;
    }
    memset(stage, 0, piece);
    run(path, 1, 0, 0);  // warm-up: the file's pages and the allocator
    for (int round = 0; round < 3; ++round) {
        for (int s = 0; s < setups; ++s) {
            results[s][round] = run(path, rings[s], huge_pages[s], staged[s]);
        }
    }
    for (int s = 0; s < setups; ++s) {
        qsort(results[s], 3, sizeof(double), by_value);
        printf("%-34s %6.0f MB/s\n", names[s], results[s][1]);
    }
    return 0;
}
