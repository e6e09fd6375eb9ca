/* A minimal fork-join over pthreads: run fn(arg, t) for t in [0, nthreads) and wait for all. */
#ifndef KNN_PARALLEL_H
#define KNN_PARALLEL_H

#include <stddef.h>

typedef void (*knn_task_fn)(void *arg, size_t task);

/* Runs tasks 0..nthreads-1, task 0 on the calling thread. If a thread cannot be started its task runs
 * on the caller, so this never fails. */
void knn_parallel_run(size_t nthreads, knn_task_fn fn, void *arg);

/* Online CPU count (at least 1). */
size_t knn_cpu_count(void);

#endif
