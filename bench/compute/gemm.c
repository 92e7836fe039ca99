/* gemm: C = alpha * A * B + beta * C, with A NI x NK, B NK x NJ, C NI x NJ. */
#include "kernel.h"

int main(int argc, char **argv) {
    int idx = lb_size_index(argc, argv);
    int ni = LB_PICK(idx, 40, 320, 640), nj = ni + ni / 8, nk = ni + ni / 4;
    double alpha = 1.5, beta = 1.2;
    double (*A)[nk] = lb_alloc((size_t)ni * nk, sizeof(double));
    double (*B)[nj] = lb_alloc((size_t)nk * nj, sizeof(double));
    double (*C)[nj] = lb_alloc((size_t)ni * nj, sizeof(double));
    for (int i = 0; i < ni; i++)
        for (int k = 0; k < nk; k++) A[i][k] = (double)((i * (k + 1)) % nk) / nk;
    for (int k = 0; k < nk; k++)
        for (int j = 0; j < nj; j++) B[k][j] = (double)((k * (j + 2)) % nj) / nj;
    for (int i = 0; i < ni; i++)
        for (int j = 0; j < nj; j++) C[i][j] = (double)((i * j + 1) % ni) / ni;

    uint64_t t0 = lb_now_ns();
    for (int i = 0; i < ni; i++) {
        for (int j = 0; j < nj; j++) C[i][j] *= beta;
        for (int k = 0; k < nk; k++) {
            double a = alpha * A[i][k];
            for (int j = 0; j < nj; j++) C[i][j] += a * B[k][j];
        }
    }
    uint64_t t1 = lb_now_ns();

    lb_hash h = lb_hash_new();
    lb_hash_doubles(&h, &C[0][0], (size_t)ni * nj);
    lb_report("gemm", idx, t0, t1, h);
    return 0;
}
