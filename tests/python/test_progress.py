"""Progress on the terminal (knnsql/_progress.py): shown for builds, large inserts, sampling and analytics
when stderr is a terminal and progress is not switched off; silent otherwise; never a change in results.

pytest's captured stderr, told to say it is a terminal, stands in for one. Nothing here depends on timing:
watch() is tested with DELAY = 0 (its closing line is then always written) and with a fake connection.
"""

import io
import sys
import threading

import numpy as np
import pyarrow as pa
import pytest

import knnsql
from knnsql import _catalog, _ingest, _progress, analytics, sampling

D = 8


class Terminal(io.StringIO):
    def isatty(self):
        return True


class Captured:
    """What was written to stderr so far (pytest's capture, which would undo a replaced sys.stderr)."""
    def __init__(self, capsys):
        self.capsys, self.text = capsys, ""

    def getvalue(self):
        self.text += self.capsys.readouterr().err
        return self.text


@pytest.fixture
def tty(capsys, monkeypatch):
    """stderr (pytest's capture) says it is a terminal; progress follows the environment, which leaves it on."""
    # pytest swaps its capture stream between setup and call, so the stream's class is told, not the stream
    monkeypatch.setattr(type(sys.stderr), "isatty", lambda self: True, raising=False)
    monkeypatch.delenv("KNNSQL_PROGRESS", raising=False)
    monkeypatch.setattr(_progress, "_switch", None)
    return Captured(capsys)


def vectors(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)


def settings(con):
    return tuple(bool(v) for v in _progress._settings(con))


def table_of(n, seed=0):
    X = vectors(n, seed)
    return pa.table({"id": pa.array(np.arange(n, dtype=np.int64)),
                     "emb": pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), D)}), X


# ---- the switch --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["0", "false", "OFF", " no "])
def test_the_environment_switches_progress_off(tty, monkeypatch, value):
    assert _progress.active()
    monkeypatch.setenv("KNNSQL_PROGRESS", value)
    assert not _progress.active()
    _progress.enable(True)                     # the module switch overrides the environment
    assert _progress.active()
    _progress.enable(None)
    assert not _progress.active()


def test_never_on_a_stream_that_is_not_a_terminal(monkeypatch):
    monkeypatch.setattr(_progress, "_switch", True)
    assert not _progress.active(io.StringIO())
    assert _progress.active(Terminal())
    closed = io.StringIO()
    closed.close()
    assert not _progress.active(closed)


def test_the_split_depends_on_the_size_only():
    assert _progress.parts(10_000, 10_000) == 1
    assert _progress.parts(10_001, 10_000) == 5            # steps of at least 2,500 rows
    assert _progress.parts(1_000_000, 10_000) == 20
    assert _progress.parts(1000, 300) == 14


# ---- index builds --------------------------------------------------------------------------------------------

def build(db, name, kind, X):
    t = db.create_table(name, dim=D, metric="l2")
    t.add({"id": np.arange(len(X)), "emb": X})
    t.create_index(kind=kind, **({"m": 8} if kind == "graph" else {}))
    return t


@pytest.mark.parametrize("kind", ["flat", "graph"])
def test_a_large_build_shows_progress_and_builds_the_same_index(db, tty, monkeypatch, kind):
    monkeypatch.setattr(_catalog, "PROGRESS_CHUNK", 300)
    X = vectors(1000)
    Q = vectors(20, seed=9)
    shown = build(db, "shown", kind, X)
    text = tty.getvalue()
    last = text.rstrip("\n").split("\r")[-1]
    assert text.startswith("\rbuilding shown__emb [") and text.endswith(" s\n")
    assert last.startswith("building shown__emb [##############################] 1,000/1,000 rows  ")
    assert text.count("\r") >= 8                          # one update per step (a graph adds its held-out rows last)
    _progress.enable(False)
    silent = build(db, "silent", kind, X)
    assert tty.getvalue() == text                         # switched off: nothing more written
    for t in (shown, silent):
        assert db.execute(f"SELECT rows FROM knn_indexes() WHERE name = '{t.name}__emb'").fetchone()[0] == 1000
    if kind == "flat":                                    # exact: the very same answers
        for q in Q:
            a, da = shown.search(q).limit(10).to_numpy()
            b, db_ = silent.search(q).limit(10).to_numpy()
            assert a.tolist() == b.tolist() and np.array_equal(da, db_)
    else:                                                 # threaded build: every row still finds itself
        for i in range(0, 1000, 97):
            assert shown.search(X[i]).limit(1).to_numpy()[0].tolist() == [i]


def test_a_build_is_silent_off_a_terminal(db, monkeypatch, capfd):
    monkeypatch.setattr(_catalog, "PROGRESS_CHUNK", 300)
    monkeypatch.setattr(_progress, "_switch", True)       # on, but stderr is pytest's capture: no terminal
    build(db, "t", "flat", vectors(1000))
    assert capfd.readouterr() == ("", "")


def test_a_small_build_shows_nothing(db, tty):
    build(db, "t", "flat", vectors(200))
    assert tty.getvalue() == ""


# ---- inserts -------------------------------------------------------------------------------------------------

def insert_in_batches(db, name, batch):
    """What table.add does with ``_ingest.batches``: each batch into the table, then into the index."""
    con = db.con
    con.execute(f"CREATE TABLE {name} (id BIGINT PRIMARY KEY, emb FLOAT[{D}])").fetchall()
    con.execute(f"SELECT * FROM knn_index_create('{name}_idx', dim := {D}, kind := 'flat')").fetchall()
    for part in _ingest.batches(batch, f"adding to {name}", con, threshold=300):
        con.register("_part", part)
        con.execute(f"INSERT INTO {name} SELECT * FROM _part").fetchall()
        con.execute(f"SELECT knn_index_insert('{name}_idx', id, emb) FROM _part").fetchall()
        con.unregister("_part")


def test_a_large_insert_shows_progress_per_batch_and_writes_the_same_rows(db, tty):
    batch, X = table_of(1000)
    insert_in_batches(db, "shown", batch)
    text = tty.getvalue()
    assert text.startswith("\radding to shown [") and "1,000/1,000 rows" in text and text.endswith(" s\n")
    assert text.count("\r") == _progress.parts(1000, 300)
    _progress.enable(False)
    insert_in_batches(db, "silent", batch)
    assert tty.getvalue() == text
    for name in ("shown", "silent"):
        assert db.execute(f"SELECT count(*), sum(id) FROM {name}").fetchone() == (1000, 499500)
    for q in vectors(10, seed=3):
        a = db.execute("SELECT id, distance FROM knn_search('shown_idx', ?, k := 5)", [q.tolist()]).fetchall()
        b = db.execute("SELECT id, distance FROM knn_search('silent_idx', ?, k := 5)", [q.tolist()]).fetchall()
        assert a == b


def test_batches_slice_without_copies_whatever_the_display(tty, monkeypatch):
    batch, _ = table_of(1000)
    shown = list(_ingest.batches(batch, "adding", threshold=300))
    monkeypatch.setenv("KNNSQL_PROGRESS", "0")
    silent = list(_ingest.batches(batch, "adding", threshold=300))
    assert [p.num_rows for p in shown] == [p.num_rows for p in silent] and len(shown) == 14
    assert pa.concat_tables(shown).equals(batch)
    assert list(_ingest.batches(batch, "adding"))[0].num_rows == 1000   # under ADD_CHUNK: one batch


def test_an_insert_is_silent_off_a_terminal(db, monkeypatch, capfd):
    monkeypatch.setattr(_progress, "_switch", True)
    batch, _ = table_of(1000)
    insert_in_batches(db, "t", batch)
    assert capfd.readouterr() == ("", "")


# ---- one long statement: sampling and analytics -----------------------------------------------------------------

@pytest.fixture
def pts(db):
    t = db.create_table("pts", dim=D, metric="l2", columns={"grp": "INTEGER"})
    t.add({"id": np.arange(600), "emb": vectors(600, seed=4), "grp": np.arange(600) % 3})
    return db


def test_sampling_and_analytics_show_a_closing_line_and_the_same_answers(pts, tty, monkeypatch):
    monkeypatch.setattr(_progress, "DELAY", 0.0)          # show at once: the closing line is always written
    picks = sampling.sample(pts, "pts", 20, "kcenter", seed=1)
    div = analytics.sql_divergence(pts, "pts", "grp = 0", k=5)
    lid, est = analytics.sql_lid(pts, "pts", k=10)
    text = tty.getvalue()
    for label in ("sampling kcenter", "knn_divergence", "knn_lid", "knn_lid_estimate"):
        assert f"\r{label} done in " in text
    assert text.endswith(" s\x1b[K\n")
    _progress.enable(False)
    assert sampling.sample(pts, "pts", 20, "kcenter", seed=1).equals(picks)
    assert analytics.sql_divergence(pts, "pts", "grp = 0", k=5) == div
    lid2, est2 = analytics.sql_lid(pts, "pts", k=10)
    assert lid2.equals(lid) and est2 == est
    assert tty.getvalue() == text


def test_a_short_statement_shows_nothing(pts, tty):
    sampling.sample(pts, "pts", 5, "kcenter", seed=1)     # well under DELAY (1 s)
    assert tty.getvalue() == ""


def test_duckdbs_own_bar_stays_quiet_and_the_settings_come_back(pts, capfd):
    con = pts.con
    con.execute("SET enable_progress_bar = true").fetchall()   # DuckDB's Python default, off under pytest
    con.execute("SET progress_bar_time = 0").fetchall()   # DuckDB prints its bar for every statement now
    sql = sampling.sample_sql("pts", 20, "kcenter")
    con.execute(sql, {"n": 20, "seed": 1}).df()
    assert "100%" in capfd.readouterr().out               # DuckDB's bar goes to stdout, terminal or not
    with _progress.quiet(con):
        capfd.readouterr()                                # (the statements that switch it off print it too)
        con.execute(sql, {"n": 20, "seed": 1}).df()
        assert capfd.readouterr().out == ""
        assert settings(con) == (False, False)
    assert settings(con) == (True, True)
    with _progress.quiet(con, track=True):                # watch() on: DuckDB tracks, knnsql prints
        assert settings(con) == (True, False)
    assert settings(con) == (True, True)
    con.execute("SET enable_progress_bar = false").fetchall()
    with _progress.quiet(con):
        assert settings(con) == (False, True)             # nothing to change: left as the user set it
    with _progress.quiet(con, track=True):
        assert settings(con) == (True, False)
    assert settings(con) == (False, True)


def test_settings_come_back_after_an_error(pts, tty, monkeypatch):
    monkeypatch.setattr(_progress, "DELAY", 0.0)
    before = settings(pts.con)
    with pytest.raises(knnsql.KnnError):
        sampling.sample(pts, "pts", 5, "nonsense")        # fails before any statement
    with pytest.raises(Exception, match="no_such_column|not found"):
        sampling.sample(pts, "pts", 5, "kcenter", vec="no_such_column")
    assert "sampling kcenter failed in " in tty.getvalue()
    assert settings(pts.con) == before


class Once(threading.Event):
    """An event whose wait() lets one poll through, then stops the loop."""
    def __init__(self):
        super().__init__()
        self.calls = 0

    def wait(self, timeout=None):
        self.calls += 1
        return self.calls > 1


class FakeConnection:
    def __init__(self, value):
        self.value = value

    def query_progress(self):
        return self.value


@pytest.mark.parametrize("value, shown", [(42.4, "[############..................] 42% of rows read  0 s"),
                                          (99.95, "[##############################] rows read, computing  0 s"),
                                          (-1.0, "0 s")])
def test_the_line_shows_duckdbs_query_progress(monkeypatch, value, shown):
    monkeypatch.setattr(_progress, "_switch", True)
    monkeypatch.setattr(_progress, "DELAY", 0.0)
    term = Terminal()
    w = _progress.watch(FakeConnection(value), "knn_lid", stream=term)
    w.stop, w.start = Once(), _progress.time.monotonic()
    w._poll()
    assert term.getvalue() == f"\rknn_lid {shown}\x1b[K"


def test_table_add_writes_large_inputs_in_batches_with_progress(tty, monkeypatch):
    """VectorTable.add over more rows than ADD_CHUNK: a progress line per batch, every row in the table and
    the index; an id clash anywhere in the input writes nothing."""
    import knnsql
    from knnsql import _ingest
    from knnsql._ingest import DataError

    monkeypatch.setattr(_ingest, "ADD_CHUNK", 300)
    X = vectors(1000, seed=4)
    with knnsql.connect() as kdb:
        t = kdb.create_table("big", dim=D, metric="l2")
        t.create_index(kind="flat")
        assert t.add({"id": np.arange(1000), "emb": X}) == 1000
        text = tty.getvalue()
        assert "adding to big [" in text and "1,000/1,000 rows" in text
        assert len(t) == 1000
        ids, _ = t.search(X[777]).limit(1).to_numpy()
        assert ids[0] == 777
        with pytest.raises(DataError, match="already exist"):
            t.add({"id": np.r_[np.arange(1000, 1999), 5], "emb": vectors(1000, seed=5)})   # only the last clashes
        assert len(t) == 1000
