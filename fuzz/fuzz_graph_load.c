/* libFuzzer harness: graph index bytes -> knn_graph_from_bytes (the loader behind knn_index_restore
 * and knnsql.Index.load / from_bytes).
 *
 * The first input byte picks the mode: odd -> the trailing FNV-1a checksum is recomputed before
 * loading, so mutations get past the checksum and reach every structural check (counts, levels,
 * links, entry point, duplicate ids); even -> the bytes are loaded as given (checksum path). A buffer
 * that loads must then behave as an index: it is searched (plain and windowed), serialised again
 * (the bytes must come back identical), grown, pruned and optimized. A quantized graph (format 3) loads
 * without its float rows: its searches must then fail cleanly, never read past its rows. Build and run:
 * scripts/fuzz.sh. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "knn_api.h"

#define ERR 512

static void patch_checksum(uint8_t *b, size_t len) {
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t i = 0, n = len - 8;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h ^= w;
        h *= 0x100000001b3ULL;
    }
    for (; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    memcpy(b + n, &h, 8);
}

static void exercise(knn_graph *g) {
    char eb[ERR];
    size_t dim = knn_graph_dimension(g);
    if (dim > 4096) return; /* keep each input fast; the loader itself is what is under test */
    float *q = calloc(dim, sizeof *q);
    if (q == NULL) return;
    q[0] = 1.0f;
    int64_t ids[8];
    float ds[8];
    size_t found[1];
    int plan[1];
    if (knn_graph_query(g, q, 1, 8, 0, 1, ids, ds, found, eb, ERR) == 0) {
        if (found[0] > 8 || found[0] > knn_graph_count(g)) abort();
    }
    knn_graph_query_window(g, q, 1, 8, 0, -1e300, 1e300, 1, ids, ds, found, plan, eb, ERR);
    uint8_t *again = NULL;
    size_t len = 0;
    if (knn_graph_to_bytes(g, &again, &len, eb, ERR) == 0) {
        knn_graph *h = NULL;
        if (knn_graph_from_bytes(again, len, &h, eb, ERR) != 0) abort(); /* our own bytes must load */
        knn_graph_destroy(h);
        knn_bytes_free(again);
    }
    if (knn_graph_count(g) <= 2000) {
        int64_t id = 123456789;
        q[dim - 1] = 0.5f;
        knn_graph_add_rows(g, q, &id, NULL, 1, 1, eb, ERR);
        size_t removed;
        int64_t gone[2] = {id, 0};
        knn_graph_remove(g, gone, 2, &removed, eb, ERR);
        knn_graph_rebuild(g, 1, eb, ERR);
        knn_graph_query(g, q, 1, 8, 0, 1, ids, ds, found, eb, ERR);
    }
    free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int patch = data[0] & 1;
    size_t len = size - 1;
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL) return 0;
    memcpy(buf, data + 1, len);
    if (patch && len >= 8) patch_checksum(buf, len);
    knn_graph *g = NULL;
    char eb[ERR];
    if (knn_graph_from_bytes(buf, len, &g, eb, ERR) == 0) {
        exercise(g);
        knn_graph_destroy(g);
    } else if (g != NULL || eb[0] == '\0') {
        abort(); /* a failed load must return no index and a message */
    }
    free(buf);
    return 0;
}
