/* floyd-warshall: all-pairs shortest path lengths in a weighted directed graph of N vertices
 * (integer weights; absent edges are a large value). */
#include "kernel.h"

int main(int argc, char **argv) {
    int idx = lb_size_index(argc, argv);
    int n = LB_PICK(idx, 60, 500, 1000);
    int (*d)[n] = lb_alloc((size_t)n * n, sizeof(int));
    const int absent = 1 << 29;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            int w = i * j % 7 + 1;
            d[i][j] = (i == j) ? 0 : ((i + j) % 13 == 0 || (i + j) % 7 == 0 || (i + j) % 11 == 0) ? w : absent;
        }

    uint64_t t0 = lb_now_ns();
    for (int k = 0; k < n; k++)
        for (int i = 0; i < n; i++) {
            int dik = d[i][k];
            for (int j = 0; j < n; j++) {
                int via = dik + d[k][j];
                d[i][j] = d[i][j] < via ? d[i][j] : via;
            }
        }
    uint64_t t1 = lb_now_ns();

    lb_hash h = lb_hash_new();
    lb_hash_ints(&h, &d[0][0], (size_t)n * n);
    lb_report("floyd-warshall", idx, t0, t1, h);
    return 0;
}
