/* doitgen: the multiresolution kernel of MADNESS, A[r][q][p] = sum_s A[r][q][s] * C4[s][p]. */
#include "kernel.h"

int main(int argc, char **argv) {
    int idx = lb_size_index(argc, argv);
    int nr = LB_PICK(idx, 16, 100, 200), nq = nr + nr / 4, np = nr + nr / 2;
    double (*A)[nq][np] = lb_alloc((size_t)nr * nq * np, sizeof(double));
    double (*C4)[np] = lb_alloc((size_t)np * np, sizeof(double));
    double *sum = lb_alloc(np, sizeof(double));
    for (int r = 0; r < nr; r++)
        for (int q = 0; q < nq; q++)
            for (int p = 0; p < np; p++) A[r][q][p] = (double)((r * q + p) % np) / np;
    for (int s = 0; s < np; s++)
        for (int p = 0; p < np; p++) C4[s][p] = (double)(s * p % np) / np;

    uint64_t t0 = lb_now_ns();
    for (int r = 0; r < nr; r++)
        for (int q = 0; q < nq; q++) {
            for (int p = 0; p < np; p++) sum[p] = 0;
            for (int s = 0; s < np; s++) {
                double a = A[r][q][s];
                for (int p = 0; p < np; p++) sum[p] += a * C4[s][p];
            }
            for (int p = 0; p < np; p++) A[r][q][p] = sum[p];
        }
    uint64_t t1 = lb_now_ns();

    lb_hash h = lb_hash_new();
    lb_hash_doubles(&h, &A[0][0][0], (size_t)nr * nq * np);
    lb_report("doitgen", idx, t0, t1, h);
    return 0;
}
