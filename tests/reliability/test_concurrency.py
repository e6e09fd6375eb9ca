"""Concurrency stress: several DuckDB connections (and numpy callers) searching one index while others
insert, delete, re-insert, optimize, dump and restore it.

Every vector is a fixed function of its id (``vec(id)`` below, computed the same way in SQL and in
numpy), so whatever state a search observes, each returned row can be checked on its own: the id
must be one that was ever inserted, the distance must equal the distance recomputed from ``vec(id)``,
rows come sorted and without repeats, window hits lie in the window, and an unfiltered search
returns k rows (the index never holds fewer than k live rows). A short run is in the default suite;
``-m slow`` runs a longer one with more threads.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import knnsql

DIM = 8
BASE = 2000          # ids 0..BASE-1 are inserted first and the lower half is never deleted
EXTRA = 3000         # ids BASE..BASE+EXTRA-1 are inserted by the writer while searches run
K = 10
VEC_SQL = ("[cos(i), sin(i), cos(0.37 * i), sin(0.37 * i), cos(1.3 * i), sin(1.3 * i), "
           "(i % 17) / 17.0, (i % 5) / 5.0]::FLOAT[8]")


def vec(ids) -> np.ndarray:
    i = np.asarray(ids, dtype=np.float64)[:, None]
    cols = [np.cos(i), np.sin(i), np.cos(0.37 * i), np.sin(0.37 * i), np.cos(1.3 * i), np.sin(1.3 * i),
            (i % 17) / 17.0, (i % 5) / 5.0]
    return np.hstack(cols).astype(np.float32)


def check_rows(ids, dists, q, k, lo=None, hi=None, full=True):
    ids = np.asarray(ids, dtype=np.int64)
    dists = np.asarray(dists, dtype=np.float64)
    assert len(ids) <= k
    if full:
        assert len(ids) == k, f"{len(ids)} rows for k={k}"
    assert len(set(ids.tolist())) == len(ids), "repeated id"
    assert np.all((ids >= 0) & (ids < BASE + EXTRA)), f"unknown id in {ids}"
    assert np.all(np.diff(dists) >= 0), "distances not ascending"
    want = ((vec(ids).astype(np.float64) - np.asarray(q, dtype=np.float64)) ** 2).sum(1)
    np.testing.assert_allclose(dists, want, rtol=1e-4, atol=1e-4)
    if lo is not None:
        assert np.all((ids >= lo) & (ids <= hi)), f"window [{lo}, {hi}] returned {ids}"


class Stress:
    def __init__(self, db, seconds):
        self.db = db
        self.deadline = time.monotonic() + seconds
        self.errors: list[str] = []
        self.ops: dict[str, int] = {}
        self.lock = threading.Lock()

    def running(self):
        return time.monotonic() < self.deadline and not self.errors

    def count(self, op):
        with self.lock:
            self.ops[op] = self.ops.get(op, 0) + 1

    def thread(self, fn, *args):
        def body():
            con = self.db.con.cursor()  # a connection of its own to the same database
            try:
                fn(con, *args)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(f"{fn.__name__}: {type(exc).__name__}: {exc}")
            finally:
                con.close()
        return threading.Thread(target=body, daemon=True)

    # ---- workers ------------------------------------------------------------------------------------
    def searcher(self, con, seed):
        rng = np.random.default_rng(seed)
        while self.running():
            q = vec([rng.integers(0, BASE)])[0] + rng.normal(0, 0.05, DIM).astype(np.float32)
            if rng.random() < 0.3:
                lo = int(rng.integers(0, BASE // 2 - 100))
                hi = lo + int(rng.integers(20, 100))
                rows = con.execute("SELECT id, distance FROM knn_search('ci', $q, k := 10, lo := $lo, hi := $hi)",
                                   {"q": q.tolist(), "lo": lo, "hi": hi}).fetchall()
                # ids below BASE // 2 are never deleted, so the window holds >= 20 live rows
                check_rows([r[0] for r in rows], [r[1] for r in rows], q, K, lo, hi)
                self.count("window_search")
            else:
                rows = con.execute("SELECT id, distance FROM knn_search('ci', $q, k := 10, ef := 40)",
                                   {"q": q.tolist()}).fetchall()
                check_rows([r[0] for r in rows], [r[1] for r in rows], q, K)
                self.count("search")

    def batch_searcher(self, con, seed):
        rng = np.random.default_rng(seed)
        while self.running():
            start = int(rng.integers(0, BASE - 20))
            rows = con.execute(f"SELECT i, knn('ci', {VEC_SQL}, 5) FROM range({start}, {start + 20}) r(i)").fetchall()
            for i, hits in rows:
                check_rows([h["id"] for h in hits], [h["distance"] for h in hits], vec([i])[0], 5)
            self.count("knn_batch_20")

    def writer(self, con, seed):
        rng = np.random.default_rng(seed)
        nxt = BASE
        while self.running():
            r = rng.random()
            if r < 0.35 and nxt < BASE + EXTRA:
                n = int(rng.integers(1, 200))
                end = min(nxt + n, BASE + EXTRA)
                con.execute(f"SELECT knn_index_insert('ci', i, {VEC_SQL}, i) FROM range({nxt}, {end}) r(i)")
                nxt = end
                self.count("insert")
            elif r < 0.7:
                lo = int(rng.integers(BASE // 2, nxt - 50))
                con.execute(f"SELECT knn_index_delete('ci', i) FROM range({lo}, {lo + 50}) r(i)")
                self.count("delete")
                con.execute(f"SELECT knn_index_insert('ci', i, {VEC_SQL}, i) FROM range({lo}, {lo + 25}) r(i)")
                self.count("reinsert")
            else:
                con.execute("SELECT * FROM knn_index_optimize('ci')").fetchall()
                self.count("optimize")

    def dumper(self, con, seed):
        rng = np.random.default_rng(seed)
        table = f"dump_{seed}"
        while self.running():
            con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM knn_index_dump('ci')")
            self.count("dump")
            # restore refuses an existing name, so the copy is dropped first (the live 'ci' is never
            # restored over: searches of it would see it missing in between)
            target = f"copy_{seed}_{int(rng.integers(0, 2))}"
            con.execute(f"SELECT * FROM knn_index_drop('{target}')").fetchall()
            restored = con.execute(f"SELECT knn_index_restore('{target}', part, bytes) FROM {table}").fetchone()[0]
            assert restored >= BASE // 2
            self.count("restore")
            q = vec([int(rng.integers(0, BASE))])[0]
            rows = con.execute(f"SELECT id, distance FROM knn_search('{target}', $q, k := 10)",
                               {"q": q.tolist()}).fetchall()
            check_rows([r[0] for r in rows], [r[1] for r in rows], q, K)
            self.count("search_restored")

    def lister(self, con, seed):
        while self.running():
            ids = np.array([r[0] for r in con.execute("SELECT id FROM knn_index_ids('ci')").fetchall()])
            assert len(ids) >= BASE // 2 and len(np.unique(ids)) == len(ids)
            assert np.all((ids >= 0) & (ids < BASE + EXTRA))
            con.execute("SELECT * FROM knn_indexes()").fetchall()
            self.count("list")


def run_sql_stress(seconds, searchers, writers):
    with knnsql.connect(threads=2) as db:
        db.execute("SELECT * FROM knn_index_create('ci', dim := 8, m := 8, ef_construction := 60)").fetchall()
        db.execute(f"SELECT knn_index_insert('ci', i, {VEC_SQL}, i) FROM range({BASE}) r(i)").fetchall()
        s = Stress(db, seconds)
        threads = [s.thread(s.searcher, 10 + i) for i in range(searchers)]
        threads += [s.thread(s.batch_searcher, 30), s.thread(s.lister, 40)]
        threads += [s.thread(s.writer, 50 + i) for i in range(writers)]
        threads += [s.thread(s.dumper, 70)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 120)
        assert not any(t.is_alive() for t in threads), "a worker hung"
        assert not s.errors, s.errors[:5]
        for op in ("search", "window_search", "knn_batch_20", "insert", "delete", "optimize", "dump", "restore"):
            assert s.ops.get(op, 0) > 0, f"no {op} ran: {s.ops}"
        return s.ops


def run_numpy_stress(seconds, searchers):
    """The same on knnsql.Index: cffi releases the GIL, so these calls overlap in the core."""
    index = knnsql.Index(DIM, "l2", kind="graph", m=8, ef_construction=60)
    index.add(vec(np.arange(BASE)), ids=np.arange(BASE), labels=np.arange(BASE))
    deadline = time.monotonic() + seconds
    errors: list[str] = []
    ops = {"search": 0, "write": 0}

    def searcher(seed):
        rng = np.random.default_rng(seed)
        try:
            while time.monotonic() < deadline and not errors:
                qid = rng.integers(0, BASE, 16)
                Q = vec(qid)
                ids, dists = index.search(Q, k=K, ef=40, threads=1)
                for row in range(len(Q)):
                    check_rows(ids[row], dists[row], Q[row], K)
                ops["search"] += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(f"numpy searcher: {exc}")

    def writer():
        rng = np.random.default_rng(5)
        try:
            while time.monotonic() < deadline and not errors:
                lo = int(rng.integers(BASE // 2, BASE - 100))
                index.delete(np.arange(lo, lo + 100))
                index.add(vec(np.arange(lo, lo + 100)), ids=np.arange(lo, lo + 100), labels=np.arange(lo, lo + 100))
                if rng.random() < 0.3:
                    index.optimize(threads=1)
                clone = knnsql.Index.from_bytes(index.to_bytes())
                assert len(clone) == BASE
                ops["write"] += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(f"numpy writer: {exc}")

    threads = [threading.Thread(target=searcher, args=(i,)) for i in range(searchers)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    assert not errors, errors[:5]
    assert ops["search"] > 0 and ops["write"] > 0, ops
    return ops


def test_sql_concurrent_search_and_writes_short():
    run_sql_stress(seconds=3.0, searchers=3, writers=1)


def test_numpy_concurrent_search_and_writes_short():
    run_numpy_stress(seconds=2.0, searchers=3)


@pytest.mark.slow
def test_sql_concurrent_search_and_writes_long():
    ops = run_sql_stress(seconds=60.0, searchers=6, writers=2)
    print("sql stress operations:", ops)


@pytest.mark.slow
def test_numpy_concurrent_search_and_writes_long():
    ops = run_numpy_stress(seconds=30.0, searchers=6)
    print("numpy stress operations:", ops)
