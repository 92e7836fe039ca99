/* syrk: the lower triangle of C = alpha * A * A^T + beta * C, with A N x M. */
#include "kernel.h"

int main(int argc, char **argv) {
    int idx = lb_size_index(argc, argv);
    int n = LB_PICK(idx, 40, 300, 720), m = n - n / 5;
    double alpha = 1.5, beta = 1.2;
    double (*A)[m] = lb_alloc((size_t)n * m, sizeof(double));
    double (*C)[n] = lb_alloc((size_t)n * n, sizeof(double));
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < m; j++) A[i][j] = (double)((i * j + 1) % n) / n;
        for (int j = 0; j < n; j++) C[i][j] = (double)((i * j + 2) % m) / m;
    }

    uint64_t t0 = lb_now_ns();
    for (int i = 0; i < n; i++) {
        for (int j = 0; j <= i; j++) C[i][j] *= beta;
        for (int k = 0; k < m; k++) {
            double a = alpha * A[i][k];
            for (int j = 0; j <= i; j++) C[i][j] += a * A[j][k];
        }
    }
    uint64_t t1 = lb_now_ns();

    lb_hash h = lb_hash_new();
    lb_hash_doubles(&h, &C[0][0], (size_t)n * n);
    lb_report("syrk", idx, t0, t1, h);
    return 0;
}
