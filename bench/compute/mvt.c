/* mvt: x1 = x1 + A * y1 and x2 = x2 + A^T * y2. */
#include "kernel.h"

int main(int argc, char **argv) {
    int idx = lb_size_index(argc, argv);
    int n = LB_PICK(idx, 120, 2000, 4000);
    double (*A)[n] = lb_alloc((size_t)n * n, sizeof(double));
    double *x1 = lb_alloc(n, sizeof(double)), *x2 = lb_alloc(n, sizeof(double));
    double *y1 = lb_alloc(n, sizeof(double)), *y2 = lb_alloc(n, sizeof(double));
    for (int i = 0; i < n; i++) {
        x1[i] = (double)(i % n) / n;
        x2[i] = (double)((i + 1) % n) / n;
        y1[i] = (double)((i + 3) % n) / n;
        y2[i] = (double)((i + 4) % n) / n;
        for (int j = 0; j < n; j++) A[i][j] = (double)(i * j % n) / n;
    }

    uint64_t t0 = lb_now_ns();
    for (int i = 0; i < n; i++) {
        double t = x1[i];
        for (int j = 0; j < n; j++) t += A[i][j] * y1[j];
        x1[i] = t;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) x2[j] += A[i][j] * y2[i];
    uint64_t t1 = lb_now_ns();

    lb_hash h = lb_hash_new();
    lb_hash_doubles(&h, x1, n);
    lb_hash_doubles(&h, x2, n);
    lb_report("mvt", idx, t0, t1, h);
    return 0;
}
