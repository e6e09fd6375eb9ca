"""Suite "integrations": knnsql's LangChain and LlamaIndex stores against the DuckDB stores users have now.

Data: the first 100,000 GloVe-50 words (real vectors, cosine), each with real metadata: its frequency band
(``band`` = rank // 10,000, GloVe lists words by frequency), and 100 of the dataset's held-out words as queries. An embeddings
model that looks words up returns these vectors, so every store sees the same vectors.

Stores, each filled through its own framework API with the same documents:

=====================================  =================================================================
knnsql LangChain                       ``KnnsqlVectorStore(..., index_options={"target_recall": 0.95})``
langchain_community DuckDB             ``langchain_community.vectorstores.DuckDB`` (a full scan with
                                       ``list_cosine_similarity``; it has no metadata filter)
knnsql LlamaIndex                      ``KnnsqlLlamaStore(..., index_options={"target_recall": 0.95})``
llama-index DuckDB                     ``DuckDBVectorStore`` (``llama-index-vector-stores-duckdb``)
=====================================  =================================================================

Measured: the median latency of a top-10 search over the queries (through the framework call users make:
``similarity_search`` / ``VectorStore.query``), unfiltered and filtered to one band (10% of the rows), and
recall@10 against exact cosine search over the same rows (and band), tie-aware.
"""

from __future__ import annotations

import time

import numpy as np

from _common import dataset_sections, fmt, load_dataset, log, md_table, median, report_intro, settle

NAME = "integrations"
SUMMARY = "LangChain / LlamaIndex stores: knnsql vs the DuckDB-based stores (GloVe-100k, band filters)"
DEFAULT_DATASETS = ["glove", "minilm"]  # minilm: hybrid (keyword + vector) quality, _hybrid_quality.py
ROWS, QUERIES, K, BAND = 100_000, 100, 10, 3


def add_arguments(p) -> None:
    pass


class _Lookup:
    """LangChain and LlamaIndex embeddings that return each word's stored vector."""

    def __init__(self, words, vectors):
        self.table = {w: v for w, v in zip(words, vectors)}

    def embed_documents(self, texts):
        return [self.table[t].tolist() for t in texts]

    def embed_query(self, text):
        return self.table[text].tolist()


def _exact(X, Q, mask=None):
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    d = 1.0 - Qn @ Xn.T
    if mask is not None:
        d[:, ~mask] = np.inf
    return np.sort(d, axis=1)[:, K - 1]


def _recall(words_out, word_pos, Q, X, kth):
    hits = 0
    for qi, words in enumerate(words_out):
        for w in words:
            x = X[word_pos[w]]
            d = 1.0 - float(np.dot(Q[qi], x) / (np.linalg.norm(Q[qi]) * np.linalg.norm(x)))
            hits += d <= kth[qi] + 1e-5
    return hits / (K * len(words_out))


def _time(fn, queries):
    out, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        out.append(fn(q))
        times.append(time.perf_counter() - t0)
    return median(times) * 1e3, out


def _langchain(words, X, bands, qwords, emb, kth_all, kth_band, word_pos, Q) -> dict:
    import knnsql
    from langchain_community.vectorstores import DuckDB as LcDuckDB
    from langchain_core.embeddings import Embeddings

    from knnsql.integrations.langchain import KnnsqlVectorStore

    class E(Embeddings):
        def embed_documents(self, texts):
            return emb.embed_documents(texts)

        def embed_query(self, text):
            return emb.embed_query(text)

    metas = [{"band": int(b)} for b in bands]
    res = {}
    t0 = time.perf_counter()
    ours = KnnsqlVectorStore(E(), db=knnsql.connect(), index_options={"target_recall": 0.95})
    ours.add_texts(words, metas)
    res["knnsql"] = {"load_s": time.perf_counter() - t0}
    import warnings

    import duckdb
    import pandas as pd

    # the community store hands DuckDB a pandas frame of strings, which DuckDB 1.3 (the version its LlamaIndex
    # sibling pins) cannot read as pandas 3's str dtype: the old object dtype, for this store only
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pd.set_option("future.infer_string", False)
    t0 = time.perf_counter()
    theirs = LcDuckDB(connection=duckdb.connect(), embedding=E())
    theirs.add_texts(words, metas)
    res["duckdb"] = {"load_s": time.perf_counter() - t0}
    for name, store in (("knnsql", ours), ("duckdb", theirs)):
        settle()
        ms, out = _time(lambda w: [d.page_content for d in store.similarity_search(w, k=K)], qwords)
        res[name].update(ms=ms, recall=_recall(out, word_pos, Q, X, kth_all))
    settle()
    ms, out = _time(lambda w: [d.page_content for d in ours.similarity_search(w, k=K, filter={"band": BAND})], qwords)
    res["knnsql"].update(filtered_ms=ms, filtered_recall=_recall(out, word_pos, Q, X, kth_band))
    res["duckdb"].update(filtered_ms=None, filtered_recall=None, note="no metadata filter in this store")
    return res


def _llamaindex(words, X, bands, qwords, emb, kth_all, kth_band, word_pos, Q) -> dict:
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters, VectorStoreQuery
    from llama_index.vector_stores.duckdb import DuckDBVectorStore

    from knnsql.integrations.llamaindex import KnnsqlLlamaStore

    def nodes():
        return [TextNode(id_=f"w{i}", text=w, metadata={"band": int(b)}, embedding=X[i].tolist())
                for i, (w, b) in enumerate(zip(words, bands))]

    res = {}
    t0 = time.perf_counter()
    ours = KnnsqlLlamaStore(index_options={"target_recall": 0.95})
    ours.add(nodes())
    res["knnsql"] = {"load_s": time.perf_counter() - t0}
    import duckdb

    class Offline:
        """A connection that skips INSTALL / LOAD of json (built into DuckDB's Python wheel) and fts (used only by
        this store's keyword search, not measured here): the store asks for both at start and would download them,
        and this machine reaches no extension repository."""

        def __init__(self, con):
            self._con = con

        def install_extension(self, *args, **kwargs):
            return None

        def load_extension(self, *args, **kwargs):
            return None

        def cursor(self):  # the store works on per-thread cursors of the connection it is given
            return Offline(self._con.cursor())

        def __getattr__(self, name):
            return getattr(self._con, name)

    # its client= argument is dropped by its own pydantic __init__, so the connection is swapped where it is made
    DuckDBVectorStore._connect = classmethod(lambda cls, database_name, persist_dir: Offline(duckdb.connect()))
    t0 = time.perf_counter()
    theirs = DuckDBVectorStore(embed_dim=X.shape[1])
    theirs.add(nodes())
    res["duckdb"] = {"load_s": time.perf_counter() - t0}
    band = MetadataFilters(filters=[MetadataFilter(key="band", value=BAND)])
    for name, store in (("knnsql", ours), ("duckdb", theirs)):
        for key, filters, kth in (("", None, kth_all), ("filtered_", band, kth_band)):
            settle()
            ms, out = _time(lambda w: [n.get_content() for n in store.query(VectorStoreQuery(
                query_embedding=emb.embed_query(w), similarity_top_k=K, filters=filters)).nodes], qwords)
            res[name].update({f"{key}ms": ms, f"{key}recall": _recall(out, word_pos, Q, X, kth)})
    return res


def _dataset(args, name: str) -> dict:
    ds, reason = load_dataset(args, name)
    if ds is None:
        return {"skipped": reason}
    if name == "minilm":
        from . import _hybrid_quality

        return {"description": ds.description, "hybrid": _hybrid_quality.run(ds)}
    X = np.ascontiguousarray(ds.X[:ROWS], dtype=np.float32)
    Q = np.ascontiguousarray(ds.Q[:QUERIES], dtype=np.float32)
    words = [f"w{i}" for i in range(len(X))]  # the texts are stand-ins: the embeddings model looks them up
    qwords = [f"q{i}" for i in range(len(Q))]
    bands = np.asarray(ds.ids[:ROWS]) // 10_000  # GloVe row = frequency rank
    emb = _Lookup(words + qwords, np.vstack([X, Q]))
    word_pos = {w: i for i, w in enumerate(words)}
    kth_all, kth_band = _exact(X, Q), _exact(X, Q, bands == BAND)
    out = {"description": f"{ds.description} [first {ROWS:,} rows; band = rank // 10,000, filter band = {BAND}]"}
    log("  LangChain stores")
    out["langchain"] = _langchain(words, X, bands, qwords, emb, kth_all, kth_band, word_pos, Q)
    log("  LlamaIndex stores")
    out["llamaindex"] = _llamaindex(words, X, bands, qwords, emb, kth_all, kth_band, word_pos, Q)
    return out


def run(args) -> dict:
    return {"datasets": {n: _dataset(args, n) for n in (args.datasets or DEFAULT_DATASETS)}}


def _section(name: str, r: dict) -> list:
    if "hybrid" in r:
        from . import _hybrid_quality

        return [f"### {name}: {r['description']}", ""] + _hybrid_quality.section(r["hybrid"])
    rows = []
    for fw in ("langchain", "llamaindex"):
        ours, theirs = r[fw]["knnsql"], r[fw]["duckdb"]
        for label, c in (("knnsql", ours), ("DuckDB store", theirs)):
            ratio = lambda key: (fmt(theirs[key] / ours[key]) + "x" if label == "knnsql" and theirs.get(key) else "")  # noqa: E731
            rows.append([fw, label, fmt(c["ms"]), fmt(c["recall"], 3), ratio("ms"),
                         fmt(c["filtered_ms"]) if c.get("filtered_ms") else c.get("note", ""),
                         fmt(c["filtered_recall"], 3) if c.get("filtered_recall") is not None else "",
                         ratio("filtered_ms"), fmt(c["load_s"])])
    return [f"### {name}: {r['description']}", "",
            md_table(["framework", "store", "1-query ms", "recall@10", "speedup", "filtered ms", "filtered recall",
                      "filtered speedup", "load s"], rows), ""]


def to_markdown(doc: dict) -> str:
    L = report_intro(doc, "## Suite `integrations` — framework vector stores, top-10 search",
                     f"Median latency over {QUERIES} queries through each framework's own search call, one query "
                     "at a time; *speedup* = the DuckDB store's time / knnsql's. recall@10 is tie-aware against "
                     "exact cosine search (filtered: within the band). knnsql's stores built their index with "
                     "target_recall=0.95 (held-out rows of the build).")
    return "\n".join(L + dataset_sections(doc["results"]["datasets"], _section))
