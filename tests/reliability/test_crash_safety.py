"""kill -9 during writes to a file database, then reopen: the table is intact and the index comes
back restored-and-valid or detected stale/corrupt and rebuilt (scripts/crash_harness.py)."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]


def harness():
    """scripts/crash_harness.py's names (run, setup, connect, recover, rot, VEC, ...)."""
    return SimpleNamespace(**runpy.run_path(str(ROOT / "scripts" / "crash_harness.py"), run_name="crash_harness"))


def test_kill9_short(tmp_path):
    summary = harness().run(trials=2, seed=11, directory=tmp_path, rows=1500, quiet=True, rot_chance=0.5)
    assert summary["failed"] == 0, summary["failures"]
    assert summary["ok"] == 2


def test_recover_detects_a_stale_and_a_damaged_dump(tmp_path):
    h = harness()
    h.setup(tmp_path / "db.duckdb", 500)
    db = h.connect(tmp_path / "db.duckdb")
    try:
        assert h.recover(db.con) == "restored"
        db.execute("UPDATE t SET ver = ver + 1, emb = " + h.VEC.replace("ver", "(ver + 1)") + " WHERE id = 3")
        assert h.recover(db.con) == "stale-rebuilt"   # the table changed after the dump
        assert h.recover(db.con) == "restored"        # rebuild wrote a fresh dump
        import random

        h.rot(db.con, random.Random(5))
        assert h.recover(db.con) == "corrupt-rebuilt"
        db.execute("DROP TABLE idx_meta")
        assert h.recover(db.con) == "absent-rebuilt"
    finally:
        db.close()


@pytest.mark.slow
def test_kill9_many(tmp_path):
    summary = harness().run(trials=30, seed=12, directory=tmp_path, rows=2000, quiet=True)
    print("kill -9 outcomes:", summary["by_interrupted_op"])
    assert summary["failed"] == 0, summary["failures"]
