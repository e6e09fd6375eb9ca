"""Conditions on a JSON metadata column, for the framework adapters' metadata filters.

Comparisons follow Python's on the decoded values, as LlamaIndex's in-memory store applies them
(``llama_index.core.vector_stores.utils.build_metadata_filter_fn``): a string equals only a string, a number
only a number (1 == 1.0; a bool is the number 0 or 1, True == 1), ordering compares like with like and is false
across types, a missing key or JSON null matches only the negative operators. Every condition is TRUE or FALSE,
never NULL, so NOT and OR compose as in Python. Only functions knnsql's ``where()`` accepts are used (a query's
filter goes through it).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Optional, Sequence

_NUMBER_TYPES = "('BIGINT', 'UBIGINT', 'DOUBLE', 'BOOLEAN')"


def literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _json_forms(value: Any) -> list:
    """The JSON texts of the values Python finds equal to value (json() normalises each as DuckDB writes list
    elements): a number as an integer and as a double, and 0 / 1 as false / true too."""
    if isinstance(value, (bool, int, float)) and not (isinstance(value, float) and not math.isfinite(value)):
        forms = {json.dumps(float(value))}
        if float(value).is_integer():
            forms.add(str(int(value)))
            if value in (0, 1):
                forms.add("true" if value else "false")
        return sorted(forms)
    return [json.dumps(value, ensure_ascii=False)]


class Field:
    """One metadata key of the JSON column ``column``."""

    def __init__(self, key: str, column: str = "metadata"):
        path = literal("$." + json.dumps(str(key)))
        self.json = f"json_extract({column}, {path})"
        self.type = f"json_type({self.json})"
        self.text = f"json_extract_string({column}, {path})"
        # the elements of a list value (JSON[]; empty for anything else); knnsql's where() allows these functions,
        # not json_contains / json_array_length
        self.items = f"json_extract({column}, {literal('$.' + json.dumps(str(key)) + '[*]')})"

    @staticmethod
    def _sure(cond: str) -> str:
        return f"coalesce(({cond}), false)"

    def missing(self) -> str:
        return f"({self.json} IS NULL OR {self.type} = 'NULL')"

    def compare(self, op: str, value: Any) -> str:
        """The key's value <op> value, with Python's typing (op: =, <>, <, <=, >, >=)."""
        if isinstance(value, (int, float)):  # bools are the numbers 0 and 1, on either side, as in Python
            number = f"CASE WHEN {self.type} = 'BOOLEAN' THEN ({self.text} = 'true')::DOUBLE " \
                     f"ELSE TRY_CAST({self.text} AS DOUBLE) END"
            cond = f"{self.type} IN {_NUMBER_TYPES} AND {number} {op} {float(value)!r}"
        elif isinstance(value, str):
            cond = f"{self.type} = 'VARCHAR' AND {self.text} {op} {literal(value)}"
        else:
            raise TypeError(f"metadata filter values are strings, numbers or booleans, got {type(value).__name__}")
        if op == "<>":  # Python's != is true across types: not (equal)
            return f"NOT {self.compare('=', value)}"
        return self._sure(cond)

    def one_of(self, values: Sequence[Any]) -> str:
        values = list(values)
        return "(" + " OR ".join(self.compare("=", v) for v in values) + ")" if values else "false"

    def holds(self, value: Any) -> str:
        """The key's value is a list with an element equal to value, as Python's ``in`` (1 == 1.0 == True)."""
        forms = ", ".join(f"json({literal(f)})" for f in _json_forms(value))
        return self._sure(f"{self.type} = 'ARRAY' AND list_has_any({self.items}, [{forms}])")

    def contains(self, value: Any) -> str:
        """Python's ``value in <the key's value>``: an element of a list, or a substring of a string."""
        return f"({self.holds(value)} OR {self.substring(value)})" if isinstance(value, str) else self.holds(value)

    def substring(self, value: str, insensitive: bool = False) -> str:
        if not isinstance(value, str):
            raise TypeError("text matching takes a string value")
        text, needle = (f"lower({self.text})", literal(value.lower())) if insensitive else (self.text, literal(value))
        return self._sure(f"{self.type} = 'VARCHAR' AND contains({text}, {needle})")

    def empty(self) -> str:
        """Missing, null, the empty string or the empty list."""
        blank = self._sure(f"{self.type} = 'VARCHAR' AND {self.text} = ''")
        no_items = self._sure(f"{self.type} = 'ARRAY' AND len({self.items}) = 0")
        return f"({self.missing()} OR {blank} OR {no_items})"


# ---- scalar metadata keys as typed columns --------------------------------------------------------------

TYPED_PREFIX = "m_"
_MAX_TYPED = 16
_SAFE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")


def _fits(value: Any, sqltype: str) -> bool:
    if sqltype == "BOOLEAN":
        return isinstance(value, bool)
    if sqltype == "BIGINT":
        return isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63
    if sqltype == "DOUBLE":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str)


def infer_typed(metadatas: Sequence[dict]) -> dict:
    """{key: SQL type} for the scalar keys of a first batch worth a typed column: a name that is an identifier,
    and every non-null value a bool (BOOLEAN), an int (BIGINT), a number (DOUBLE) or a string (VARCHAR)."""
    kinds: dict = {}
    for md in metadatas:
        for key, v in (md or {}).items():
            if v is None or not isinstance(key, str) or not _SAFE_KEY.match(key):
                continue
            kind = ("BOOLEAN" if isinstance(v, bool) else "BIGINT" if isinstance(v, int) else
                    "DOUBLE" if isinstance(v, float) else "VARCHAR" if isinstance(v, str) else None)
            seen = kinds.get(key, kind)
            if {seen, kind} == {"BIGINT", "DOUBLE"}:
                kind = "DOUBLE"
            elif seen != kind:
                kind = None
            kinds[key] = kind
    typed = {k: t for k, t in kinds.items() if t is not None}
    return dict(sorted(typed.items())[:_MAX_TYPED])


def typed_value(md: Optional[dict], key: str, sqltype: str):
    """The value for key's typed column, or NULL (None); ``misfit`` True when the document has a value that
    does not fit the column (then the column no longer speaks for the key)."""
    v = (md or {}).get(key)
    if v is None:
        return None, False
    if not _fits(v, sqltype):
        return None, True
    return (float(v) if sqltype == "DOUBLE" else v), False


def typed_compare(column: str, sqltype: str, op: str, value: Any) -> Optional[str]:
    """``column <op> value`` on a typed column, with Python's semantics on the stored values, or None when the
    value's type does not match the column (the JSON condition answers then)."""
    if not _fits(value, sqltype) or (sqltype == "BOOLEAN" and op not in ("=", "<>")):
        return None
    lit = (("true" if value else "false") if sqltype == "BOOLEAN" else literal(value) if sqltype == "VARCHAR"
           else repr(float(value)) if sqltype == "DOUBLE" else str(int(value)))
    if op == "<>":  # a missing key is "not equal" too
        return f"({column} IS NULL OR {column} <> {lit})"
    return f"({column} IS NOT NULL AND {column} {op} {lit})"  # never NULL: NOT and OR compose as in Python


def typed_one_of(column: str, sqltype: str, values: Sequence[Any]) -> Optional[str]:
    parts = [typed_compare(column, sqltype, "=", v) for v in values]
    if not parts or any(p is None for p in parts):
        return None
    return "(" + " OR ".join(parts) + ")"


class TypedColumns:
    """The typed columns of a store's table (``m_<key>``), and which of them still speak for their key: a key
    stops being served by its column once a document gives it a value of another type (the JSON answers
    then). Filters on served keys run inside the index, as the table's attribute columns."""

    def __init__(self, types: dict):
        self.types = dict(types)
        self.served = set(types)

    @classmethod
    def of_table(cls, con, table: str, quote) -> "TypedColumns":
        rows = con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
                           "AND starts_with(column_name, ?)", [table, TYPED_PREFIX]).fetchall()
        tc = cls({name[len(TYPED_PREFIX):]: typ for name, typ in rows})
        for key in list(tc.served):
            f = Field(key)
            stray = con.execute(f"SELECT count(*) FROM {quote(table)} WHERE NOT {f.missing()} AND "
                                f"{quote(TYPED_PREFIX + key)} IS NULL").fetchall()[0][0]
            if stray:
                tc.served.discard(key)
        return tc

    def columns(self) -> dict:
        return {TYPED_PREFIX + k: t for k, t in self.types.items()}

    def values(self, metadatas: Sequence[dict]) -> dict:
        """{column: values} for a batch; a value that does not fit retires the key's column from filtering."""
        out = {}
        for key, typ in self.types.items():
            col = []
            for md in metadatas:
                v, misfit = typed_value(md, key, typ)
                if misfit:
                    self.served.discard(key)
                col.append(v)
            out[TYPED_PREFIX + key] = col
        return out

    def column(self, key: str) -> Optional[tuple]:
        """(column, SQL type) when the key is served by its column, else None."""
        return (TYPED_PREFIX + key, self.types[key]) if key in self.served else None
