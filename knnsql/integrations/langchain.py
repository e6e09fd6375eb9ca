"""LangChain ``VectorStore`` over a knnsql vector table (extra: ``pip install knnsql[langchain]``).

Documents live in one DuckDB table: ``id BIGINT`` (knnsql's row id), ``doc_id VARCHAR`` (LangChain's id,
unique), ``text``, ``metadata`` (JSON text) and the embedding; a graph index over it answers searches
(``table.search``), so metadata filters run as the front door's filtered search. Adding a document with an
id that exists replaces it::

    from knnsql.integrations.langchain import KnnsqlVectorStore
    store = KnnsqlVectorStore(embeddings, db=knnsql.connect("app.duckdb"), table="docs")
    store.add_documents(docs)
    store.similarity_search("query", k=4, filter={"lang": "en"})
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

import numpy as np

try:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore
    from langchain_core.vectorstores.utils import maximal_marginal_relevance
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError("knnsql.integrations.langchain needs langchain-core: pip install knnsql[langchain]") from exc

import knnsql

from .._sql import quote_ident as q
from ._metadata import Field, TypedColumns, infer_typed, literal as _literal, typed_one_of

_COLUMNS = {"doc_id": "VARCHAR", "text": "VARCHAR", "metadata": "VARCHAR"}


def _filter_sql(filter: Optional[dict], typed: Optional[TypedColumns] = None) -> Optional[str]:
    """A metadata filter {key: value, ...} (all must hold; a list value means any of them) as a condition:
    on the key's typed column when it serves the key (the index evaluates it), else on the JSON metadata,
    compared as Python compares the decoded values (1 == 1.0, "1" != 1)."""
    if not filter:
        return None
    if not isinstance(filter, dict):
        raise TypeError(f"filter must be a dict of metadata key -> value, got {type(filter).__name__}")
    parts = []
    for key, value in filter.items():
        values = list(value) if isinstance(value, (list, tuple, set)) else [value]
        if not values:
            raise ValueError(f"filter on {key!r}: an empty list matches nothing")
        col = typed.column(str(key)) if typed is not None else None
        cond = typed_one_of(*col, values) if col else None
        parts.append(cond or Field(key).one_of(values))
    return " AND ".join(parts)


class KnnsqlVectorStore(VectorStore):
    """A LangChain vector store backed by a knnsql vector table and its HNSW index.

    ``embedding``: the LangChain embeddings model. ``db``: a ``knnsql.connect(...)`` database (default: a
    new in-memory one). ``table``: the table name (created on the first add, when the dimension is known;
    an existing one is reused). ``metric``: ``'cosine'`` (default), ``'l2'`` or ``'ip'``. ``index_options``:
    passed to ``create_index`` when the first add builds the index (e.g. ``{"target_recall": 0.95}``; by
    default the index also holds doc_id, text and metadata, so a search needs no join: ``{"attributes": []}``
    saves that memory).
    """

    def __init__(self, embedding: Embeddings, *, db: Optional[knnsql.Database] = None, table: str = "langchain",
                 metric: str = "cosine", index_options: Optional[dict] = None) -> None:
        self._index_options = dict(index_options or {})
        self._embedding = embedding
        self._db = db if db is not None else knnsql.connect()
        self._name = table
        self._metric = metric
        self._table = self._db.table(table) if table in self._db.tables() else None
        self._typed = TypedColumns.of_table(self._db.con, table, q) if self._table is not None else None

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    @property
    def db(self) -> knnsql.Database:
        return self._db

    # ---- writing ------------------------------------------------------------------------------------
    def _ensure_table(self, dim: int, metadatas: Sequence[dict]):
        if self._table is None:  # the first batch's scalar metadata keys get typed columns (filters in the index)
            self._typed = TypedColumns(infer_typed(metadatas))
            self._table = self._db.create_table(self._name, dim=dim, metric=self._metric,
                                                columns={**_COLUMNS, **self._typed.columns()})
        elif self._table.dim != dim:
            raise ValueError(f"embeddings have {dim} dimensions, table {self._name!r} holds {self._table.dim}")
        return self._table

    def add_texts(self, texts: Iterable[str], metadatas: Optional[List[dict]] = None, *,
                  ids: Optional[List[Optional[str]]] = None, **kwargs: Any) -> List[str]:
        texts = list(texts)
        if not texts:
            return []
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        ids = list(ids) if ids is not None else [None] * len(texts)
        if len(metadatas) != len(texts) or len(ids) != len(texts):
            raise ValueError(f"{len(texts)} texts, {len(metadatas)} metadatas and {len(ids)} ids: give one each")
        ids = [str(i) if i is not None else str(uuid.uuid4()) for i in ids]
        vectors = np.asarray(self._embedding.embed_documents(texts), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise ValueError(f"the embeddings model returned shape {vectors.shape} for {len(texts)} texts")
        keep = {}  # within one call the last occurrence of an id wins
        for pos, doc_id in enumerate(ids):
            keep[doc_id] = pos
        rows = sorted(keep.values())
        table = self._ensure_table(vectors.shape[1], [metadatas[i] or {} for i in rows])
        self._delete_doc_ids(list(keep))
        start = self._db.con.execute(f"SELECT coalesce(max(id), -1) + 1 FROM {q(self._name)}").fetchall()[0][0]
        table.add({"id": np.arange(start, start + len(rows), dtype=np.int64), "emb": vectors[rows],
                   "doc_id": [ids[i] for i in rows], "text": [texts[i] for i in rows],
                   "metadata": [json.dumps(metadatas[i] or {}) for i in rows],
                   **self._typed.values([metadatas[i] or {} for i in rows])})
        if table.index is None:
            # the columns a search returns live in the index too: a search is then one call into it, with no join
            table.create_index(**{"attributes": ["doc_id", "text", "metadata", *self._typed.columns()],
                                  **self._index_options})
        return ids

    def _delete_doc_ids(self, doc_ids: Sequence[str]) -> int:
        if self._table is None or not doc_ids:
            return 0
        listed = ", ".join(_literal(d) for d in doc_ids)
        return self._table.delete(where=f"doc_id IN ({listed})")

    def delete(self, ids: Optional[List[str]] = None, **kwargs: Any) -> Optional[bool]:
        """Deletes the documents with these ids (unknown ids are ignored); ``ids=None`` deletes every one."""
        if self._table is None:
            return True
        if ids is None:
            self._table.delete(where="true")
        else:
            self._delete_doc_ids([str(i) for i in ids])
        return True

    # ---- reading ------------------------------------------------------------------------------------
    def get_by_ids(self, ids: Sequence[str], /) -> List[Document]:
        if self._table is None or not ids:
            return []
        listed = ", ".join(_literal(str(i)) for i in ids)
        rows = self._db.con.execute(f"SELECT doc_id, text, metadata FROM {q(self._name)} WHERE doc_id IN ({listed})"
                                    ).fetchall()
        return [Document(id=d, page_content=t, metadata=json.loads(m)) for d, t, m in rows]

    def _search(self, vector: Sequence[float], k: int, filter: Optional[dict], with_vectors: bool = False):
        if self._table is None or k <= 0:
            return []
        cols = ["doc_id", "text", "metadata"] + (["emb"] if with_vectors else [])
        s = self._table.search(np.asarray(vector, dtype=np.float32)).select(cols).limit(k)
        cond = _filter_sql(filter, self._typed)
        if cond:
            s = s.where(cond)
        return s.to_list()

    def similarity_search_with_score_by_vector(self, embedding: List[float], k: int = 4,
                                               filter: Optional[dict] = None, **kwargs: Any
                                               ) -> List[Tuple[Document, float]]:
        """(document, distance) pairs, nearest first; the distance is the table's metric."""
        return [(Document(id=r["doc_id"], page_content=r["text"], metadata=json.loads(r["metadata"])),
                 float(r["distance"])) for r in self._search(embedding, k, filter)]

    def similarity_search_with_score(self, query: str, k: int = 4, filter: Optional[dict] = None,
                                     **kwargs: Any) -> List[Tuple[Document, float]]:
        return self.similarity_search_with_score_by_vector(self._embedding.embed_query(query), k, filter)

    def similarity_search_by_vector(self, embedding: List[float], k: int = 4, filter: Optional[dict] = None,
                                    **kwargs: Any) -> List[Document]:
        return [d for d, _ in self.similarity_search_with_score_by_vector(embedding, k, filter)]

    def similarity_search(self, query: str, k: int = 4, filter: Optional[dict] = None,
                          **kwargs: Any) -> List[Document]:
        return self.similarity_search_by_vector(self._embedding.embed_query(query), k, filter)

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        if self._metric == "cosine":
            return lambda d: 1.0 - d
        if self._metric == "ip":
            return lambda d: -d
        return lambda d: 1.0 - float(np.sqrt(max(d, 0.0))) / np.sqrt(2)  # squared L2 of unit vectors

    def max_marginal_relevance_search_by_vector(self, embedding: List[float], k: int = 4, fetch_k: int = 20,
                                                lambda_mult: float = 0.5, filter: Optional[dict] = None,
                                                **kwargs: Any) -> List[Document]:
        rows = self._search(embedding, max(fetch_k, k), filter, with_vectors=True)
        if not rows:
            return []
        picked = maximal_marginal_relevance(np.asarray(embedding, dtype=np.float32),
                                            [np.asarray(r["emb"], dtype=np.float32) for r in rows],
                                            k=min(k, len(rows)), lambda_mult=lambda_mult)
        return [Document(id=rows[i]["doc_id"], page_content=rows[i]["text"],
                         metadata=json.loads(rows[i]["metadata"])) for i in picked]

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
                                      filter: Optional[dict] = None, **kwargs: Any) -> List[Document]:
        return self.max_marginal_relevance_search_by_vector(self._embedding.embed_query(query), k, fetch_k,
                                                            lambda_mult, filter)

    @classmethod
    def from_texts(cls, texts: List[str], embedding: Embeddings, metadatas: Optional[List[dict]] = None, *,
                   ids: Optional[List[str]] = None, **kwargs: Any) -> "KnnsqlVectorStore":
        store = cls(embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store
