"""Window search (label in [lo, hi]) from the numpy API: exact agreement on small sets, k rows whenever
k rows lie in the window, edge windows, inserts after build, deletes, the adversarial set."""

import numpy as np
import pytest

import knnsql


def exact_window(X, labels, q, k, lo, hi, metric="l2"):
    keep = np.nonzero((labels >= lo) & (labels <= hi))[0]
    if len(keep) == 0:
        return np.array([], dtype=np.int64)
    f = knnsql.Index(X.shape[1], metric)
    f.add(X[keep], keep)
    ids, _ = f.search(q, k)
    return ids[0]


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((6000, 16)).astype(np.float32)
    labels = rng.integers(0, 1000, len(X)).astype(np.float64)  # many duplicate labels
    g = knnsql.Index(16, "l2", "graph", m=12)
    g.add(X, labels=labels)
    f = knnsql.Index(16, "l2")
    f.add(X, labels=labels)
    return X, labels, g, f, rng


@pytest.mark.parametrize("frac", [1.0, 0.5, 0.1, 0.01, 0.002])
def test_window_recall_and_k_rows(setup, frac):
    X, labels, g, f, rng = setup
    hits = total = 0
    for _ in range(30):
        width = max(1, int(1000 * frac))
        lo = int(rng.integers(0, 1000 - width + 1))
        hi = lo + width - 1
        q = rng.standard_normal(16).astype(np.float32)
        truth = exact_window(X, labels, q, 10, lo, hi)
        ids, d = g.search(q, 10, lo=lo, hi=hi, ef=64)
        got = ids[0][ids[0] >= 0]
        assert len(got) == min(10, len(truth)), "k rows whenever k rows are in the window"
        assert np.all((labels[got] >= lo) & (labels[got] <= hi)), "every row inside the window"
        hits += len(set(got) & set(truth))
        total += len(truth)
        # the flat index answers exactly
        fi, _ = f.search(q, 10, lo=lo, hi=hi)
        assert sorted(fi[0][fi[0] >= 0].tolist()) == sorted(truth.tolist())
    assert hits / total >= 0.95


def test_edge_windows(setup):
    X, labels, g, f, _ = setup
    q = X[0]
    for index in (g, f):
        # one label value, duplicated: every row with that label is eligible
        v = labels[0]
        n_v = int((labels == v).sum())
        ids, _ = index.search(q, 10, lo=v, hi=v)
        got = ids[0][ids[0] >= 0]
        assert len(got) == min(10, n_v) and np.all(labels[got] == v)
        assert got[0] == 0
        # empty windows
        ids, d = index.search(q, 10, lo=5.5, hi=5.7)
        assert (ids == -1).all() and np.isinf(d).all()
        ids, _ = index.search(q, 10, lo=10, hi=5)
        assert (ids == -1).all()
        # open bounds and the whole range
        ids, _ = index.search(q, 10, lo=None, hi=2)
        got = ids[0][ids[0] >= 0]
        assert len(got) == 10 and np.all(labels[got] <= 2)
        ids, _ = index.search(q, 10, lo=-1e300, hi=1e300)
        plain, _ = index.search(q, 10)
        assert len(set(ids[0]) & set(plain[0])) >= 9


def test_one_row_windows_and_unlabelled_rows():
    rng = np.random.default_rng(9)
    X = rng.standard_normal((3000, 8)).astype(np.float32)
    labels = np.arange(3000, dtype=np.float64)
    labels[::7] = np.nan  # rows without a label never match a window
    g = knnsql.Index(8, "cosine", "graph")
    g.add(X, labels=labels)
    for row in (1, 1500, 2999):
        ids, _ = g.search(X[(row + 11) % 3000], 5, lo=row, hi=row)
        assert ids[0].tolist() == [row, -1, -1, -1, -1]
    ids, _ = g.search(X[0], 5, lo=0, hi=0)  # row 0 has no label
    assert (ids == -1).all()
    ids, _ = g.search(X[0], 50, lo=0, hi=100)
    assert not np.isin(ids[0], np.arange(0, 101, 7)).any()


def test_inserts_after_build_are_found_and_deletes_never_come_back():
    rng = np.random.default_rng(10)
    X = rng.standard_normal((4000, 12)).astype(np.float32)
    labels = rng.uniform(0, 100, len(X))
    g = knnsql.Index(12, "l2", "graph")
    g.add(X[:3000], labels=labels[:3000])
    for start in range(3000, 4000, 100):  # small batches stay in the delta, later ones get merged
        g.add(X[start:start + 100], ids=np.arange(start, start + 100), labels=labels[start:start + 100])
    gone = np.arange(0, 4000, 5)
    g.delete(gone)
    for i in range(3000, 4000, 97):
        lo, hi = labels[i] - 0.5, labels[i] + 0.5
        ids, _ = g.search(X[i], 3, lo=lo, hi=hi)
        got = ids[0][ids[0] >= 0]
        if i % 5:
            assert got[0] == i
        assert not np.isin(got, gone).any()
        assert np.all((labels[got] >= lo) & (labels[got] <= hi))
    g.optimize()
    ids, _ = g.search(X[3001], 3, lo=labels[3001], hi=labels[3001])
    assert ids[0][0] == 3001


def test_adversarial_clusters():
    """Queries sit near one cluster; the window covers another cluster's label range."""
    rng = np.random.default_rng(12)
    centers = rng.standard_normal((20, 24)).astype(np.float32) * 10
    X = np.concatenate([c + rng.standard_normal((400, 24)).astype(np.float32) for c in centers])
    labels = np.repeat(np.arange(20), 400).astype(np.float64) + rng.uniform(-0.4, 0.4, len(X))
    g = knnsql.Index(24, "l2", "graph", m=12)
    g.add(X, labels=labels)
    hits = total = 0
    for t in range(40):
        near, far = t % 20, (t * 7 + 3) % 20
        if near == far:
            continue
        q = centers[near] + rng.standard_normal(24).astype(np.float32)
        truth = exact_window(X, labels, q, 10, far - 0.5, far + 0.5)
        ids, _ = g.search(q, 10, lo=far - 0.5, hi=far + 0.5)
        assert len(ids[0][ids[0] >= 0]) == 10
        hits += len(set(ids[0]) & set(truth))
        total += 10
    assert hits / total >= 0.95


def test_window_errors():
    g = knnsql.Index(2, "l2", "graph")
    g.add(np.ones((3, 2), np.float32), labels=[1, 2, 3])
    with pytest.raises(ValueError, match="lo must not be NaN"):
        g.search(np.ones(2, np.float32), 1, lo=float("nan"))
    for nan in (np.float64("nan"), np.float32("nan")):
        with pytest.raises(ValueError, match="hi must not be NaN"):
            g.search(np.ones(2, np.float32), 1, hi=nan)
    for bad in (np.ones(3, np.float32), np.ones((1, 3), np.float32)):
        with pytest.raises(ValueError, match="Q has 3 columns but the index has dim 2"):
            g.search(bad, 1, lo=0.0, hi=1.0)
    with pytest.raises(ValueError, match="k must be >= 1"):
        g.search(np.ones(2, np.float32), 0, lo=0.0)
    with pytest.raises(TypeError, match="hi must be a number or None"):
        g.search(np.ones(2, np.float32), 1, hi="3")
    with pytest.raises(ValueError, match="labels must be 2 numbers"):
        g.add(np.ones((2, 2), np.float32), labels=[1])


def test_window_persists_through_bytes():
    rng = np.random.default_rng(13)
    X = rng.standard_normal((500, 4)).astype(np.float32)
    labels = rng.uniform(0, 10, 500)
    g = knnsql.Index(4, "l2", "graph")
    g.add(X, labels=labels)
    h = knnsql.Index.from_bytes(g.to_bytes())
    a, _ = g.search(X[:5], 5, lo=2, hi=3)
    b, _ = h.search(X[:5], 5, lo=2, hi=3)
    np.testing.assert_array_equal(a, b)


def test_from_bytes_as_the_first_call_of_a_process(tmp_path):
    """Index.from_bytes declares the core's types itself (it failed with a cffi parse error when no other
    call had loaded the library yet)."""
    import subprocess
    import sys
    from pathlib import Path

    g = knnsql.Index(3, "l2", "graph")
    g.add(np.eye(3, dtype=np.float32), labels=[1.0, 2.0, 3.0])
    (tmp_path / "g.bin").write_bytes(g.to_bytes())
    code = ("import sys, knnsql; g = knnsql.Index.from_bytes(open(sys.argv[1], 'rb').read()); "
            "print(len(g), g.search([0, 1, 0], 1, lo=2, hi=2)[0][0][0])")
    root = Path(knnsql.__file__).resolve().parent.parent  # the knnsql this test imported (source or installed)
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "g.bin")], capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(root)}, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3", "1"]
