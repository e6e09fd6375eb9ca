/* Timing for the calibrations and build budgets: a monotonic clock and a robust summary of timings. */
#ifndef KNN_CLOCK_H
#define KNN_CLOCK_H

#include <stddef.h>
#include <time.h>

/* Monotonic clock in ns. */
static inline double knn_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Median of n > 0 timings (sorts them): robust to the few runs a shared machine preempts. */
double knn_median(double *t, size_t n);

#endif
