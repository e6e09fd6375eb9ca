"""Coverage-guided fuzzing (atheris) of knnsql's SQL functions through DuckDB.

Each input is decoded into a short program of SQL calls - index create / insert / delete / optimize /
drop / dump / restore, knn_search, knn, knn_exact, knn_exact_join, knn_indexes, knn_index_ids - with
argument values drawn to hit the edges: NULLs, wrong types, dimensions 0..70,000, k and ef from
-2^63 to 2^63-1, NaN/Inf elements, labels of every supported type and some unsupported ones,
damaged dump bytes. The oracle:

- the process never dies (a crash or sanitizer report ends the run with the reproducer saved);
- every failure is a ``duckdb.Error`` carrying a message, never an INTERNAL error (which would
  invalidate the database) and never another Python exception;
- successful searches return ids some insert wrote (derived from the source table's), without
  repeats, with distances ascending and never NULL or NaN.

With ``KNNSQL_FUZZ_EXTENSION`` pointing at an extension built with clang's ``-fsanitize-coverage=inline-8bit-counters,pc-table,trace-cmp``
(scripts/fuzz.sh does this), libFuzzer sees the C code's edge coverage; otherwise the run is
unguided (random programs). Run: ``bash scripts/fuzz.sh sql 60``.
"""

from __future__ import annotations

import math
import os
import sys

import atheris  # noqa: E402

import duckdb  # noqa: E402  (a C extension: the coverage that matters is the instrumented knnsql's)

DIM = 4
NAMES = ["g", "f", "w", "nope", "", "x" * 70, "a'b"]
INTS = [-(2**63), -(2**31), -1, 0, 1, 2, 3, 10, 64, 1000, 65536, 65537, 2**31 - 1, 2**31, 2**53, 2**62, 2**63 - 1]


def _extension() -> str:
    path = os.environ.get("KNNSQL_FUZZ_EXTENSION")
    if path:
        return path
    import knnsql

    return knnsql.extension_path()


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"allow_unsigned_extensions": "true", "threads": "2"})
    con.execute(f"LOAD '{_extension()}'")
    con.execute(f"CREATE TABLE t AS SELECT i AS id, [cos(i), sin(i), i % 7, (i * 13) % 5]::FLOAT[{DIM}] AS emb, "
                "i AS lab, TIMESTAMP '2024-01-01' + INTERVAL (i) HOUR AS ts FROM range(200) r(i)")
    return con


class Program:
    def __init__(self, data: bytes):
        self.fdp = atheris.FuzzedDataProvider(data)

    def pick(self, seq):
        return seq[self.fdp.ConsumeIntInRange(0, len(seq) - 1)]

    def one_of(self, top: int, edges: list, common):
        """Draws r in 0..top: edges[r] (a literal, or a callable drawing one) while r indexes an edge,
        else common()."""
        r = self.fdp.ConsumeIntInRange(0, top)
        if r >= len(edges):
            return common()
        return edges[r]() if callable(edges[r]) else edges[r]

    def int_lit(self) -> str:
        return self.one_of(9, ["NULL", lambda: str(self.fdp.ConsumeInt(8)), "'7'",
                               lambda: str(self.fdp.ConsumeIntInRange(0, 300))], lambda: str(self.pick(INTS)))

    def float_lit(self) -> str:
        return self.one_of(7, ["'nan'::FLOAT", "'inf'::FLOAT", "NULL", "1e38", "-0.0"],
                           lambda: repr(self.fdp.ConsumeFloatInRange(-10.0, 10.0)))

    def vector(self) -> str:
        r = self.fdp.ConsumeIntInRange(0, 9)
        if r == 0:
            return "NULL"
        if r == 1:
            return "[]::FLOAT[]"
        if r == 2:
            return f"repeat([1.5::FLOAT], {self.pick([0, 1, 3, 5, 65536, 70000])})"
        if r == 3:
            return "'abc'"
        dim = DIM if r > 4 else self.fdp.ConsumeIntInRange(1, 9)
        elems = ", ".join(self.float_lit() if self.fdp.ConsumeIntInRange(0, 5) == 0 else
                          repr(self.fdp.ConsumeFloatInRange(-3.0, 3.0)) for _ in range(dim))
        cast = self.pick([f"::FLOAT[{dim}]", "::FLOAT[]", "::DOUBLE[]", "", f"::DOUBLE[{dim}]"])
        return f"[{elems}]{cast}"

    def name(self) -> str:
        n = self.pick(NAMES)
        return "NULL" if self.fdp.ConsumeIntInRange(0, 15) == 0 else "'" + n.replace("'", "''") + "'"

    def label(self) -> str:
        return self.pick(["lab", "ts", "ts::DATE", "lab::DECIMAL(10,2)", "lab::DOUBLE / 0", "NULL", "'x'",
                          "lab::HUGEINT", "[lab]", "lab::TINYINT"])

    def where(self) -> str:
        return self.pick(["", " WHERE id < 50", " WHERE id % 3 = 0", " WHERE false", " WHERE id = 7"])

    def statement(self) -> tuple[str, str]:
        op = self.fdp.ConsumeIntInRange(0, 13)
        nm = self.name()
        if op == 0:
            opts = []
            for key, gen in [("dim", self.int_lit), ("metric", lambda: self.pick(["'l2'", "'cosine'", "'ip'", "'l1'",
                                                                                   "NULL", "'l2sq'"])),
                             ("kind", lambda: self.pick(["'graph'", "'flat'", "'hnsw'", "'tree'", "NULL"])),
                             ("m", self.int_lit), ("ef_construction", self.int_lit), ("ef", self.int_lit),
                             ("seed", self.int_lit)]:
                if key == "dim" and self.fdp.ConsumeBool():
                    opts.append(f"dim := {DIM}")
                elif self.fdp.ConsumeIntInRange(0, 3) == 0:
                    opts.append(f"{key} := {gen()}")
            return "create", f"SELECT * FROM knn_index_create({', '.join([nm] + opts)})"
        if op in (1, 2):
            lab = f", {self.label()}" if self.fdp.ConsumeBool() else ""
            vec = "emb" if self.fdp.ConsumeIntInRange(0, 3) else self.vector()
            ident = self.pick(["id", "id", "NULL", "id * 0", "-id", "id::DOUBLE"])
            return "insert", f"SELECT knn_index_insert({nm}, {ident}, {vec}{lab}) FROM t{self.where()}"
        if op == 3:
            return "delete", f"SELECT knn_index_delete({nm}, {self.pick(['id', 'NULL', '-1'])}) FROM t{self.where()}"
        if op == 4:
            return "optimize", f"SELECT * FROM knn_index_optimize({nm})"
        if op == 5:
            return "drop", f"SELECT * FROM knn_index_drop({nm})"
        if op in (6, 7):
            args = [nm, self.vector() if self.fdp.ConsumeIntInRange(0, 2) else "[0.5, 0.5, 1, 2]"]
            for key in ("k", "ef"):
                if self.fdp.ConsumeBool():
                    args.append(f"{key} := {self.int_lit()}")
            if self.fdp.ConsumeBool():
                lo, hi = self.pick([("10", "60"), ("60", "10"), ("NULL", "5"), ("TIMESTAMP '2024-01-02'", "TIMESTAMP "
                                                                              "'2024-01-03'"),
                                    ("DATE '2024-01-01'", "DATE '2024-02-01'"), ("'a'", "'b'"), ("-1e308", "1e308")])
                args += [f"lo := {lo}", f"hi := {hi}"]
            return "search", f"SELECT * FROM knn_search({', '.join(args)})"
        if op == 8:
            extra = ""
            if self.fdp.ConsumeBool():
                extra = f", {self.pick(['10', 'lab', 'NULL'])}, {self.pick(['60', 'lab + 5', 'NULL'])}"
                if self.fdp.ConsumeBool():
                    extra += f", {self.int_lit()}"
            return "knn", f"SELECT id, knn({nm}, {self.pick(['emb', self.vector()])}, {self.int_lit()}{extra}) FROM t" \
                          f"{self.where()}"
        if op == 9:
            metric = self.pick(["", ", 'l2'", ", 'cosine'", ", 'ip'", ", 'bad'", ", NULL"])
            return "exact", f"SELECT knn_exact({self.pick(['id', 'NULL', 'lab'])}, {self.pick(['emb', self.vector()])}, " \
                            f"{self.vector()}, {self.int_lit()}{metric}) FROM t{self.where()}"
        if op == 10:
            qs = self.pick(["(SELECT list({'qid': id, 'emb': emb}) FROM t WHERE id < 3)", "NULL", "[]",
                            "[{'qid': 1, 'emb': [1, 2, 3, 4]::FLOAT[4]}]", "[{'qid': NULL, 'emb': NULL}]",
                            "[{'qid': 1, 'emb': [1, 2]::FLOAT[2]}]"])
            return "exact_join", f"SELECT unnest(knn_exact_join(id, emb, {qs}, {self.int_lit()}), recursive := true) " \
                                 f"FROM t{self.where()}"
        if op == 11:
            return "dump", f"CREATE OR REPLACE TABLE d AS SELECT * FROM knn_index_dump({nm})"
        if op == 12:
            damage = self.pick(["bytes", "bytes", "substr(bytes, 1, {n})", "bytes || 'x'::BLOB", "NULL",
                                "'\\x00'::BLOB", "bytes[{n}:]"]).format(n=self.fdp.ConsumeIntInRange(1, 400))
            part = self.pick(["part", "part", "part + 1", "NULL", "0"])
            return "restore", f"SELECT knn_index_restore({nm}, {part}, {damage}) FROM d"
        return "list", self.pick(["SELECT * FROM knn_indexes()", f"SELECT * FROM knn_index_ids({nm})"])


def check_search(con, sql: str, rows) -> None:
    """Ids come from inserts, no repeats, distances ascending and not NaN."""
    ids = [r[0] for r in rows]
    dists = [r[1] for r in rows]
    if any(d is None or math.isnan(d) for d in dists):
        raise AssertionError(f"NULL/NaN distance from {sql}: {rows[:3]}")
    if any(b < a for a, b in zip(dists, dists[1:])):
        raise AssertionError(f"distances not ascending from {sql}: {dists}")
    if len(set(ids)) != len(ids):
        raise AssertionError(f"duplicate ids from {sql}: {ids}")
    # inserts use id, -id, id * 0 or id::DOUBLE of t's ids 0..199, so any other id came from nowhere
    if any(not -200 < i < 200 for i in ids):
        raise AssertionError(f"ids no insert could have written from {sql}: {ids}")


STATE = {}


def one_input(data: bytes) -> None:
    con = STATE.get("con")
    if con is None:
        con = STATE["con"] = connect()
    prog = Program(data)
    for _ in range(prog.fdp.ConsumeIntInRange(1, 8)):
        kind, sql = prog.statement()
        try:
            rows = con.execute(sql).fetchall()
        except duckdb.InternalException as exc:  # DuckDB invalidates the database: a bug
            raise AssertionError(f"INTERNAL error from {sql}: {exc}") from exc
        except duckdb.Error as exc:
            if not str(exc).strip():
                raise AssertionError(f"empty error message from {sql}") from exc
            if "database has been invalidated" in str(exc):
                raise AssertionError(f"database invalidated by {sql}") from exc
            continue
        if kind == "search":
            check_search(con, sql, rows)
    if prog.fdp.ConsumeIntInRange(0, 31) == 0:  # fresh registry now and then, so state stays small
        con.close()
        STATE.pop("con")


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    connect().close()  # loads (and registers the coverage of) the extension before fuzzing starts
    atheris.Fuzz()


if __name__ == "__main__":
    main()
