"""knnsql's Python API on a DataFrame: a vector table, an index with a time label, filtered and
windowed searches, natural SQL rewritten onto the index, and persistence across a reopen."""

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import knnsql

rng = np.random.default_rng(0)
n, dim = 20_000, 32
frame = pd.DataFrame({
    "id": np.arange(n),
    "emb": list(rng.standard_normal((n, dim)).astype(np.float32)),
    "lang": rng.choice(["en", "de", "fr"], n),
    "price": rng.uniform(1, 100, n).round(2),
    "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365 * 24, n), unit="h"),
})
path = Path(tempfile.mkdtemp()) / "shop.duckdb"

with knnsql.connect(path) as db:
    items = db.create_table("items", dim=dim, metric="cosine",
                            columns={"lang": "VARCHAR", "price": "DOUBLE", "ts": "TIMESTAMP"})
    items.add(frame)
    items.create_index(label="ts")
    q = frame.emb[7]

    s = items.search(q).where("lang = 'fr' AND price < 20").window("2024-03-01", "2024-06-30").limit(5)
    print(s.to_pandas(), f"\nplan: {s.plan}, candidates fetched: {s.fetched}\n")

    batch = items.search(np.stack(frame.emb[:3])).limit(2).to_pandas()   # one row per (query, hit)
    print(batch, "\n")

    sql = ("SELECT id, lang, array_cosine_distance(emb, $q::FLOAT[32]) AS d FROM items "
           "WHERE ts BETWEEN TIMESTAMP '2024-02-01' AND TIMESTAMP '2024-02-29' "
           "ORDER BY array_cosine_distance(emb, $q::FLOAT[32]) LIMIT 3")
    print(db.explain(sql, q=q), "\n")
    print(db.sql(sql, q=q).fetchall(), "\n")

# Plain SQL from any client changes the table while knnsql is away...
import duckdb  # noqa: E402
con = duckdb.connect(str(path))
con.execute("DELETE FROM items WHERE lang = 'de' AND price > 90")
con.close()

# ...and reconnecting restores the saved index, then repairs just those rows.
with knnsql.connect(path) as db:
    print(db.open_report)
    assert db.open_report[0]["action"] == "restored" and db.open_report[0]["removed"] > 0
    print(db.table("items").search(q).limit(3).to_list())
