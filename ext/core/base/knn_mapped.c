/* File-backed memory (see base/knn_mapped.h). POSIX: mkstemp + unlink, ftruncate, mmap(MAP_SHARED). */
#define _GNU_SOURCE
#include "base/knn_mapped.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static knn_status open_unlinked(knn_mapped *m, const char *dir, knn_error *err) {
    char path[4096];
    const char *where = dir && dir[0] ? dir : ".";
    int n = snprintf(path, sizeof path, "%s/knnsql-vectors-XXXXXX", where);
    if (n < 0 || (size_t)n >= sizeof path) {
        return knn_error_set(err, KNN_EINVAL, "vectors directory path is too long (%zu bytes)", strlen(where));
    }
    if (mkdir(where, 0700) != 0 && errno != EEXIST) {
        return knn_error_set(err, KNN_EINVAL, "cannot create the vectors directory '%.200s': %s; give an existing, "
                             "writable one (vectors_dir := ...) or SET temp_directory before loading knnsql", where,
                             strerror(errno));
    }
    int fd = mkstemp(path);
    if (fd < 0) {
        return knn_error_set(err, KNN_EINVAL, "cannot create a vectors file in '%.200s': %s; give a writable directory "
                             "(vectors_dir := ...)", where, strerror(errno));
    }
    unlink(path); /* the file lives as long as it is open or mapped */
    m->fd = fd;
    return KNN_OK;
}

knn_status knn_mapped_grow(knn_mapped *m, const char *dir, size_t bytes, knn_error *err) {
    if (bytes <= m->bytes) return KNN_OK;
    long page = sysconf(_SC_PAGESIZE);
    size_t pg = page > 0 ? (size_t)page : 4096;
    bytes = (bytes + pg - 1) / pg * pg;
    if (m->fd < 0 && open_unlinked(m, dir, err) != KNN_OK) return err->status;
    /* Blocks are allocated now, not on first write: a full disk is an error here, never a SIGBUS later. */
    int rc = posix_fallocate(m->fd, (off_t)m->bytes, (off_t)(bytes - m->bytes));
    if (rc == EOPNOTSUPP || rc == EINVAL) rc = ftruncate(m->fd, (off_t)bytes) == 0 ? 0 : errno;
    if (rc != 0) {
        return knn_error_set(err, KNN_ENOMEM, "cannot grow the vectors file to %zu bytes: %s (is its disk full?)", bytes,
                             strerror(rc));
    }
    void *p;
#ifdef MREMAP_MAYMOVE
    p = m->p ? mremap(m->p, m->bytes, bytes, MREMAP_MAYMOVE) : mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                                                                     m->fd, 0);
#else
    p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
    if (p != MAP_FAILED && m->p) munmap(m->p, m->bytes);
#endif
    if (p == MAP_FAILED) {
        return knn_error_set(err, KNN_ENOMEM, "cannot map %zu bytes of the vectors file: %s", bytes, strerror(errno));
    }
    m->p = p;
    m->bytes = bytes;
    return KNN_OK;
}

void knn_mapped_free(knn_mapped *m) {
    if (m->p) munmap(m->p, m->bytes);
    if (m->fd >= 0) close(m->fd);
    *m = knn_mapped_none();
}
