/* covariance: the sample covariance matrix (M x M) of M variables observed N times. */
#include "kernel.h"

int main(int argc, char **argv) {
    int idx = lb_size_index(argc, argv);
    int m = LB_PICK(idx, 40, 400, 1000), n = m + m / 4;
    double (*data)[m] = lb_alloc((size_t)n * m, sizeof(double));
    double (*cov)[m] = lb_alloc((size_t)m * m, sizeof(double));
    double *mean = lb_alloc(m, sizeof(double));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++) data[i][j] = (double)(i * j) / m;

    uint64_t t0 = lb_now_ns();
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++) mean[j] += data[i][j];
    for (int j = 0; j < m; j++) mean[j] /= n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++) data[i][j] -= mean[j];
    for (int i = 0; i < m; i++)
        for (int j = i; j < m; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += data[k][i] * data[k][j];
            cov[i][j] = cov[j][i] = s / (n - 1);
        }
    uint64_t t1 = lb_now_ns();

    lb_hash h = lb_hash_new();
    lb_hash_doubles(&h, &cov[0][0], (size_t)m * m);
    lb_report("covariance", idx, t0, t1, h);
    return 0;
}
