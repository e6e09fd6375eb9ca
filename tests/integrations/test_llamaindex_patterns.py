"""KnnsqlLlamaStore against the checks LlamaIndex's own vector store tests make.

Followed (read, not copied): llama-index-core tests/vector_stores/test_simple.py (one test per filter operator,
AND / OR / NOT, top-k after filtering, node_ids, delete by ref_doc_id, clear, delete_nodes),
test_metadata_filters_logic.py (NE / NIN on a missing key, condition None is AND), test_simple_doc_ids.py
(doc_ids None / [] / unknown / known in default and MMR retrieval; doc_ids, node_ids and filters intersect),
test_simple_mmr_threshold.py (mmr_threshold from the query or the kwargs), tests/indices/vector_store/test_simple.py
and test_simple_async.py (VectorStoreIndex insert / delete_ref_doc / update, sync and async); the integration
packages' tests: duckdb (text, metadata, excluded keys, source node and unicode survive a round trip; get_nodes
by ids and filters; delete_nodes; clear), chroma (sync and async add / query, MMR, conflicting MMR prefetch
arguments), qdrant (aget_nodes / adelete_nodes / aclear, IN / NIN across value types, nested NOT, embeddings
from get_nodes), lancedb (a store over an existing table; delete / delete_nodes / get_nodes; retrieval through
VectorStoreIndex with a deterministic mock embedding), milvus (MMR with mmr_prefetch_k).

Where LlamaIndex has a reference behaviour the store is compared with it directly: SimpleVectorStore answers
the same queries (ranking, filters, MMR) over the same nodes.
"""

from __future__ import annotations

import asyncio
import datetime
import zlib
from typing import List

import numpy as np
import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import Document, StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.core.embeddings import BaseEmbedding  # noqa: E402
from llama_index.core.schema import IndexNode, NodeRelationship, QueryBundle, RelatedNodeInfo, TextNode  # noqa: E402
from llama_index.core.vector_stores import SimpleVectorStore  # noqa: E402
from llama_index.core.vector_stores.types import (BasePydanticVectorStore, ExactMatchFilter,  # noqa: E402
                                                  FilterCondition, FilterOperator, MetadataFilter, MetadataFilters,
                                                  VectorStoreQuery, VectorStoreQueryMode)

import knnsql  # noqa: E402
from knnsql.integrations.llamaindex import KnnsqlLlamaStore  # noqa: E402

OP = FilterOperator

# ---- a small catalogue, one node per book (ids b1..b4, documents doc-x / doc-y / doc-z) ----------------------

BOOKS = [
    ("b1", "doc-x", [1.0, 0.0, 0.0],
     {"year": 1999, "price": 9.5, "genre": "poetry", "tags": ["old", "short"], "isbn": "978-AB1", "in_print": True,
      "editions": [1, 2.0]}),
    ("b2", "doc-y", [0.0, 1.0, 0.0],
     {"year": 2005, "price": 20.0, "genre": "fiction", "tags": ["long"], "isbn": "978-ab2", "in_print": False,
      "editions": [True]}),
    ("b3", "doc-y", [0.75, 0.75, 0.125],
     {"year": 2012, "price": 12.0, "genre": "fiction", "tags": ["short", "new", "long"], "isbn": "979-XY3",
      "in_print": True, "editions": ["1"]}),
    ("b4", "doc-z", [0.25, 0.125, 1.0],
     {"year": 2020, "genre": "essay", "tags": [], "isbn": "979-xy4", "note": ""}),
]
ALL = {"b1", "b2", "b3", "b4"}


def book_nodes() -> List[TextNode]:
    return [TextNode(id_=i, text=f"the text of {i}", embedding=list(e), metadata=dict(md),
                     relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc)})
            for i, doc, e, md in BOOKS]


def simple_store(nodes) -> SimpleVectorStore:
    ref = SimpleVectorStore()
    ref.add([n.model_copy(deep=True) for n in nodes])
    return ref


def catalogue(kind: str) -> KnnsqlLlamaStore:
    """The catalogue in a store whose filters run on typed columns (the first batch's scalar keys) or, when the
    first batch had no metadata, on the JSON column only."""
    store = KnnsqlLlamaStore()
    if kind == "json":
        store.add([TextNode(id_="seed", text="", embedding=[0.0, 0.0, 1.0])])
        store.delete_nodes(node_ids=["seed"])
    store.add(book_nodes())
    return store


@pytest.fixture(scope="module", params=["typed", "json"])
def shelf(request):
    """The catalogue, for tests that only read it."""
    store = catalogue(request.param)
    yield store
    store.client.close()


@pytest.fixture(params=["typed", "json"])
def books(request):
    """The catalogue, for tests that change it."""
    store = catalogue(request.param)
    yield store
    store.client.close()


def ids_of(result) -> List[str]:
    return [n.node_id for n in result.nodes]


def query_ids(store, filters=None, k=10, emb=(1.0, 1.0, 0.0), **kw) -> List[str]:
    res = store.query(VectorStoreQuery(query_embedding=list(emb), similarity_top_k=k, filters=filters, **kw))
    assert res.ids == ids_of(res) and len(res.similarities) == len(res.ids)
    return res.ids


def one(key, value, op=OP.EQ) -> MetadataFilters:
    return MetadataFilters(filters=[MetadataFilter(key=key, value=value, operator=op)])


OPERATOR_CASES = [  # (key, operator, value, the books it keeps)
    ("genre", OP.EQ, "fiction", {"b2", "b3"}),
    ("year", OP.EQ, 2005, {"b2"}),
    ("price", OP.EQ, 20, {"b2"}),  # an int equals a float of the same value
    ("genre", OP.NE, "fiction", {"b1", "b4"}),
    ("price", OP.NE, 9.5, {"b2", "b3", "b4"}),  # a missing key is "not equal"
    ("year", OP.GT, 2005, {"b3", "b4"}),
    ("year", OP.GTE, 2005, {"b2", "b3", "b4"}),
    ("price", OP.LT, 12.0, {"b1"}),
    ("price", OP.LTE, 12, {"b1", "b3"}),
    ("genre", OP.GT, "f", {"b1", "b2", "b3"}),  # strings order as strings
    ("genre", OP.IN, ["poetry", "essay"], {"b1", "b4"}),
    ("year", OP.IN, [1999, 2020, 3000], {"b1", "b4"}),
    ("genre", OP.NIN, ["fiction"], {"b1", "b4"}),
    ("price", OP.NIN, [9.5, 20.0], {"b3", "b4"}),
    ("tags", OP.CONTAINS, "short", {"b1", "b3"}),
    ("tags", OP.ANY, ["new", "old"], {"b1", "b3"}),
    ("tags", OP.ALL, ["short", "long"], {"b3"}),
    ("editions", OP.CONTAINS, 1, {"b1", "b2"}),  # list elements compare as Python's == (1 == 1.0 == True)
    ("editions", OP.ANY, [2, 3], {"b1"}),
    ("editions", OP.ANY, ["1"], {"b3"}),
    ("isbn", OP.TEXT_MATCH, "978", {"b1", "b2"}),
    ("isbn", OP.TEXT_MATCH, "xy", {"b4"}),
    ("isbn", OP.TEXT_MATCH_INSENSITIVE, "xy", {"b3", "b4"}),
    ("tags", OP.IS_EMPTY, None, {"b4"}),  # the empty list
    ("note", OP.IS_EMPTY, None, ALL),  # missing (b1..b3) or the empty string (b4)
    ("price", OP.IS_EMPTY, None, {"b4"}),
    ("no_such_key", OP.IS_EMPTY, None, ALL),
    ("no_such_key", OP.EQ, "x", set()),
    ("no_such_key", OP.NE, "x", ALL),
    ("no_such_key", OP.NIN, ["x"], ALL),
    ("in_print", OP.EQ, 1, {"b1", "b3"}),  # a bool is the number 1 or 0, as in Python
    ("in_print", OP.NE, 1, {"b2", "b4"}),
    ("in_print", OP.LT, 1, {"b2"}),
    ("doc_id", OP.EQ, "doc-y", {"b2", "b3"}),  # LlamaIndex's stores keep the ref doc id under these keys too
    ("ref_doc_id", OP.IN, ["doc-x", "doc-z"], {"b1", "b4"}),
    ("document_id", OP.NE, "doc-y", {"b1", "b4"}),
]


@pytest.mark.parametrize("key, op, value, want", OPERATOR_CASES, ids=lambda c: getattr(c, "value", None))
def test_each_operator_keeps_what_simple_vector_store_keeps(shelf, key, op, value, want):
    f = one(key, value, op)
    assert set(query_ids(shelf, f)) == want
    assert {n.node_id for n in shelf.get_nodes(filters=f)} == want
    ref = simple_store(book_nodes()).query(VectorStoreQuery(query_embedding=[1.0, 1.0, 0.0], similarity_top_k=10,
                                                            filters=f))
    assert query_ids(shelf, f) == ref.ids  # the same ranking, too


def test_exact_match_filters_top_k_and_contradictions(shelf):
    both = MetadataFilters(filters=[ExactMatchFilter(key="genre", value="fiction"),
                                    ExactMatchFilter(key="year", value=2012)])
    assert query_ids(shelf, both) == ["b3"]
    assert query_ids(shelf, one("genre", "fiction"), k=1) == ["b3"]  # top-k applies after the filter
    assert query_ids(shelf, one("genre", "fiction"), node_ids=["b2"]) == ["b2"]
    contradiction = MetadataFilters(filters=[ExactMatchFilter(key="year", value=1999),
                                             ExactMatchFilter(key="year", value=2005)])
    assert query_ids(shelf, contradiction) == []
    assert query_ids(shelf, MetadataFilters(filters=[])) == query_ids(shelf) and len(query_ids(shelf)) == 4


def test_conditions_and_nesting(shelf):
    fiction, old = MetadataFilter(key="genre", value="fiction"), MetadataFilter(key="year", value=2005,
                                                                                operator=OP.LTE)
    assert set(query_ids(shelf, MetadataFilters(filters=[fiction, old], condition=FilterCondition.AND))) == {"b2"}
    assert set(query_ids(shelf, MetadataFilters(filters=[fiction, old], condition=None))) == {"b2"}
    assert set(query_ids(shelf, MetadataFilters(filters=[fiction, old], condition=FilterCondition.OR))) == \
        {"b1", "b2", "b3"}
    assert set(query_ids(shelf, MetadataFilters(filters=[fiction, old], condition=FilterCondition.NOT))) == {"b4"}
    # nested, which SimpleVectorStore refuses: genre = fiction AND NOT (price > 15)
    nested = MetadataFilters(filters=[fiction, MetadataFilters(filters=[MetadataFilter(key="price", value=15,
                                                                                       operator=OP.GT)],
                                                               condition=FilterCondition.NOT)])
    assert set(query_ids(shelf, nested)) == {"b3"}
    # (poetry AND 1990s) OR (essay AND tags empty) OR isbn contains 'ab' in any case
    either = MetadataFilters(condition=FilterCondition.OR, filters=[
        MetadataFilters(filters=[MetadataFilter(key="genre", value="poetry"),
                                 MetadataFilter(key="year", value=2000, operator=OP.LT)]),
        MetadataFilters(filters=[MetadataFilter(key="genre", value="essay"),
                                 MetadataFilter(key="tags", value=None, operator=OP.IS_EMPTY)]),
        MetadataFilter(key="isbn", value="AB", operator=OP.TEXT_MATCH_INSENSITIVE)])
    assert set(query_ids(shelf, either)) == {"b1", "b2", "b4"}
    # NE on a missing key agrees with NOT (EQ), as LlamaIndex's filter logic requires
    ne = one("no_such_key", "x", OP.NE)
    not_eq = MetadataFilters(filters=[MetadataFilter(key="no_such_key", value="x")], condition=FilterCondition.NOT)
    assert query_ids(shelf, ne) == query_ids(shelf, not_eq) == query_ids(shelf)


def test_filters_mixing_value_types():
    """qdrant's pattern: IN / NIN against a key holding ints in some nodes and a string in another."""
    store = KnnsqlLlamaStore()
    store.add([TextNode(id_=f"p{i}", text=str(v), metadata={"some_key": v}, embedding=[1.0, float(i)])
               for i, v in enumerate([1, 2, "3"])])
    got = lambda op, v: {n.node_id for n in store.get_nodes(filters=one("some_key", v, op))}  # noqa: E731
    assert got(OP.IN, [1, 2]) == {"p0", "p1"}
    assert got(OP.NIN, [1, 2]) == {"p2"}
    assert got(OP.IN, ["3"]) == {"p2"}
    assert got(OP.EQ, 3) == set()
    store.client.close()


# ---- ranking and MMR, compared with SimpleVectorStore ------------------------------------------------------------

def random_nodes(n: int, dim: int = 8, seed: int = 3) -> List[TextNode]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim)).astype(np.float32)
    return [TextNode(id_=f"r{i}", text=f"random {i}", embedding=X[i].tolist(),
                     metadata={"bucket": int(i % 5), "even": i % 2 == 0, "tag": ["a", "b", "c"][i % 3]},
                     relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"doc{i % 4}")})
            for i in range(n)]


@pytest.fixture(scope="module")
def random_pair():
    nodes = random_nodes(120)
    store = KnnsqlLlamaStore(table="random")
    store.add(nodes)
    yield store, simple_store(nodes), nodes
    store.client.close()


RANK_FILTERS = [None, one("bucket", 2, OP.GTE), one("tag", ["a", "c"], OP.IN),
                MetadataFilters(filters=[MetadataFilter(key="even", value=1),
                                         MetadataFilter(key="bucket", value=4, operator=OP.NE)],
                                condition=FilterCondition.OR)]


@pytest.mark.parametrize("fi", range(len(RANK_FILTERS)))
def test_default_ranking_equals_simple_vector_store(random_pair, fi):
    store, ref, _ = random_pair
    rng = np.random.default_rng(100 + fi)
    for _ in range(3):
        q = VectorStoreQuery(query_embedding=rng.normal(size=8).astype(np.float32).tolist(), similarity_top_k=7,
                             filters=RANK_FILTERS[fi])
        got, want = store.query(q), ref.query(q)
        assert got.ids == want.ids
        np.testing.assert_allclose(got.similarities, want.similarities, atol=1e-5)
    q.node_ids = ["r1", "r2", "r3", "r50"]
    assert store.query(q).ids == ref.query(q).ids


@pytest.mark.parametrize("threshold", [None, 0.1, 0.3, 0.5, 1.0])  # (at 0 the query plays no part: ties)
def test_mmr_equals_simple_vector_store_over_all_candidates(random_pair, threshold):
    store, ref, nodes = random_pair
    rng = np.random.default_rng(7)
    for f in (None, one("tag", "b", OP.NE)):
        q = VectorStoreQuery(query_embedding=rng.normal(size=8).astype(np.float32).tolist(), similarity_top_k=5,
                             mode=VectorStoreQueryMode.MMR, filters=f)
        want = ref.query(q, mmr_threshold=threshold)
        got = store.query(q, mmr_threshold=threshold, mmr_prefetch_k=len(nodes))
        assert got.ids == want.ids
        np.testing.assert_allclose(got.similarities, want.similarities, atol=1e-5)
        q.mmr_threshold = threshold  # the query's own threshold serves when the kwargs give none
        assert store.query(q, mmr_prefetch_k=len(nodes)).ids == want.ids


def test_mmr_prefetch_and_threshold_sources(random_pair):
    store, _, _ = random_pair
    q = VectorStoreQuery(query_embedding=[0.5] * 8, similarity_top_k=4, mode=VectorStoreQueryMode.MMR)
    dense = store.query(VectorStoreQuery(query_embedding=[0.5] * 8, similarity_top_k=4))
    assert len(store.query(q).ids) == 4  # default prefetch: 4 x top-k candidates
    assert len(store.query(q, mmr_prefetch_factor=2.5).ids) == 4
    # as many candidates as results: MMR only reorders the dense top-k
    assert set(store.query(q, mmr_prefetch_k=4).ids) == set(dense.ids)
    assert store.query(q, mmr_prefetch_k=4, mmr_threshold=1.0).ids == dense.ids
    with pytest.raises(ValueError, match="mmr_prefetch_k"):
        store.query(q, mmr_prefetch_k=16, mmr_prefetch_factor=2.0)
    q.mmr_threshold = 1.0  # the kwargs win over the query's threshold
    assert store.query(q, mmr_prefetch_k=4, mmr_threshold=0.0).ids == \
        store.query(VectorStoreQuery(query_embedding=[0.5] * 8, similarity_top_k=4, mode=VectorStoreQueryMode.MMR),
                    mmr_prefetch_k=4, mmr_threshold=0.0).ids


def test_mmr_skips_near_duplicates():
    """test_simple_mmr_threshold's data: a and b point the same way, c elsewhere."""
    store = KnnsqlLlamaStore()
    store.add([TextNode(id_="a", text="a", embedding=[1.0, 0.0]), TextNode(id_="b", text="b", embedding=[1.0, 0.001]),
               TextNode(id_="c", text="c", embedding=[0.0, 1.0])])
    q = VectorStoreQuery(query_embedding=[1.0, 0.0], similarity_top_k=2, mode=VectorStoreQueryMode.MMR)
    assert store.query(q, mmr_threshold=0.0).ids == ["a", "c"]
    assert store.query(q, mmr_threshold=1.0).ids == ["a", "b"]
    q.mmr_threshold = 0.25
    assert store.query(q).ids == ["a", "c"]
    assert store.query(VectorStoreQuery(query_embedding=[1.0, 0.0], similarity_top_k=2)).ids == ["a", "b"]
    store.clear()
    assert store.query(q).ids == []
    store.client.close()


SUPPORTED = (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR, VectorStoreQueryMode.TEXT_SEARCH,
             VectorStoreQueryMode.HYBRID)
UNSUPPORTED = [m for m in VectorStoreQueryMode if m not in SUPPORTED]


@pytest.mark.parametrize("mode", UNSUPPORTED, ids=lambda m: m.value)
def test_modes_it_cannot_honour_are_clear_errors(shelf, mode):
    q = VectorStoreQuery(query_embedding=[1.0, 0.0, 0.0], query_str="poetry", similarity_top_k=2, mode=mode,
                         alpha=0.5)
    pattern = rf"query mode '{mode.value}' is not supported.*'default'.*'mmr'.*'text_search'.*'hybrid'"
    with pytest.raises(ValueError, match=pattern):
        shelf.query(q)
    with pytest.raises(ValueError, match=pattern):
        asyncio.run(shelf.aquery(q))


def test_query_needs_an_embedding_and_empty_stores_answer_nothing():
    store = KnnsqlLlamaStore()
    with pytest.raises(ValueError, match="query_embedding"):
        store.query(VectorStoreQuery(query_str="x", similarity_top_k=1))
    # no table yet (lancedb raises here; an empty knnsql store answers nothing)
    assert store.query(VectorStoreQuery(query_embedding=[1.0, 0.0], similarity_top_k=3)).ids == []
    assert store.get_nodes() == [] and store.get_nodes(node_ids=["x"]) == []
    store.delete("doc")
    store.delete_nodes(node_ids=["x"])
    store.clear()
    store.add([TextNode(id_="x", text="x", embedding=[1.0, 0.0])])
    with pytest.raises(ValueError, match="dimensions"):
        store.add([TextNode(id_="y", text="y", embedding=[1.0, 0.0, 0.0])])
    assert store.query(VectorStoreQuery(query_embedding=[1.0, 0.0], similarity_top_k=0)).ids == []
    store.client.close()


# ---- doc_ids / node_ids constraints ----------------------------------------------------------------------------

def chunk_nodes() -> List[TextNode]:
    return [TextNode(id_=f"{doc}-{chunk}", text=f"Document {doc}, chunk {chunk}", embedding=[1.0, float(chunk)],
                     relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc)}, metadata={"chunk": chunk})
            for doc in ["a", "b"] for chunk in [0, 1]]


class FixedEmbedding(BaseEmbedding):
    """Every text and query embeds to the same vector (the retriever tests give their query embeddings)."""

    def _get_text_embedding(self, text: str) -> List[float]:
        return [1.0, 0.0]

    def _get_query_embedding(self, query: str) -> List[float]:
        return [1.0, 0.0]

    async def _aget_query_embedding(self, query: str) -> List[float]:
        return [1.0, 0.0]


@pytest.mark.parametrize("mode", [VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR], ids=lambda m: m.value)
@pytest.mark.parametrize("doc_ids, want", [(None, {"a-0", "a-1", "b-0", "b-1"}), ([], set()), (["missing"], set()),
                                           (["a"], {"a-0", "a-1"})])
def test_retriever_constrains_source_documents(mode, doc_ids, want):
    store = KnnsqlLlamaStore()
    index = VectorStoreIndex(chunk_nodes(), storage_context=StorageContext.from_defaults(vector_store=store),
                             embed_model=FixedEmbedding())
    retriever = index.as_retriever(doc_ids=doc_ids, similarity_top_k=10, vector_store_query_mode=mode)
    got = retriever.retrieve(QueryBundle(query_str="test", embedding=[1.0, 0.0]))
    assert {h.node.node_id for h in got} == want
    store.client.close()


def test_doc_ids_node_ids_and_filters_intersect():
    store = KnnsqlLlamaStore()
    store.add(chunk_nodes())
    store.add([TextNode(id_="a-2", text="", embedding=[1.0, 0.0], metadata={"chunk": 1},
                        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id="a")})])
    q = VectorStoreQuery(query_embedding=[1.0, 0.0], similarity_top_k=10, doc_ids=["a"],
                         node_ids=["a-0", "a-1", "b-1"], filters=MetadataFilters(filters=[ExactMatchFilter(
                             key="chunk", value=1)]))
    assert store.query(q).ids == ["a-1"]
    q.mode = VectorStoreQueryMode.MMR
    assert store.query(q).ids == ["a-1"]
    store.client.close()


# ---- reading, deleting, round trips -----------------------------------------------------------------------------

def test_get_nodes_by_ids_and_filters_with_embeddings(shelf):
    got = shelf.get_nodes(node_ids=["b1", "b3", "missing"])
    assert [n.node_id for n in got] == ["b1", "b3"]
    assert got[0].embedding == BOOKS[0][2] and got[1].embedding == BOOKS[2][2]
    assert got[0].get_content() == "the text of b1" and got[0].metadata == BOOKS[0][3]
    # ids and filters: both hold
    assert [n.node_id for n in shelf.get_nodes(node_ids=["b1", "b2", "b3"], filters=one("genre", "fiction"))] == \
        ["b2", "b3"]
    assert shelf.get_nodes(node_ids=[]) == []
    assert [n.node_id for n in shelf.get_nodes()] == ["b1", "b2", "b3", "b4"]


def test_delete_by_ref_doc_id_then_query(books):
    books.delete("doc-y")
    assert query_ids(books, k=2) == ["b1", "b4"]
    assert {n.node_id for n in books.get_nodes()} == {"b1", "b4"}
    books.delete("no-such-doc")
    assert len(books.get_nodes()) == 2


def test_delete_nodes_by_ids_filters_both_and_neither(books):
    books.delete_nodes(node_ids=["b1", "b2"])
    assert query_ids(books) == ["b3", "b4"]
    books.delete_nodes(node_ids=[])  # an empty list deletes nothing
    assert len(books.get_nodes()) == 2
    books.delete_nodes(node_ids=["b3", "b4"], filters=one("genre", "essay"))  # both must hold
    assert query_ids(books) == ["b3"]
    books.add(book_nodes())
    books.delete_nodes(filters=one("tags", "long", OP.CONTAINS))
    assert {n.node_id for n in books.get_nodes()} == {"b1", "b4"}
    books.delete_nodes()  # neither ids nor filters: every node, as in LlamaIndex's stores
    assert books.get_nodes() == []


def test_clear_then_reuse(books):
    books.clear()
    assert query_ids(books) == [] and books.get_nodes() == []
    books.add(book_nodes()[:2])
    assert query_ids(books, emb=(1.0, 0.0, 0.0), k=1) == ["b1"]


def test_nodes_round_trip_text_metadata_relationships_and_types():
    store = KnnsqlLlamaStore()
    quote = TextNode(id_="q1", text="中文用户来了。 « Ça va ? » — it's \"quoted\"", embedding=[0.9, 0.3, 0.3],
                     metadata={"author": "Émile", "when": datetime.date(2024, 5, 17), "nested": {"a": [1, 2]}},
                     excluded_embed_metadata_keys=["when"], excluded_llm_metadata_keys=["nested", "author"],
                     relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id="src-7"),
                                    NodeRelationship.NEXT: RelatedNodeInfo(node_id="q2")})
    pointer = IndexNode(id_="i1", text="points at another index", index_id="other", embedding=[0.0, 1.0, 0.0],
                        metadata={"kind": "pointer"})
    store.add([quote, pointer])
    res = store.query(VectorStoreQuery(query_embedding=[0.9, 0.3, 0.3], similarity_top_k=2))
    got = {n.node_id: n for n in res.nodes}
    q = got["q1"]
    assert res.ids[0] == "q1" and q.get_content() == quote.text
    assert q.metadata == {"author": "Émile", "when": "2024-05-17", "nested": {"a": [1, 2]}}  # dates as ISO strings
    assert q.excluded_embed_metadata_keys == ["when"] and q.excluded_llm_metadata_keys == ["nested", "author"]
    assert q.source_node.node_id == "src-7" and q.ref_doc_id == "src-7" and q.next_node.node_id == "q2"
    assert isinstance(got["i1"], IndexNode) and got["i1"].index_id == "other"
    assert got["i1"].get_content() == "points at another index"
    # the date filters as the string LlamaIndex serialises it to
    assert [n.node_id for n in store.get_nodes(filters=one("when", "2024-05-01", OP.GT))] == ["q1"]
    assert [n.node_id for n in store.get_nodes(filters=one("ref_doc_id", "None"))] == ["i1"]  # no source
    store.client.close()


def test_upserts_replace_by_node_id():
    store = KnnsqlLlamaStore()
    store.add(book_nodes())
    store.add([TextNode(id_="b2", text="second edition", embedding=[1.0, 0.0, 0.0], metadata={"genre": "poetry"}),
               TextNode(id_="b5", text="draft", embedding=[0.0, 0.0, 1.0]),
               TextNode(id_="b5", text="final", embedding=[0.0, 0.0, 1.0])])  # the last copy in a batch wins
    nodes = {n.node_id: n for n in store.get_nodes()}
    assert set(nodes) == ALL | {"b5"}
    assert nodes["b2"].get_content() == "second edition" and nodes["b5"].get_content() == "final"
    assert {n.node_id for n in store.get_nodes(filters=one("genre", "poetry"))} == {"b1", "b2"}
    assert set(query_ids(store, emb=(1.0, 0.0, 0.0), k=2)) == {"b1", "b2"}
    store.client.close()


def test_async_methods():
    """chroma's and qdrant's async patterns: async_add, aquery, aget_nodes, adelete, adelete_nodes, aclear."""
    async def scenario(store):
        assert await store.async_add(book_nodes()) == ["b1", "b2", "b3", "b4"]
        res = await store.aquery(VectorStoreQuery(query_embedding=[1.0, 0.0, 0.0], similarity_top_k=1))
        assert res.ids == ["b1"] and res.nodes[0].get_content() == "the text of b1"
        res = await store.aquery(VectorStoreQuery(query_embedding=[1.0, 0.0, 0.0], similarity_top_k=2,
                                                  filters=one("genre", "fiction")))
        assert res.ids == ["b3", "b2"]
        mmr = await store.aquery(VectorStoreQuery(query_embedding=[1.0, 0.0, 0.0], similarity_top_k=2,
                                                  mode=VectorStoreQueryMode.MMR), mmr_threshold=0.5)
        assert len(mmr.ids) == 2 and mmr.ids[0] == "b1"
        assert [n.node_id for n in await store.aget_nodes(node_ids=["b2", "b4"])] == ["b2", "b4"]
        await store.adelete("doc-y")
        assert [n.node_id for n in await store.aget_nodes()] == ["b1", "b4"]
        await store.adelete_nodes(node_ids=["b1"])
        assert [n.node_id for n in await store.aget_nodes(filters=one("year", 2000, OP.GT))] == ["b4"]
        await store.aclear()
        assert await store.aget_nodes() == []

    store = KnnsqlLlamaStore()
    asyncio.run(scenario(store))
    store.client.close()


def test_store_over_an_existing_table(tmp_path):
    """lancedb's pattern (a store on a table that exists already): a new store on a reopened database file
    finds the nodes, filters (typed columns included) and queries them."""
    path = str(tmp_path / "li.duckdb")
    db = knnsql.connect(path)
    KnnsqlLlamaStore(db=db, table="books").add(book_nodes())
    db.close()
    db = knnsql.connect(path)
    store = KnnsqlLlamaStore(db=db, table="books")
    assert isinstance(store, BasePydanticVectorStore) and store.stores_text
    assert store.class_name() == "KnnsqlLlamaStore" and store.client is db
    assert query_ids(store, one("year", 2005, OP.GTE), k=2) == ["b3", "b2"]
    assert query_ids(store, emb=(0.0, 0.0, 1.0), k=1) == ["b4"]
    store.add([TextNode(id_="b9", text="new", embedding=[0.0, 0.0, 1.0], metadata={"year": 2024})])
    assert {n.node_id for n in store.get_nodes(filters=one("year", 2019, OP.GT))} == {"b4", "b9"}
    db.close()


# ---- through VectorStoreIndex ----------------------------------------------------------------------------------

class HashEmbedding(BaseEmbedding):
    """A deterministic stand-in for an embedding model: each distinct text gets its own random unit vector."""

    @staticmethod
    def _vec(text: str) -> List[float]:
        v = np.random.default_rng(zlib.crc32(text.encode())).normal(size=16)
        return (v / np.linalg.norm(v)).tolist()

    def _get_text_embedding(self, text: str) -> List[float]:
        return self._vec(text)

    def _get_query_embedding(self, query: str) -> List[float]:
        return self._vec(query)

    async def _aget_query_embedding(self, query: str) -> List[float]:
        return self._vec(query)


def documents() -> List[Document]:
    return [Document(id_=f"doc{i}", text=f"Document number {i}.", metadata={"i": i, "parity": ["even", "odd"][i % 2]},
                     excluded_embed_metadata_keys=["i", "parity"]) for i in range(12)]


def test_vector_store_index_end_to_end():
    store = KnnsqlLlamaStore(table="docs")
    index = VectorStoreIndex.from_documents(documents(), storage_context=StorageContext.from_defaults(
        vector_store=store), embed_model=HashEmbedding())
    hit = index.as_retriever(similarity_top_k=1).retrieve("Document number 4.")
    assert hit[0].node.get_content() == "Document number 4." and hit[0].node.ref_doc_id == "doc4"
    assert hit[0].score == pytest.approx(1.0, abs=1e-5)
    odd = index.as_retriever(similarity_top_k=12, filters=one("parity", "odd")).retrieve("Document number 4.")
    assert sorted(h.node.metadata["i"] for h in odd) == [1, 3, 5, 7, 9, 11]
    mmr = index.as_retriever(similarity_top_k=3, vector_store_query_mode="mmr",
                             vector_store_kwargs={"mmr_threshold": 0.2}).retrieve("Document number 4.")
    assert len(mmr) == 3 and mmr[0].node.ref_doc_id == "doc4"
    with pytest.raises(ValueError, match="'svm' is not supported"):
        index.as_retriever(vector_store_query_mode="svm").retrieve("Document number 4.")
    words = index.as_retriever(similarity_top_k=2, vector_store_query_mode="text_search").retrieve("number 4")
    # "4" is no word to BM25 (digits split words) and every document has "number": equal scores, k of them
    assert len(words) == 2 and words[0].score == pytest.approx(words[1].score)
    both = index.as_retriever(similarity_top_k=2, vector_store_query_mode="hybrid").retrieve("Document number 4.")
    assert both[0].node.ref_doc_id == "doc4"

    index.delete_ref_doc("doc4")
    assert index.as_retriever(similarity_top_k=1).retrieve("Document number 4.")[0].node.ref_doc_id != "doc4"
    index.insert(Document(id_="doc4", text="Document number 4, revised."))
    index.update_ref_doc(Document(id_="doc5", text="Document number 5, revised."))
    texts = {n.ref_doc_id: n.get_content() for n in store.get_nodes()}
    assert len(texts) == 12 and texts["doc4"] == "Document number 4, revised." and \
        texts["doc5"] == "Document number 5, revised."
    hit = index.as_retriever(similarity_top_k=1).retrieve("Document number 5, revised.")
    assert hit[0].node.ref_doc_id == "doc5"
    store.client.close()


def test_vector_store_index_async():
    async def scenario():
        store = KnnsqlLlamaStore(table="docs")
        index = VectorStoreIndex.from_documents(documents()[:6], storage_context=StorageContext.from_defaults(
            vector_store=store), embed_model=HashEmbedding(), use_async=True)
        hits = await index.as_retriever(similarity_top_k=1).aretrieve("Document number 2.")
        assert hits[0].node.ref_doc_id == "doc2"
        await index.adelete_ref_doc("doc2")
        hits = await index.as_retriever(similarity_top_k=6).aretrieve("Document number 2.")
        assert len(hits) == 5 and "doc2" not in {h.node.ref_doc_id for h in hits}
        await index.ainsert(Document(id_="doc2", text="Document number 2, again."))
        hits = await index.as_retriever(similarity_top_k=1).aretrieve("Document number 2, again.")
        assert hits[0].node.ref_doc_id == "doc2" and hits[0].node.get_content() == "Document number 2, again."
        store.client.close()

    asyncio.run(scenario())


def _text_store():
    from llama_index.core.schema import TextNode

    texts = ["the quick brown fox", "a lazy dog sleeps", "foxes and dogs play", "tomato soup recipe",
             "brown bread and soup"]
    vecs = [[1, 0, 0], [0, 1, 0], [0.7, 0.7, 0], [0, 0, 1], [0.3, 0, 0.9]]
    store = KnnsqlLlamaStore(table="texts")
    store.add([TextNode(id_=f"n{i}", text=t, embedding=v, metadata={"i": i}) for i, (t, v) in
               enumerate(zip(texts, vecs))])
    return store


def test_text_search_mode_ranks_by_bm25_and_filters():
    store = _text_store()
    q = VectorStoreQuery(query_str="soup", similarity_top_k=5, mode=VectorStoreQueryMode.TEXT_SEARCH)
    res = store.query(q)
    assert set(res.ids) == {"n3", "n4"} and res.similarities == sorted(res.similarities, reverse=True)
    q.filters = one("i", 4)
    assert store.query(q).ids == ["n4"]
    with pytest.raises(ValueError, match="needs query_str"):
        store.query(VectorStoreQuery(similarity_top_k=2, mode=VectorStoreQueryMode.TEXT_SEARCH))


def test_hybrid_mode_fuses_both_rankings_and_follows_writes():
    from llama_index.core.schema import TextNode

    store = _text_store()
    q = VectorStoreQuery(query_str="brown", query_embedding=[0.0, 0.0, 1.0], similarity_top_k=2,
                         mode=VectorStoreQueryMode.HYBRID, sparse_top_k=2)
    # two candidates a side: keywords n0, n4 ("brown"), vector n3, n4: n4 is in both, so it leads under RRF
    assert store.query(q).ids[0] == "n4"
    q.alpha = 1.0   # all weight on the vector side: its best first
    assert store.query(q).ids[0] == "n3"
    q.alpha = 0.0   # all on keywords
    assert set(store.query(q).ids) == {"n0", "n4"}
    store.add([TextNode(id_="n5", text="brown brown brown", embedding=[0.0, 0.1, 1.0], metadata={"i": 5})])
    q.alpha = None
    assert store.query(q).ids[0] == "n5"        # the new node is in the keyword index: on both sides, first
    with pytest.raises(ValueError, match="needs query_embedding"):
        store.query(VectorStoreQuery(query_str="x", similarity_top_k=2, mode=VectorStoreQueryMode.HYBRID))
