/* nussinov: the most base pairs of an RNA sequence of length N without crossing pairs
 * (Nussinov's dynamic programming over the upper triangle). */
#include "kernel.h"

static int max2(int a, int b) { return a > b ? a : b; }

/* 1 when bases a and b (0..3: A C G U) pair: A-U and C-G. */
static int pairs(int a, int b) { return a + b == 3; }

int main(int argc, char **argv) {
    int idx = lb_size_index(argc, argv);
    int n = LB_PICK(idx, 60, 800, 1600);
    int *seq = lb_alloc(n, sizeof(int));
    int (*T)[n] = lb_alloc((size_t)n * n, sizeof(int));
    for (int i = 0; i < n; i++) seq[i] = (i * 7 + i / 3) % 4;

    uint64_t t0 = lb_now_ns();
    for (int i = n - 1; i >= 0; i--)
        for (int j = i + 1; j < n; j++) {
            int best = max2(T[i][j - 1], T[i + 1][j]);
            if (i + 1 <= j - 1) best = max2(best, T[i + 1][j - 1] + pairs(seq[i], seq[j]));
            else best = max2(best, pairs(seq[i], seq[j]));
            for (int k = i + 1; k < j; k++) best = max2(best, T[i][k] + T[k + 1][j]);
            T[i][j] = best;
        }
    uint64_t t1 = lb_now_ns();

    lb_hash h = lb_hash_new();
    lb_hash_ints(&h, &T[0][0], (size_t)n * n);
    lb_report("nussinov", idx, t0, t1, h);
    return 0;
}
