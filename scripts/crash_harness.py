"""Crash-safety harness: kill -9 a process at a random moment while it bulk-inserts, updates,
deletes, optimizes, dumps (``CREATE TABLE .. AS SELECT * FROM knn_index_dump``), restores and
checkpoints a file database, then reopen the file and check.

    python scripts/crash_harness.py --trials 100 [--seed 1] [--dir DIR]

Each trial starts a worker process on the same database file, waits until it is working, sleeps a
random 0.05-1.5 s and sends SIGKILL. The worker logs the operation it starts before each one, so every
kill is attributed to the operation it interrupted. On reopening:

1. The table must be intact: it opens, ids are unique, and every row's vector equals the vector its
   (id, version) defines (a torn or half-applied row would not).
2. With probability --rot (default 0.15) one bit of the stored dump is flipped first, as storage
   damage would; such a dump must be detected. The index is recovered by ``recover()`` - the procedure an application uses - and must be either
   restored from the dump and valid (the checksum and structure checks pass, and the table's
   fingerprint ``count(*), bit_xor(hash(id, emb))`` saved with the dump in the same transaction still
   matches), or detected as stale (fingerprint differs) / corrupt (restore refuses the bytes) /
   absent and rebuilt from the table.
3. Either way the recovered index must answer correctly: its ids are exactly the table's, and the
   distances of search results equal distances recomputed from the table's vectors.
   A trial fails if any check fails (``silently wrong`` is exactly what the checks detect).

Prints one line per trial and a summary of outcomes by interrupted operation; exits 1 on failure.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIM = 8
INDEX = "ci"
# The vector of a row is a function of (id, ver): recomputable in SQL and never ambiguous.
VEC = ("[cos(id + ver), sin(id * 0.5 + ver), cos(0.37 * id), sin(0.37 * id + ver), cos(1.3 * id), "
       "sin(1.3 * id), (id % 17) / 17.0 + ver, (id % 5) / 5.0]::FLOAT[8]")
FINGERPRINT = "SELECT count(*) AS n, bit_xor(hash(id, emb)) AS h FROM t"


def _package_root() -> str:
    """The folder holding the knnsql this process imports (an install, or the repo for -e / PYTHONPATH
    use): workers must load the same build, not a source tree without a compiled extension."""
    try:
        import knnsql
    except ImportError:
        sys.path.insert(0, str(ROOT))
        import knnsql
    return str(Path(knnsql.__file__).resolve().parent.parent)


def connect(path):
    _package_root()
    import knnsql

    return knnsql.connect(str(path), threads=2)


def dump(con) -> None:
    """The dump and the table's fingerprint, in one transaction."""
    con.execute("BEGIN")
    con.execute(f"CREATE OR REPLACE TABLE idx_dump AS SELECT * FROM knn_index_dump('{INDEX}')")
    con.execute(f"CREATE OR REPLACE TABLE idx_meta AS {FINGERPRINT}")
    con.execute("COMMIT")


def rebuild(con) -> None:
    """Rebuilds the index from the table and replaces the dump with a fresh one."""
    con.execute(f"SELECT * FROM knn_index_drop('{INDEX}')").fetchall()
    con.execute(f"SELECT * FROM knn_index_create('{INDEX}', dim := {DIM}, m := 8, ef_construction := 32)").fetchall()
    con.execute(f"SELECT knn_index_insert('{INDEX}', id, emb, id) FROM t").fetchall()
    dump(con)


def recover(con) -> str:
    """Brings the index back after reopening: 'restored', or '<why>-rebuilt' (stale, corrupt, absent)."""
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if not {"idx_dump", "idx_meta"} <= tables:
        rebuild(con)
        return "absent-rebuilt"
    con.execute(f"SELECT * FROM knn_index_drop('{INDEX}')").fetchall()
    try:
        con.execute(f"SELECT knn_index_restore('{INDEX}', part, bytes) FROM idx_dump").fetchall()
    except Exception as exc:  # noqa: BLE001 - any refusal means the bytes are unusable
        if "knn_index_restore" not in str(exc):
            raise
        rebuild(con)
        return "corrupt-rebuilt"
    saved = con.execute("SELECT n, h FROM idx_meta").fetchone()
    now = con.execute(FINGERPRINT).fetchone()
    if saved != now:
        rebuild(con)
        return "stale-rebuilt"
    # Belt and braces: the restored ids must be the table's (catches a dump taken out of sync).
    differ = con.execute(f"SELECT count(*) FROM (SELECT id FROM t EXCEPT SELECT id FROM knn_index_ids('{INDEX}') "
                         f"UNION ALL SELECT id FROM knn_index_ids('{INDEX}') EXCEPT SELECT id FROM t)").fetchone()[0]
    if differ:
        rebuild(con)
        return "stale-ids-rebuilt"
    return "restored"


# ---- worker --------------------------------------------------------------------------------------

def worker(path: str, seed: int, oplog: str) -> None:
    rng = random.Random(seed)
    db = connect(path)
    con = db.con
    log = open(oplog, "a", buffering=1)
    log.write(f"recover {recover(con)}\n")
    print("ready", flush=True)
    while True:
        op = rng.choice(["insert", "insert", "insert", "update", "update", "delete", "delete", "optimize", "dump", "dump",
                         "dump", "restore", "checkpoint"])
        log.write(f"start {op}\n")
        if op == "insert":
            lo, rows = con.execute("SELECT coalesce(max(id), -1) + 1, count(*) FROM t").fetchone()
            if rows > 6000:  # keep trials short: the table stays a few thousand rows
                con.execute(f"SELECT knn_index_delete('{INDEX}', id) FROM t WHERE id < {lo - 3000}").fetchall()
                con.execute(f"DELETE FROM t WHERE id < {lo - 3000}")
            n = rng.randint(50, 1500)
            con.execute("BEGIN")
            con.execute(f"INSERT INTO t SELECT id, 0 AS ver, {VEC} AS emb FROM (SELECT i AS id, 0 AS ver "
                        f"FROM range({lo}, {lo + n}) r(i))")
            con.execute("COMMIT")
            con.execute(f"SELECT knn_index_insert('{INDEX}', id, emb, id) FROM t WHERE id >= {lo}").fetchall()
        elif op == "update":
            p = rng.randint(3, 20)
            bumped = VEC.replace("ver", "(ver + 1)")  # SET expressions see the old row
            con.execute(f"UPDATE t SET ver = ver + 1, emb = {bumped} WHERE id % {p} = 0")
            con.execute(f"SELECT knn_index_insert('{INDEX}', id, emb, id) FROM t WHERE id % {p} = 0").fetchall()
        elif op == "delete":
            p = rng.randint(7, 30)
            ids = con.execute(f"SELECT list(id) FROM t WHERE id % {p} = 1").fetchone()[0] or []
            con.execute(f"DELETE FROM t WHERE id % {p} = 1")
            con.execute(f"SELECT knn_index_delete('{INDEX}', i) FROM unnest($ids::BIGINT[]) u(i)", {"ids": ids}).fetchall()
        elif op == "optimize":
            con.execute(f"SELECT * FROM knn_index_optimize('{INDEX}')").fetchall()
        elif op == "dump":
            dump(con)
        elif op == "restore":
            con.execute("SELECT * FROM knn_index_drop('scratch')").fetchall()
            con.execute("SELECT knn_index_restore('scratch', part, bytes) FROM idx_dump").fetchall()
        elif op == "checkpoint":
            con.execute("CHECKPOINT")
        log.write(f"done {op}\n")


# ---- parent --------------------------------------------------------------------------------------

def setup(path: Path, rows: int) -> None:
    db = connect(path)
    con = db.con
    con.execute(f"CREATE TABLE t AS SELECT id, ver, {VEC} AS emb FROM (SELECT i AS id, 0 AS ver FROM range({rows}) r(i))")
    rebuild(con)
    db.close()


def rot(con, rng: random.Random) -> None:
    """Storage damage: flips one bit of the stored dump (what the checksum exists to catch)."""
    part, blob = con.execute("SELECT part, bytes FROM idx_dump ORDER BY part LIMIT 1").fetchone()
    raw = bytearray(blob)
    raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
    con.execute("UPDATE idx_dump SET bytes = $b WHERE part = $p", {"b": bytes(raw), "p": part})


def verify(path: Path, rng: random.Random, rot_chance: float) -> tuple[str, list[str]]:
    problems = []
    db = connect(path)
    con = db.con
    try:
        rotted = False
        if rng.random() < rot_chance and con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'idx_dump'").fetchone()[0]:
            rot(con, rng)
            rotted = True
        n, distinct = con.execute("SELECT count(*), count(DISTINCT id) FROM t").fetchone()
        if n != distinct:
            problems.append(f"table has {n - distinct} repeated ids")
        bad = con.execute(f"SELECT count(*) FROM t WHERE emb IS DISTINCT FROM {VEC}").fetchone()[0]
        if bad:
            problems.append(f"{bad} rows whose vector does not match their (id, ver)")
        outcome = recover(con)
        if rotted and outcome != "corrupt-rebuilt":
            problems.append(f"a damaged dump was not detected ({outcome})")
        table_ids = {r[0] for r in con.execute("SELECT id FROM t").fetchall()}
        index_ids = {r[0] for r in con.execute(f"SELECT id FROM knn_index_ids('{INDEX}')").fetchall()}
        if table_ids != index_ids:
            problems.append(f"index ids differ from the table's ({len(index_ids ^ table_ids)} differ) after {outcome}")
        # Search results must carry the table's current vectors.
        wrong = con.execute(f"""
            WITH q AS (SELECT id AS qid, emb AS qv FROM t USING SAMPLE 5 ROWS),
                 hits AS (SELECT qid, qv, unnest(knn('{INDEX}', qv, 10, NULL, NULL, 200)) AS h FROM q)
            SELECT count(*) FILTER (WHERE abs(h.distance - array_distance(t.emb, qv) ^ 2) > 1e-3 * (1 + h.distance)
                                     OR t.id IS NULL), count(*)
            FROM hits LEFT JOIN t ON t.id = h.id""").fetchone()
        if n and (wrong[0] or wrong[1] == 0):
            problems.append(f"{wrong[0]} of {wrong[1]} search results disagree with the table after {outcome}")
    finally:
        db.close()
    return outcome, problems


def trial(path: Path, seed: int, rng: random.Random, oplog: Path, rot_chance: float) -> tuple[str, str, list[str]]:
    env = dict(os.environ, PYTHONPATH=_package_root())
    proc = subprocess.Popen([sys.executable, __file__, "--worker", str(path), "--seed", str(seed), "--oplog",
                             str(oplog)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    line = proc.stdout.readline().decode().strip()
    if line != "ready":
        proc.kill()
        err = proc.stderr.read().decode()[-2000:]
        return "startup", "failed", [f"worker did not start: {line!r} {err}"]
    time.sleep(rng.uniform(0.05, 1.5))
    if proc.poll() is not None:
        err = proc.stderr.read().decode()[-2000:]
        return "worker-error", "failed", [f"worker exited by itself ({proc.returncode}): {err.strip().splitlines()[-1]}"]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    lines = oplog.read_text().splitlines()
    last = lines[-1] if lines else ""
    interrupted = last.split()[1] if last.startswith("start") else "between-ops"
    outcome, problems = verify(path, rng, rot_chance)
    return interrupted, outcome, problems


def run(trials: int, seed: int, directory: Path, rows: int = 3000, quiet: bool = False, rot_chance: float = 0.15) -> dict:
    rng = random.Random(seed)
    path = directory / "crash.duckdb"
    for p in directory.glob("crash.duckdb*"):
        p.unlink()
    setup(path, rows)
    oplog = directory / "ops.log"
    oplog.write_text("")
    stats = collections.Counter()
    by_op = collections.defaultdict(collections.Counter)
    failures = []
    for i in range(trials):
        interrupted, outcome, problems = trial(path, rng.randrange(1 << 30), rng, oplog, rot_chance)
        status = "FAIL" if problems else "ok"
        stats[status] += 1
        by_op[interrupted][outcome if not problems else "FAILED"] += 1
        if problems:
            failures.append((i, interrupted, problems))
        if not quiet:
            print(f"trial {i}: killed during {interrupted}: {outcome} {status} {'; '.join(problems)}", flush=True)
    summary = {"trials": trials, "ok": stats["ok"], "failed": stats["FAIL"],
               "by_interrupted_op": {k: dict(v) for k, v in sorted(by_op.items())}, "failures": failures}
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--rot", type=float, default=0.15, help="chance of flipping a bit of the stored dump")
    ap.add_argument("--dir")
    ap.add_argument("--worker")
    ap.add_argument("--oplog")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.seed, args.oplog)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        summary = run(args.trials, args.seed, Path(args.dir or tmp), args.rows, rot_chance=args.rot)
    print(f"crash harness: {summary['trials']} kill -9 trials, {summary['ok']} recovered, {summary['failed']} failed")
    for op, outcomes in summary["by_interrupted_op"].items():
        print(f"  killed during {op}: {outcomes}")
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
