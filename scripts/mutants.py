"""The mutants of scripts/mutate.py: one small change to one C file each, and the tests that should
notice it. `find` must occur exactly once in `file` (the harness reports a stale mutant otherwise).
`why` explains a mutant accepted as surviving (equivalent, or outside what tests can see)."""

WINDOW = ["tests/core/test_window.py", "tests/core/test_window_plans.py", "tests/core/test_window_buckets.py",
          "tests/core/test_window_adversarial.py", "tests/sql/test_sql_window.py"]
FILTER = ["tests/sql/test_sql_filter.py", "tests/python/test_python_filters.py", "tests/core/test_among.py"]
SAMPLING = ["tests/core/test_sampling.py", "tests/sql/test_sql_sample.py"]
ANALYTICS = ["tests/core/test_analytics.py", "tests/sql/test_sql_analytics.py"]
SEARCH = ["tests/core/test_index_graph.py", "tests/core/test_index_flat.py"]
DRIVER = ["driver"]  # tests/core/core_driver.c, built against the mutated core and run


def m(id, area, file, what, find, replace, tests, why=""):
    return {"id": id, "area": area, "file": file, "what": what, "find": find, "replace": replace,
            "tests": tests, "why": why}


W, F, S, A, G = "window", "filter", "sampling", "analytics", "search"
C = "ext/core/"

MUTANTS = [
    # ---- window bounds: every path that decides whether a label lies in [lo, hi] ----
    m("W1", W, C + "select/knn_selector.h", "selector drops rows whose label equals hi",
      "s->labels[row] <= s->hi", "s->labels[row] < s->hi", WINDOW),
    m("W2", W, C + "window/window_plan.c", "window size counts sorted labels < hi only",
      "size_t hi_pos = knn_graph_label_bound(g->win.labels, g->win.n, hi, 1);",
      "size_t hi_pos = knn_graph_label_bound(g->win.labels, g->win.n, hi, 0);", WINDOW),
    m("W3", W, C + "window/window_plan.c", "window size skips unsorted rows labelled lo",
      "w += l >= lo && l <= hi;", "w += l > lo && l <= hi;", WINDOW),
    m("W4", W, C + "window/window_buckets.c", "bucket part range ends before labels equal to hi",
      "*i1 = knn_graph_label_bound(h->labels, h->count, hi, 1);",
      "*i1 = knn_graph_label_bound(h->labels, h->count, hi, 0);", WINDOW),
    m("W5", W, C + "window/window_buckets.c", "bucket part range starts after labels equal to lo",
      "*i0 = knn_graph_label_bound(h->labels, h->count, lo, 0);",
      "*i0 = knn_graph_label_bound(h->labels, h->count, lo, 1);", WINDOW),
    m("W6", W, C + "window/window_buckets.c", "buckets starting exactly at hi are not touched",
      "while (e < lv->nb && lv->first[e] <= hi) e++;", "while (e < lv->nb && lv->first[e] < hi) e++;", WINDOW),
    m("W7", W, C + "graph/graph_labels.c", "the strict label bound is not strict",
      "if (strict ? a[mid] <= x : a[mid] < x) {", "if (strict ? a[mid] < x : a[mid] < x) {", WINDOW),
    m("W8", W, C + "filter/filter_predicate.c", "a filter with a window drops rows labelled hi",
      "if (!(g->labels[v] >= lo && g->labels[v] <= hi))", "if (!(g->labels[v] >= lo && g->labels[v] < hi))",
      FILTER),
    # ---- filters: predicate semantics, sorted orders, plans, the k-rows guarantee ----
    m("F1", F, C + "filter/filter_plan.c", "the exact / beam switch moves from m^2 = d0 n to m = d0 n",
      "(double)a->m * (double)a->m >= d0 * (double)live", "(double)a->m >= d0 * (double)live", FILTER),
    m("F2", F, C + "filter/filter_plan.c", "a beam with fewer than min(k, m) rows is kept (no hand-over)",
      "if ((budget && visits > budget) || ntop < want) return 0;", "if (budget && visits > budget) return 0;",
      FILTER, why="accepted: a safety net for matching rows the beam cannot reach from the entry point; the "
      "beam walks on until ef matching rows or no candidate is left, and no connected test graph leaves "
      "reachable rows unfound (tests/core/test_among.py checks k rows on adversarial filters)"),
    m("F3", F, C + "attrs/predicate_order.c", "the sorted order answers < as <=",
      "case OP_LT: s->lo = 0; s->hi = knn_attr_order_first(c, at_least, at); return 1;",
      "case OP_LT: s->lo = 0; s->hi = knn_attr_order_first(c, above, at); return 1;", FILTER + DRIVER),
    m("F4", F, C + "attrs/predicate_order.c", "rows appended after the sorted order was built are lost",
      "        match[w] |= t;\n", "        match[w] |= t & 0;\n", FILTER + DRIVER),
    m("F5", F, C + "attrs/attr_order.c", "negative doubles sort as if positive",
      "return (b >> 63) ? ~b : b | ((uint64_t)1 << 63);", "return b | ((uint64_t)1 << 63);", FILTER + DRIVER),
    m("F6", F, C + "attrs/predicate_eval.c", "<= with a NaN literal excludes NaN rows",
      "case OP_LE: SCAN(!d_lt(v, x[b])); break;", "case OP_LE: SCAN(d_lt(x[b], v)); break;", FILTER + DRIVER,
      why="equivalent from SQL: the branch runs only for a NaN literal, which the filter grammar cannot "
      "write (numbers are digits, casts are refused); kept for callers of the C API"),
    m("F7", F, C + "filter/filter_plan.c", "deleted rows stay in the filter bitmap",
      "if (v >= g->count || g->deleted[v]) bits &= ~((uint64_t)1 << (v % 64));",
      "if (v >= g->count) bits &= ~((uint64_t)1 << (v % 64));", FILTER),
    m("F8", F, C + "attrs/predicate_order.c", "the sorted order answers = as >=",
      "        s->hi = knn_attr_order_first(c, above, at);\n        return 1;",
      "        s->hi = c->norder;\n        return 1;", FILTER + DRIVER),
    # ---- sampling ----
    m("S1", S, C + "sample/kmeans.c", "k-means++ rejection accepts 4x too often",
      "double denom = 2.0 * (s[cand] + sc1);", "double denom = 0.5 * (s[cand] + sc1);", SAMPLING),
    m("S2", S, C + "sample/coreset.c", "sensitivity without its cost term",
      "if (phi > 0) si += fit.dist2[i] / phi;", "if (phi < 0) si += fit.dist2[i] / phi;", SAMPLING),
    m("S3", S, C + "sample/coreset.c", "coreset weights not inverse to the draw probability",
      "wsum[i] += 1.0 / (m * p[i]);", "wsum[i] += 1.0 / m;", SAMPLING),
    m("S4", S, C + "sample/kernel_thinning.c", "kernel halving by a fair coin instead of the Hilbert walk",
      "double sign = knn_rng_uniform(rng) < prob_a ? 1.0 : -1.0;",
      "double sign = knn_rng_uniform(rng) < 0.5 ? 1.0 : -1.0;", SAMPLING),
    m("S5", S, C + "sample/dpp.c", "k-DPP eigenvectors chosen by rounding, not sampled",
      "if ((long double)knn_rng_uniform(&rng) < pm) {", "if (0.5L < pm) {", SAMPLING),
    m("S6", S, C + "sample/dpp.c", "k-DPP eigenvectors not normalised",
      "double inv = 1.0 / sqrt(w[j]);", "double inv = 1.0;", SAMPLING),
    m("S7", S, C + "sample/weighted.c", "with-replacement weights ignore the draw probability",
      "r->weight[p] = total / ((double)in->target * w[i]);", "r->weight[p] = total / (double)in->target;",
      SAMPLING),
    m("S8", S, C + "sample/kcenter.c", "k-center's lazy heap breaks distance ties toward later blocks",
      "return x->key > y->key || (x->key == y->key && x->b < y->b);",
      "return x->key > y->key || (x->key == y->key && x->b > y->b);", SAMPLING),
    m("S11", S, C + "sample/kcenter.c", "the final covering radius breaks ties toward later blocks",
      "if (c->bmax[b] > best) {", "if (c->bmax[b] >= best) {", SAMPLING,
      why="equivalent: this scan only reports the final covering radius (r->cost), the same value whichever "
      "of two tied rows it stops at"),
    m("S9", S, C + "sample/rng.c", "weighted sampling without replacement ignores the weights",
      "        if (!(w[i] > 0)) continue;\n        keyed k = {log(u) / w[i], (int64_t)i};\n        if (size < m) {",
      "        if (!(w[i] > 0)) continue;\n        keyed k = {log(u), (int64_t)i};\n        if (size < m) {",
      SAMPLING),
    m("S10", S, C + "sample/rng.c", "weighted keys use w^2",
      "        if (!(w[i] > 0)) continue;\n        keyed k = {log(u) / w[i], (int64_t)i};\n        if (size < m) {",
      "        if (!(w[i] > 0)) continue;\n        keyed k = {log(u) / (w[i] * w[i]), (int64_t)i};\n        if (size < m) {",
      SAMPLING),
    # ---- analytics ----
    m("A1", A, C + "analytics/predict.c", "distance weights 1/d^2 instead of 1/d",
      "w[j] = zero ? (s == 0.0 ? 1.0 : 0.0) : 1.0 / s;", "w[j] = zero ? (s == 0.0 ? 1.0 : 0.0) : 1.0 / (s * s);",
      ANALYTICS),
    m("A2", A, C + "analytics/predict.c", "softmax multiplies by the temperature",
      "w[j] = exp(-((double)dist[j] - d0) / temperature);", "w[j] = exp(-((double)dist[j] - d0) * temperature);",
      ANALYTICS),
    m("A3", A, C + "analytics/predict.c", "uniform weights decay with rank",
      "for (size_t j = 0; j < k; j++) w[j] = 1.0;", "for (size_t j = 0; j < k; j++) w[j] = 1.0 / (double)(j + 1);",
      ANALYTICS),
    m("A4", A, C + "analytics/divergence.c", "KL estimator's bias term uses n, not n - 1",
      "*out = (double)d / (double)n * acc + log((double)m / (double)(n - 1));",
      "*out = (double)d / (double)n * acc + log((double)m / (double)n);", ANALYTICS),
    m("A5", A, C + "analytics/divergence.c", "LID with the log ratio inverted",
      "else s += log(rk / r);", "else s += log(r / rk);", ANALYTICS),
    m("A6", A, C + "analytics/divergence.c", "ratio estimator's denominator k + 1",
      "double R = eta * (double)np / (double)(k - np + 1);", "double R = eta * (double)np / (double)(k + 1);",
      ANALYTICS),
    m("A7", A, C + "analytics/genpr.c", "precision: a sample on the ball's edge is outside",
      "own += mindF[j] <= rF[j];", "own += mindF[j] < rF[j];", ANALYTICS),
    m("A8", A, C + "analytics/genpr.c", "recall: a sample on the ball's edge is outside",
      "cov += mindR[i] <= rR[i];", "cov += mindR[i] < rR[i];", ANALYTICS),
    m("A9", A, C + "analytics/recall.c", "recall counts ties at the k-th distance as misses",
      "for (size_t r = 0; r < found; r++) hits += dists[r] <= tol;",
      "for (size_t r = 0; r < found; r++) hits += dists[r] < tol;", ANALYTICS,
      why="equivalent in practice: tol is the k-th exact distance plus 1e-5 relative and 1e-6, so a "
      "returned distance equal to tol to the last bit does not occur; ties at the k-th distance are hits "
      "either way"),
    m("A10", A, C + "analytics/impute.c", "imputation averages with squared-inverse weights",
      "w = zero ? (sd == 0.0 ? 1.0 : 0.0) : 1.0 / sd;", "w = zero ? (sd == 0.0 ? 1.0 : 0.0) : 1.0 / (sd * sd);",
      ANALYTICS),
    m("A11", A, C + "analytics/iid.c", "drift test p-value counts only strictly larger statistics",
      "ge += ks_stat(hist, n, pairs) >= obs;", "ge += ks_stat(hist, n, pairs) > obs;", ANALYTICS,
      why=""),
    m("A12", A, C + "analytics/iid.c", "drift statistic's null CDF off by one",
      "double f = (2.0 * (double)n * (double)t - (double)t * (double)(t + 1)) / nn1;",
      "double f = (2.0 * (double)n * (double)t - (double)t * (double)(t - 1)) / nn1;", ANALYTICS),
    # ---- search ----
    m("G1", G, C + "graph/graph_search.c", "the beam never replaces a worse candidate once full",
      "if (*ntop < ef || d < bound) {", "if (*ntop < ef) {", SEARCH),
    m("G2", G, C + "graph/graph_search.c", "ef below k is not raised to k",
      "    if (ef < k) ef = k;\n", "    if (ef < k) ef = k / 2 + 1;\n", SEARCH),
    m("G3", G, C + "base/knn_topk.c", "ties broken by descending id",
      "return a->dist > b->dist || (a->dist == b->dist && a->id > b->id);",
      "return a->dist > b->dist || (a->dist == b->dist && a->id < b->id);", SEARCH + ["tests/sql/test_sql_exact.py"]),
]
