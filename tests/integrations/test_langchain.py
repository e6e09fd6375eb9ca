"""The LangChain vector store passes langchain-tests' standard VectorStoreIntegrationTests, unmodified (sync
and async), and the knnsql-specific parts the standard suite does not reach: metadata filters, MMR,
scores, a store reopened from its database file."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core")
lt = pytest.importorskip("langchain_tests.integration_tests")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import DeterministicFakeEmbedding  # noqa: E402

import knnsql  # noqa: E402
from knnsql.integrations.langchain import KnnsqlVectorStore  # noqa: E402


class TestKnnsqlVectorStore(lt.VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self):
        store = KnnsqlVectorStore(self.get_embeddings())
        try:
            yield store
        finally:
            store.db.close()


@pytest.fixture()
def store():
    s = KnnsqlVectorStore(DeterministicFakeEmbedding(size=16))
    docs = [Document(page_content=f"doc {i}", metadata={"lang": ["en", "de", "fr"][i % 3], "n": i})
            for i in range(60)]
    s.add_documents(docs, ids=[f"d{i}" for i in range(60)])
    yield s
    s.db.close()


def test_metadata_filters_keep_only_matching_documents(store):
    got = store.similarity_search("doc 4", k=10, filter={"lang": "de"})
    assert len(got) == 10 and {d.metadata["lang"] for d in got} == {"de"}
    got = store.similarity_search("doc 4", k=50, filter={"lang": ["en", "fr"], "n": 3})
    assert [d.id for d in got] == ["d3"]
    assert store.similarity_search("doc 4", k=5, filter={"lang": "xx"}) == []


def test_scores_and_exact_match_come_first(store):
    hits = store.similarity_search_with_score("doc 7", k=3)
    assert hits[0][0].id == "d7" and hits[0][1] == pytest.approx(0.0, abs=1e-5)
    assert [s for _, s in hits] == sorted(s for _, s in hits)
    rel = store.similarity_search_with_relevance_scores("doc 7", k=3)
    assert rel[0][1] == pytest.approx(1.0, abs=1e-5)


def test_max_marginal_relevance_returns_k_distinct_documents(store):
    got = store.max_marginal_relevance_search("doc 5", k=5, fetch_k=20)
    assert len(got) == 5 and len({d.id for d in got}) == 5 and got[0].id == "d5"
    retriever = store.as_retriever(search_kwargs={"k": 2})
    assert [d.id for d in retriever.invoke("doc 9")][0] == "d9"


def test_store_reopens_from_its_database_file(tmp_path):
    path = tmp_path / "lc.duckdb"
    emb = DeterministicFakeEmbedding(size=8)
    s = KnnsqlVectorStore(emb, db=knnsql.connect(path), table="notes")
    s.add_texts(["alpha", "beta", "gamma"], metadatas=[{"k": 1}, {"k": 2}, {"k": 3}], ids=["a", "b", "c"])
    s.db.close()
    again = KnnsqlVectorStore(emb, db=knnsql.connect(path), table="notes")
    assert again.similarity_search("beta", k=1)[0] == Document(id="b", page_content="beta", metadata={"k": 2})
    with pytest.raises(ValueError, match="embeddings have 4 dimensions"):
        KnnsqlVectorStore(DeterministicFakeEmbedding(size=4), db=again.db, table="notes").add_texts(["x"])
    again.db.close()


def test_bad_filters_name_the_fix(store):
    with pytest.raises(TypeError, match="filter must be a dict"):
        store.similarity_search("doc", k=2, filter="lang = 'en'")
    with pytest.raises(ValueError, match="empty list matches nothing"):
        store.similarity_search("doc", k=2, filter={"lang": []})


def test_typed_metadata_columns_filter_like_the_json(store):
    """The first batch's scalar keys became typed columns the index filters on; results equal Python's reading
    of the metadata, also after a document gives a key a value of another type (its column then retires)."""
    cols = {r[0] for r in store.db.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'langchain'"
                                           ).fetchall()}
    assert {"m_lang", "m_n"} <= cols
    docs = {f"d{i}": {"lang": ["en", "de", "fr"][i % 3], "n": i} for i in range(60)}

    def want(flt):
        return {d for d, md in docs.items()
                if all(md.get(k) in (v if isinstance(v, list) else [v]) for k, v in flt.items())}

    for flt in ({"lang": "de"}, {"n": [3, 4, 5, 40]}, {"lang": "en", "n": [0, 3, 6, 7]}, {"n": 3.0}, {"lang": 1}):
        got = {d.id for d in store.similarity_search("doc 1", k=60, filter=flt)}
        assert got == want(flt), flt
    store.add_texts(["odd one"], metadatas=[{"lang": "en", "n": "3"}], ids=["odd"])  # n as a string
    docs["odd"] = {"lang": "en", "n": "3"}
    for flt in ({"n": 3}, {"n": "3"}, {"lang": "en", "n": ["3", 6]}):
        got = {d.id for d in store.similarity_search("doc 1", k=61, filter=flt)}
        assert got == want(flt), flt
