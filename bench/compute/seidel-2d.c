/* seidel-2d: T sweeps of the in-place 9-point Gauss-Seidel stencil on an N x N grid. */
#include "kernel.h"

int main(int argc, char **argv) {
    int idx = lb_size_index(argc, argv);
    int n = LB_PICK(idx, 60, 400, 1000), steps = LB_PICK(idx, 4, 20, 40);
    double (*A)[n] = lb_alloc((size_t)n * n, sizeof(double));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) A[i][j] = ((double)i * (j + 2) + 2) / n;

    uint64_t t0 = lb_now_ns();
    for (int t = 0; t < steps; t++)
        for (int i = 1; i < n - 1; i++)
            for (int j = 1; j < n - 1; j++)
                A[i][j] = (A[i - 1][j - 1] + A[i - 1][j] + A[i - 1][j + 1] + A[i][j - 1] + A[i][j] +
                           A[i][j + 1] + A[i + 1][j - 1] + A[i + 1][j] + A[i + 1][j + 1]) /
                          9.0;
    uint64_t t1 = lb_now_ns();

    lb_hash h = lb_hash_new();
    lb_hash_doubles(&h, &A[0][0], (size_t)n * n);
    lb_report("seidel-2d", idx, t0, t1, h);
    return 0;
}
