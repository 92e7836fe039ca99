/*
 * Shared scaffolding of the compute suite's kernels (the .c files beside it).
 *
 * Every kernel is one C program, built with the same clang and the same flags natively and for
 * wasm32-wasip1. It takes one argument, the data size (small, medium or large), sets up its
 * data (untimed), runs the kernel between two readings of CLOCK_MONOTONIC (the same clock for
 * every runner: inside Wasm it is WASI's monotonic clock), and prints one line:
 *
 *     kernel=gemm size=medium ns=12345678 checksum=0123456789abcdef
 *
 * The checksum is FNV-1a over the bit patterns of the results, so the compiler cannot drop the
 * work, and a runner that computes anything else (in any bit) is caught: the harness requires
 * the same checksum from every runner.
 */
#ifndef LAMINA_KERNEL_H
#define LAMINA_KERNEL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The size named on the command line: 0 small, 1 medium, 2 large. Exits with a usage message
 * for anything else. */
static inline int lb_size_index(int argc, char **argv) {
    static const char *names[] = {"small", "medium", "large"};
    if (argc == 2) {
        for (int i = 0; i < 3; i++) {
            if (strcmp(argv[1], names[i]) == 0) return i;
        }
    }
    fprintf(stderr, "usage: %s small|medium|large\n", argc > 0 ? argv[0] : "kernel");
    exit(2);
}

/* Picks one of three values by the size on the command line. */
#define LB_PICK(idx, small, medium, large) ((idx) == 0 ? (small) : (idx) == 1 ? (medium) : (large))

static inline uint64_t lb_now_ns(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        perror("clock_gettime");
        exit(1);
    }
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Zeroed memory for `count` elements of `size` bytes, or exit. */
static inline void *lb_alloc(size_t count, size_t size) {
    void *p = calloc(count, size);
    if (p == NULL) {
        fprintf(stderr, "out of memory (%zu x %zu bytes)\n", count, size);
        exit(1);
    }
    return p;
}

typedef struct {
    uint64_t h;
} lb_hash;

static inline lb_hash lb_hash_new(void) {
    lb_hash h = {0xcbf29ce484222325u};
    return h;
}

static inline void lb_hash_bytes(lb_hash *h, const void *data, size_t len) {
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h->h ^= p[i];
        h->h *= 0x100000001b3u;
    }
}

/* Hashes `count` doubles by their bit patterns. */
static inline void lb_hash_doubles(lb_hash *h, const double *a, size_t count) {
    lb_hash_bytes(h, a, count * sizeof(double));
}

/* Hashes `count` ints. */
static inline void lb_hash_ints(lb_hash *h, const int *a, size_t count) {
    lb_hash_bytes(h, a, count * sizeof(int));
}

static inline void lb_report(const char *kernel, int idx, uint64_t start, uint64_t end, lb_hash h) {
    static const char *names[] = {"small", "medium", "large"};
    printf("kernel=%s size=%s ns=%llu checksum=%016llx\n", kernel, names[idx],
           (unsigned long long)(end - start), (unsigned long long)h.h);
}

#endif
