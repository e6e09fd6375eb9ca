"""Keyword (BM25) and hybrid search: scores against an independent BM25, fusion against its definition,
filters on both sides, freshness after writes, and the errors users meet."""

import math
import re
import unicodedata

import numpy as np
import pytest

import knnsql
from knnsql import text_index

WORDS = ("vector database index search query python duckdb graph window filter sample kernel cluster "
         "embedding model token text keyword hybrid rank fusion score music video game audio image editor "
         "library compiler network server client file system driver firmware").split()


def corpus(n, seed=3):
    """Texts over a Zipf-like vocabulary, with digits, punctuation, case and accents the tokenizer must
    handle (fts's rules: lower case, accents stripped, digits and punctuation split words)."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, len(WORDS) + 1)
    p /= p.sum()
    extras = ["Café", "naïve", "C++", "v2.0", "x86-64", "e-mail", "THE", "and", "of"]
    texts = []
    for _ in range(n):
        words = list(rng.choice(WORDS, size=rng.integers(1, 12), p=p))
        if rng.random() < 0.3:
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(extras)))
        texts.append(" ".join(words).capitalize() + rng.choice(["", ".", "!", " (beta)"]))
    return texts


def ref_tokens(text, stop=()):
    t = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).lower()
    return [w for w in re.split(r"\s+", re.sub(text_index.IGNORE, " ", t)) if w and w not in stop]


def ref_bm25(texts, query, stop=(), k1=1.2, b=0.75):
    """Okapi BM25 as fts computes it (log10 idf), from the definition; {row: score} for matching rows."""
    docs = [ref_tokens(t, stop) for t in texts]
    n, avgdl = len(docs), sum(map(len, docs)) / len(docs)
    df = {}
    for d in docs:
        for w in set(d):
            df[w] = df.get(w, 0) + 1
    terms = set(ref_tokens(query, stop))
    out = {}
    for i, d in enumerate(docs):
        s, hit = 0.0, False
        for w in terms:
            tf = d.count(w)
            if tf:
                hit = True
                s += math.log10((n - df[w] + 0.5) / (df[w] + 0.5) + 1) * tf * (k1 + 1) / (
                    tf + k1 * (1 - b + b * len(d) / avgdl))
        if hit:
            out[i] = s
    return out


D = 8


@pytest.fixture
def docs():
    texts = corpus(600)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((len(texts), D)).astype(np.float32)
    db = knnsql.connect()
    t = db.create_table("docs", dim=D, metric="l2", columns={"body": "VARCHAR", "year": "INTEGER"})
    t.add({"id": np.arange(len(texts)), "emb": X, "body": texts, "year": 2000 + np.arange(len(texts)) % 25})
    t.create_text_index("body", engine="sql")
    yield db, t, texts, X
    db.close()


@pytest.mark.parametrize("query", ["vector search", "Python DuckDB library", "CAFE naive", "c", "zzz unknown",
                                   "the graph of the music"])
@pytest.mark.parametrize("stopwords", ["none", "english"])
def test_sql_engine_scores_equal_reference_bm25(query, stopwords):
    texts = corpus(400, seed=11)
    with knnsql.connect() as db:
        db.execute("CREATE TABLE t(id BIGINT, body VARCHAR)")
        db.con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(texts)))
        info = text_index.create(db.con, "t", "id", "body", engine="sql", stopwords=stopwords)
        got = dict(db.execute(info.matches_sql("x"), {"x": query}).fetchall())
        scalar = dict(db.execute("SELECT id, knnsql_text_t.match_bm25(id, $x) FROM t", {"x": query}).fetchall())
    stop = set(text_index.ENGLISH_STOPWORDS) if stopwords == "english" else ()
    want = ref_bm25(texts, query, stop)
    assert set(got) == set(want)
    for i, s in want.items():
        assert got[i] == pytest.approx(s, rel=1e-12, abs=1e-12)
        assert scalar[i] == pytest.approx(s, rel=1e-12, abs=1e-12)
    assert all(scalar[i] is None for i in range(len(texts)) if i not in want)


def test_sql_engine_equals_duckdb_fts_where_fts_loads():
    """Where DuckDB's fts loads (CI's DuckDB 1.5.5 step with duckdb-extension-fts), the SQL engine's scores
    equal fts's with the same tokenizer and no stemming, plain and conjunctive."""
    texts = corpus(500, seed=13)
    with knnsql.connect() as db:
        if not text_index.load_fts(db.con):
            pytest.skip("DuckDB's fts extension does not load here")
        db.execute("CREATE TABLE t(id BIGINT, body VARCHAR)")
        db.con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(texts)))
        text_index.create(db.con, "t", "id", "body", engine="sql", stopwords="none")
        db.execute("PRAGMA create_fts_index('t', 'id', 'body', stemmer='none', stopwords='none')")
        for query in ["vector search", "python duckdb library", "café", "zzz"]:
            for conj in (0, 1):
                ours = dict(db.execute(f"SELECT id, score FROM knnsql_text_t.bm25($x, conjunctive := {conj})",
                                       {"x": query}).fetchall())
                theirs = dict(db.execute(
                    f"SELECT id, s FROM (SELECT id, fts_main_t.match_bm25(id, $x, conjunctive := {conj}) AS s "
                    f"FROM t) WHERE s IS NOT NULL", {"x": query}).fetchall())
                assert set(ours) == set(theirs), query
                for i in ours:
                    assert ours[i] == pytest.approx(theirs[i], rel=1e-12)


def test_fts_engine_builds_and_searches_where_it_loads():
    texts = corpus(300, seed=17)
    with knnsql.connect() as db:
        if not text_index.load_fts(db.con):
            with pytest.raises(text_index.TextIndexError, match="fts extension does not load"):
                db.execute("CREATE TABLE t(id BIGINT, body VARCHAR)")
                text_index.create(db.con, "t", "id", "body", engine="fts")
            return
        t = db.create_table("t", dim=2, columns={"body": "VARCHAR"})
        t.add({"id": np.arange(len(texts)), "emb": np.ones((len(texts), 2), np.float32), "body": texts})
        info = t.create_text_index("body")          # auto: fts where it loads, with its stemmer
        assert (info.engine, info.stemmer) == ("fts", "porter")
        hits = t.search(text="searching vectors").limit(5).to_list()
        assert hits and all(("search" in h["body"].lower()) or ("vector" in h["body"].lower()) for h in hits)


def test_keyword_search_ranks_by_bm25(docs):
    db, t, texts, X = docs
    got = t.search(text="graph window").limit(7).to_list()
    want = ref_bm25(texts, "graph window", set(text_index.ENGLISH_STOPWORDS))
    order = sorted(want, key=lambda i: (-want[i], i))[:7]
    assert [r["id"] for r in got] == order
    assert [r["bm25"] for r in got] == pytest.approx([want[i] for i in order])
    assert all(r["distance"] is None for r in got)
    assert set(got[0]) == {"id", "body", "year", "score", "distance", "bm25"}


def rrf(lists, k=60.0, weights=(1.0, 1.0)):
    score = {}
    for ids, w in zip(lists, weights):
        for rank, i in enumerate(ids, start=1):
            score[i] = score.get(i, 0.0) + w / (k + rank)
    return sorted(score, key=lambda i: (-score[i], i)), score


@pytest.mark.parametrize("where", [None, "year >= 2010"])
def test_hybrid_rrf_equals_definition(docs, where):
    db, t, texts, X = docs
    q, text, depth = X[3] + 0.1, "search query python", 30
    vec = t.search(q).exact().limit(depth)
    kw = t.search(text=text).limit(depth)
    hy = t.search(vector=q, text=text).exact().limit(10).candidates(depth)
    if where:
        vec, kw, hy = vec.where(where), kw.where(where), hy.where(where)
    v_ids = [r["id"] for r in vec.to_list()]
    t_ids = [r["id"] for r in kw.to_list()]
    order, score = rrf([v_ids, t_ids])
    got = hy.to_list()
    assert [r["id"] for r in got] == order[:10]
    assert [r["score"] for r in got] == pytest.approx([score[i] for i in order[:10]])
    for r in got:   # each side's own value where that side returned the row
        assert (r["distance"] is not None) == (r["id"] in v_ids)
        assert (r["bm25"] is not None) == (r["id"] in t_ids)
        if where:
            assert r["year"] >= 2010


def test_hybrid_weighted_and_rrf_weights(docs):
    db, t, texts, X = docs
    q, text = X[8], "music video"
    v = t.search(q).exact().limit(50).to_list()
    k = t.search(text=text).limit(50).to_list()
    dv = {r["id"]: r["distance"] for r in v}
    sk = {r["id"]: r["bm25"] for r in k}
    lo, hi = min(dv.values()), max(dv.values())
    slo, shi = min(sk.values()), max(sk.values())
    alpha = 0.3
    want = {}
    for i in set(dv) | set(sk):
        want[i] = (alpha * (1 - (dv[i] - lo) / (hi - lo)) if i in dv else 0.0) + \
                  ((1 - alpha) * (sk[i] - slo) / (shi - slo) if i in sk else 0.0)
    order = sorted(want, key=lambda i: (-want[i], i))[:10]
    got = t.search(vector=q, text=text).exact().fusion("weighted", alpha=alpha).limit(10).to_list()
    assert [r["id"] for r in got] == order
    # keyword weight 0: RRF ranks by the vector list alone
    only_vec = t.search(vector=q, text=text).exact().fusion("rrf", weights=(1, 0)).limit(10).to_list()
    assert [r["id"] for r in only_vec] == [r["id"] for r in v[:10]]


def test_hybrid_batch_pairs_texts_with_vectors(docs):
    db, t, texts, X = docs
    Q = X[:3] + 0.05
    qs = ["vector", "game editor", "firmware driver"]
    batch = t.search(vector=Q, text=qs).exact().limit(4).to_arrow()
    assert batch.column_names[0] == "query"
    for i in range(3):
        one = t.search(vector=Q[i], text=qs[i]).exact().limit(4).to_list()
        rows = [r for r in batch.to_pylist() if r["query"] == i]
        assert [r["id"] for r in rows] == [r["id"] for r in one]


def test_hybrid_with_graph_index_and_window(docs):
    db, t, texts, X = docs
    t.create_index(label="year")
    got = t.search(vector=X[0], text="index search").window(2005, 2009).limit(10).to_list()
    assert got and all(2005 <= r["year"] <= 2009 for r in got)


def test_text_index_follows_writes(docs):
    db, t, texts, X = docs
    assert not t.search(text="xylophone").to_list()
    t.add({"id": [10_000], "emb": X[:1], "body": ["a xylophone recital"], "year": [2001]})
    assert [r["id"] for r in t.search(text="xylophone").to_list()] == [10_000]
    t.update({"id": [10_000], "emb": X[:1], "body": ["a marimba recital"], "year": [2001]})
    assert not t.search(text="xylophone").to_list()
    assert [r["id"] for r in t.search(text="marimba").to_list()] == [10_000]
    db.execute("INSERT INTO docs VALUES (10001, ?, 'xylophone again', 2002)", [X[1].tolist()])
    assert [r["id"] for r in t.search(text="xylophone").to_list()] == [10_001]
    t.delete([10_001])
    assert not t.search(text="xylophone").to_list()


def test_text_index_persists_and_reopens(tmp_path):
    path = tmp_path / "h.duckdb"
    texts = corpus(100)
    with knnsql.connect(path) as db:
        t = db.create_table("docs", dim=2, columns={"body": "VARCHAR"})
        t.add({"id": np.arange(100), "emb": np.ones((100, 2), np.float32), "body": texts})
        t.create_text_index("body", engine="sql")
        before = t.search(text="vector search").to_list()
    with knnsql.connect(path) as db:
        t = db.table("docs")
        assert t.text_index is not None and t.text_index.engine == "sql"
        assert t.search(text="vector search").to_list() == before
        t.drop_text_index()
        assert t.text_index is None
        with pytest.raises(ValueError, match="create_text_index"):
            t.search(text="vector").to_list()


def test_errors_name_the_problem_and_the_fix(docs):
    db, t, texts, X = docs
    with pytest.raises(ValueError, match="already has a text index; pass replace=True"):
        t.create_text_index("body")
    with pytest.raises(ValueError, match="not text"):
        t.create_text_index("year", replace=True)
    with pytest.raises(ValueError, match="not in 'docs'"):
        t.create_text_index("nope", replace=True)
    with pytest.raises(ValueError, match="unknown text index engine"):
        t.create_text_index("body", engine="lucene", replace=True)
    with pytest.raises(ValueError, match="pair up"):
        t.search(vector=X[:2], text="one string")
    with pytest.raises(ValueError, match="pair up"):
        t.search(vector=X[:2], text=["a", "b", "c"])
    with pytest.raises(ValueError, match="text= takes a string"):
        t.search(text=42)
    with pytest.raises(ValueError, match="unknown fusion"):
        t.search(vector=X[0], text="a").fusion("borda")
    with pytest.raises(ValueError, match="alpha in"):
        t.search(vector=X[0], text="a").fusion("weighted", alpha=2)
    with pytest.raises(ValueError, match="select"):
        t.search(text="a").select(["nope"])
    with pytest.raises(ValueError, match="needs a query vector"):
        t.search()
    with pytest.raises(ValueError, match="once"):
        t.search(X[0], vector=X[0])
    with pytest.raises(knnsql.FilterError):
        t.search(text="a").where("year; DROP TABLE docs")
    # SQL in the text is data, never SQL
    assert t.search(text="'); DROP TABLE docs; --").to_list() == []
    assert len(t) == 600


def test_dropping_the_table_drops_its_text_index(docs):
    db, t, texts, X = docs
    db.drop_table("docs")
    assert text_index.get(db.con, "docs") is None
    assert not db.execute("SELECT * FROM duckdb_schemas() WHERE schema_name = 'knnsql_text_docs'").fetchall()


def test_knnsql_text_index_command_builds_what_sql_clients_query(tmp_path, capsys):
    from knnsql._cli import main

    path = str(tmp_path / "cli.duckdb")
    texts = corpus(50)
    with knnsql.connect(path) as db:
        db.execute("CREATE TABLE notes(id BIGINT, body VARCHAR)")
        db.con.executemany("INSERT INTO notes VALUES (?, ?)", list(enumerate(texts)))
    assert main(["text-index", path, "notes", "body", "--engine", "sql"]) == 0
    assert "knnsql_text_notes.bm25" in capsys.readouterr().out
    with knnsql.connect(path) as db:
        got = dict(db.execute("SELECT id, score FROM knnsql_text_notes.bm25('vector search')").fetchall())
    want = ref_bm25(texts, "vector search", set(text_index.ENGLISH_STOPWORDS))
    assert got.keys() == want.keys() and all(got[i] == pytest.approx(want[i]) for i in want)
    assert main(["text-index", path, "nope", "body"]) == 1
    assert "no keyword index built" in capsys.readouterr().err
