/* bicg: the two products of BiCG, s = A^T * r and q = A * p, with A N x M. */
#include "kernel.h"

int main(int argc, char **argv) {
    int idx = lb_size_index(argc, argv);
    int n = LB_PICK(idx, 120, 1900, 3800), m = n - n / 10;
    double (*A)[m] = lb_alloc((size_t)n * m, sizeof(double));
    double *s = lb_alloc(m, sizeof(double)), *q = lb_alloc(n, sizeof(double));
    double *p = lb_alloc(m, sizeof(double)), *r = lb_alloc(n, sizeof(double));
    for (int j = 0; j < m; j++) p[j] = (double)(j % m) / m;
    for (int i = 0; i < n; i++) {
        r[i] = (double)(i % n) / n;
        for (int j = 0; j < m; j++) A[i][j] = (double)(i * (j + 1) % n) / n;
    }

    uint64_t t0 = lb_now_ns();
    for (int i = 0; i < n; i++) {
        double t = 0;
        for (int j = 0; j < m; j++) {
            s[j] += r[i] * A[i][j];
            t += A[i][j] * p[j];
        }
        q[i] = t;
    }
    uint64_t t1 = lb_now_ns();

    lb_hash h = lb_hash_new();
    lb_hash_doubles(&h, s, m);
    lb_hash_doubles(&h, q, n);
    lb_report("bicg", idx, t0, t1, h);
    return 0;
}
