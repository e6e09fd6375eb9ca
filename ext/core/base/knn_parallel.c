#define _POSIX_C_SOURCE 200809L
#include "base/knn_parallel.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_THREADS 256

typedef struct task_slot {
    knn_task_fn fn;
    void *arg;
    size_t task;
} task_slot;

static void *task_main(void *p) {
    task_slot *slot = p;
    slot->fn(slot->arg, slot->task);
    return NULL;
}

void knn_parallel_run(size_t nthreads, knn_task_fn fn, void *arg) {
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
    if (nthreads <= 1) {
        fn(arg, 0);
        return;
    }
    pthread_t tids[MAX_THREADS];
    task_slot slots[MAX_THREADS];
    int started[MAX_THREADS];
    for (size_t t = 1; t < nthreads; t++) {
        slots[t] = (task_slot){fn, arg, t};
        started[t] = pthread_create(&tids[t], NULL, task_main, &slots[t]) == 0;
    }
    fn(arg, 0);
    for (size_t t = 1; t < nthreads; t++) {
        if (started[t]) {
            pthread_join(tids[t], NULL);
        } else {
            fn(arg, t);
        }
    }
}

size_t knn_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n : 1;
}
