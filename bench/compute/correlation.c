/* correlation: the Pearson correlation matrix (M x M) of M variables observed N times. */
#include <math.h>

#include "kernel.h"

int main(int argc, char **argv) {
    int idx = lb_size_index(argc, argv);
    int m = LB_PICK(idx, 40, 400, 1000), n = m + m / 4;
    double (*data)[m] = lb_alloc((size_t)n * m, sizeof(double));
    double (*corr)[m] = lb_alloc((size_t)m * m, sizeof(double));
    double *mean = lb_alloc(m, sizeof(double)), *stddev = lb_alloc(m, sizeof(double));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++) data[i][j] = (double)(i * j) / m + i;

    uint64_t t0 = lb_now_ns();
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++) mean[j] += data[i][j];
    for (int j = 0; j < m; j++) mean[j] /= n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++) {
            double d = data[i][j] - mean[j];
            stddev[j] += d * d;
        }
    for (int j = 0; j < m; j++) {
        stddev[j] = sqrt(stddev[j] / n);
        /* A constant variable would divide by zero; treat its spread as 1. */
        if (stddev[j] <= 0.1) stddev[j] = 1.0;
    }
    double scale = sqrt((double)n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++) data[i][j] = (data[i][j] - mean[j]) / (scale * stddev[j]);
    for (int i = 0; i < m; i++) {
        corr[i][i] = 1.0;
        for (int j = i + 1; j < m; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += data[k][i] * data[k][j];
            corr[i][j] = corr[j][i] = s;
        }
    }
    uint64_t t1 = lb_now_ns();

    lb_hash h = lb_hash_new();
    lb_hash_doubles(&h, &corr[0][0], (size_t)m * m);
    lb_report("correlation", idx, t0, t1, h);
    return 0;
}
