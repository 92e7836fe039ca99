/* cholesky: A = L * L^T for a symmetric positive definite A; L overwrites the lower triangle. */
#include <math.h>

#include "kernel.h"

int main(int argc, char **argv) {
    int idx = lb_size_index(argc, argv);
    int n = LB_PICK(idx, 40, 500, 1200);
    double (*A)[n] = lb_alloc((size_t)n * n, sizeof(double));
    /* Symmetric and strictly diagonally dominant with a positive diagonal: positive definite. */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) A[i][j] = (i == j) ? n : 1.0 / (1 + (i > j ? i - j : j - i));

    uint64_t t0 = lb_now_ns();
    for (int j = 0; j < n; j++) {
        double d = A[j][j];
        for (int k = 0; k < j; k++) d -= A[j][k] * A[j][k];
        d = sqrt(d);
        A[j][j] = d;
        for (int i = j + 1; i < n; i++) {
            double s = A[i][j];
            for (int k = 0; k < j; k++) s -= A[i][k] * A[j][k];
            A[i][j] = s / d;
        }
    }
    uint64_t t1 = lb_now_ns();

    lb_hash h = lb_hash_new();
    for (int i = 0; i < n; i++) lb_hash_doubles(&h, A[i], (size_t)i + 1);
    lb_report("cholesky", idx, t0, t1, h);
    return 0;
}
