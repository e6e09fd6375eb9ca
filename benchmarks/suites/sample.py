"""Suite "sample": the samplers (numpy API over the C core) against their reference implementations.

Workloads (same machine, same run; medians over ``--repeats`` for knnsql, fewer runs for slow peers):

* **k-center, n picks** on every dataset: ``knnsql.sampling.kcenter`` against numpy farthest-point
  sampling, both a BLAS version (``||x||^2 - 2 X c``, one matvec per pick) and the textbook one
  (``((X - c)**2).sum(1)``, timed on a prefix of picks and scaled linearly). The covering radius of
  both is reported (they pick the same rows up to float rounding).
* **k-means++ (k centers)** on a GloVe slice: scikit-learn ``kmeans_plusplus`` (greedy, 2 + ln k local
  trials) against knnsql's ``greedy`` (the same algorithm), ``rejection`` (RS-k-means++) and
  ``rejection`` followed by one Lloyd step (``kmeans(iters=1)``). The cost (sum of squared distances to
  the nearest center, computed outside the timing) decides "equal cost".
* **k-means (Lloyd, 10 iterations)**: scikit-learn ``KMeans(n_init=1, tol=0, algorithm='lloyd')``
  against ``knnsql.sampling.kmeans`` at the same iteration count.
* **Kernel thinning of 2^m points** (GloVe rows, Gaussian kernel, median-heuristic sigma from knnsql,
  passed to both): goodpoints ``compress.compresspp_kt(g=4)`` against knnsql ``kernel_thinning(g=4)``,
  both to sqrt(n) points; MMD^2 to the input is reported for both and for uniform subsamples.
  MMD^2 = E k(X,X) + E k(S,S) - 2 E k(X,S); the first term, common to all contenders, is estimated on
  16,384 random rows.
"""

from __future__ import annotations

import math
import time

import numpy as np

from _common import fmt, log, machine_markdown, md_table, median, settle

NAME = "sample"
SUMMARY = "samplers: k-center vs numpy FPS, k-means++/KMeans vs scikit-learn, kernel thinning vs goodpoints"
DEFAULT_DATASETS = ["glove", "fashion"]

FULL = dict(repeats=3, kcenter_n=1000, kpp_rows=100_000, kpp_k=1000, km_rows=100_000, km_rows_wide=10_000, km_k=100,
            km_iters=10,
            kt_log2=16, naive_picks=30)
QUICK = dict(repeats=2, kcenter_n=100, kpp_rows=20_000, kpp_k=100, km_rows=20_000, km_rows_wide=5_000, km_k=20,
             km_iters=5,
             kt_log2=12, naive_picks=10, rows=50_000)


def add_arguments(p) -> None:
    p.add_argument("--skip-sklearn-kpp", action="store_true", help="skip scikit-learn kmeans_plusplus (slowest peer)")
    p.add_argument("--parts", default="kcenter,kmeanspp,kt,kmeans",
                   help="comma-separated workloads to run (default: all): kcenter, kmeanspp, kt, kmeans")


def _time(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        settle(0.1)
    return median(times), times, out


def fps_blas(X, n, first):
    n2 = np.einsum("ij,ij->i", X, X)
    picks = [first]
    d = n2 - 2 * (X @ X[first]) + n2[first]
    d[first] = -1
    for _ in range(n - 1):
        i = int(np.argmax(d))
        picks.append(i)
        d = np.minimum(d, n2 - 2 * (X @ X[i]) + n2[i])
        d[i] = -1
    return picks


def fps_naive(X, n, first):
    picks = [first]
    d = ((X - X[first]) ** 2).sum(1)
    for _ in range(n - 1):
        i = int(np.argmax(d))
        picks.append(i)
        d = np.minimum(d, ((X - X[i]) ** 2).sum(1))
    return picks


def radius(X, idx):
    from knnsql import sampling as ks

    _, d2, _ = ks.assign(X, X[np.asarray(idx)])
    return float(np.sqrt(d2.max()))


def kcenter_bench(ds, cfg):
    from knnsql import sampling as ks

    X = ds.X
    n = cfg["kcenter_n"]
    t_ours, times, r = _time(lambda: ks.kcenter(X, n, seed=0), cfg["repeats"])
    t1, _, _ = _time(lambda: ks.kcenter(X, n, seed=0, threads=1), 1)
    first = int(r.index[0])
    t0 = time.perf_counter()
    ref = fps_blas(X, n, first)
    t_blas = time.perf_counter() - t0
    m = min(cfg["naive_picks"], n)
    t0 = time.perf_counter()
    fps_naive(X, m, first)
    t_naive = (time.perf_counter() - t0) * n / m
    same = float(np.mean(np.asarray(ref) == r.index))
    out = dict(rows=len(X), dim=X.shape[1], n=n, knnsql_s=t_ours, knnsql_times=times, knnsql_1thread_s=t1,
               numpy_blas_s=t_blas, numpy_naive_s=t_naive, naive_picks_timed=m,
               radius_knnsql=float(r.cost), radius_numpy=radius(X, ref), same_picks=same,
               speedup_vs_blas=t_blas / t_ours, speedup_vs_naive=t_naive / t_ours)
    log(f"  kcenter {ds.name}: knnsql {t_ours:.2f}s, numpy BLAS {t_blas:.2f}s ({out['speedup_vs_blas']:.1f}x), "
        f"naive {t_naive:.1f}s ({out['speedup_vs_naive']:.1f}x)")
    return out


def kpp_bench(ds, cfg, skip_sklearn):
    from knnsql import sampling as ks

    X = np.ascontiguousarray(ds.X[: cfg["kpp_rows"]])
    k = cfg["kpp_k"]
    res = dict(rows=len(X), dim=X.shape[1], k=k, contenders={})

    def cost_of(idx_or_C, centers=False):
        C = idx_or_C if centers else X[np.asarray(idx_or_C)]
        return ks.assign(X, C)[2]

    t, times, r = _time(lambda: ks.kmeanspp(X, k, seed=0, variant="rejection", assign=False), cfg["repeats"])
    res["contenders"]["knnsql rejection"] = dict(s=t, times=times, cost=cost_of(r.index))
    t, times, r = _time(lambda: ks.kmeans(X, k, iters=1, seed=0, variant="rejection"), cfg["repeats"])
    res["contenders"]["knnsql rejection + 1 Lloyd"] = dict(s=t, times=times, cost=r.cost)
    t, times, r = _time(lambda: ks.kmeanspp(X, k, seed=0, variant="greedy"), 1)
    res["contenders"]["knnsql greedy"] = dict(s=t, times=times, cost=r.cost)
    if not skip_sklearn:
        from sklearn.cluster import kmeans_plusplus

        t, times, (C, _) = _time(lambda: kmeans_plusplus(X, k, random_state=0), 1)
        res["contenders"]["sklearn kmeans_plusplus"] = dict(s=t, times=times, cost=cost_of(C, centers=True))
    for name, c in res["contenders"].items():
        log(f"  kmeans++ {ds.name}: {name}: {c['s']:.2f}s cost {c['cost']:.6g}")
    return res


def kmeans_bench(ds, cfg):
    from sklearn.cluster import KMeans

    from knnsql import sampling as ks

    rows = cfg["km_rows"] if ds.X.shape[1] <= 128 else cfg["km_rows_wide"]
    X = np.ascontiguousarray(ds.X[:rows])
    k, iters = cfg["km_k"], cfg["km_iters"]
    t_ours, times, r = _time(lambda: ks.kmeans(X, k, iters=iters, seed=0), cfg["repeats"])
    t_sk, times_sk, m = _time(lambda: KMeans(k, n_init=1, max_iter=iters, tol=0, random_state=0,
                                             algorithm="lloyd").fit(X), 1)
    out = dict(rows=len(X), dim=X.shape[1], k=k, iters=iters, knnsql_s=t_ours, knnsql_times=times, knnsql_cost=r.cost,
               sklearn_s=t_sk, sklearn_times=times_sk, sklearn_cost=float(m.inertia_),
               speedup=t_sk / t_ours, cost_ratio=r.cost / float(m.inertia_))
    log(f"  kmeans {ds.name}: knnsql {t_ours:.2f}s cost {r.cost:.6g}; sklearn {t_sk:.2f}s cost {m.inertia_:.6g}")
    return out


def _gauss_mean(A, B, sigma, chunk=4096):
    tot = 0.0
    bb = (B.astype(np.float64) ** 2).sum(1)
    for i in range(0, len(A), chunk):
        a = A[i:i + chunk].astype(np.float64)
        d2 = (a * a).sum(1)[:, None] + bb[None] - 2 * a @ B.T.astype(np.float64)
        tot += np.exp(-np.maximum(d2, 0) / (2 * sigma * sigma)).sum()
    return tot / (len(A) * len(B))


def kt_bench(ds, cfg):
    from knnsql import sampling as ks

    n = 1 << cfg["kt_log2"]
    X = np.ascontiguousarray(ds.X[:n])
    m = int(round(math.sqrt(n)))
    t_ours, times, r = _time(lambda: ks.kernel_thinning(X, m, seed=0, g=4), cfg["repeats"])
    sigma = r.bandwidth
    rng = np.random.default_rng(0)
    sub = X[rng.choice(n, min(n, 16384), replace=False)]
    kxx = _gauss_mean(sub, sub, sigma)

    def mmd2(idx):
        S = X[np.asarray(idx)]
        return kxx + _gauss_mean(S, S, sigma) - 2 * _gauss_mean(X, S, sigma)

    out = dict(rows=n, dim=X.shape[1], out=m, sigma=sigma, knnsql_s=t_ours, knnsql_times=times,
               knnsql_mmd2=mmd2(r.index))
    out["uniform_mmd2"] = median([mmd2(rng.choice(n, m, replace=False)) for _ in range(5)])
    try:
        from goodpoints import compress
    except ImportError:
        log("  goodpoints not installed: pip install goodpoints")
    else:
        Xd = X.astype(np.float64)
        t_gp, times_gp, idx = _time(lambda: compress.compresspp_kt(Xd, b"gaussian", k_params=np.array([2 * sigma**2]),
                                                                    g=4, seed=0), 1)
        out.update(goodpoints_s=t_gp, goodpoints_times=times_gp, goodpoints_mmd2=mmd2(idx), speedup=t_gp / t_ours)
    log(f"  kernel thinning {ds.name}: knnsql {t_ours:.2f}s mmd2 {out['knnsql_mmd2']:.3g}; goodpoints "
        f"{out.get('goodpoints_s', float('nan')):.2f}s mmd2 {out.get('goodpoints_mmd2', float('nan')):.3g}; "
        f"uniform mmd2 {out['uniform_mmd2']:.3g}")
    return out


def run(args) -> dict:
    import datasets

    cfg = dict(QUICK if args.quick else FULL)
    if args.repeats:
        cfg["repeats"] = args.repeats
    results = {"config": cfg, "datasets": {}}
    for name in args.datasets:
        try:
            ds = datasets.load(name, max_rows=cfg.get("rows"))
        except datasets.DatasetMissing as exc:
            if args.skip_missing:
                log(f"skipping {name}: {exc}")
                continue
            raise
        log(f"dataset {name}: {ds.X.shape[0]:,} x {ds.X.shape[1]}")
        parts = {p.strip() for p in args.parts.split(",")}
        unknown = parts - {"kcenter", "kmeanspp", "kt", "kmeans"}
        if unknown:
            raise SystemExit(f"--parts: unknown workload(s) {sorted(unknown)}; choose from kcenter, kmeanspp, kt, kmeans")
        entry = {"description": ds.description}
        if "kcenter" in parts:
            entry["kcenter"] = kcenter_bench(ds, cfg)
        if name == "glove" and "kmeanspp" in parts:
            entry["kmeanspp"] = kpp_bench(ds, cfg, args.skip_sklearn_kpp)
        if name == "glove" and "kt" in parts:
            entry["kernel_thinning"] = kt_bench(ds, cfg)
        if "kmeans" in parts:
            entry["kmeans"] = kmeans_bench(ds, cfg)
        results["datasets"][name] = entry
    return results


def to_markdown(doc) -> str:
    res = doc["results"]
    lines = [f"# Benchmark: sample{' (quick)' if doc['quick'] else ''}", "", f"`{doc['command']}`", "",
             machine_markdown(doc["machine"]), ""]
    rows = []
    for name, e in res["datasets"].items():
        if "kcenter" not in e:
            continue
        k = e["kcenter"]
        rows.append([name, f"{k['rows']:,} x {k['dim']}", k["n"], fmt(k["knnsql_s"]), fmt(k["knnsql_1thread_s"]),
                     fmt(k["numpy_blas_s"]), fmt(k["numpy_naive_s"]), f"{k['speedup_vs_blas']:.1f}x",
                     f"{k['speedup_vs_naive']:.1f}x", fmt(k["radius_knnsql"], 4), fmt(k["radius_numpy"], 4)])
    lines += ["## k-center (farthest-point sampling)", "",
              md_table(["dataset", "rows", "n", "knnsql s", "knnsql 1 thread s", "numpy BLAS FPS s",
                        "numpy naive FPS s (scaled)", "vs BLAS", "vs naive", "radius knnsql", "radius numpy"], rows),
              ""]
    for name, e in res["datasets"].items():
        if "kmeanspp" not in e:
            continue
        p = e["kmeanspp"]
        sk = p["contenders"].get("sklearn kmeans_plusplus")
        rows = []
        for cname, c in p["contenders"].items():
            rows.append([cname, fmt(c["s"]), fmt(c["cost"], 6),
                         f"{sk['s'] / c['s']:.1f}x" if sk else "-", f"{c['cost'] / sk['cost']:.3f}" if sk else "-"])
        lines += [f"## k-means++, k = {p['k']}, {name} first {p['rows']:,} rows", "",
                  md_table(["contender", "seconds", "cost", "speed vs sklearn", "cost / sklearn"], rows), ""]
    rows = []
    for name, e in res["datasets"].items():
        if "kmeans" not in e:
            continue
        m = e["kmeans"]
        rows.append([name, f"{m['rows']:,} x {m['dim']}", m["k"], m["iters"], fmt(m["knnsql_s"]), fmt(m["sklearn_s"]),
                     f"{m['speedup']:.1f}x", f"{m['cost_ratio']:.4f}"])
    lines += ["## k-means (Lloyd), equal iterations", "",
              md_table(["dataset", "rows", "k", "iters", "knnsql s", "sklearn s", "speedup", "cost knnsql / sklearn"],
                       rows), ""]
    for name, e in res["datasets"].items():
        if "kernel_thinning" not in e:
            continue
        t = e["kernel_thinning"]
        rows = [["knnsql kernel_thinning (g=4)", fmt(t["knnsql_s"]), fmt(t["knnsql_mmd2"], 4)]]
        if "goodpoints_s" in t:
            rows.append(["goodpoints compresspp_kt (g=4)", fmt(t["goodpoints_s"]), fmt(t["goodpoints_mmd2"], 4)])
        rows.append(["uniform subsample (median of 5)", "-", fmt(t["uniform_mmd2"], 4)])
        lines += [f"## Kernel thinning, {name} {t['rows']:,} x {t['dim']} -> {t['out']} (sigma {t['sigma']:.3f})", "",
                  md_table(["contender", "seconds", "MMD^2"], rows)]
        if "speedup" in t:
            lines += ["", f"knnsql is {t['speedup']:.1f}x faster than goodpoints; MMD^2 ratio knnsql / goodpoints "
                      f"{t['knnsql_mmd2'] / t['goodpoints_mmd2']:.3f}."]
        lines.append("")
    return "\n".join(lines)
