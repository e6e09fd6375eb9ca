"""Quality of the samplers (numpy API) against references: brute force, scikit-learn, closed forms,
goodpoints (when installed), and statistical tests over seeds."""

import itertools

import numpy as np
import pytest
from scipy import stats

from knnsql import KnnError
from knnsql import sampling as ks


def blobs(rng, n, d, k, spread=0.3, sizes=None):
    centers = rng.normal(scale=3.0, size=(k, d))
    if sizes is None:
        labels = rng.integers(0, k, size=n)
    else:
        labels = np.repeat(np.arange(k), sizes)
    X = centers[labels] + rng.normal(scale=spread, size=(len(labels), d))
    return X.astype(np.float32), labels


def cost(X, C):
    X = np.asarray(X, dtype=np.float64)
    C = np.asarray(C, dtype=np.float64)
    d2 = (X * X).sum(1)[:, None] + (C * C).sum(1)[None] - 2 * X @ C.T
    return np.maximum(d2, 0).min(1)


def numpy_fps(X, n, first):
    X = np.asarray(X, dtype=np.float64)
    picks = [first]
    d = ((X - X[first]) ** 2).sum(1)
    radii = []
    for _ in range(n - 1):
        i = int(np.argmax(d))
        picks.append(i)
        d = np.minimum(d, ((X - X[i]) ** 2).sum(1))
        radii.append(np.sqrt(d.max()))
    return picks


# ---- k-center -------------------------------------------------------------------------------------

def test_kcenter_matches_numpy_fps(rng):
    X = rng.normal(size=(3000, 12)).astype(np.float32)
    r = ks.kcenter(X, 60, seed=5)
    assert list(r.index) == numpy_fps(X, 60, int(r.index[0]))
    # score is the covering radius after each pick: non-increasing and equal to the true radius
    assert np.all(np.diff(r.score) <= 1e-6)
    true_radius = np.sqrt(cost(X, X[r.index]).max())
    assert r.score[-1] == pytest.approx(true_radius, rel=1e-4)
    assert r.weight.sum() == pytest.approx(len(X))


def _screen_cases(rng):
    """Data for the 8-bit screen (d >= 8): an odd dimension (a padding code), pixels on the 0..255 grid
    (coded exactly), one dimension with a 1000x larger range (coarse codes for the others) and many
    duplicate rows (ties at distance 0)."""
    gauss = rng.normal(size=(2500, 33)).astype(np.float32)
    pixels = rng.integers(0, 256, size=(2000, 20)).astype(np.float32)
    skewed = rng.normal(size=(2000, 10)).astype(np.float32)
    skewed[:, 3] *= 1000
    dups = np.repeat(rng.normal(size=(300, 9)).astype(np.float32), 4, axis=0)
    return {"gauss": gauss, "pixels": pixels, "skewed": skewed, "dups": dups}


@pytest.mark.parametrize("case", ["gauss", "pixels", "skewed", "dups"])
def test_kcenter_screen_keeps_plain_fps_picks(isa, case):
    X = _screen_cases(np.random.default_rng(77))[case]
    r = ks.kcenter(X, 80, seed=3)
    assert list(r.index) == numpy_fps(X, 80, int(r.index[0]))
    # lazily refreshed blocks end as eager ones: radius after each pick, and the rows each pick covers
    D = ((X.astype(np.float64)[:, None, :] - X[r.index].astype(np.float64)[None]) ** 2).sum(-1)
    radii = np.sqrt([np.min(D[:, :j + 1], 1).max() for j in range(80)])
    assert np.allclose(r.score, radii, rtol=1e-4, atol=1e-5)
    owner = np.argmin(D, 1)
    assert np.array_equal(r.weight, np.bincount(owner, minlength=80).astype(float))


@pytest.mark.parametrize("instance", range(5))
def test_kcenter_radius_within_twice_bruteforce_optimum(instance):
    rng = np.random.default_rng(100 + instance)
    X = rng.normal(size=(14, 2)).astype(np.float32)
    k = 3
    D = np.sqrt(((X[:, None, :].astype(np.float64) - X[None]) ** 2).sum(-1))
    best = min(D[:, list(c)].min(1).max() for c in itertools.combinations(range(len(X)), k))
    for seed in range(5):
        r = ks.kcenter(X, k, seed=seed)
        assert r.cost <= 2 * best + 1e-6


def test_kcenter_start_rows_are_picked_first_and_not_returned(rng):
    X = rng.normal(size=(500, 4)).astype(np.float32)
    r = ks.kcenter(X, 5, start=[10, 20])
    assert 10 not in r.index and 20 not in r.index
    ref = numpy_fps(np.vstack([X]), 7, 10)  # FPS from {10}: second pick is the farthest from 10
    d = np.minimum(((X - X[10]) ** 2).sum(1), ((X - X[20]) ** 2).sum(1))
    assert r.index[0] == int(np.argmax(d))
    assert ref[0] == 10


def test_kcenter_n_larger_than_rows_returns_every_row(rng):
    X = rng.normal(size=(30, 3)).astype(np.float32)
    r = ks.kcenter(X, 100)
    assert sorted(r.index) == list(range(30))
    assert r.cost == 0


def test_kcenter_cosine_equals_l2_on_normalised_rows(rng):
    X = rng.normal(size=(400, 6)).astype(np.float32)
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    assert list(ks.kcenter(X, 20, seed=1, metric="cosine").index) == list(ks.kcenter(U, 20, seed=1).index)


# ---- k-means++ and k-means ------------------------------------------------------------------------

def test_kmeanspp_cost_distribution_matches_sklearn():
    from sklearn.cluster import kmeans_plusplus

    X, _ = blobs(np.random.default_rng(7), 3000, 6, 12, spread=1.0)
    ours = [ks.kmeanspp(X, 12, seed=s).cost for s in range(60)]
    ref = [cost(X, kmeans_plusplus(X, 12, random_state=s)[0]).sum() for s in range(60)]
    assert stats.ks_2samp(ours, ref).pvalue > 0.01
    assert np.median(ours) == pytest.approx(np.median(ref), rel=0.1)


def test_kmeanspp_d2_and_rejection_follow_the_same_distribution():
    X, _ = blobs(np.random.default_rng(8), 3000, 6, 12, spread=1.0)
    d2 = [ks.kmeanspp(X, 12, seed=s, variant="d2").cost for s in range(60)]
    rej = [ks.kmeanspp(X, 12, seed=s, variant="rejection").cost for s in range(60)]
    greedy = [ks.kmeanspp(X, 12, seed=s, variant="greedy").cost for s in range(60)]
    assert stats.ks_2samp(d2, rej).pvalue > 0.01
    # greedy local trials lower the cost (the reason scikit-learn uses them)
    assert np.mean(greedy) < np.mean(d2)
    # the reported cost is the true potential of the picks
    r = ks.kmeanspp(X, 12, seed=3, variant="rejection")
    assert r.cost == pytest.approx(cost(X, X[r.index]).sum(), rel=1e-4)
    r = ks.kmeanspp(X, 12, seed=3, variant="d2")
    assert r.cost == pytest.approx(cost(X, X[r.index]).sum(), rel=1e-4)
    assert np.array_equal(r.assign, np.argmin(np.stack([((X - X[i]) ** 2).sum(1) for i in r.index], 1), 1))


def test_kmeans_cost_within_one_percent_of_sklearn_at_equal_iterations():
    from sklearn.cluster import KMeans

    X, _ = blobs(np.random.default_rng(9), 4000, 8, 20, spread=1.5)
    ours = np.mean([ks.kmeans(X, 20, iters=10, seed=s).cost for s in range(5)])
    ref = np.mean([KMeans(20, n_init=1, max_iter=10, tol=0, random_state=s, algorithm="lloyd").fit(X).inertia_
                   for s in range(5)])
    assert ours <= ref * 1.01


def test_kmeans_centroids_are_means_of_their_clusters(rng):
    X, _ = blobs(rng, 2000, 5, 8)
    r = ks.kmeans(X, 8, iters=50, seed=1)
    a, d2, c = ks.assign(X, r.centroids)
    assert np.array_equal(a, r.assign)
    assert c == pytest.approx(r.cost, rel=1e-5)
    for j in range(8):
        assert np.allclose(X[a == j].mean(0), r.centroids[j], atol=1e-3)
    # picks are the rows nearest each centroid, weighted by cluster size
    assert r.weight.sum() == len(X)
    for i, j in zip(r.index, r.cluster):
        assert a[i] == j and d2[i] == pytest.approx(d2[a == j].min())


# ---- coresets and curation ------------------------------------------------------------------------

def test_sensitivity_coreset_weighted_cost_within_ten_percent():
    rng = np.random.default_rng(11)
    X, _ = blobs(rng, 6000, 8, 10, spread=1.0)
    full = ks.kmeans(X, 10, iters=20, seed=0)
    others = [X[rng.choice(len(X), 10, replace=False)] for _ in range(3)]
    for seed in range(3):
        r = ks.sensitivity(X, 600, k=10, seed=seed)
        assert r.weight.sum() == pytest.approx(len(X), rel=0.1)
        for C in [full.centroids] + others:
            true = cost(X, C).sum()
            est = (r.weight * cost(X[r.index], C)).sum()
            assert abs(est / true - 1) < 0.10


def test_balanced_histogram_flatter_than_uniform():
    rng = np.random.default_rng(12)
    sizes = [3000, 1000, 300, 100, 60]
    X, labels = blobs(rng, None, 6, 5, spread=0.2, sizes=sizes)
    r = ks.balanced(X, 200, levels=[5], seed=1)
    hist = np.bincount(labels[r.index], minlength=5)
    uni = np.bincount(labels[rng.choice(len(X), 200, replace=False)], minlength=5)
    assert hist.min() >= 35 and hist.max() <= 45
    assert hist.std() < uni.std()
    assert len(set(r.index)) == 200
    # weights undo the balancing: they sum to the row count
    assert r.weight.sum() == pytest.approx(len(X))


def test_balanced_two_levels_and_closest(rng):
    X, labels = blobs(rng, 3000, 4, 12, spread=0.3)
    r = ks.balanced(X, 120, levels=(24, 4), pick="closest", seed=2)
    assert len(r.index) == 120 and len(set(r.index)) == 120


def test_balanced_levels_parse_safely_in_two_threads_at_once(rng):
    """Options are parsed by a reentrant tokenizer: the 'levels' list once went through strtok, whose
    hidden state two threads sampling at once overwrote (wrong levels, wrong picks)."""
    import threading

    X, _ = blobs(rng, 600, 4, 6, spread=0.3)
    jobs = [((30, 6), 1), ((20, 5, 2), 2), ((40, 8), 3), ((12, 3), 4)]
    want = {lv: ks.balanced(X, 60, levels=lv, seed=s).index.tolist() for lv, s in jobs}
    bad = []

    def run(lv, s):
        for _ in range(40):
            got = ks.balanced(X, 60, levels=lv, seed=s).index.tolist()
            if got != want[lv]:
                bad.append(lv)

    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


# ---- kernel thinning ------------------------------------------------------------------------------

def gauss(A, B, sigma):
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    d2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None] - 2 * A @ B.T
    return np.exp(-np.maximum(d2, 0) / (2 * sigma**2))


def mmd2_fn(X, sigma):
    """MMD^2 between the rows of X and a subset, with the X-X term computed once."""
    xx = gauss(X, X, sigma).mean()
    return lambda S: xx + gauss(S, S, sigma).mean() - 2 * gauss(X, S, sigma).mean()


@pytest.mark.parametrize("g", [4, None])
def test_kernel_thinning_mmd_below_uniform(g):
    rng = np.random.default_rng(13)
    X = rng.normal(size=(2048, 2)).astype(np.float32)
    n = 45
    mmd2 = mmd2_fn(X, 1.0)
    kt = [mmd2(X[ks.kernel_thinning(X, n, g=g, seed=s, bandwidth=1.0).index]) for s in range(3)]
    uni = [mmd2(X[rng.choice(len(X), n, replace=False)]) for _ in range(20)]
    assert np.median(kt) < 0.25 * np.median(uni)
    r = ks.kernel_thinning(X, n, seed=0, bandwidth=1.0)
    assert len(set(r.index)) == n and r.bandwidth == 1.0
    assert np.allclose(r.weight, len(X) / n)


def test_kernel_thinning_close_to_goodpoints():
    compress = pytest.importorskip("goodpoints.compress")
    rng = np.random.default_rng(14)
    X = rng.normal(size=(1024, 2))
    sigma = 1.0
    mmd2 = mmd2_fn(X, sigma)
    ours = [mmd2(X[ks.kernel_thinning(X, 32, g=4, bandwidth=sigma, seed=s).index]) for s in range(3)]
    ref = [mmd2(X[compress.compresspp_kt(X, b"gaussian", k_params=np.array([2 * sigma**2]), g=4, seed=s)])
           for s in range(3)]
    assert np.median(ours) < 1.25 * np.median(ref)


def test_kernel_thinning_median_heuristic(rng):
    X = rng.normal(size=(1000, 3)).astype(np.float32)
    r = ks.kernel_thinning(X, 30, seed=0)
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    med = np.median(D[np.triu_indices(len(X), 1)])
    assert r.bandwidth == pytest.approx(med, rel=0.1)


# ---- k-DPP ----------------------------------------------------------------------------------------

def logdet(F, idx):
    F = np.asarray(F, dtype=np.float64)[idx]
    sign, val = np.linalg.slogdet(F @ F.T)
    return val if sign > 0 else -np.inf


def test_dpp_logdet_above_uniform():
    rng = np.random.default_rng(15)
    X, _ = blobs(rng, 2000, 10, 4, spread=0.5, sizes=[1700, 200, 70, 30])
    k = 8
    ours = []
    for s in range(10):
        r = ks.dpp(X, k, seed=s)
        assert len(set(r.index)) == k
        assert r.cost == pytest.approx(logdet(X, r.index), abs=1e-3)
        ours.append(r.cost)
    uni = [logdet(X, rng.choice(len(X), k, replace=False)) for _ in range(50)]
    assert np.median(ours) > np.median(uni)


def test_dpp_rbf_and_rank_limit(rng):
    X = rng.normal(size=(600, 3)).astype(np.float32)
    r = ks.dpp(X, 20, kernel="rbf", seed=1)
    assert len(set(r.index)) == 20 and r.bandwidth > 0
    # a linear kernel on 3-d rows has rank 3: asking for more returns 3
    assert len(ks.dpp(X, 10, kernel="linear").index) == 3


# ---- weighted sampling ----------------------------------------------------------------------------

def test_weighted_with_replacement_frequencies_chi_square():
    w = np.array([1, 2, 3, 4, 10, 0, 5], dtype=np.float64)
    r = ks.weighted(w, 20000, seed=3, replace=True)
    counts = np.bincount(r.index, minlength=len(w))
    assert counts[5] == 0
    p = w / w.sum()
    keep = p > 0
    assert stats.chisquare(counts[keep], 20000 * p[keep]).pvalue > 0.001
    # Hansen-Hurwitz weights: sum(weight * f) estimates the column total of f
    f = np.arange(len(w), dtype=np.float64) + 1
    assert (r.weight * f[r.index]).sum() == pytest.approx((f * (w > 0)).sum(), rel=0.05)


def test_weighted_without_replacement_inclusion_matches_successive_sampling():
    w = np.array([1.0, 2.0, 3.0, 6.0, 8.0])
    p = w / w.sum()
    trials = 3000
    first = np.zeros(5)
    incl = np.zeros(5)
    for s in range(trials):
        idx = ks.weighted(w, 2, seed=s).index
        assert len(set(idx)) == 2
        first[idx[0]] += 1
        incl[idx] += 1
    assert stats.chisquare(first, trials * p).pvalue > 0.001
    # P(i among the first two) = p_i + sum_{j != i} p_j p_i / (1 - p_j)
    pi2 = np.array([p[i] + sum(p[j] * p[i] / (1 - p[j]) for j in range(5) if j != i) for i in range(5)])
    assert np.allclose(incl / trials, pi2, atol=0.03)


def test_weighted_n_above_positive_rows_returns_them_all():
    r = ks.weighted([0.0, 1.0, 2.0, 0.0], 10)
    assert sorted(r.index) == [1, 2]


# ---- determinism ----------------------------------------------------------------------------------

CASES = [("kcenter", {}), ("kmeans++", {"variant": "greedy"}), ("kmeans++", {"variant": "rejection"}),
         ("kmeans", {"iters": 5}), ("sensitivity", {}), ("balanced", {}), ("kernel_thinning", {}), ("dpp", {})]


@pytest.mark.parametrize("method,opts", CASES, ids=[f"{m}-{o}" for m, o in CASES])
def test_same_seed_same_output_any_thread_count(method, opts):
    X, _ = blobs(np.random.default_rng(16), 3000, 8, 6)
    a = ks.run(X, 40, method, seed=9, threads=1, **opts)
    b = ks.run(X, 40, method, seed=9, threads=4, **opts)
    c = ks.run(X, 40, method, seed=9, threads=2, **opts)
    assert np.array_equal(a.index, b.index) and np.array_equal(a.index, c.index)
    assert np.array_equal(a.weight, b.weight)
    d = ks.run(X, 40, method, seed=10, **opts)
    assert not np.array_equal(a.index, d.index)


def test_kmeans_assignment_thread_independent():
    X, _ = blobs(np.random.default_rng(17), 5000, 16, 50)
    a1 = ks.kmeans(X, 50, iters=3, seed=1, threads=1)
    a3 = ks.kmeans(X, 50, iters=3, seed=1, threads=3)
    assert np.array_equal(a1.centroids, a3.centroids) and a1.cost == a3.cost


# ---- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("call,match", [
    (lambda X: ks.run(X, 0, "kcenter"), "n must be >= 1"),
    (lambda X: ks.run(X, -3, "kmeans"), "n must be >= 1"),
    (lambda X: ks.run(X, 5, "nope"), "unknown sampling method 'nope'"),
    (lambda X: ks.run(X, 5, "weighted"), "needs a weight per row"),
    (lambda X: ks.weighted([1.0, -1.0, 2.0], 1), "weight of row 1 is -1"),
    (lambda X: ks.weighted([1.0, np.nan], 1), "weights must be finite"),
    (lambda X: ks.weighted([0.0, 0.0], 1), "every weight is 0"),
    (lambda X: ks.run(X, 5, "kmeans", iters=0), "option 'iters' must be an integer between 1"),
    (lambda X: ks.run(X, 5, "kcenter", iters=3), "method 'kcenter' has no option 'iters'"),
    (lambda X: ks.run(X, 5, "kmeans++", variant="fast"), "option 'variant' must be"),
    (lambda X: ks.run(X, 5, "kcenter", metric="ip"), "option 'metric' must be 'l2' or 'cosine'"),
    (lambda X: ks.run(X, 5, "kmeans", start=[1]), "only used by method 'kcenter'"),
    (lambda X: ks.kcenter(X, 5, start=[1000]), "starting row 1000 is outside"),
    (lambda X: ks.run(np.where(np.arange(40).reshape(10, 4) == 7, np.nan, X), 2, "kcenter"), "row 1 has a NaN"),
    (lambda X: ks.kcenter(np.zeros((3, 2)), 2, metric="cosine"), "zero vector"),
    (lambda X: ks.run(X, 2, "kernel_thinning", bandwidth=-1), "option 'bandwidth' must be a positive number"),
    (lambda X: ks.assign(X, np.zeros((2, 3))), "dimension mismatch"),
])
def test_bad_input_errors(call, match):
    X = np.arange(40, dtype=np.float32).reshape(10, 4)
    with pytest.raises(KnnError, match=match):
        call(X)


# ---- exact distributions on small inputs (tests with power against broken variants) ----------------

def test_rejection_kmeanspp_second_pick_follows_d2_exactly():
    """RS-k-means++ draws the second center with probability D^2(x, c1) / sum D^2: checked by a chi-square
    test over 4,000 seeds on 12 points, per first center. A sampler accepting too often (4x: the
    acceptance bound broken) or too rarely drifts toward its proposal and fails."""
    X = np.array([[0.0], [0.3], [0.5], [1.0], [1.2], [2.0], [2.1], [3.5], [4.0], [6.0], [7.5], [9.0]], np.float32)
    picks: dict = {}
    for seed in range(4000):
        r = ks.kmeanspp(X, 2, seed=seed, variant="rejection", trials=100000, assign=False)
        picks.setdefault(int(r.index[0]), []).append(int(r.index[1]))
    pvals = []
    for first, seconds in picks.items():
        if len(seconds) < 200:
            continue
        d2 = (X[:, 0].astype(np.float64) - float(X[first, 0])) ** 2
        seen = np.bincount(seconds, minlength=len(X))
        keep = d2 > 0
        expect = d2[keep] / d2[keep].sum() * seen[keep].sum()
        assert seen[~keep].sum() == 0  # the first center is never drawn again
        pvals.append(stats.chisquare(seen[keep], expect).pvalue)
    assert len(pvals) >= 5
    assert min(pvals) > 1e-4, pvals  # Bonferroni-safe over the first centers


def test_sensitivity_probabilities_follow_cost_over_phi():
    """With k = 1 the sensitivity of row i is ||x_i - mean||^2 / Phi + 1/n: the 5% of rows far from the
    mean hold most of the mass, so they are drawn far more often than 5% (uniform draws would not)."""
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(0, 0.1, (950, 2)), rng.normal(0, 0.1, (50, 2)) + 8.0]).astype(np.float32)
    far = np.arange(950, 1000)
    share = []
    for seed in range(20):
        r = ks.sensitivity(X, 40, k=1, seed=seed)
        share.append(np.isin(r.index, far).mean())
    c = X.astype(np.float64).mean(0)
    cost = ((X - c) ** 2).sum(1)
    p = cost / cost.sum() + 1.0 / len(X)
    p /= p.sum()
    assert np.mean(share) > 0.3  # distinct picks: the far rows hold ~95% of the mass (uniform: 5%)
    # and each picked row's score is its probability
    r = ks.sensitivity(X, 40, k=1, seed=0)
    np.testing.assert_allclose(r.score, p[r.index], rtol=2e-3)


def _kdpp_exact(X, k):
    import itertools

    L = X.astype(np.float64) @ X.astype(np.float64).T
    subsets = list(itertools.combinations(range(len(X)), k))
    w = np.array([np.linalg.det(L[np.ix_(s, s)]) for s in subsets])
    return subsets, w / w.sum()


def _kdpp_fit_pvalue(X, k, draws=3000):
    """Chi-square p-value of the subsets ks.dpp draws (one seed each) against the exact k-DPP."""
    subsets, prob = _kdpp_exact(X, k)
    index = {s: i for i, s in enumerate(subsets)}
    seen = np.zeros(len(subsets))
    for seed in range(draws):
        seen[index[tuple(sorted(int(i) for i in ks.dpp(X, k, seed=seed).index))]] += 1
    return stats.chisquare(seen, prob * seen.sum()).pvalue


def test_kdpp_linear_kernel_matches_exact_subset_probabilities():
    """P(S) = det(L_S) / e_k(L) for |S| = k, L = X X^T: enumerated on 7 rows, k = 2, against 3,000 draws.
    Choosing eigenvectors by rounding (not sampling) or skipping their normalisation fails it."""
    X = np.random.default_rng(8).normal(size=(7, 3)).astype(np.float32)
    assert _kdpp_fit_pvalue(X, 2) > 1e-4


def test_kcenter_ties_go_to_the_lowest_row_across_blocks():
    """Two rows equally far from the first center, in different 64-row blocks: the lower row wins."""
    X = np.zeros((200, 2), np.float32)
    X[:, 1] = np.linspace(-1, 1, 200) * 0.01  # a tight blob around the origin
    X[100] = [0.0, 0.0]  # the given first center, exactly between them
    X[10] = [5.0, 0.0]
    X[150] = [-5.0, 0.0]
    r = ks.kcenter(X, 2, start=[100])
    assert list(r.index) == [10, 150]


def test_kdpp_with_more_features_than_rows_matches_exact_probabilities():
    """Fewer rows than features (here 6 rows of dimension 10, linear kernel) runs on L's n x n
    eigendecomposition instead of the dual's: the subset frequencies still equal det(L_S) / e_k(L)."""
    X = np.random.default_rng(9).normal(size=(6, 10)).astype(np.float32)
    assert _kdpp_fit_pvalue(X, 2) > 1e-4


def test_kdpp_rbf_rank_limits():
    rng = np.random.default_rng(10)
    X = rng.normal(size=(50, 4)).astype(np.float32)
    r = ks.dpp(X, 10, kernel="rbf", rank=512, seed=1)  # 50 rows: an n x n problem, not 512 x 512
    assert len(set(r.index.tolist())) == 10
    with pytest.raises(KnnError, match="rank=2000 is over the limit of 1024"):
        ks.dpp(X, 10, kernel="rbf", rank=2000)
