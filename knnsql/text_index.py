"""Keyword (BM25) indexes over a text column, for keyword and hybrid search (``hybrid.py``).

Two engines give the same SQL interface, ``<schema>.match_bm25(id, 'query text')`` (a score, NULL
when no query term occurs in the row), so the same query runs from any DuckDB client:

- ``fts``: DuckDB's own full-text extension (``PRAGMA create_fts_index``; Snowball stemming, English
  stopwords; schema ``fts_main_<table>``). Loaded by ``LOAD fts`` when installed, or from the
  ``duckdb-extension-fts`` PyPI package when its version is the running DuckDB's. Offline machines on
  a DuckDB without a matching package (DuckDB 2.0 today) have no ``fts``.
- ``sql``: the same Okapi BM25 built here in plain SQL (schema ``knnsql_text_<table>``): fts's
  tokenizer (lower case, accents stripped, runs of digits and punctuation split words), an optional
  English stopword list, no stemming. Scores equal fts's with ``stemmer='none'`` and the same stopwords
  (``tests/python/test_text_index.py`` checks this where fts loads). A table macro
  ``<schema>.bm25(query_string)`` lists the matching rows (id, score) from the postings, without
  scoring every row.

BM25 (Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", 2009), in fts's
form: score(d, q) = sum over distinct query terms t in d of
``log10((N - df_t + 0.5) / (df_t + 0.5) + 1) * tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl))``,
k1 = 1.2, b = 0.75 (fts uses DuckDB's ``log``, base 10; a constant factor, ranks are unchanged).

An index is a snapshot: rows written after it was built are not in it. ``TextIndex.fresh()`` compares a
fingerprint of the id and text columns (count and hash sum) with the one taken at build time; the
hybrid search rebuilds a stale index before it answers.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Optional

import duckdb

from ._sql import quote_ident as q

ENGINES = ("auto", "fts", "sql")

# fts's default characters to ignore (they split words): digits and ASCII punctuation
IGNORE = r"""[0-9!@#$%^&*()_+={}\[\]:;<>,.?~\\/\|''"`-]+"""

# A short English stopword list for the ``sql`` engine (common function words; fts's 'english' list is
# longer). Stopwords are left out of the index, so they neither match nor count in document lengths.
ENGLISH_STOPWORDS = sorted(set("""
a about above after again against all am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
now of off on once only or other our ours ourselves out over own same she should so some such than that the
their theirs them themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves
""".split()))

META = "knnsql_text_indexes"  # one row per text index: which engine, options and the build fingerprint


class TextIndexError(ValueError):
    """A keyword index that cannot be built or used as asked."""


@dataclass
class TextIndex:
    """A BM25 index over ``table.column``; ``schema`` holds its ``match_bm25`` macro."""
    table: str
    id_column: str
    column: str
    engine: str          # "fts" or "sql"
    stemmer: str
    stopwords: str
    fingerprint: str

    @property
    def schema(self) -> str:
        return ("fts_main_" if self.engine == "fts" else "knnsql_text_") + self.table

    def matches_sql(self, text_param: str) -> str:
        """A query yielding ``(id, score)`` for the rows that contain a term of the text (the parameter
        ``$<text_param>``), best first."""
        s = q(self.schema)
        if self.engine == "sql":
            return f"SELECT id, score FROM {s}.bm25(${text_param})"
        return (f"SELECT id, score FROM (SELECT {q(self.id_column)} AS id, {s}.match_bm25({q(self.id_column)}, "
                f"${text_param}) AS score FROM {q(self.table)}) WHERE score IS NOT NULL")

    def fresh(self, con) -> bool:
        return _fingerprint(con, self.table, self.id_column, self.column) == self.fingerprint


def fts_path() -> Optional[str]:
    """The fts extension file of the ``duckdb-extension-fts`` package when it matches this DuckDB."""
    try:
        import duckdb_extension_fts
    except ImportError:
        return None
    base = os.path.dirname(duckdb_extension_fts.__file__)
    hits = glob.glob(os.path.join(base, "extensions", f"v{duckdb.__version__}", "fts.duckdb_extension"))
    return hits[0] if hits else None


def load_fts(con) -> bool:
    """Loads fts into the connection if it can be found (installed, or the PyPI package); True when it is
    loaded. Never downloads (``INSTALL fts`` is the user's call: it needs the network)."""
    try:
        con.execute("LOAD fts").fetchall()
        return True
    except duckdb.Error:
        pass
    path = fts_path()
    if path is None:
        return False
    try:
        con.execute(f"LOAD '{path}'").fetchall()  # the package's path, not user text
        return True
    except duckdb.Error:
        return False


def create(con, table: str, id_column: str, column: str, *, engine: str = "auto", stemmer: str = "porter",
           stopwords: str = "english") -> TextIndex:
    """Builds (or rebuilds) the BM25 index of ``table.column``. ``engine='auto'`` takes fts when it loads,
    else the SQL engine (which has no stemmer: ``stemmer`` is then ignored and reported as 'none')."""
    if engine not in ENGINES:
        raise TextIndexError(f"unknown text index engine {engine!r}; use one of {ENGINES}")
    if stopwords not in ("english", "none"):
        raise TextIndexError(f"stopwords must be 'english' or 'none', got {stopwords!r}")
    if engine in ("auto", "fts"):
        if load_fts(con):
            engine = "fts"
        elif engine == "fts":
            raise TextIndexError(
                f"DuckDB's fts extension does not load in DuckDB {duckdb.__version__}: run INSTALL fts (needs the "
                f"network), or pip install duckdb-extension-fts=={duckdb.__version__} if that version exists; or "
                "use engine='sql' (the same BM25 without stemming)")
        else:
            engine = "sql"
    drop(con, table)
    if engine == "fts":
        con.execute(f"PRAGMA create_fts_index({_str(table)}, {_str(id_column)}, {_str(column)}, "
                    f"stemmer={_str(stemmer)}, stopwords={_str(stopwords)}, overwrite=1)").fetchall()
    else:
        stemmer = "none"
        _create_sql_index(con, table, id_column, column, stopwords)
    info = TextIndex(table, id_column, column, engine, stemmer, stopwords,
                     _fingerprint(con, table, id_column, column))
    con.execute(f"CREATE TABLE IF NOT EXISTS {META} (table_name VARCHAR PRIMARY KEY, id_column VARCHAR, "
                "text_column VARCHAR, engine VARCHAR, stemmer VARCHAR, stopwords VARCHAR, fingerprint VARCHAR)").fetchall()
    con.execute(f"INSERT INTO {META} VALUES (?, ?, ?, ?, ?, ?, ?)",
                [table, id_column, column, engine, stemmer, stopwords, info.fingerprint]).fetchall()
    return info


def get(con, table: str) -> Optional[TextIndex]:
    """The text index of a table, or None."""
    try:
        rows = con.execute(f"SELECT table_name, id_column, text_column, engine, stemmer, stopwords, fingerprint "
                           f"FROM {META} WHERE lower(table_name) = lower(?)", [table]).fetchall()
    except duckdb.CatalogException:
        return None
    return TextIndex(*rows[0]) if rows else None


def ensure_loaded(con, info: TextIndex) -> None:
    """An fts index reopened in a new connection needs the extension for its stemmer and tokenizer."""
    if info.engine == "fts" and not load_fts(con):
        raise TextIndexError(
            f"the keyword index of {info.table!r} was built by DuckDB's fts extension, which does not load here "
            f"(DuckDB {duckdb.__version__}); rebuild it with table.create_text_index({info.column!r}, engine='sql', "
            "replace=True), or make fts loadable (INSTALL fts)")


def drop(con, table: str) -> None:
    """Drops a table's text index (both engines' schemas) and its record."""
    con.execute(f"DROP SCHEMA IF EXISTS {q('knnsql_text_' + table)} CASCADE").fetchall()
    old = get(con, table)
    if old is not None and old.engine == "fts":
        if load_fts(con):
            con.execute(f"PRAGMA drop_fts_index({_str(table)})").fetchall()
        else:
            con.execute(f"DROP SCHEMA IF EXISTS {q('fts_main_' + table)} CASCADE").fetchall()
    try:
        con.execute(f"DELETE FROM {META} WHERE lower(table_name) = lower(?)", [table]).fetchall()
    except duckdb.CatalogException:
        pass


def tokenize_sql(expr: str) -> str:
    """fts's tokenizer as a SQL expression over ``expr``: a list of words (may hold empty strings)."""
    return (f"string_split_regex(regexp_replace(lower(strip_accents(CAST({expr} AS VARCHAR))), "
            f"{_str(IGNORE)}, ' ', 'g'), '\\s+')")


def _create_sql_index(con, table: str, id_column: str, column: str, stopwords: str) -> None:
    s = q("knnsql_text_" + table)
    stop = ", ".join(_str(w) for w in ENGLISH_STOPWORDS) if stopwords == "english" else ""
    stop_filter = f" AND term NOT IN ({stop})" if stop else ""
    con.execute(f"CREATE SCHEMA {s}").fetchall()
    # one row per (row, word occurrence) first; then postings with term frequencies, df, lengths
    con.execute(f"CREATE TEMP TABLE _knnsql_tokens AS SELECT id, term FROM (SELECT {q(id_column)} AS id, "
                f"unnest({tokenize_sql(q(column))}) AS term FROM {q(table)} WHERE {q(id_column)} IS NOT NULL "
                f"AND {q(column)} IS NOT NULL) WHERE term <> ''{stop_filter}").fetchall()
    try:
        con.execute(f"CREATE TABLE {s}.docs AS SELECT t.{q(id_column)} AS docid, coalesce(c.n, 0) AS len "
                    f"FROM {q(table)} t LEFT JOIN (SELECT id AS tok_id, count(*) AS n FROM _knnsql_tokens "
                    f"GROUP BY id) c ON c.tok_id = t.{q(id_column)} WHERE t.{q(id_column)} IS NOT NULL").fetchall()
        # postings: one row per term, its documents, term frequencies and document lengths as lists,
        # so a query unnests the postings of its own terms only (about 2x faster than a join over one
        # row per (term, document), measured on the 63k Debian descriptions)
        con.execute(f"CREATE TABLE {s}.postings AS SELECT term, count(*) AS df, list(id ORDER BY id) AS docids, "
                    f"list(tf ORDER BY id) AS tfs, list(len ORDER BY id) AS lens FROM (SELECT t.id, t.term, "
                    f"count(*) AS tf FROM _knnsql_tokens t GROUP BY t.id, t.term) JOIN {s}.docs d ON d.docid = id "
                    f"GROUP BY term ORDER BY term").fetchall()
    finally:
        con.execute("DROP TABLE IF EXISTS _knnsql_tokens").fetchall()
    con.execute(f"CREATE TABLE {s}.stats AS SELECT count(*) AS num_docs, coalesce(avg(len), 0) AS avgdl "
                f"FROM {s}.docs").fetchall()
    # matching rows with their scores, from the postings of the query's terms only
    con.execute(f"""CREATE MACRO {s}.bm25(query_string, k := 1.2, b := 0.75, conjunctive := 0) AS TABLE
        WITH qt AS (SELECT DISTINCT unnest({tokenize_sql('query_string')}) AS term),
             p AS (SELECT df, unnest(docids) AS docid, unnest(tfs) AS tf, unnest(lens) AS len
                   FROM {s}.postings WHERE term IN (SELECT term FROM qt))
        SELECT id, score FROM (
            SELECT docid AS id, count(*) AS n_terms,
                   sum(log(((SELECT num_docs FROM {s}.stats) - df + 0.5) / (df + 0.5) + 1)
                       * (tf * (k + 1) / (tf + k * (1 - b + b * (len / (SELECT avgdl FROM {s}.stats)))))) AS score
            FROM p GROUP BY docid)
        WHERE NOT CAST(conjunctive AS BOOLEAN)
           OR n_terms = (SELECT count(*) FROM qt WHERE term <> ''{stop_filter})""").fetchall()
    # fts's scalar form, so the SQL of either engine reads the same
    con.execute(f"""CREATE MACRO {s}.match_bm25(docname, query_string, k := 1.2, b := 0.75, conjunctive := 0) AS
        (SELECT score FROM {s}.bm25(query_string, k := k, b := b, conjunctive := conjunctive) m
         WHERE m.id = docname)""").fetchall()


def _fingerprint(con, table: str, id_column: str, column: str) -> str:
    n, h = con.execute(f"SELECT count(*), coalesce(sum(hash({q(id_column)}, {q(column)})::HUGEINT), 0) "
                       f"FROM {q(table)}").fetchall()[0]
    return f"{n}:{h}"


def _str(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"
