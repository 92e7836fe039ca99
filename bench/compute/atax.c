/* atax: y = A^T * (A * x), with A M x N. */
#include "kernel.h"

int main(int argc, char **argv) {
    int idx = lb_size_index(argc, argv);
    int m = LB_PICK(idx, 120, 1900, 3800), n = m + m / 10;
    double (*A)[n] = lb_alloc((size_t)m * n, sizeof(double));
    double *x = lb_alloc(n, sizeof(double)), *y = lb_alloc(n, sizeof(double));
    double *tmp = lb_alloc(m, sizeof(double));
    for (int j = 0; j < n; j++) x[j] = 1 + j / (double)n;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) A[i][j] = (double)((i + j) % n) / (5 * m);

    uint64_t t0 = lb_now_ns();
    for (int i = 0; i < m; i++) {
        double t = 0;
        for (int j = 0; j < n; j++) t += A[i][j] * x[j];
        tmp[i] = t;
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) y[j] += A[i][j] * tmp[i];
    uint64_t t1 = lb_now_ns();

    lb_hash h = lb_hash_new();
    lb_hash_doubles(&h, y, n);
    lb_report("atax", idx, t0, t1, h);
    return 0;
}
