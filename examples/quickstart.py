"""knnsql in a minute: a vector table in DuckDB, exact kNN from SQL, and the numpy API."""

import numpy as np

import knnsql

rng = np.random.default_rng(0)
vectors = rng.standard_normal((10_000, 64)).astype(np.float32)

db = knnsql.connect()  # DuckDB (in memory) with the knnsql extension loaded
src = knnsql.vectors_table(vectors)  # Arrow view of the numpy array: id BIGINT, emb FLOAT[64]
db.execute("CREATE TABLE docs AS SELECT id, 'doc ' || id AS title, emb FROM src")

query = vectors[42] + 0.01
rows = db.execute("""
    SELECT d.id, d.title, r.distance
    FROM (SELECT unnest(knn_exact(id, emb, $q::FLOAT[64], 5, 'cosine')) AS r FROM docs) n
    JOIN docs d ON d.id = n.r.id
    ORDER BY r.distance""", {"q": query.tolist()}).fetchall()
print("SQL, 5 nearest by cosine:")
for row in rows:
    print("  ", row)
assert rows[0][0] == 42

index = knnsql.Index(64, metric="cosine")  # same C core, no database
index.add(vectors)
ids, distances = index.search(query, k=5)
print("numpy API:", ids[0].tolist())
assert ids[0, 0] == 42
