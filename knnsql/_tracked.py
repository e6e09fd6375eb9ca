"""Which statements may write: the tables API's freshness check runs only when one did.

Before a search the tables API checks that the index still matches its table (a row count, repaired
when it moved). Run before every search, that count costs a statement (~0.4 ms on DuckDB 2.0, as much as
the search itself through the direct path), so by default (``connect(read_consistency_interval=None)``,
LanceDB's name for the same knob) it runs only after a statement through ``db.execute`` / ``db.sql`` that
may write, or a write through the tables API. Writers the database object cannot see (``db.con`` used
directly, other connections) need ``db.refresh()``, or ``read_consistency_interval=0`` (count before
every search) or a number of seconds (at least that often).

The classification errs towards "may write": a statement not starting with SELECT / FROM / WITH /
VALUES / EXPLAIN / DESCRIBE / SHOW / SUMMARIZE, several statements in one string, or a WITH holding
INSERT / UPDATE / DELETE all count as writes. A write that may change rows in place (UPDATE, MERGE,
ALTER anywhere in its text) makes the next search compare every row's hash (``refresh_index``) instead
of counting rows, as an in-place change keeps the count. One that may drop or rename a table (DROP,
ALTER, DETACH) makes the database look for vector tables that are gone and drop their indexes, so no
search answers from the rows of a table that no longer exists.
"""

from __future__ import annotations

import re
from typing import Any

_READ_ONLY = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/|\()*"
                        r"(select|from|with|values|explain|describe|show|summarize)\b", re.I | re.S)
_DML = re.compile(r"\b(insert|update|delete|merge)\b", re.I)


_UPDATE = re.compile(r"\b(update|merge|alter)\b", re.I)
_DROP = re.compile(r"\b(drop|alter|detach)\b", re.I)


def may_drop(statement: Any) -> bool:
    """Whether a statement may drop or rename a table (its indexes then go with it)."""
    return not isinstance(statement, str) or _DROP.search(statement) is not None


def may_update(statement: Any) -> bool:
    """Whether a statement may change rows in place (the row count check cannot see that)."""
    return not isinstance(statement, str) or _UPDATE.search(statement) is not None


def may_write(statement: Any) -> bool:
    """False only for one statement that cannot change a table."""
    if not isinstance(statement, str):
        return True
    m = _READ_ONLY.match(statement)
    if m is None:
        return True
    if ";" in statement.strip().rstrip(";"):
        return True
    return m.group(1).lower() == "with" and _DML.search(statement) is not None
