"""kNN analytics on numpy arrays, checked against references: scikit-learn, imbalanced-learn, closed forms."""

import numpy as np
import pytest

import knnsql
from knnsql import KnnError
from knnsql import analytics as A


def blobs(rng, n=600, d=6, classes=3):
    y = rng.integers(0, classes, n)
    centres = rng.normal(scale=2.0, size=(classes, d))
    X = (centres[y] + rng.normal(size=(n, d))).astype(np.float32)
    return X, y


# ---- neighbours -------------------------------------------------------------------------------------------

def test_neighbors_match_numpy_and_leave_self_out(rng):
    X = rng.normal(size=(300, 5)).astype(np.float32)
    ids, d = A.neighbors(X, None, 4)
    D = ((X[:, None, :].astype(np.float64) - X[None]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    ref = np.argsort(D, axis=1, kind="stable")[:, :4]
    assert (ids == ref).all()
    np.testing.assert_allclose(d, np.take_along_axis(D, ref, 1), rtol=1e-4)


def test_neighbors_same_at_any_thread_count(rng):
    X = rng.normal(size=(2000, 16)).astype(np.float32)
    a = A.neighbors(X, None, 7, threads=1)
    b = A.neighbors(X, None, 7, threads=2)
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all()


# ---- predict ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("weighting", ["uniform", "distance"])
def test_predict_classification_equals_sklearn(rng, weighting):
    from sklearn.neighbors import KNeighborsClassifier

    X, y = blobs(rng)
    Q = blobs(rng, 200)[0]
    r = A.predict(X, y, Q, 7, weighting=weighting)
    ref = KNeighborsClassifier(7, weights=weighting, algorithm="brute").fit(X, y)
    assert (r.labels == ref.predict(Q)).all()
    np.testing.assert_allclose(r.probs, ref.predict_proba(Q), atol=1e-6)
    np.testing.assert_allclose(r.prob, r.probs.max(1))


@pytest.mark.parametrize("weighting", ["uniform", "distance"])
def test_predict_regression_equals_sklearn(rng, weighting):
    from sklearn.neighbors import KNeighborsRegressor

    X = rng.normal(size=(500, 4)).astype(np.float32)
    y = X[:, 0] * 3.0 + np.sin(X[:, 1])
    Q = rng.normal(size=(100, 4)).astype(np.float32)
    r = A.predict(X, y.astype(np.float64), Q, 6, weighting=weighting)
    ref = KNeighborsRegressor(6, weights=weighting, algorithm="brute").fit(X, y).predict(Q)
    np.testing.assert_allclose(r.labels, ref, rtol=1e-5, atol=1e-5)
    assert r.prob is None


def test_predict_string_labels_and_softmax(rng):
    X, y = blobs(rng, 300)
    names = np.array(["cat", "dog", "eel"])[y]
    Q = X[:20] + 0.01
    T = 0.5
    r = A.predict(X, names, Q, 5, weighting="softmax", temperature=T)
    ids, d = A.neighbors(X, Q, 5)
    for q in range(20):
        w = np.exp(-(d[q] - d[q].min()) / T)
        votes = {c: w[names[ids[q]] == c].sum() for c in r.classes}
        best = max(sorted(votes), key=lambda c: votes[c])
        assert r.labels[q] == best
        assert r.prob[q] == pytest.approx(votes[best] / w.sum(), rel=1e-6)


def test_predict_softmax_low_temperature_is_1nn(rng):
    X, y = blobs(rng, 400)
    Q = blobs(rng, 50)[0]
    r = A.predict(X, y, Q, 10, weighting="softmax", temperature=1e-6)
    nn = A.neighbors(X, Q, 1)[0][:, 0]
    assert (r.labels == y[nn]).all()


def test_predict_adaptive_k_matches_reference(rng):
    X, y = blobs(rng, 300, classes=3)
    Q = blobs(rng, 40)[0]
    kmax, support = 9, 5
    r = A.predict(X, y, Q, kmax, adaptive=True, support=support)
    # reference: leave-one-out correctness of every training row for k = 1..kmax
    loo, _ = A.neighbors(X, None, kmax)
    right = np.zeros((len(X), kmax), bool)
    for i in range(len(X)):
        for k in range(1, kmax + 1):
            counts = np.bincount(y[loo[i, :k]], minlength=3)
            right[i, k - 1] = counts.argmax() == y[i]
    qn, _ = A.neighbors(X, Q, max(kmax, support))
    for q in range(len(Q)):
        score = right[qn[q, :support]].sum(0)
        k = int(score.argmax()) + 1
        assert r.k_used[q] == k
        counts = np.bincount(y[qn[q, :k]], minlength=3)
        assert r.labels[q] == counts.argmax()


def test_predict_with_graph_index_matches_exact(rng):
    X, y = blobs(rng, 2000, d=8)
    Q = blobs(rng, 200, d=8)[0]
    ix = knnsql.Index(8, kind="graph", ef=200)
    ix.add(X, np.arange(len(X)))
    exact = A.predict(X, y, Q, 5)
    approx = A.predict(X, y, Q, 5, index=ix, ef=200)
    assert (exact.labels == approx.labels).mean() >= 0.98


def unsettled_reference(y, nbr, dist, k, weighting, flips=A.REFINE_FLIPS):
    """knn_an_unsettled in numpy: could replacing `flips` of the k neighbours change the vote?"""
    out = []
    for q in range(len(nbr)):
        lab = y[nbr[q, :k]]
        if weighting == "uniform":
            w = np.ones(k)
        else:
            s = np.sqrt(dist[q, :k].astype(np.float64))
            w = np.where(s == 0, 1.0, 0.0) if (s == 0).any() else 1.0 / s
        votes = {c: w[lab == c].sum() for c in np.unique(lab)}
        best = max(sorted(votes), key=lambda c: votes[c])
        second = max([v for c, v in votes.items() if c != best], default=0.0)
        lost = np.sort(w[lab == best])[::-1][:flips].sum()
        out.append(votes[best] - lost <= second + flips * w.max())
    return np.array(out)


@pytest.mark.parametrize("weighting", ["uniform", "distance"])
def test_unsettled_votes_match_reference(rng, weighting):
    X, y = blobs(rng, 400, classes=4)
    Q = blobs(rng, 300, classes=4)[0]
    nbr, dist = A.neighbors(X, Q, 9)
    got = A._unsettled(nbr, dist, 7, y.astype(np.int32), 4, "l2", A._weighting(weighting), 1.0)
    ref = unsettled_reference(y, nbr, dist, 7, weighting)
    assert (got == ref).all() and 0 < got.sum() < len(got)
    if weighting == "uniform":  # the closed form: votes margin <= 2 * flips
        counts = np.stack([(y[nbr[:, :7]] == c).sum(1) for c in range(4)], 1)
        top2 = np.sort(counts, 1)[:, -2:]
        assert (got == (top2[:, 1] - top2[:, 0] <= 2 * A.REFINE_FLIPS)).all()


def weak_graph(rng, n=3000, d=16):
    """Four overlapping classes (many split votes) and a sparse graph searched with a narrow beam."""
    y = rng.integers(0, 4, n + 400)
    X = (rng.normal(scale=0.6, size=(4, d))[y] + rng.normal(size=(n + 400, d))).astype(np.float32)
    ix = knnsql.Index(d, kind="graph", m=4, ef_construction=16)
    ix.add(X[:n], np.arange(n), threads=1)  # one thread: the same graph every run
    return X[:n], y[:n], X[n:], ix


def test_refine_follows_the_cascade_and_reaches_sklearn(rng):
    from sklearn.neighbors import KNeighborsClassifier

    X, y, Q, ix = weak_graph(rng)
    sk = KNeighborsClassifier(5, algorithm="brute").fit(X, y).predict(Q)
    first = A.predict(X, y, Q, 5, index=ix, ef=5)
    r = A.predict(X, y, Q, 5, index=ix, ef=5, refine_ef=300)
    assert first.stage is None and r.stage.dtype == np.int8
    # the cascade, recomputed from the index's own answers
    n1, d1 = ix.search(Q, 5, ef=5)
    unsettled = unsettled_reference(y, n1, d1, 5, "uniform")
    assert ((r.stage > 0) == unsettled).all()
    n2, d2 = ix.search(Q, 5, ef=300)
    moved = d2[:, 4] < d1[:, 4]
    scanned = unsettled & moved & unsettled_reference(y, n2, d2, 5, "uniform")
    assert ((r.stage == 2) == scanned).all() and scanned.any() and (r.stage == 1).any()
    # settled votes keep the first beam's answer, the rest are at least as right as exact search's
    assert (r.labels[r.stage == 0] == first.labels[r.stage == 0]).all()
    assert (r.labels[r.stage == 2] == sk[r.stage == 2]).all()
    assert (r.labels == sk).mean() > (first.labels == sk).mean()
    assert (first.labels == sk).mean() < 0.85 and (r.labels == sk).mean() >= 0.96


def test_refine_regression_rescans_every_unconverged_query(rng):
    from sklearn.neighbors import KNeighborsRegressor

    X, y, Q, ix = weak_graph(rng)
    v = X[:, 0] * 2 + X[:, 1]
    r = A.predict(X, v, Q, 5, index=ix, ef=5, refine_ef=300)
    assert (r.stage >= 1).all() and (r.stage == 2).any()
    sk = KNeighborsRegressor(5, algorithm="brute").fit(X, v).predict(Q)
    np.testing.assert_allclose(r.labels[r.stage == 2], sk[r.stage == 2], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", ["l2", "cosine", "ip"])
def test_graph_exact_scan_equals_exact_neighbors(rng, metric):
    X = rng.normal(size=(700, 9)).astype(np.float32)
    Q = rng.normal(size=(40, 9)).astype(np.float32)
    ix = knnsql.Index(9, kind="graph", metric=metric, m=4, ef_construction=8)
    ix.add(X, np.arange(700))
    ix.delete(np.arange(0, 700, 7))  # tombstones are skipped
    live = np.setdiff1d(np.arange(700), np.arange(0, 700, 7))
    ids, d = A._index_exact(ix, Q, 6, threads=1)
    ids2, d2 = A._index_exact(ix, Q, 6, threads=2)
    assert (ids == ids2).all() and (d == d2).all()
    ref_pos, ref_d = A.neighbors(X[live], Q, 6, metric=metric)
    assert (ids == live[ref_pos]).all()
    np.testing.assert_allclose(d, ref_d, rtol=1e-4, atol=1e-4)
    bad = Q.copy()
    bad[3, 2] = np.inf
    with pytest.raises(KnnError, match="query 3 has a NaN or Inf at position 2"):
        A._index_exact(ix, bad, 6, threads=1)
    with pytest.raises(KnnError, match="k must be >= 1"):
        A._index_exact(ix, Q, 0, threads=1)
    if metric == "cosine":
        with pytest.raises(KnnError, match="query 0 is the zero vector"):
            A._index_exact(ix, np.zeros((1, 9), np.float32), 6, threads=1)


def test_refine_errors(rng):
    X, y = blobs(rng, 200)
    flat = knnsql.Index(X.shape[1])
    flat.add(X, np.arange(len(X)))
    graph = knnsql.Index(X.shape[1], kind="graph")
    graph.add(X, np.arange(len(X)))
    with pytest.raises(ValueError, match="refine_ef re-searches the queries of a graph index search"):
        A.predict(X, y, X[:3], 3, refine_ef=64)
    with pytest.raises(ValueError, match="kind='graph'"):
        A.predict(X, y, X[:3], 3, index=flat, refine_ef=64)
    with pytest.raises(ValueError, match="cannot be combined"):
        A.predict(X, y, X[:3], 3, index=graph, refine_ef=64, adaptive=True)
    with pytest.raises(ValueError, match="refine_ef must be >= 1"):
        A.predict(X, y, X[:3], 3, index=graph, refine_ef=0)
    with pytest.raises(KnnError, match="flips must be >= 1"):
        nbr, dist = A.neighbors(X, X[:3], 3)
        _ffi_call_unsettled(nbr, dist, y.astype(np.int32), flips=0)


def _ffi_call_unsettled(nbr, dist, codes, flips):
    from knnsql import _ffi
    out = np.empty(len(nbr), dtype=np.uint8)
    A._call(_ffi.lib().knn_an_unsettled, A._ptr("int64_t", nbr), A._ptr("float", dist), len(nbr), nbr.shape[1],
            nbr.shape[1], A._ptr("int32_t", codes), len(codes), int(codes.max()) + 1, b"l2", 0, 1.0, flips,
            A._ptr("uint8_t", out))


def test_predict_errors(rng):
    X, y = blobs(rng, 50)
    with pytest.raises(ValueError, match="larger than the 50 training rows"):
        A.predict(X, y, X[:3], 51)
    with pytest.raises(ValueError, match="dimension mismatch"):
        A.predict(X, y, X[:3, :2], 3)
    with pytest.raises(ValueError, match="one label per training row"):
        A.predict(X, y[:10], X[:3], 3)
    with pytest.raises(ValueError, match="missing"):
        A.predict(X, np.where(y == 0, np.nan, 1.0), X[:3], 3, task="classification")
    with pytest.raises(ValueError, match="is empty"):
        A.predict(X[:0], y[:0], X[:3], 1)
    with pytest.raises(ValueError, match="unknown weighting"):
        A.predict(X, y, X[:3], 3, weighting="gaussian")
    with pytest.raises(KnnError, match="temperature must be a positive number"):
        A.predict(X, y, X[:3], 3, weighting="softmax", temperature=0.0)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="row 3 has a NaN"):
        A.predict(bad, y, X[:3], 3)


# ---- impute ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("weighting", ["uniform", "distance"])
def test_impute_mean_equals_knnimputer(rng, weighting):
    from sklearn.impute import KNNImputer

    X = rng.normal(size=(800, 5)).astype(np.float32)
    y = X[:, 0] * 2 + X[:, 3] ** 2 + rng.normal(scale=0.1, size=800)
    y[rng.random(800) < 0.2] = np.nan
    r = A.impute(X, y, 5, weighting=weighting)
    ref = KNNImputer(n_neighbors=5, weights=weighting).fit_transform(np.column_stack([X.astype(np.float64), y]))[:, -1]
    np.testing.assert_allclose(r.filled(y), ref, rtol=1e-6, atol=1e-6)
    assert (r.rows == np.flatnonzero(np.isnan(y))).all()


def test_impute_draws_and_interval_come_from_neighbours(rng):
    X = rng.normal(size=(400, 3)).astype(np.float32)
    y = X[:, 0].astype(np.float64)
    y[::7] = np.nan
    r = A.impute(X, y, 6, draws=20, seed=3, interval=(0.1, 0.9))
    donors = np.flatnonzero(~np.isnan(y))
    ids, _ = A.neighbors(X[donors], X[r.rows], 6)
    vals = y[donors][ids]
    for q in range(len(r.rows)):
        assert set(r.draws[q]) <= set(vals[q])
        assert r.lo[q] == pytest.approx(np.quantile(vals[q], 0.1))
        assert r.hi[q] == pytest.approx(np.quantile(vals[q], 0.9))
    # draws are uniform over the k neighbours: every neighbour shows up across many draws
    many = A.impute(X, y, 6, draws=600, seed=4)
    assert all(len(set(many.draws[q])) == len(set(vals[q])) for q in range(5))
    again = A.impute(X, y, 6, draws=20, seed=3, interval=(0.1, 0.9))
    assert (again.draws == r.draws).all()
    assert not (A.impute(X, y, 6, draws=20, seed=5).draws == r.draws).all()


def test_impute_errors(rng):
    X = rng.normal(size=(20, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="no row has an observed value"):
        A.impute(X, np.full(20, np.nan), 3)
    y = np.full(20, np.nan)
    y[:3] = 1.0
    with pytest.raises(ValueError, match="larger than the 3 rows with an observed value"):
        A.impute(X, y, 4)
    with pytest.raises(KnnError, match="interval quantiles"):
        A.impute(X, y, 2, interval=(0.9, 0.1))


# ---- SMOTE -------------------------------------------------------------------------------------------------

def _on_knn_segments(Xmin, synth, k):
    """True for each synthetic point lying on a segment between a minority row and one of its k
    nearest minority neighbours."""
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k + 1).fit(Xmin)
    nbr = nn.kneighbors(Xmin, return_distance=False)[:, 1:]
    ok = []
    for s in synth.astype(np.float64):
        found = False
        for i in range(len(Xmin)):
            a = Xmin[i].astype(np.float64)
            for j in nbr[i]:
                b = Xmin[j].astype(np.float64)
                v = b - a
                t = np.dot(s - a, v) / np.dot(v, v)
                if -1e-6 <= t <= 1 + 1e-6 and np.linalg.norm(a + t * v - s) < 1e-4:
                    found = True
                    break
            if found:
                break
        ok.append(found)
    return np.array(ok)


def test_smote_points_on_minority_knn_segments_like_imblearn(rng):
    from imblearn.over_sampling import SMOTE

    Xmin = rng.normal(size=(40, 3)).astype(np.float32)
    Xmaj = (rng.normal(size=(200, 3)) + 4).astype(np.float32)
    r = A.smote(Xmin, 60, k=5, seed=1)
    assert r.vecs.shape == (60, 3)
    assert ((r.gap >= 0) & (r.gap < 1)).all()
    np.testing.assert_allclose(r.vecs, Xmin[r.parent] + r.gap[:, None] * (Xmin[r.neighbor] - Xmin[r.parent]),
                               atol=1e-5)
    nbr, _ = A.neighbors(Xmin, None, 5)
    assert all(r.neighbor[s] in nbr[r.parent[s]] for s in range(60))
    assert _on_knn_segments(Xmin, r.vecs, 5).all()
    # imbalanced-learn's output has the same property
    X = np.concatenate([Xmaj, Xmin])
    y = np.r_[np.zeros(200), np.ones(40)]
    Xs, ys = SMOTE(k_neighbors=5, random_state=0).fit_resample(X, y)
    ref = Xs[len(X):]
    assert _on_knn_segments(Xmin, ref[:60], 5).all()
    assert len(ref) == 160


def test_smote_deterministic_and_errors(rng):
    Xmin = rng.normal(size=(10, 2)).astype(np.float32)
    a, b = A.smote(Xmin, 30, 3, seed=9), A.smote(Xmin, 30, 3, seed=9)
    assert (a.vecs == b.vecs).all()
    assert not (A.smote(Xmin, 30, 3, seed=10).vecs == a.vecs).all()
    with pytest.raises(ValueError, match="needs at least k \\+ 1 = 11 minority rows"):
        A.smote(Xmin, 5, 10)
    assert A.smote(Xmin, 0, 3).vecs.shape == (0, 2)


# ---- divergence ----------------------------------------------------------------------------------------------

def _gauss_pair(rng, n, d=2, shift=1.0):
    P = rng.normal(size=(n, d))
    Q = rng.normal(size=(n, d))
    Q[:, 0] += shift
    return P, Q


def test_kl_between_gaussians_matches_closed_form_and_improves_with_n():
    # KL(N(0, I) || N(mu, I)) = |mu|^2 / 2 = 0.5
    errs = {}
    for n in (300, 4000):
        e = []
        for seed in range(4):
            P, Q = _gauss_pair(np.random.default_rng(seed), n)
            e.append(abs(A.divergence(P, Q, 5) - 0.5))
        errs[n] = np.mean(e)
    assert errs[4000] < 0.06
    assert errs[4000] < errs[300]


def test_renyi_between_gaussians_matches_closed_form():
    # Renyi-alpha(N(0, I) || N(mu, I)) = alpha |mu|^2 / 2
    est = [A.divergence(*_gauss_pair(np.random.default_rng(s), 4000), 5, method="renyi", alpha=0.5) for s in range(3)]
    assert abs(np.mean(est) - 0.25) < 0.05
    same = A.divergence(*_gauss_pair(np.random.default_rng(7), 3000, shift=0.0), 5)
    assert abs(same) < 0.05


def test_ratio_estimator_orders_divergences():
    rng = np.random.default_rng(3)
    vals = [A.divergence(*_gauss_pair(rng, 3000, shift=s), 10, method="ratio_kl") for s in (0.0, 1.0, 2.0)]
    assert vals[0] < vals[1] < vals[2]


def test_divergence_errors(rng):
    P = rng.normal(size=(10, 2))
    with pytest.raises(ValueError, match="dimension mismatch"):
        A.divergence(P, rng.normal(size=(10, 3)))
    with pytest.raises(KnnError, match="k = 10 needs more than k rows in P"):
        A.divergence(P, P + 1, 10)
    with pytest.raises(KnnError, match="distance 0"):
        A.divergence(np.zeros((10, 2)), P, 3)
    with pytest.raises(KnnError, match="alpha must be positive and not 1"):
        A.divergence(P, P + 1, 3, method="renyi", alpha=1.0)
    with pytest.raises(ValueError, match="unknown method"):
        A.divergence(P, P + 1, 3, method="js")


# ---- LID -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("true_dim", [2, 5, 8])
def test_lid_near_dimension_of_linear_manifold(true_dim):
    rng = np.random.default_rng(true_dim)
    Z = rng.normal(size=(3000, true_dim)) @ rng.normal(size=(true_dim, 32))
    per_row, table = A.lid(Z, 20)
    assert abs(table - true_dim) < 0.15 * true_dim + 0.3
    assert abs(np.nanmedian(per_row) - true_dim) < 0.25 * true_dim + 0.5


def test_lid_duplicates_give_nan_and_errors(rng):
    X = rng.normal(size=(50, 3))
    X[1] = X[0]
    X[2] = X[0]
    per_row, _ = A.lid(X, 5)
    assert np.isnan(per_row[0]) and np.isfinite(per_row[10])
    with pytest.raises(ValueError, match="k must be >= 2"):
        A.lid(X, 1)
    with pytest.raises(KnnError, match="needs at least k \\+ 1"):
        A.lid(X[:5], 5)


# ---- precision / recall ---------------------------------------------------------------------------------------

def test_precision_recall_move_the_expected_way():
    rng = np.random.default_rng(11)
    real = rng.normal(size=(1500, 4))
    res = {s: A.precision_recall(real, rng.normal(size=(1500, 4)) + [s, 0, 0, 0], 5) for s in (0.0, 1.0, 2.0, 4.0)}
    for key in ("precision", "recall", "coverage", "p_precision", "p_recall", "sym_precision", "sym_recall", "density"):
        vals = [res[s][key] for s in (0.0, 1.0, 2.0, 4.0)]
        assert all(a > b for a, b in zip(vals, vals[1:])), (key, vals)
    assert res[0.0]["precision"] > 0.95 and res[0.0]["recall"] > 0.95
    assert res[4.0]["precision"] < 0.6 and res[4.0]["coverage"] < 0.1  # outlier balls keep kNN precision up
    # a collapsed generator (tight around the mean): precise but not diverse
    collapsed = A.precision_recall(real, rng.normal(size=(1500, 4)) * 0.2, 5)
    assert collapsed["precision"] > 0.95 and collapsed["recall"] < 0.5
    assert collapsed["coverage"] < res[0.0]["coverage"]


def test_precision_recall_matches_brute_force_definition(rng):
    R = rng.normal(size=(120, 3)).astype(np.float32)
    F = (rng.normal(size=(90, 3)) + 0.5).astype(np.float32)
    k = 3
    out = A.precision_recall(R, F, k)
    d = lambda a, b: ((a[:, None, :].astype(np.float64) - b[None]) ** 2).sum(-1)
    DRR, DFF, DFR = d(R, R), d(F, F), d(F, R)
    rR = np.sort(DRR, 1)[:, k]
    rF = np.sort(DFF, 1)[:, k]
    assert out["precision"] == pytest.approx(((DFR <= rR[None]).any(1)).mean(), abs=1e-9)
    assert out["recall"] == pytest.approx(((DFR.T <= rF[None]).any(1)).mean(), abs=1e-9)
    assert out["density"] == pytest.approx((DFR <= rR[None]).sum() / (k * len(F)), rel=1e-6)
    assert out["coverage"] == pytest.approx((DFR.min(0) <= rR).mean(), abs=1e-9)
    rho = 1.2 * np.sqrt(rR).mean()
    p = np.clip(1 - np.sqrt(DFR) / rho, 0, None)
    assert out["p_precision"] == pytest.approx((1 - np.prod(1 - p, 1)).mean(), rel=1e-4)


def test_precision_recall_errors(rng):
    with pytest.raises(KnnError, match="smaller than both set sizes"):
        A.precision_recall(rng.normal(size=(5, 2)), rng.normal(size=(50, 2)), 5)
    with pytest.raises(ValueError, match="dimension mismatch"):
        A.precision_recall(rng.normal(size=(5, 2)), rng.normal(size=(5, 3)), 2)


# ---- drift / IID test ------------------------------------------------------------------------------------------

def test_iid_test_rejects_drift_not_shuffled():
    rejections_drift = rejections_iid = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        n = 400
        drift = np.linspace(0, 3, n)[:, None] * np.array([[1, 0.5, 0]]) + rng.normal(size=(n, 3))
        rejections_drift += A.iid_test(drift, 10, permutations=50, seed=seed).non_iid
        rejections_iid += A.iid_test(rng.permutation(drift), 10, permutations=50, seed=seed).non_iid
    assert rejections_drift == 20
    assert rejections_iid <= 3  # 5% level: expect ~1 of 20


def test_iid_scores_flag_the_drifting_rows(rng):
    n = 300
    X = rng.normal(size=(n, 2))
    X[150:] = np.linspace(0, 20, 150)[:, None] * [1, 0] + rng.normal(scale=0.05, size=(150, 2)) + 50
    r = A.iid_test(X, 5, permutations=20)
    assert np.median(r.scores[150:]) < 0.3 < np.median(r.scores[:150])


# ---- sampling ------------------------------------------------------------------------------------------------

def test_gumbel_topk_frequencies_follow_weights():
    w = np.array([1.0, 2.0, 3.0, 4.0])
    counts = np.zeros(4)
    for seed in range(4000):
        rank = A._gumbel(np.log(w), 1, seed)
        counts[rank == 0] += 1
    np.testing.assert_allclose(counts / counts.sum(), w / w.sum(), atol=0.03)


def test_importance_sample_moves_toward_target(rng):
    raw = np.concatenate([rng.normal(size=(900, 2)), rng.normal(size=(300, 2)) + 5])
    target = rng.normal(size=(300, 2)) + 5
    picked, logw = A.importance_sample(raw, target, 200, 10, seed=2)
    assert len(set(picked)) == 200
    assert (picked >= 900).mean() > 0.75  # 25% of the raw rows
    assert logw[900:].mean() > logw[:900].mean() + 2
    again, _ = A.importance_sample(raw, target, 200, 10, seed=2)
    assert (again == picked).all()


def test_density_sample_favours_sparse_regions(rng):
    X = np.concatenate([rng.normal(scale=0.1, size=(900, 2)), rng.normal(scale=3, size=(100, 2)) + 10])
    picked, _ = A.density_sample(X, 100, 10, alpha=2, seed=1)
    assert (picked >= 900).mean() > 0.5  # 10% of rows, most of the sample
    uniform, _ = A.density_sample(X, 100, 10, alpha=0, seed=1)
    assert (uniform >= 900).mean() < 0.25
    with pytest.raises(KnnError, match="larger than the 1000 candidate rows"):
        A.density_sample(X, 1001, 10)


# ---- recall audit ----------------------------------------------------------------------------------------------

def test_recall_audit_against_numpy_ground_truth(rng):
    X = rng.normal(size=(3000, 12)).astype(np.float32)
    Q = rng.normal(size=(40, 12)).astype(np.float32)
    ix = knnsql.Index(12, kind="graph", m=4, ef_construction=16)
    ix.add(X, np.arange(3000), labels=np.arange(3000.0))
    df = A.recall_audit(ix, Q, 10, ef=10, windows=[None, 0.25, (100.0, 900.0)])
    ids, _ = ix.search(Q, 10, ef=10)
    D = ((Q[:, None, :].astype(np.float64) - X[None]) ** 2).sum(-1)
    kth = np.sort(D, 1)[:, 9]
    got = np.take_along_axis(D, ids, 1)
    ref = (got <= kth[:, None] * (1 + 1e-5) + 1e-6).sum(1) / 10
    np.testing.assert_allclose(df[df.window == "all"].recall.to_numpy(), ref)
    assert df[df.window == "all"].recall.mean() < 1.0  # a deliberately weak graph misses some
    strong = A.recall_audit(ix, Q, 10, ef=400)
    assert strong.recall.mean() > df[df.window == "all"].recall.mean()
    assert set(df.window) == {"all", "0.25", "[100, 900]"}
    w = df[df.window == "0.25"]
    assert np.allclose(w.hi, 0.25 * 2999)
    with pytest.raises(ValueError, match="needs a graph index"):
        A.recall_audit(knnsql.Index(12), Q, 10)


def test_iid_statistic_matches_numpy_ks(rng):
    X = np.cumsum(rng.normal(size=(300, 3)), axis=0)  # a random walk: strongly ordered
    k = 6
    r = A.iid_test(X, k, permutations=10, seed=0)
    nbr, _ = A.neighbors(X, None, k)
    n = len(X)
    gaps = np.abs(nbr - np.arange(n)[:, None]).ravel()
    t = np.arange(1, n)
    ecdf = np.searchsorted(np.sort(gaps), t, side="right") / len(gaps)
    background = (2 * n * t - t * (t + 1)) / (n * (n - 1))
    assert r.statistic == pytest.approx(np.abs(ecdf - background).max())
    assert r.p_value == pytest.approx(1 / 11)


# ---- estimators against independent numpy / scipy implementations of the papers' formulas ----------

def _kth(A, B, k, leave_self):
    """Euclidean distance from each row of A to its k-th nearest row of B (itself left out when A is B)."""
    from scipy.spatial import cKDTree

    d, _ = cKDTree(B.astype(np.float64)).query(A.astype(np.float64), k=[k + 1 if leave_self else k])
    return d[:, -1]


def test_kl_divergence_equals_wang_kulkarni_verdu():
    """D(P||Q) ~ (d/n) sum log(nu_k / rho_k) + log(m / (n - 1)) (Wang, Kulkarni & Verdu 2009), term for term."""
    rng = np.random.default_rng(21)
    P = rng.normal(size=(300, 3)).astype(np.float32)
    Q = (rng.normal(size=(450, 3)) * 1.3 + 0.4).astype(np.float32)
    for k in (1, 5):
        rho, nu = _kth(P, P, k, True), _kth(P, Q, k, False)
        n, m, d = len(P), len(Q), P.shape[1]
        want = d / n * np.log(nu / rho).sum() + np.log(m / (n - 1))
        assert A.divergence(P, Q, k=k) == pytest.approx(want, rel=1e-4, abs=1e-5)


def test_ratio_kl_equals_the_nearest_neighbour_ratio_formula():
    """Noshad et al.'s ratio estimator: in P u Q, Q_j's k neighbours hold N_j rows of P and M_j of Q;
    R_j = (m / n) N_j / (M_j + 1) and KL = mean_j R_j log R_j, computed here with scipy."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(22)
    P = rng.normal(size=(250, 2)).astype(np.float32)
    Q = (rng.normal(size=(350, 2)) + 0.7).astype(np.float32)
    k = 6
    joint = np.vstack([P, Q]).astype(np.float64)
    _, idx = cKDTree(joint).query(Q.astype(np.float64), k=k + 1)
    idx = idx[:, 1:]  # itself left out (no duplicate rows here)
    Np = (idx < len(P)).sum(1)
    R = (len(Q) / len(P)) * Np / (k - Np + 1)
    want = np.mean(np.where(R > 0, R * np.log(np.where(R > 0, R, 1)), 0.0))
    assert A.divergence(P, Q, k=k, method="ratio_kl") == pytest.approx(want, rel=1e-6, abs=1e-9)


def _ball_metrics(R, F, k):
    """Kynkaenniemi precision / recall, Naeem density / coverage and the symmetric variants on squared L2,
    ball membership by <= (a point on a ball's edge is inside), written from the papers' definitions."""
    R = R.astype(np.float64)
    F = F.astype(np.float64)
    dRR = ((R[:, None] - R[None]) ** 2).sum(-1)
    dFF = ((F[:, None] - F[None]) ** 2).sum(-1)
    dFR = ((F[:, None] - R[None]) ** 2).sum(-1)  # fake j to real i
    rR = np.sort(dRR, 1)[:, k]  # k-th neighbour, itself (distance 0) left out
    rF = np.sort(dFF, 1)[:, k]
    inF = (dFR <= rR[None, :])  # fake j inside real i's ball
    inR = (dFR.T <= rF[None, :])  # real i inside fake j's ball
    precision = inF.any(1).mean()
    recall = inR.any(1).mean()
    density = inF.sum() / (k * len(F))
    coverage = (dFR.min(0) <= rR).mean()
    own = (dFR.min(1) <= rF).mean()
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage,
            "sym_precision": min(precision, own), "sym_recall": min(recall, coverage)}


@pytest.mark.parametrize("k", [1, 2, 3])
def test_ball_metrics_equal_the_definitions_with_points_on_ball_edges(k):
    """Integer grids put many points exactly on a ball's edge (distances are exact in float32): each
    metric must count them inside, as the papers' <= does."""
    rng = np.random.default_rng(k)
    R = rng.integers(0, 6, size=(40, 2)).astype(np.float32)
    F = rng.integers(1, 8, size=(30, 2)).astype(np.float32)
    R = np.unique(R, axis=0)
    F = np.unique(F, axis=0)
    got = A.precision_recall(R, F, k=k)
    want = _ball_metrics(R, F, k)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name


def _emergent_asymmetry_reference(R, F, k):
    """sym_precision / sym_recall as defined by Khayatkhoei & AbdAlmageed's public code
    (github.com/mahyarkoy/emergent_asymmetry_pr, manifmetric/manifmetric.py), rewritten in numpy: radii are
    the squared distance to the (k+1)-th nearest row of its own set counting itself, balls are open (<),
    comp_precision = coverage with the sets swapped, sym_precision = min(precision, comp_precision),
    sym_recall = min(recall, coverage)."""
    R = R.astype(np.float64)
    F = F.astype(np.float64)
    d2 = lambda A, B: ((A[:, None] - B[None]) ** 2).sum(-1)  # noqa: E731
    rR = np.sort(d2(R, R), 1)[:, k]
    rF = np.sort(d2(F, F), 1)[:, k]
    dFR = d2(F, R)
    precision = (dFR < rR[None, :]).any(1).mean()  # fake inside some real ball
    recall = (dFR.T < rF[None, :]).any(1).mean()
    coverage = (dFR < rR[None, :]).any(0).mean()  # real ball holding some fake
    comp_precision = (dFR.T < rF[None, :]).any(0).mean()  # fake ball holding some real
    return {"precision": precision, "recall": recall, "coverage": coverage,
            "sym_precision": min(precision, comp_precision), "sym_recall": min(recall, coverage)}


@pytest.mark.parametrize("scale", [0.6, 1.0, 1.6])
def test_symmetric_precision_recall_equal_the_papers_public_code(scale):
    """In 64 dimensions, a generated set on a shrunk, equal or widened Gaussian (the asymmetric regime the
    paper is about): every ball metric and both symmetric ones equal the reference definition exactly
    (continuous data: no point sits on a ball's edge, so <= and < agree)."""
    rng = np.random.default_rng(int(scale * 10))
    R = rng.normal(size=(300, 64)).astype(np.float32)
    F = (scale * rng.normal(size=(260, 64)) + 0.1).astype(np.float32)
    got = A.precision_recall(R, F, k=5)
    want = _emergent_asymmetry_reference(R, F, 5)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    if scale != 1.0:  # the symmetric forms must differ from the plain ones here, or the test shows nothing
        assert want["sym_precision"] != want["precision"] or want["sym_recall"] != want["recall"]


@pytest.mark.parametrize("alpha", [0.25, 0.5])
def test_ratio_renyi_below_one_is_close_at_small_k(alpha):
    """P = N(0, 1), Q = N(1, 1): the true Renyi-alpha divergence is alpha mu^2 / 2. The plain plug-in
    mean of R_j^alpha read 0.42 against 0.25 at k = 10 whatever n (neighbour counts are Binomial(k, .));
    the Gamma-ratio form must come within 0.03 at k = 10 and within 0.05 at k = 5, as the distance-based
    estimator does at k = 10."""
    rng = np.random.default_rng(0)
    n = 8000
    P = rng.normal(size=(n, 1)).astype(np.float32)
    Q = (rng.normal(size=(n, 1)) + 1).astype(np.float32)
    truth = alpha / 2
    assert A.divergence(P, Q, k=10, method="renyi", alpha=alpha) == pytest.approx(truth, abs=0.03)
    assert A.divergence(P, Q, k=10, method="ratio_renyi", alpha=alpha) == pytest.approx(truth, abs=0.03)
    assert A.divergence(P, Q, k=5, method="ratio_renyi", alpha=alpha) == pytest.approx(truth, abs=0.05)


def test_ratio_renyi_in_four_dimensions_and_above_one_at_large_k():
    """4-d Gaussians half a unit apart (truth alpha / 8): alpha = 0.5 at k = 10 within 0.02. With alpha = 2
    the documented regime needs k near sqrt(n + m): within 0.15 of the truth there."""
    rng = np.random.default_rng(1)
    n, d = 8000, 4
    shift = np.zeros(d, np.float32)
    shift[0] = 0.5
    P = rng.normal(size=(n, d)).astype(np.float32)
    Q = (rng.normal(size=(n, d)) + shift).astype(np.float32)
    assert A.divergence(P, Q, k=10, method="ratio_renyi", alpha=0.5) == pytest.approx(0.0625, abs=0.02)
    assert A.divergence(P, Q, k=126, method="ratio_renyi", alpha=2.0) == pytest.approx(0.25, abs=0.15)


def test_iid_test_counts_permutations_that_tie_the_observed_statistic():
    """p = (1 + #{KS_perm >= KS_obs}) / (1 + permutations): with k = n - 1 every row neighbours every other,
    so every permutation gives the observed statistic and p must be exactly 1 (counting only strictly
    larger statistics would give 1 / 51)."""
    X = np.random.default_rng(1).normal(size=(8, 3)).astype(np.float32)
    r = A.iid_test(X, k=7, permutations=50, seed=0)
    assert r.statistic == 0.0 and r.p_value == 1.0 and not r.non_iid
