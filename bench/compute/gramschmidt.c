/* gramschmidt: QR decomposition of A (M x N) by modified Gram-Schmidt: A = Q * R, Q with
 * orthonormal columns (overwriting A), R upper triangular. */
#include <math.h>

#include "kernel.h"

int main(int argc, char **argv) {
    int idx = lb_size_index(argc, argv);
    int m = LB_PICK(idx, 40, 320, 720), n = m - m / 8;
    double (*A)[n] = lb_alloc((size_t)m * n, sizeof(double));
    double (*R)[n] = lb_alloc((size_t)n * n, sizeof(double));
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) A[i][j] = (double)((i * j) % m) / m * 100 + 10 + (i == j);

    uint64_t t0 = lb_now_ns();
    for (int k = 0; k < n; k++) {
        double norm = 0;
        for (int i = 0; i < m; i++) norm += A[i][k] * A[i][k];
        norm = sqrt(norm);
        R[k][k] = norm;
        for (int i = 0; i < m; i++) A[i][k] /= norm;
        for (int j = k + 1; j < n; j++) {
            double r = 0;
            for (int i = 0; i < m; i++) r += A[i][k] * A[i][j];
            R[k][j] = r;
            for (int i = 0; i < m; i++) A[i][j] -= A[i][k] * r;
        }
    }
    uint64_t t1 = lb_now_ns();

    lb_hash h = lb_hash_new();
    lb_hash_doubles(&h, &A[0][0], (size_t)m * n);
    lb_hash_doubles(&h, &R[0][0], (size_t)n * n);
    lb_report("gramschmidt", idx, t0, t1, h);
    return 0;
}
