// What does the first user-mode store to a page cost after the kernel already populated it? Maps 64 MiB and times one
// store per page, twice, in three setups: 0 = nothing done before (ordinary first-touch faults), 1 = after
// madvise(MADV_POPULATE_WRITE) (the kernel mapped every page), 2 = after MADV_POPULATE_WRITE and one store per page from
// another thread on the other CPU. Issue 21 found setup 1 at p50 8.4 us per page on this project's AMD EPYC VMs (a
// fault of the hypervisor's shadow page tables that the guest never counts), against 20 ns in setup 2: the reason the
// data logger's node pool touches its pages on the writer thread.
//   cc -O2 -pthread -o first_touch bench/tools/first_touch.c && ./first_touch
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

enum { region = 64 << 20, page = 4096, pages = region / page };

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static int by_value(const void* a, const void* b) {
    const long x = *(const long*)a, y = *(const long*)b;
    return (x > y) - (x < y);
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)sched_setaffinity(0, sizeof set, &set);
}

static void* touch_all(void* memory) {
    pin(0);
    for (size_t i = 0; i < pages; ++i) {
        ((volatile char*)memory)[i * page] = 1;
    }
    return NULL;
}

static void measure(int setup) {
    char* memory = mmap(NULL, region, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    if (setup >= 1 && madvise(memory, region, MADV_POPULATE_WRITE) != 0) {
        perror("madvise(MADV_POPULATE_WRITE)");
    }
    if (setup == 2) {
        pthread_t other;
        pthread_create(&other, NULL, touch_all, memory);
        pthread_join(other, NULL);
    }
    pin(1);
    long* ns = malloc(pages * sizeof(long));
    for (int pass = 0; pass < 2; ++pass) {
        size_t over = 0;
        for (size_t i = 0; i < pages; ++i) {
            const long start = now_ns();
            ((volatile char*)memory)[i * page + 64] = 2;
            ns[i] = now_ns() - start;
        }
        qsort(ns, pages, sizeof(long), by_value);
        for (size_t i = 0; i < pages; ++i) {
            over += ns[i] > 2000;
        }
        printf("setup %d (%s), pass %d: p50 %ld ns, p99 %ld ns, p99.9 %ld ns, %zu of %d stores over 2 us\n", setup,
               setup == 0 ? "fresh" : setup == 1 ? "populated" : "populated + touched by another thread", pass,
               ns[pages / 2], ns[pages * 99 / 100], ns[pages * 999 / 1000], over, pages);
    }
    free(ns);
    munmap(memory, region);
}

int main(void) {
    for (int setup = 0; setup <= 2; ++setup) {
        measure(setup);
    }
    return 0;
}
