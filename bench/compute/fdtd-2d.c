/* fdtd-2d: T steps of the 2-D finite-difference time-domain method (Yee scheme, TE mode):
 * electric fields ex, ey and magnetic field hz on an NX x NY grid, with a source on row 0. */
#include "kernel.h"

int main(int argc, char **argv) {
    int idx = lb_size_index(argc, argv);
    int nx = LB_PICK(idx, 60, 400, 1000), ny = nx + nx / 5, steps = LB_PICK(idx, 10, 50, 100);
    double (*ex)[ny] = lb_alloc((size_t)nx * ny, sizeof(double));
    double (*ey)[ny] = lb_alloc((size_t)nx * ny, sizeof(double));
    double (*hz)[ny] = lb_alloc((size_t)nx * ny, sizeof(double));
    double *source = lb_alloc(steps, sizeof(double));
    for (int t = 0; t < steps; t++) source[t] = (double)t;
    for (int i = 0; i < nx; i++)
        for (int j = 0; j < ny; j++) {
            ex[i][j] = ((double)i * (j + 1)) / nx;
            ey[i][j] = ((double)i * (j + 2)) / ny;
            hz[i][j] = ((double)i * (j + 3)) / nx;
        }

    uint64_t t0 = lb_now_ns();
    for (int t = 0; t < steps; t++) {
        for (int j = 0; j < ny; j++) ey[0][j] = source[t];
        for (int i = 1; i < nx; i++)
            for (int j = 0; j < ny; j++) ey[i][j] -= 0.5 * (hz[i][j] - hz[i - 1][j]);
        for (int i = 0; i < nx; i++)
            for (int j = 1; j < ny; j++) ex[i][j] -= 0.5 * (hz[i][j] - hz[i][j - 1]);
        for (int i = 0; i < nx - 1; i++)
            for (int j = 0; j < ny - 1; j++)
                hz[i][j] -= 0.7 * (ex[i][j + 1] - ex[i][j] + ey[i + 1][j] - ey[i][j]);
    }
    uint64_t t1 = lb_now_ns();

    lb_hash h = lb_hash_new();
    lb_hash_doubles(&h, &ex[0][0], (size_t)nx * ny);
    lb_hash_doubles(&h, &ey[0][0], (size_t)nx * ny);
    lb_hash_doubles(&h, &hz[0][0], (size_t)nx * ny);
    lb_report("fdtd-2d", idx, t0, t1, h);
    return 0;
}
