/* 3mm: G = (A * B) * (C * D), as E = A * B, F = C * D, G = E * F. */
#include "kernel.h"

/* out (n x m) = x (n x k) * y (k x m); out starts zeroed. */
static void matmul(int n, int k, int m, double (*out)[m], double (*x)[k], double (*y)[m]) {
    for (int i = 0; i < n; i++)
        for (int p = 0; p < k; p++) {
            double a = x[i][p];
            for (int j = 0; j < m; j++) out[i][j] += a * y[p][j];
        }
}

int main(int argc, char **argv) {
    int idx = lb_size_index(argc, argv);
    int ni = LB_PICK(idx, 32, 180, 440), nj = ni + ni / 8, nk = ni + ni / 4, nl = ni + ni / 3,
        nm = ni + ni / 2;
    double (*A)[nk] = lb_alloc((size_t)ni * nk, sizeof(double));
    double (*B)[nj] = lb_alloc((size_t)nk * nj, sizeof(double));
    double (*C)[nm] = lb_alloc((size_t)nj * nm, sizeof(double));
    double (*D)[nl] = lb_alloc((size_t)nm * nl, sizeof(double));
    double (*E)[nj] = lb_alloc((size_t)ni * nj, sizeof(double));
    double (*F)[nl] = lb_alloc((size_t)nj * nl, sizeof(double));
    double (*G)[nl] = lb_alloc((size_t)ni * nl, sizeof(double));
    for (int i = 0; i < ni; i++)
        for (int k = 0; k < nk; k++) A[i][k] = (double)((i * k + 1) % ni) / (5 * ni);
    for (int k = 0; k < nk; k++)
        for (int j = 0; j < nj; j++) B[k][j] = (double)((k * (j + 1) + 2) % nj) / (5 * nj);
    for (int j = 0; j < nj; j++)
        for (int m = 0; m < nm; m++) C[j][m] = (double)(j * (m + 3) % nl) / (5 * nl);
    for (int m = 0; m < nm; m++)
        for (int l = 0; l < nl; l++) D[m][l] = (double)((m * (l + 2) + 2) % nk) / (5 * nk);

    uint64_t t0 = lb_now_ns();
    matmul(ni, nk, nj, E, A, B);
    matmul(nj, nm, nl, F, C, D);
    matmul(ni, nj, nl, G, E, F);
    uint64_t t1 = lb_now_ns();

    lb_hash h = lb_hash_new();
    lb_hash_doubles(&h, &G[0][0], (size_t)ni * nl);
    lb_report("3mm", idx, t0, t1, h);
    return 0;
}
