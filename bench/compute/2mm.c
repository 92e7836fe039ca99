/* 2mm: D = alpha * A * B * C + beta * D, as tmp = alpha * A * B, then D = beta * D + tmp * C. */
#include "kernel.h"

int main(int argc, char **argv) {
    int idx = lb_size_index(argc, argv);
    int ni = LB_PICK(idx, 32, 200, 480), nj = ni + ni / 8, nk = ni + ni / 4, nl = ni + ni / 2;
    double alpha = 1.5, beta = 1.2;
    double (*tmp)[nj] = lb_alloc((size_t)ni * nj, sizeof(double));
    double (*A)[nk] = lb_alloc((size_t)ni * nk, sizeof(double));
    double (*B)[nj] = lb_alloc((size_t)nk * nj, sizeof(double));
    double (*C)[nl] = lb_alloc((size_t)nj * nl, sizeof(double));
    double (*D)[nl] = lb_alloc((size_t)ni * nl, sizeof(double));
    for (int i = 0; i < ni; i++)
        for (int k = 0; k < nk; k++) A[i][k] = (double)((i * k + 1) % ni) / ni;
    for (int k = 0; k < nk; k++)
        for (int j = 0; j < nj; j++) B[k][j] = (double)(k * (j + 1) % nj) / nj;
    for (int j = 0; j < nj; j++)
        for (int l = 0; l < nl; l++) C[j][l] = (double)((j * (l + 3) + 1) % nl) / nl;
    for (int i = 0; i < ni; i++)
        for (int l = 0; l < nl; l++) D[i][l] = (double)(i * (l + 2) % nk) / nk;

    uint64_t t0 = lb_now_ns();
    for (int i = 0; i < ni; i++)
        for (int k = 0; k < nk; k++) {
            double a = alpha * A[i][k];
            for (int j = 0; j < nj; j++) tmp[i][j] += a * B[k][j];
        }
    for (int i = 0; i < ni; i++) {
        for (int l = 0; l < nl; l++) D[i][l] *= beta;
        for (int j = 0; j < nj; j++) {
            double t = tmp[i][j];
            for (int l = 0; l < nl; l++) D[i][l] += t * C[j][l];
        }
    }
    uint64_t t1 = lb_now_ns();

    lb_hash h = lb_hash_new();
    lb_hash_doubles(&h, &D[0][0], (size_t)ni * nl);
    lb_report("2mm", idx, t0, t1, h);
    return 0;
}
