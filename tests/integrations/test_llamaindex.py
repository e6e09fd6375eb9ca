"""The LlamaIndex vector store: metadata filters agree with LlamaIndex's own in-memory semantics
(build_metadata_filter_fn) on every operator and condition over random metadata, queries equal exact
search, deletes by ref_doc_id / node ids / filters, upserts, and a VectorStoreIndex over it."""

from __future__ import annotations

import random

import numpy as np
import pytest

pytest.importorskip("llama_index.core")

from llama_index.core.schema import TextNode, NodeRelationship, RelatedNodeInfo  # noqa: E402
from llama_index.core.vector_stores.types import (FilterCondition, FilterOperator, MetadataFilter,  # noqa: E402
                                                  MetadataFilters, VectorStoreQuery)
from llama_index.core.vector_stores.utils import build_metadata_filter_fn  # noqa: E402

from knnsql.integrations.llamaindex import KnnsqlLlamaStore  # noqa: E402

D = 12
WORDS = ["red", "green", "blue", "Red", "", "x y"]


def random_metadata(rng: random.Random) -> dict:
    md = {}
    for key in ("color", "n", "score", "tags", "note"):
        if rng.random() < 0.2:
            continue  # missing key
        if key == "color":
            md[key] = rng.choice(WORDS + [None])
        elif key == "n":
            md[key] = rng.choice([rng.randint(-3, 5), float(rng.randint(-3, 5)), "3"])
        elif key == "score":
            md[key] = rng.choice([rng.random() * 10, None])
        elif key == "tags":
            md[key] = rng.sample(WORDS, rng.randint(0, 3))
        else:
            md[key] = rng.choice(["hello world", "Hello", "", 7])
    return md


def make_nodes(n: int, seed: int = 0):
    rng = random.Random(seed)
    X = np.random.default_rng(seed).normal(size=(n, D)).astype(np.float32)
    nodes = []
    for i in range(n):
        node = TextNode(id_=f"n{i}", text=f"text {i}", metadata=random_metadata(rng), embedding=X[i].tolist())
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc{i % 7}")
        nodes.append(node)
    return nodes, X


@pytest.fixture()
def filled():
    store = KnnsqlLlamaStore()
    nodes, X = make_nodes(300)
    store.add(nodes)
    yield store, nodes, X
    store.client.close()


VALUES = {
    FilterOperator.EQ: ["red", 3, 3.0, "3", 2.5], FilterOperator.NE: ["red", 3, ""],
    FilterOperator.GT: [2, 4.5, "green"], FilterOperator.GTE: [3, "red"], FilterOperator.LT: [0, 5.0, "b"],
    FilterOperator.LTE: [-1, "green"], FilterOperator.IN: [["red", "blue"], [1, 2, 3]],
    FilterOperator.NIN: [["red", ""], [0, 4]], FilterOperator.ANY: [["red", "Red"], ["x y"]],
    FilterOperator.ALL: [["red", "green"], ["blue"]], FilterOperator.CONTAINS: ["red", "world"],
    FilterOperator.TEXT_MATCH: ["ell", "re"], FilterOperator.TEXT_MATCH_INSENSITIVE: ["HELLO", "RE"],
    FilterOperator.IS_EMPTY: [None],
}


def reference_ids(nodes, filters) -> set:
    """LlamaIndex's own semantics; None when they raise (comparisons across types)."""
    by_id = {n.node_id: n.metadata for n in nodes}
    fn = build_metadata_filter_fn(lambda i: by_id[i], filters)
    out = set()
    for i in by_id:
        try:
            if fn(i):
                out.add(i)
        except TypeError:
            return None
    return out


def test_every_operator_agrees_with_llamaindex_semantics(filled):
    store, nodes, _ = filled
    checked = 0
    for op, values in VALUES.items():
        for key in ("color", "n", "score", "tags", "note"):
            for v in values:
                f = MetadataFilters(filters=[MetadataFilter(key=key, value=v, operator=op)])
                want = reference_ids(nodes, f)
                if want is None:
                    continue
                got = {n.node_id for n in store.get_nodes(filters=f)}
                assert got == want, (op, key, v)
                checked += 1
    assert checked > 80


def test_conditions_and_nesting_agree(filled):
    store, nodes, _ = filled
    rng = random.Random(5)
    simple = [(FilterOperator.EQ, "color", "red"), (FilterOperator.GT, "score", 5.0), (FilterOperator.IN, "n", [1, 2]),
              (FilterOperator.IS_EMPTY, "tags", None), (FilterOperator.TEXT_MATCH, "note", "ell")]
    for cond in (FilterCondition.AND, FilterCondition.OR, FilterCondition.NOT):
        for _ in range(8):
            picks = rng.sample(simple, rng.randint(1, 3))
            f = MetadataFilters(filters=[MetadataFilter(key=k, value=v, operator=op) for op, k, v in picks],
                                condition=cond)
            want = reference_ids(nodes, f)
            if want is None:
                continue
            assert {n.node_id for n in store.get_nodes(filters=f)} == want, (cond, picks)
    # nesting, which the reference refuses: (color = red) OR (score > 5 AND NOT tags empty)
    inner = MetadataFilters(filters=[MetadataFilter(key="score", value=5.0, operator=FilterOperator.GT),
                                     MetadataFilters(filters=[MetadataFilter(key="tags", value=None,
                                                                             operator=FilterOperator.IS_EMPTY)],
                                                     condition=FilterCondition.NOT)])
    outer = MetadataFilters(filters=[MetadataFilter(key="color", value="red"), inner], condition=FilterCondition.OR)
    a = reference_ids(nodes, MetadataFilters(filters=[MetadataFilter(key="color", value="red")]))
    b = reference_ids(nodes, MetadataFilters(filters=[MetadataFilter(key="score", value=5.0,
                                                                     operator=FilterOperator.GT)]))
    c = reference_ids(nodes, MetadataFilters(filters=[MetadataFilter(key="tags", value=None,
                                                                     operator=FilterOperator.IS_EMPTY)]))
    assert {n.node_id for n in store.get_nodes(filters=outer)} == a | (b - c)


def test_query_equals_exact_search_with_filters_and_doc_ids(filled):
    store, nodes, X = filled
    q = np.random.default_rng(9).normal(size=D).astype(np.float32)
    cos = 1 - (X @ q) / (np.linalg.norm(X, axis=1) * np.linalg.norm(q))
    res = store.query(VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=10))
    assert res.ids == [f"n{i}" for i in np.argsort(cos, kind="stable")[:10]]
    np.testing.assert_allclose(res.similarities, 1 - np.sort(cos)[:10], atol=1e-5)
    assert res.nodes[0].get_content() == f"text {res.ids[0][1:]}" and res.nodes[0].metadata == nodes[
        int(res.ids[0][1:])].metadata
    f = MetadataFilters(filters=[MetadataFilter(key="color", value="red")])
    keep = [i for i, n in enumerate(nodes) if n.metadata.get("color") == "red" and n.ref_doc_id in ("doc1", "doc2")]
    res = store.query(VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=5, filters=f,
                                       doc_ids=["doc1", "doc2"]))
    assert res.ids == [f"n{i}" for i in sorted(keep, key=lambda i: (cos[i], i))[:5]]


def test_deletes_upserts_and_clear():
    store = KnnsqlLlamaStore()
    nodes, _ = make_nodes(40, seed=1)
    store.add(nodes)
    store.delete("doc3")
    assert {n.node_id for n in store.get_nodes()} == {n.node_id for n in nodes if n.ref_doc_id != "doc3"}
    store.delete_nodes(node_ids=["n0", "n1"])
    assert {"n0", "n1"} & {n.node_id for n in store.get_nodes()} == set()
    changed = TextNode(id_="n2", text="changed", metadata={"color": "gold"}, embedding=[1.0] * D)
    store.add([changed])
    got = store.get_nodes(node_ids=["n2"])
    assert len(got) == 1 and got[0].get_content() == "changed" and got[0].metadata == {"color": "gold"}
    store.delete_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="color", value="gold")]))
    assert store.get_nodes(node_ids=["n2"]) == []
    before = len(store.get_nodes())
    store.delete_nodes(node_ids=[])  # no ids, no filters: nothing deleted
    assert len(store.get_nodes()) == before > 0
    store.clear()
    assert store.get_nodes() == []
    with pytest.raises(ValueError, match="query_embedding"):
        store.query(VectorStoreQuery(query_str="x", similarity_top_k=1))
    store.client.close()


def test_vector_store_index_retrieves_through_the_store():
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding

    store = KnnsqlLlamaStore(table="docs")
    index = VectorStoreIndex.from_documents(
        [Document(text=f"document number {i}", metadata={"i": i}) for i in range(20)],
        storage_context=StorageContext.from_defaults(vector_store=store), embed_model=MockEmbedding(embed_dim=8))
    hits = index.as_retriever(similarity_top_k=3).retrieve("document number 4")
    assert len(hits) == 3 and all(h.node.get_content().startswith("document number") for h in hits)
    store.client.close()
