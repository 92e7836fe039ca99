/* gesummv: y = alpha * A * x + beta * B * x. */
#include "kernel.h"

int main(int argc, char **argv) {
    int idx = lb_size_index(argc, argv);
    int n = LB_PICK(idx, 90, 1400, 2800);
    double alpha = 1.5, beta = 1.2;
    double (*A)[n] = lb_alloc((size_t)n * n, sizeof(double));
    double (*B)[n] = lb_alloc((size_t)n * n, sizeof(double));
    double *x = lb_alloc(n, sizeof(double)), *y = lb_alloc(n, sizeof(double));
    for (int i = 0; i < n; i++) {
        x[i] = (double)(i % n) / n;
        for (int j = 0; j < n; j++) {
            A[i][j] = (double)((i * j + 1) % n) / n;
            B[i][j] = (double)((i * j + 2) % n) / n;
        }
    }

    uint64_t t0 = lb_now_ns();
    for (int i = 0; i < n; i++) {
        double a = 0, b = 0;
        for (int j = 0; j < n; j++) {
            a += A[i][j] * x[j];
            b += B[i][j] * x[j];
        }
        y[i] = alpha * a + beta * b;
    }
    uint64_t t1 = lb_now_ns();

    lb_hash h = lb_hash_new();
    lb_hash_doubles(&h, y, n);
    lb_report("gesummv", idx, t0, t1, h);
    return 0;
}
