"""LlamaIndex vector store over a knnsql vector table (extra: ``pip install knnsql[llamaindex]``).

Nodes live in one DuckDB table: ``id BIGINT`` (knnsql's row id), ``node_id`` (unique), ``ref_doc_id``,
``text``, ``metadata`` (the node's own metadata, JSON, what filters read), ``node`` (the serialised node,
as LlamaIndex's stores keep it) and the embedding, under an HNSW index::

    from knnsql.integrations.llamaindex import KnnsqlLlamaStore
    store = KnnsqlLlamaStore(db=knnsql.connect("app.duckdb"), table="nodes")
    index = VectorStoreIndex.from_vector_store(store, embed_model=...)

Metadata filters (every operator of ``FilterOperator``, AND / OR / NOT, nested) become SQL over the JSON
column with Python's comparison semantics (``knnsql/integrations/_metadata.py``). Query modes: ``default``
(nearest neighbours), ``mmr`` (maximal marginal relevance over ``mmr_prefetch_k`` or
``similarity_top_k * mmr_prefetch_factor`` (default 4) nearest candidates, as LlamaIndex's own stores do),
``text_search`` (BM25 over the node texts, ``query_str``) and ``hybrid`` (BM25 and vector rankings fused:
by ``alpha``, the vector side's weight, when the query gives one, else by reciprocal rank fusion;
``knnsql.hybrid``); the keyword index is built on the first such query and follows later writes. Any
other mode is a ValueError naming these. None restricts nothing (so ``delete_nodes()`` with neither ids
nor filters deletes every node, as in LlamaIndex's stores); an empty list matches nothing, except a query's
``node_ids`` (VectorStoreIndex's retriever passes [] for a store that keeps the text).
"""

from __future__ import annotations

import json
import math
from typing import Any, List, Optional, Sequence

import numpy as np

try:
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings
    from llama_index.core.schema import BaseNode
    from llama_index.core.vector_stores.types import (BasePydanticVectorStore, FilterCondition, FilterOperator,
                                                      MetadataFilter, MetadataFilters, VectorStoreQuery,
                                                      VectorStoreQueryMode, VectorStoreQueryResult)
    from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
    from pydantic_core import to_jsonable_python
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError("knnsql.integrations.llamaindex needs llama-index-core: pip install knnsql[llamaindex]") from exc

import knnsql

from .._sql import quote_ident as q
from ._metadata import Field, TypedColumns, infer_typed, literal, typed_compare, typed_one_of

_COLUMNS = {"node_id": "VARCHAR", "ref_doc_id": "VARCHAR", "text": "VARCHAR", "metadata": "VARCHAR",
            "node": "VARCHAR"}
_MODES = ("'default' (nearest neighbours), 'mmr' (maximal marginal relevance), 'text_search' (BM25) and "
          "'hybrid' (BM25 + vector)")
_TEXT_MODES = (VectorStoreQueryMode.TEXT_SEARCH, VectorStoreQueryMode.HYBRID)
_MMR_PREFETCH_FACTOR = 4.0


# keys LlamaIndex's stores write into every node's metadata (node_to_metadata_dict), over any of the node's own:
# a filter on them reads the node's ref_doc_id ("None" when it has none), as in SimpleVectorStore
_REF_DOC_KEYS = ("ref_doc_id", "doc_id", "document_id")

_TYPED_OPS = {FilterOperator.EQ: "=", FilterOperator.NE: "<>", FilterOperator.GT: ">", FilterOperator.GTE: ">=",
              FilterOperator.LT: "<", FilterOperator.LTE: "<="}


def _typed_sql(f: MetadataFilter, typed: Optional[TypedColumns]) -> Optional[str]:
    """The filter on the key's typed column (evaluated in the index) when one serves it, else None."""
    col = typed.column(f.key) if typed is not None else None
    if col is None:
        return None
    if f.operator in _TYPED_OPS:
        return typed_compare(*col, _TYPED_OPS[f.operator], f.value)
    values = f.value if isinstance(f.value, list) else [f.value]
    if f.operator == FilterOperator.IN:
        return typed_one_of(*col, values)
    if f.operator == FilterOperator.NIN:
        inside = typed_one_of(*col, values)
        return f"({col[0]} IS NULL OR NOT {inside})" if inside else None
    return None


def filters_sql(filters: Optional[MetadataFilters], typed: Optional[TypedColumns] = None) -> Optional[str]:
    """MetadataFilters as one SQL condition: on a key's typed column where it serves the key, else on the
    JSON ``metadata`` column (None: no filter)."""
    if filters is None or not filters.filters:
        return None
    parts = []
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            sub = filters_sql(f, typed)
            parts.append(f"({sub})" if sub else "true")
            continue
        ref_doc = f.key in _REF_DOC_KEYS
        fast = None if ref_doc else _typed_sql(f, typed)
        if fast is not None:
            parts.append(fast)
            continue
        column = f"json_object({literal(f.key)}, coalesce(ref_doc_id, 'None'))" if ref_doc else "metadata"
        fld, op, v = Field(f.key, column), f.operator, f.value
        if op == FilterOperator.EQ:
            parts.append(fld.compare("=", v))
        elif op == FilterOperator.NE:
            parts.append(f"({fld.missing()} OR {fld.compare('<>', v)})")
        elif op in (FilterOperator.GT, FilterOperator.GTE, FilterOperator.LT, FilterOperator.LTE):
            parts.append(fld.compare(op.value, v))
        elif op == FilterOperator.IN:
            parts.append(fld.one_of(v if isinstance(v, list) else [v]))
        elif op == FilterOperator.NIN:
            parts.append(f"({fld.missing()} OR NOT {fld.one_of(v if isinstance(v, list) else [v])})")
        elif op == FilterOperator.CONTAINS:
            parts.append(fld.contains(v))
        elif op == FilterOperator.ANY:
            parts.append("(" + " OR ".join(fld.contains(x) for x in v) + ")" if v else "false")
        elif op == FilterOperator.ALL:
            parts.append("(" + " AND ".join(fld.contains(x) for x in v) + ")" if v else f"NOT {fld.missing()}")
        elif op == FilterOperator.TEXT_MATCH:
            parts.append(fld.substring(v))
        elif op == FilterOperator.TEXT_MATCH_INSENSITIVE:
            parts.append(fld.substring(v, insensitive=True))
        elif op == FilterOperator.IS_EMPTY:
            parts.append(fld.empty())
        else:
            raise ValueError(f"metadata filter operator {op!r} is not supported by knnsql")
    cond = filters.condition or FilterCondition.AND
    if cond == FilterCondition.AND:
        return "(" + " AND ".join(parts) + ")"
    if cond == FilterCondition.OR:
        return "(" + " OR ".join(parts) + ")"
    if cond == FilterCondition.NOT:
        return "NOT (" + " OR ".join(parts) + ")"
    raise ValueError(f"unknown filter condition {cond!r}")


class KnnsqlLlamaStore(BasePydanticVectorStore):
    """A LlamaIndex vector store backed by a knnsql vector table and its HNSW index.

    ``db``: a ``knnsql.connect(...)`` database (default: a new in-memory one); ``table``: created on the first
    add (when the dimension is known), an existing one is reused; ``metric``: 'cosine' (default), 'l2', 'ip';
    ``index_options``: passed to ``create_index`` when the first add builds the index (by default it also holds
    node_id, text and the serialised node, so a query needs no join; ``{"attributes": []}`` saves that memory).
    Similarities are 1 - cosine distance (cosine), the inner product (ip) or minus the squared distance (l2).
    """

    stores_text: bool = True
    flat_metadata: bool = False
    table_name: str = "llamaindex"
    metric: str = "cosine"
    _db: Any = PrivateAttr()
    _table: Any = PrivateAttr(default=None)
    _index_options: dict = PrivateAttr(default_factory=dict)
    _typed: Any = PrivateAttr(default=None)

    def __init__(self, db: Optional[knnsql.Database] = None, table: str = "llamaindex", metric: str = "cosine",
                 index_options: Optional[dict] = None, **kwargs: Any) -> None:
        super().__init__(table_name=table, metric=metric, **kwargs)
        self._index_options = dict(index_options or {})
        self._db = db if db is not None else knnsql.connect()
        self._table = self._db.table(table) if table in self._db.tables() else None
        self._typed = TypedColumns.of_table(self._db.con, table, q) if self._table is not None else None

    @classmethod
    def class_name(cls) -> str:
        return "KnnsqlLlamaStore"

    @property
    def client(self) -> Any:
        return self._db

    # ---- writing ------------------------------------------------------------------------------------
    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> List[str]:
        nodes = list(nodes)
        if not nodes:
            return []
        vectors = np.asarray([n.get_embedding() for n in nodes], dtype=np.float32)
        # metadata as LlamaIndex serialises it (dates as ISO strings ...): what filters compare, as in its own stores
        metadatas = [to_jsonable_python(n.metadata or {}) for n in nodes]
        if self._table is None:  # the first batch's scalar metadata keys get typed columns (filters in the index)
            self._typed = TypedColumns(infer_typed(metadatas))
            self._table = self._db.create_table(self.table_name, dim=vectors.shape[1], metric=self.metric,
                                                columns={**_COLUMNS, **self._typed.columns()})
        elif self._table.dim != vectors.shape[1]:
            raise ValueError(f"embeddings have {vectors.shape[1]} dimensions, table {self.table_name!r} holds "
                             f"{self._table.dim}")
        last = {n.node_id: i for i, n in enumerate(nodes)}  # the last occurrence of an id wins
        rows = sorted(last.values())
        self._delete_where(f"node_id IN ({', '.join(literal(i) for i in last)})")
        start = self._db.con.execute(f"SELECT coalesce(max(id), -1) + 1 FROM {q(self.table_name)}").fetchall()[0][0]
        self._table.add({
            "id": np.arange(start, start + len(rows), dtype=np.int64), "emb": vectors[rows],
            "node_id": [nodes[i].node_id for i in rows], "ref_doc_id": [nodes[i].ref_doc_id for i in rows],
            "text": [nodes[i].get_content() for i in rows],
            "metadata": [json.dumps(metadatas[i]) for i in rows],
            "node": [json.dumps(node_to_metadata_dict(nodes[i], remove_text=True, flat_metadata=self.flat_metadata))
                     for i in rows],
            **self._typed.values([metadatas[i] for i in rows])})
        if self._table.index is None:
            # the columns a query returns live in the index too: a query is then one call into it, with no join
            self._table.create_index(**{"attributes": ["node_id", "text", "node", *self._typed.columns()],
                                        **self._index_options})
        return [n.node_id for n in nodes]

    def _delete_where(self, cond: str) -> int:
        return self._table.delete(where=cond) if self._table is not None else 0

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        self._delete_where(f"ref_doc_id = {literal(ref_doc_id)}")

    def delete_nodes(self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None,
                     **delete_kwargs: Any) -> None:
        self._delete_where(self._where(node_ids, filters) or "true")  # neither: every node, as in LlamaIndex

    def clear(self) -> None:
        self._delete_where("true")

    # ---- reading ------------------------------------------------------------------------------------
    def _where(self, node_ids: Optional[Sequence[str]], filters: Optional[MetadataFilters],
               doc_ids: Optional[Sequence[str]] = None) -> Optional[str]:
        parts = []  # None restricts nothing; an empty list matches nothing, as in LlamaIndex's own stores
        for col, ids in (("node_id", node_ids), ("ref_doc_id", doc_ids)):
            if ids is not None:
                parts.append(f"{col} IN ({', '.join(literal(i) for i in ids)})" if ids else "false")
        f = filters_sql(filters, self._typed)
        if f:
            parts.append(f)
        return " AND ".join(parts) if parts else None

    def _node(self, text: str, node: str, embedding: Any = None) -> BaseNode:
        out = metadata_dict_to_node(json.loads(node), text=text)
        if embedding is not None:
            out.embedding = [float(x) for x in embedding]
        return out

    def get_nodes(self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None
                  ) -> List[BaseNode]:
        if self._table is None:
            return []
        cond = self._where(node_ids, filters) or "true"
        rows = self._db.con.execute(f"SELECT text, node, {q(self._table.vector_column)} FROM {q(self.table_name)} "
                                    f"WHERE {cond} ORDER BY id").fetchall()
        return [self._node(t, n, e) for t, n, e in rows]  # with their embeddings, as LlamaIndex's stores return them

    def _similarity(self, distance: float) -> float:
        return 1.0 - distance if self.metric == "cosine" else -distance

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """``query.mode`` 'default' or 'mmr'; for 'mmr' the kwargs ``mmr_threshold`` (else the query's),
        ``mmr_prefetch_k`` or ``mmr_prefetch_factor`` (candidates: ``similarity_top_k`` times it, default 4)."""
        mode = VectorStoreQueryMode(query.mode)
        if mode not in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR, *_TEXT_MODES):
            raise ValueError(f"query mode {mode.value!r} is not supported by KnnsqlLlamaStore; it answers {_MODES}")
        if mode in _TEXT_MODES:
            return self._text_query(query, mode)
        if query.query_embedding is None:
            raise ValueError("a knnsql store is queried by embedding: give query_embedding")
        k = query.similarity_top_k
        fetch = k
        if mode == VectorStoreQueryMode.MMR:
            fetch_k, factor = kwargs.get("mmr_prefetch_k"), kwargs.get("mmr_prefetch_factor")
            if fetch_k is not None and factor is not None:
                raise ValueError("'mmr_prefetch_k' and 'mmr_prefetch_factor' cannot both be given")
            fetch = max(k, int(fetch_k) if fetch_k is not None else
                        math.ceil(k * (_MMR_PREFETCH_FACTOR if factor is None else float(factor))))
        if self._table is None or k <= 0:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        emb = np.asarray(query.query_embedding, dtype=np.float32)
        cols = ["node_id", "text", "node"] + ([self._table.vector_column] if mode == VectorStoreQueryMode.MMR else [])
        s = self._table.search(emb).select(cols).limit(fetch)
        # node_ids=[] restricts nothing here: VectorStoreIndex.as_retriever passes its (for a store that keeps the
        # text, empty) node list; an empty doc_ids list matches nothing, as in LlamaIndex's SimpleVectorStore
        cond = self._where(query.node_ids or None, query.filters, query.doc_ids)
        if cond:
            s = s.where(cond)
        rows = s.to_list()
        if mode == VectorStoreQueryMode.DEFAULT:
            sims = [self._similarity(float(r["distance"])) for r in rows]
        else:  # LlamaIndex's own MMR (cosine similarities) over the candidates; scores are the MMR scores
            threshold = kwargs["mmr_threshold"] if "mmr_threshold" in kwargs else query.mmr_threshold
            sims, picks = get_top_k_mmr_embeddings(
                [float(x) for x in query.query_embedding], [r[self._table.vector_column] for r in rows],
                similarity_top_k=k, embedding_ids=list(range(len(rows))), mmr_threshold=threshold)
            rows = [rows[i] for i in picks]
        return VectorStoreQueryResult(nodes=[self._node(r["text"], r["node"]) for r in rows],
                                      similarities=[float(x) for x in sims], ids=[r["node_id"] for r in rows])

    def _text_query(self, query: VectorStoreQuery, mode: VectorStoreQueryMode) -> VectorStoreQueryResult:
        """'text_search' (BM25 scores as similarities) or 'hybrid' (fused scores), over the node texts."""
        if not query.query_str:
            raise ValueError(f"query mode {mode.value!r} needs query_str (the words to match)")
        hybrid = mode == VectorStoreQueryMode.HYBRID
        if hybrid and query.query_embedding is None:
            raise ValueError("query mode 'hybrid' needs query_embedding as well as query_str")
        k = (query.hybrid_top_k if hybrid else None) or query.similarity_top_k
        if self._table is None or k <= 0:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        if self._table.text_index is None:
            self._table.create_text_index("text")
        vector = np.asarray(query.query_embedding, dtype=np.float32) if hybrid else None
        s = self._table.search(vector=vector, text=query.query_str).select(["node_id", "text", "node"]).limit(k)
        if hybrid and query.alpha is not None:
            s = s.fusion("weighted", alpha=float(query.alpha))
        if query.sparse_top_k:
            s = s.candidates(max(int(query.sparse_top_k), k))
        cond = self._where(query.node_ids or None, query.filters, query.doc_ids)
        if cond:
            s = s.where(cond)
        rows = s.to_list()
        sims = [float(r["score"] if hybrid else r["bm25"]) for r in rows]
        return VectorStoreQueryResult(nodes=[self._node(r["text"], r["node"]) for r in rows],
                                      similarities=sims, ids=[r["node_id"] for r in rows])
