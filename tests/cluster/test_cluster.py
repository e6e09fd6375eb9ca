"""Sharded tables on a real multi-process Ray (each shard replica an actor in its own worker process):
answers equal the single-node table's, the samplers keep their guarantees, and killed workers lose nothing."""

import os
import signal
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

ray = pytest.importorskip("ray")

import knnsql  # noqa: E402
from knnsql import cluster  # noqa: E402
from knnsql.cluster._shard import _uniform  # noqa: E402

N = 6000


def real_vectors(n):
    """GloVe-50 rows when the benchmark cache has them (real vectors), else scikit-learn's digits (real too:
    8x8 handwritten digits, 64-d), repeated with a small jitter up to n rows."""
    glove = Path.home() / ".cache" / "knnsql-bench" / "glove50_normalised.npy"
    if glove.is_file():
        return np.ascontiguousarray(np.load(glove, mmap_mode="r")[:n], dtype=np.float32)
    from sklearn.datasets import load_digits
    D = load_digits().data.astype(np.float32)
    rng = np.random.default_rng(0)
    X = D[rng.integers(0, len(D), n)] + rng.normal(0, 0.05, (n, D.shape[1])).astype(np.float32)
    return np.ascontiguousarray(X)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    X = real_vectors(N + 50)
    X, Q = X[:N], X[N:]
    rng = np.random.default_rng(1)
    price = np.round(rng.uniform(0, 100, N), 3)
    cls = (np.arange(N) * 7 % 5).astype(np.int64)
    c = cluster.connect(root=str(tmp_path_factory.mktemp("shards")), num_cpus=2)
    data = {"id": np.arange(N), "emb": X, "price": price, "cls": cls}
    cols = {"price": "DOUBLE", "cls": "BIGINT"}
    hashed = c.create_table("hashed", dim=X.shape[1], metric="l2", columns=cols, shards=3)
    hashed.add(data)
    ranged = c.create_table("ranged", dim=X.shape[1], metric="l2", columns=cols, shards=3, shard_by="price",
                            boundaries=[30, 60])
    ranged.add(data)
    db = knnsql.connect()
    single = db.create_table("single", dim=X.shape[1], metric="l2", columns=cols)
    single.add(data)
    yield c, hashed, ranged, single, X, Q, price, cls
    c.shutdown()
    db.close()


def test_rows_spread_over_the_shards(world):
    c, hashed, ranged, single, X, Q, price, cls = world
    rows = [s["rows"] for s in hashed.stats()]
    assert sum(rows) == N and min(rows) > N / 6
    assert [s["rows"] for s in ranged.stats()] == [int((price < 30).sum()), int(((price >= 30) & (price < 60)).sum()),
                                                   int((price >= 60).sum())]
    assert len({s["pid"] for s in hashed.stats()} | {os.getpid()}) == 4   # each shard its own process


@pytest.mark.parametrize("where", [None, "price < 40", "cls = 2 AND price > 10"])
def test_exact_search_equals_the_single_node_table(world, where):
    c, hashed, ranged, single, X, Q, price, cls = world
    for table in (hashed, ranged):
        for q in (Q[0], Q[:8]):   # one query and a batch: the same plan as a single table's, bit for bit
            a, b = table.search(q).exact().limit(10), single.search(q).exact().limit(10)
            if where:
                a, b = a.where(where), b.where(where)
            ia, da = a.to_numpy()
            ib, db_ = b.to_numpy()
            assert np.array_equal(ia, ib) and np.array_equal(da, db_)


def test_index_search_recall_is_at_least_the_single_nodes(world):
    c, hashed, ranged, single, X, Q, price, cls = world
    hashed.create_index(m=8, ef_construction=64)
    single.create_index(m=8, ef_construction=64)
    truth = single.search(Q).exact().limit(10).to_numpy()[0]

    def recall(ids):
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth)])

    r_shard = recall(hashed.search(Q).limit(10).ef(32).to_numpy()[0])
    r_single = recall(single.search(Q).limit(10).ef(32).to_numpy()[0])
    assert r_shard >= r_single - 0.01, (r_shard, r_single)
    one = hashed.search(Q[3]).limit(5).select(["price"]).to_list()
    assert set(one[0]) == {"id", "price", "distance"}


def test_windows_on_range_shards_equal_the_single_node_and_skip_shards(world):
    c, hashed, ranged, single, X, Q, price, cls = world
    ranged.create_index(label="price", m=8, ef_construction=64)
    single.create_index(label="price", m=8, ef_construction=64, replace=True)
    s = ranged.search(Q[:5]).window(35, 55).exact().limit(10)
    assert s._shards() == [1]                      # only the [30, 60) shard can hold such rows
    ia, da = s.to_numpy()
    ib, db_ = single.search(Q[:5]).window(35, 55).exact().limit(10).to_numpy()
    assert np.array_equal(ia, ib) and np.array_equal(da, db_)
    approx = ranged.search(Q[0]).window(10, 70).limit(10).to_list()
    assert len(approx) == 10 and all(10 <= r["price"] <= 70 for r in approx)


def test_knn_join_equals_a_batch_search(world):
    c, hashed, ranged, single, X, Q, price, cls = world
    qt = pa.table({"id": pa.array(np.arange(100, 110)), "emb": pa.FixedSizeListArray.from_arrays(
        pa.array(Q[:10].reshape(-1)), X.shape[1])})
    joined = hashed.knn_join(qt, k=3, exact=True)
    ids, _ = single.search(Q[:10]).exact().limit(3).to_numpy()
    got = np.asarray(joined.column("id")).reshape(10, 3)
    assert np.array_equal(got, ids) and np.asarray(joined.column("query_id"))[::3].tolist() == list(range(100, 110))
    frame = {"qid": np.arange(100, 110), "vec": Q[:10], "note": ["x"] * 10}   # other columns are ignored
    again = hashed.knn_join(frame, k=3, id="qid", vector="vec", exact=True)
    assert np.array_equal(np.asarray(again.column("id")).reshape(10, 3), ids)
    streamed = hashed.knn_join(ray.data.from_arrow(qt), k=3, exact=True)
    assert sorted(np.asarray(streamed.column("id")).tolist()) == sorted(got.reshape(-1).tolist())


def test_predict_equals_the_single_node_vote(world):
    c, hashed, ranged, single, X, Q, price, cls = world
    got = hashed.predict(Q, "cls", k=7)
    want = knnsql.analytics.predict(X, cls, Q, k=7).labels
    assert got == [int(v) for v in want]
    reg = hashed.predict(Q[:5], "price", k=4, task="regression")
    ids = single.search(Q[:5]).exact().limit(4).to_numpy()[0]
    assert reg == pytest.approx([price[i].mean() for i in ids])


def test_weighted_sampling_without_replacement_is_the_top_keys_of_every_row(world):
    c, hashed, ranged, single, X, Q, price, cls = world
    got = hashed.sample(25, "weighted", weight="price", seed=9)
    ids = np.arange(N)
    key = np.log(_uniform(ids, 9)) / price
    want = ids[np.argsort(-key, kind="stable")[:25]]
    assert np.asarray(got.column("id")).tolist() == want.tolist()
    # the same keys on one table: the Efraimidis-Spirakis draw of the whole table, whatever the sharding
    assert np.asarray(ranged.sample(25, "weighted", weight="price", seed=9).column("id")).tolist() == want.tolist()


def test_weighted_sampling_with_replacement_follows_the_weights(world):
    c, hashed, ranged, single, X, Q, price, cls = world
    draws = np.asarray(hashed.sample(30_000, "weighted", weight="CASE WHEN cls = 0 THEN 3 ELSE 1 END",
                                      replace=True, seed=3).column("id"))
    share = np.mean(cls[draws] == 0)
    want = 3 * np.sum(cls == 0) / (3 * np.sum(cls == 0) + np.sum(cls != 0))
    assert abs(share - want) < 4 * np.sqrt(want * (1 - want) / len(draws))


def test_kcenter_coreset_stays_within_its_factor_of_the_single_node_greedy(world):
    c, hashed, ranged, single, X, Q, price, cls = world

    def radius(ids):
        d = ((X[:, None, :] - X[ids][None, :, :]) ** 2).sum(-1).min(1)
        return float(np.sqrt(d.max()))

    got = np.asarray(hashed.sample(20, "kcenter").column("id"))
    one = knnsql.sampling.kcenter(X, 20, metric="l2").index
    assert len(set(got.tolist())) == 20
    assert radius(got) <= 4 * radius(one)      # greedy <= 2 OPT, composable coreset <= 4 OPT


def test_kmeans_parallel_seeds_cost_like_kmeanspp(world):
    c, hashed, ranged, single, X, Q, price, cls = world

    def cost(C):
        return float(((X[:, None, :] - C[None]) ** 2).sum(-1).min(1).sum())

    got = np.asarray(hashed.sample(10, "kmeans++", seed=1).column("id"))
    assert len(set(got.tolist())) == 10
    ref = np.median([cost(X[knnsql.sampling.kmeanspp(X, 10, seed=s).index]) for s in range(5)])
    assert cost(X[got]) <= 2.0 * ref


def test_ingest_from_parquet_and_ray_dataset(world, tmp_path):
    c, hashed, ranged, single, X, Q, price, cls = world
    t = c.create_table("ingest", dim=X.shape[1], metric="l2", shards=2)
    import pyarrow.parquet as pq
    tbl = pa.table({"id": pa.array(np.arange(500)), "emb": pa.FixedSizeListArray.from_arrays(
        pa.array(X[:500].reshape(-1)), X.shape[1])})
    pq.write_table(tbl.slice(0, 250), tmp_path / "a.parquet")
    pq.write_table(tbl.slice(250), tmp_path / "b.parquet")
    assert t.add([tmp_path / "a.parquet", tmp_path / "b.parquet"]) == 500
    more = tbl.set_column(0, "id", pa.array(np.arange(500, 1000)))
    assert t.add(ray.data.from_arrow(more)) == 500
    assert len(t) == 1000
    with pytest.raises(knnsql.DataError, match="already exist"):
        t.add(tbl.slice(0, 10))
    c.drop_table("ingest")


def _when_up(call, timeout=120):
    """A direct call on an actor Ray may still be restarting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except (ray.exceptions.ActorUnavailableError, ray.exceptions.RayActorError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _kill(actor):
    pid = _when_up(lambda: ray.get(actor.pid.remote()))
    os.kill(pid, signal.SIGKILL)
    return pid


def test_killed_workers_lose_nothing_and_searches_recover(world, tmp_path):
    c, hashed, ranged, single, X, Q, price, cls = world
    t = c.create_table("faults", dim=X.shape[1], metric="l2", shards=2, replicas=2)
    t.add({"id": np.arange(3000), "emb": X[:3000]})
    t.create_index(m=8, ef_construction=64)
    truth = t.search(Q[:10]).exact().limit(5).to_numpy()

    _kill(t._actors[0][0])                         # a replica dies: reads go on on the other one
    got = t.search(Q[:10]).exact().limit(5).to_numpy()
    assert np.array_equal(got[0], truth[0])

    _kill(t._actors[1][0]), _kill(t._actors[1][1])  # a whole shard dies mid-batch: retried once Ray restarts it
    for i in range(10):
        assert np.array_equal(t.search(Q[i]).exact().limit(5).to_numpy()[0], truth[0][i])

    # kill during an add: the write is retried, nothing is lost or doubled
    import threading
    killer = threading.Timer(0.05, lambda: _kill(t._actors[0][1]))
    killer.start()
    t.add({"id": np.arange(3000, 6000), "emb": X[3000:6000]})
    killer.join()
    assert len(t) == 6000 and t.count("id >= 3000") == 3000
    counts = [_when_up(lambda: ray.get(t._actors[0][r].count.remote())) for r in range(2)]
    assert counts[0] == counts[1]   # both replicas of shard 0 hold the same rows

    # the caller asked for no retries: a dead shard is named
    strict = cluster.Cluster(c.root, 0, False)
    t0 = strict.table("faults")                  # the same live actors, reached by name
    assert t0._actors[0][0] == t._actors[0][0] or ray.get(t0._actors[0][0].pid.remote()) == \
        ray.get(t._actors[0][0].pid.remote())
    _kill(t0._actors[0][0]), _kill(t0._actors[0][1])
    with pytest.raises(cluster.ClusterError, match="shard 0 of 'faults'"):
        t0.search(Q[0]).exact().limit(5).to_numpy()
    c.drop_table("faults")


def test_a_table_reopens_from_its_files(world):
    c, hashed, ranged, single, X, Q, price, cls = world
    t = c.create_table("reopen", dim=X.shape[1], metric="l2", shards=2)
    t.add({"id": np.arange(1000), "emb": X[:1000]})
    t.create_index(m=8, ef_construction=64)
    before = t.search(Q[:3]).limit(5).to_numpy()
    t._stop()
    c._tables.pop("reopen")
    again = c.table("reopen")
    assert len(again) == 1000 and c.tables().count("reopen") == 1
    assert np.array_equal(again.search(Q[:3]).limit(5).to_numpy()[0], before[0])
    c.drop_table("reopen")


def test_bad_requests_are_clear(world):
    c, hashed, ranged, single, X, Q, price, cls = world
    with pytest.raises(ValueError, match="exists"):
        c.create_table("hashed", dim=3)
    with pytest.raises(ValueError, match="boundaries"):
        c.create_table("bad", dim=3, columns={"ts": "DOUBLE"}, shards=3, shard_by="ts", boundaries=[5])
    with pytest.raises(ValueError, match="shards must be"):
        c.create_table("bad2", dim=3, shards=0)
    with pytest.raises(ValueError, match="no sharded table"):
        c.table("nope")
    with pytest.raises(knnsql.DataError):
        hashed.add({"id": [N + 1], "emb": np.full((1, X.shape[1]), np.nan, np.float32)})
    with pytest.raises(knnsql.FilterError):
        hashed.search(Q[0]).where("price; DROP TABLE x")
    with pytest.raises(ValueError, match="unknown distributed method"):
        hashed.sample(3, "dpp")


def test_kernel_thinning_merge_beats_uniform_sampling(world):
    c, hashed, ranged, single, X, Q, price, cls = world
    Xs = X[:2000].astype(np.float64)
    i, j = np.triu_indices(len(Xs), 1)
    bw = float(np.sqrt(np.median(((Xs[i[:200000]] - Xs[j[:200000]]) ** 2).sum(1)) / 2))

    def mmd2(ids):
        def k(A, B):
            return np.exp(-((A[:, None, :] - B[None]) ** 2).sum(-1) / (2 * bw * bw))
        P, S = X[:2000].astype(np.float64), X[ids].astype(np.float64)
        return k(P, P).mean() - 2 * k(P, S).mean() + k(S, S).mean()

    t = c.create_table("kt", dim=X.shape[1], metric="l2", shards=2)
    t.add({"id": np.arange(2000), "emb": X[:2000]})
    got = np.asarray(t.sample(64, "kernel_thinning", bandwidth=bw, seed=2).column("id"))
    assert len(set(got.tolist())) == 64
    uniform = np.median([mmd2(np.random.default_rng(s).choice(2000, 64, replace=False)) for s in range(5)])
    one = mmd2(knnsql.sampling.kernel_thinning(X[:2000], 64, bandwidth=bw, seed=2).index)
    assert mmd2(got) < uniform and mmd2(got) <= 3 * one, (mmd2(got), one, uniform)
    c.drop_table("kt")


def test_the_readme_cluster_demo_runs(tmp_path):
    """README's two commands: the demo script runs as written (its own Ray, in a subprocess)."""
    import subprocess
    import sys

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "pip install '.[cluster]'\npython examples/cluster_demo.py" in readme
    demo = Path(__file__).resolve().parents[2] / "examples" / "cluster_demo.py"
    out = subprocess.run([sys.executable, str(demo)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "exact answer equals one table's: True" in out.stdout
