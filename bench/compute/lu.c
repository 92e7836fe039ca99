/* lu: in-place LU decomposition without pivoting (Doolittle: unit lower L, upper U) of a
 * diagonally dominant matrix. */
#include "kernel.h"

int main(int argc, char **argv) {
    int idx = lb_size_index(argc, argv);
    int n = LB_PICK(idx, 40, 600, 1200);
    double (*A)[n] = lb_alloc((size_t)n * n, sizeof(double));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) A[i][j] = (i == j) ? n : (double)((i * 7 + j * 3) % 11) / 11 - 0.5;

    uint64_t t0 = lb_now_ns();
    for (int k = 0; k < n; k++) {
        double pivot = A[k][k];
        for (int i = k + 1; i < n; i++) {
            double l = A[i][k] / pivot;
            A[i][k] = l;
            for (int j = k + 1; j < n; j++) A[i][j] -= l * A[k][j];
        }
    }
    uint64_t t1 = lb_now_ns();

    lb_hash h = lb_hash_new();
    lb_hash_doubles(&h, &A[0][0], (size_t)n * n);
    lb_report("lu", idx, t0, t1, h);
    return 0;
}
