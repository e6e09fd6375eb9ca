"""Data curation on an embedding table, end to end: check the index's recall before trusting it, pick a
diverse set to label, draw a class-balanced training sample, oversample a rare class with SMOTE, label
the remaining rows by kNN, and test the stream for drift. Every step is one knnsql call over the table
(SQL inside DuckDB) or over numpy arrays taken from it."""

import numpy as np
import pandas as pd

import knnsql
from knnsql import analytics

rng = np.random.default_rng(1)
n, dim = 6_000, 16
centers = rng.standard_normal((3, dim)) * 3
cls = rng.choice(3, n, p=[0.70, 0.25, 0.05])
day = np.sort(rng.integers(0, 120, n))      # rows arrive over 120 days...
cls[(day < 60) & (cls == 1)] = 0            # ...and class 1 only appears in the second half: a drift
emb = (centers[cls] + rng.standard_normal((n, dim))).astype(np.float32)
frame = pd.DataFrame({"id": np.arange(n), "emb": list(emb), "cls": cls, "day": day})

with knnsql.connect() as db:
    docs = db.create_table("docs", dim=dim, metric="l2", columns={"cls": "INTEGER", "day": "INTEGER"})
    docs.add(frame)
    docs.create_index(label="day")
    index = docs.index.name

    # 1. Recall of the graph index against exact search: over all rows, and inside a 30-day window.
    whole = analytics.sql_recall(db, index, "(SELECT emb FROM docs USING SAMPLE 200 ROWS (reservoir, 7))")
    month = analytics.sql_recall(db, index, "(SELECT emb FROM docs USING SAMPLE 200 ROWS (reservoir, 7))",
                                 lo=30, hi=59)
    print(f"recall@10: whole table {whole.recall.mean():.3f}, days 30-59 {month.recall.mean():.3f}")
    assert whole.recall.mean() >= 0.95 and month.recall.mean() >= 0.95

    # 2. Forty rows of the last month to label first: spread out (k-center), so no region is missed.
    to_label = docs.sample(40, method="kcenter", window=(90, 119), seed=3)
    print(to_label[["id", "cls", "day", "score"]].head(), "\n")
    assert to_label.day.between(90, 119).all() and to_label.score.is_monotonic_decreasing

    # 3. A training sample balanced across clusters (hierarchical k-means, then even shares).
    uniform = frame.sample(300, random_state=0).cls.value_counts(normalize=True)
    balanced = docs.sample(300, method="balanced", seed=4).cls.value_counts(normalize=True)
    print("class shares, uniform:", uniform.round(2).to_dict(), " balanced:", balanced.round(2).to_dict())
    assert balanced.min() > uniform.min()

    # 4. SMOTE: synthetic rows of the rare class 2, each on a segment between two class-2 rows.
    rare = emb[cls == 2]
    syn = analytics.smote(rare, 200, k=5, seed=5)
    on_segment = rare[syn.parent] + syn.gap[:, None] * (rare[syn.neighbor] - rare[syn.parent])
    print(f"SMOTE: {len(syn.vecs)} synthetic class-2 rows from {len(rare)} real ones")
    assert np.allclose(syn.vecs, on_segment, atol=1e-5)

    # 5. Label the unlabelled half by kNN vote over the labelled half (through SQL, inside DuckDB).
    db.sql("CREATE TABLE train AS SELECT id, emb, CASE WHEN id % 2 = 0 THEN cls END::BIGINT AS label FROM docs")
    pred = analytics.sql_predict(db, "train", k=7)
    truth = frame.set_index("id").cls.loc[pred.id].to_numpy()
    print(f"kNN labels for {len(pred)} rows, accuracy {np.mean(pred.label.to_numpy() == truth):.3f}")
    assert np.mean(pred.label.to_numpy() == truth) > 0.95

    # 6. Drift: in arrival order, near neighbours sit near each other in time; shuffled, they do not.
    in_order = analytics.iid_test(emb, k=10, permutations=200, seed=6)
    shuffled = analytics.iid_test(emb[rng.permutation(n)], k=10, permutations=200, seed=6)
    print(f"IID test p-value: arrival order {in_order.p_value:.3f}, shuffled {shuffled.p_value:.3f}")
    assert in_order.non_iid and not shuffled.non_iid
