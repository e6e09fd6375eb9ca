"""A local sharded table on Ray: 4 shards x 2 replicas as processes on this machine, the same search API as
one table, exact answers equal to one table's, a shard worker killed and the search answered anyway.

    pip install '.[cluster]' && python examples/cluster_demo.py
"""

import os
import signal
import tempfile

import numpy as np
import ray

import knnsql
from knnsql import cluster

rng = np.random.default_rng(0)
centers = rng.standard_normal((50, 64)) * 3
X = (centers[rng.integers(0, 50, 40_000)] + rng.standard_normal((40_000, 64))).astype(np.float32)
year = rng.integers(2000, 2025, len(X))

c = cluster.connect(root=tempfile.mkdtemp(prefix="knnsql-demo-"))
docs = c.create_table("docs", dim=64, metric="l2", columns={"year": "INTEGER"}, shards=4, replicas=2)
docs.add({"id": np.arange(len(X)), "emb": X, "year": year})
docs.create_index(label="year")
print(docs, [s["rows"] for s in docs.stats()])

q = X[123] + 0.1
print(docs.search(q).window(2010, 2015).limit(5).to_pandas())

one = knnsql.connect().create_table("docs", dim=64, metric="l2", columns={"year": "INTEGER"})
one.add({"id": np.arange(len(X)), "emb": X, "year": year})
same = np.array_equal(docs.search(q).exact().limit(10).to_numpy()[0], one.search(q).exact().limit(10).to_numpy()[0])
print("exact answer equals one table's:", same)

os.kill(ray.get(docs._actors[0][0].pid.remote()), signal.SIGKILL)   # a replica's worker dies
print("after kill -9 of a shard replica:", docs.search(q).limit(3).to_numpy()[0], "rows:", len(docs))
print("k-center picks:", docs.sample(8, "kcenter").column("id").to_pylist())
c.shutdown()
assert same
