"""Sharded vector tables on Ray (extra: ``pip install 'knnsql[cluster]'``).

    from knnsql import cluster
    c = cluster.connect()                                  # a local Ray on 127.0.0.1, or address="auto" / "ray://h:p"
    t = c.create_table("docs", dim=384, metric="cosine", columns={"lang": "VARCHAR"}, shards=4, replicas=2)
    t.add(frame)                                           # DataFrame, Arrow, dict, Parquet paths, ray.data.Dataset
    t.create_index(label="ts")
    hits = t.search(Q).where("lang = 'en'").window(lo, hi).limit(10).to_pandas()

Each shard replica is a Ray actor (``_shard.ShardServer``, its own process) owning one DuckDB file in
``<root>/<table>/shard-<s>-replica-<r>.duckdb`` with the shard's rows and knnsql index, so a restarted
actor reopens its file and restores its index. Rows go to shards by a hash of the id
(``shard_by="id"``) or by ranges of a label column (``shard_by="ts", boundaries=[...]``). Searches fan
out to one replica of every shard with the filter and window pushed down (range shards outside a
window are skipped) and the answers merge exactly by (distance, id) (``_merge.py``). Writes go to every
replica and return once each has committed them to its file.

Faults: Ray restarts a dead replica's actor (``max_restarts=-1``); a call that met a dead actor is
retried on the next replica, or on the same one once it is back, for up to ``retry_timeout`` seconds
(``retries=0``: not at all), else the error names the shard. Batches sent again after a failure skip rows the shard already holds.

Security: Ray has no authentication by default. ``connect()`` without an address starts Ray bound to
127.0.0.1 only; multi-machine clusters belong on a private network (see docs/SCALING.md).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

try:
    import ray
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError("knnsql.cluster needs Ray: pip install 'knnsql[cluster]'") from exc

from .table import ShardedTable, ShardedSearch, ClusterError

__all__ = ["Cluster", "ClusterError", "ShardedSearch", "ShardedTable", "connect"]


class Cluster:
    """A connection to Ray plus a root directory for shard files; makes and opens sharded tables."""

    def __init__(self, root: Path, retries: int, started: bool, retry_timeout: float = 120.0):
        self.root = root
        self.retries = retries
        self.retry_timeout = float(retry_timeout)
        self._started = started
        self._tables: dict = {}

    def create_table(self, name: str, dim: int, metric: str = "cosine", columns: Optional[dict] = None, *,
                     shards: int = 2, replicas: int = 1, shard_by: str = "id", boundaries: Any = None,
                     id: str = "id", vector: str = "emb") -> ShardedTable:
        """A table split over ``shards`` shards of ``replicas`` copies each. ``shard_by="id"`` spreads
        rows by a hash of the id; a label column with ``boundaries`` (shards - 1 increasing values) puts
        rows with label < boundaries[0] in shard 0, and so on."""
        if (self.root / name / "table.json").exists():
            raise ValueError(f"table {name!r} exists in {self.root}; open it with cluster.table({name!r})")
        if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
            raise ValueError(f"shards must be an integer >= 1, got {shards!r}")
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise ValueError(f"replicas must be an integer >= 1, got {replicas!r}")
        columns = dict(columns or {})
        if shard_by != id:
            if shard_by not in columns:
                raise ValueError(f"shard_by={shard_by!r} is neither the id nor one of the columns {list(columns)}")
            if boundaries is None or len(boundaries) != shards - 1 or list(boundaries) != sorted(boundaries):
                raise ValueError(f"range sharding on {shard_by!r} needs boundaries=: {shards - 1} increasing values "
                                 "(rows below the first go to shard 0, ...)")
        spec = {"name": name, "dim": int(dim), "metric": metric, "columns": columns, "id": id, "vector": vector,
                "shards": shards, "replicas": replicas, "shard_by": shard_by,
                "boundaries": list(boundaries) if boundaries is not None else None, "index": None}
        (self.root / name).mkdir(parents=True, exist_ok=True)
        table = ShardedTable(self, spec)
        table._save_spec()
        self._tables[name] = table
        return table

    def table(self, name: str) -> ShardedTable:
        """Opens a sharded table made earlier under this root (its actors restart from their files)."""
        if name in self._tables:
            return self._tables[name]
        path = self.root / name / "table.json"
        if not path.exists():
            raise ValueError(f"no sharded table {name!r} under {self.root}")
        table = self._tables[name] = ShardedTable(self, json.loads(path.read_text()))
        return table

    def tables(self) -> list:
        return sorted(p.parent.name for p in self.root.glob("*/table.json"))

    def drop_table(self, name: str) -> None:
        """Stops the table's actors and deletes its shard files."""
        import shutil

        table = self.table(name)
        table._stop()
        self._tables.pop(name, None)
        shutil.rmtree(self.root / name, ignore_errors=True)

    def shutdown(self) -> None:
        """Stops the tables' actors (their files stay) and the local Ray this connection started."""
        for t in list(self._tables.values()):
            t._stop()
        self._tables.clear()
        if self._started and ray.is_initialized():
            ray.shutdown()

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


def connect(address: Optional[str] = None, *, root: Optional[str] = None, num_cpus: Optional[int] = None,
            retries: int = 1, retry_timeout: float = 120.0, **ray_options: Any) -> Cluster:
    """Connects to Ray: ``address=None`` starts a local Ray in this process (bound to 127.0.0.1, no
    dashboard), ``"auto"`` joins the cluster this machine belongs to, ``"ray://host:port"`` a remote one
    through Ray Client. ``root`` is where shard files live (default: a ``knnsql-cluster`` folder in the
    temp directory; on a multi-machine cluster, a path every node can write, one folder per node is fine
    since each actor keeps its own file). ``retries=0`` makes a call that meets a dead shard replica fail at
    once, naming the shard; otherwise it moves to another replica and, when all are down, waits for Ray to
    restart one, for up to ``retry_timeout`` seconds."""
    started = False
    ray_options.setdefault("namespace", "knnsql")   # shard actors are named: one namespace finds them again
    if not ray.is_initialized():
        if address is None:
            opts = {"include_dashboard": False, "_node_ip_address": "127.0.0.1", "log_to_driver": False}
            opts.update(ray_options)
            # Ray puts the driver's current directory first on its workers' import path unless the job has a
            # working_dir; from a source checkout that would make the shard actors import the unbuilt
            # knnsql/ folder there instead of the installed package. An empty working_dir avoids it.
            opts.setdefault("runtime_env", {"working_dir": tempfile.mkdtemp(prefix="knnsql-ray-wd-")})
            ray.init(num_cpus=num_cpus, **opts)
            started = True
        else:
            ray.init(address=address, **ray_options)
    base = Path(root) if root is not None else Path(tempfile.gettempdir()) / "knnsql-cluster"
    base.mkdir(parents=True, exist_ok=True)
    if not os.access(base, os.W_OK):
        raise ValueError(f"root {str(base)!r} is not writable: pass root= a folder the shard actors can write")
    return Cluster(base, int(retries), started, retry_timeout)
