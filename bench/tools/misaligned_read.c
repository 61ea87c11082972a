// Is the kernel's copy into a misaligned buffer slower on this CPU? Reads FILE in CHUNK-byte reads into one buffer at
// offsets 0 (page-aligned), +16 (where malloc/new[] put a large block) and +64, alternating, and prints the median
// of ROUNDS per offset. Issue 17 measured 0.16 / 0.54 / 0.13 s for 1 GiB on one AMD EPYC (Zen) VM.
//   cc -O2 -o misaligned_read bench/tools/misaligned_read.c && ./misaligned_read /dev/shm/big.bin 8388608 7
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int by_value(const void* a, const void* b) {
    const double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

int main(int argc, char** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s FILE CHUNK [ROUNDS]\n", argv[0]);
        return 2;
    }
    const size_t chunk = strtoull(argv[2], NULL, 0);
    const int rounds = argc > 3 ? atoi(argv[3]) : 7;
    const size_t offsets[3] = {0, 16, 64};
    double times[3][64];
    char* buffer = aligned_alloc(4096, chunk + 4096);
    if (buffer == NULL || rounds < 1 || rounds > 64) {
        return 2;
    }
    memset(buffer, 0, chunk + 4096);  // fault every page in before timing
    for (int r = 0; r < rounds; ++r) {
        for (int k = 0; k < 3; ++k) {
            const int fd = open(argv[1], O_RDONLY);
            if (fd < 0) {
                perror(argv[1]);
                return 1;
            }
            const double start = now();
            while (read(fd, buffer + offsets[k], chunk) > 0) {
            }
            times[k][r] = now() - start;
            close(fd);
        }
    }
    for (int k = 0; k < 3; ++k) {
        qsort(times[k], (size_t)rounds, sizeof(double), by_value);
        printf("chunk %zu, buffer at +%zu: median %.3f s (min %.3f)\n", chunk, offsets[k], times[k][rounds / 2],
               times[k][0]);
    }
    free(buffer);
    return 0;
}
