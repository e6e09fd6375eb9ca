"""Filters the index evaluates itself: a ``where`` expression translated, when it can be, into the
filter language of ``knn_search(..., filter := '...')`` (ext/core/attrs/knn_predicate.h).

A table's graph index keeps attribute columns next to its vectors (``create_index(attributes=...)``;
by default every column of a type it can hold). A ``where`` whose every part is a comparison, BETWEEN,
IN, IS [NOT] NULL or LIKE of one such column against literals of a matching type, joined by AND / OR /
NOT, runs inside the index: one statement, no id list. Anything else (functions, arithmetic, other
columns, literals of another type, which DuckDB would cast) gives ``None`` and the search takes the
allow-list path (``knn_among``), where DuckDB evaluates the filter.
"""

from __future__ import annotations

import functools
from typing import Mapping, Optional

from sqlglot import exp

from ._sql import parse_filter

# SQL column types an index can hold, by the core type they become.
_KINDS = {
    "TINYINT": "int", "SMALLINT": "int", "INTEGER": "int", "BIGINT": "int", "UTINYINT": "int",
    "USMALLINT": "int", "UINTEGER": "int", "UBIGINT": "int", "INT": "int", "INT4": "int", "INT8": "int",
    "FLOAT": "num", "DOUBLE": "num", "REAL": "num",
    "BOOLEAN": "bool", "DATE": "date", "TIMESTAMP": "ts", "VARCHAR": "str", "TEXT": "str",
}


def attribute_kind(sql_type: str) -> Optional[str]:
    """The core kind of a SQL column type ("int", "num", "bool", "date", "ts", "str"), or None when an
    index cannot hold it (lists, structs, blobs, time zones, ...)."""
    t = sql_type.upper().strip()
    if t.startswith("DECIMAL") or t.startswith("NUMERIC"):
        return "num"
    return _KINDS.get(t)


class _Unsupported(Exception):
    pass


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(node: exp.Expression, kind: str) -> str:
    """A literal in the core's syntax, if it fits a column of this kind; else _Unsupported."""
    if isinstance(node, exp.Null):
        return "NULL"
    if isinstance(node, exp.Boolean):
        if kind != "bool":
            raise _Unsupported()
        return "TRUE" if node.this else "FALSE"
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
        return "-" + _literal(node.this, kind)
    if isinstance(node, exp.Literal):
        if node.is_string:
            if kind not in ("str", "date", "ts"):
                raise _Unsupported()
            return "'" + node.this.replace("'", "''") + "'"
        if kind not in ("int", "num"):
            raise _Unsupported()
        return str(node.this)
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal) and node.this.is_string:
        to = node.to.this
        if to == exp.DataType.Type.DATE and kind in ("date", "ts"):
            return "DATE '" + node.this.this.replace("'", "''") + "'"
        if to in (exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPNTZ) and kind == "ts":
            return "TIMESTAMP '" + node.this.this.replace("'", "''") + "'"
    raise _Unsupported()


_CMP = {exp.EQ: "=", exp.NEQ: "<>", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}
_FLIP = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _column(node: exp.Expression, attrs: Mapping[str, str]) -> tuple[str, str]:
    if not isinstance(node, exp.Column) or node.table:
        raise _Unsupported()
    kind = attrs.get(node.name.lower())
    if kind is None:
        raise _Unsupported()
    return _ident(node.name), kind


def _render(node: exp.Expression, attrs: Mapping[str, str]) -> str:
    if isinstance(node, exp.Paren):
        return "(" + _render(node.this, attrs) + ")"
    if isinstance(node, exp.And):
        return f"({_render(node.left, attrs)} AND {_render(node.right, attrs)})"
    if isinstance(node, exp.Or):
        return f"({_render(node.left, attrs)} OR {_render(node.right, attrs)})"
    if isinstance(node, exp.Not):
        return f"NOT ({_render(node.this, attrs)})"
    if isinstance(node, exp.Boolean):
        return "TRUE" if node.this else "FALSE"
    if isinstance(node, exp.Column):
        col, kind = _column(node, attrs)
        if kind != "bool":
            raise _Unsupported()
        return col
    op = _CMP.get(type(node))
    if op is not None:
        left, right = node.this, node.expression
        if isinstance(left, exp.Column):
            col, kind = _column(left, attrs)
            return f"{col} {op} {_literal(right, kind)}"
        col, kind = _column(right, attrs)
        return f"{col} {_FLIP[op]} {_literal(left, kind)}"
    if isinstance(node, exp.Between):
        col, kind = _column(node.this, attrs)
        return f"{col} BETWEEN {_literal(node.args['low'], kind)} AND {_literal(node.args['high'], kind)}"
    if isinstance(node, exp.In):
        if node.args.get("query") is not None or node.args.get("unnest") is not None or not node.expressions:
            raise _Unsupported()
        col, kind = _column(node.this, attrs)
        return f"{col} IN ({', '.join(_literal(v, kind) for v in node.expressions)})"
    if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
        col, _ = _column(node.this, attrs)
        return f"{col} IS NULL"
    if isinstance(node, exp.Like) and not node.args.get("escape"):
        col, kind = _column(node.this, attrs)
        pattern = node.expression
        if kind != "str" or not (isinstance(pattern, exp.Literal) and pattern.is_string):
            raise _Unsupported()
        # '_' matches one byte in the index, one character in DuckDB: the same only for ASCII text
        if "_" in pattern.this and not pattern.this.isascii():
            raise _Unsupported()
        neg = "NOT " if node.args.get("negate") else ""
        return f"{col} {neg}LIKE {_literal(pattern, kind)}"
    raise _Unsupported()


def index_filter(text: str, columns, attrs: Mapping[str, str]) -> Optional[str]:
    """The ``where`` text ``text`` (over the table's ``columns``) in the index's filter language, or
    None when some part of it reads a column the index lacks or needs DuckDB to evaluate.
    ``attrs`` maps the index's attribute column names (lower case) to their kinds. Remembered per
    arguments: a search repeated with the same filter translates it once (a sqlglot parse is ~2 ms)."""
    if not attrs:
        return None
    return _index_filter_cached(text, tuple(columns), tuple(sorted(attrs.items())))


@functools.lru_cache(maxsize=512)
def _index_filter_cached(text: str, columns: tuple, attrs: tuple) -> Optional[str]:
    return index_filter_tree(parse_filter(text, columns), dict(attrs))


def index_filter_tree(tree: exp.Expression, attrs: Mapping[str, str]) -> Optional[str]:
    """``index_filter`` for an already parsed (and checked) expression."""
    try:
        return _render(tree, attrs)
    except _Unsupported:
        return None


def attribute_kinds(attributes, column_types: Mapping[str, str]) -> dict:
    """{lower-case name: kind} of the attribute columns whose type the index can hold."""
    types = {c.lower(): t for c, t in column_types.items()}
    out = {}
    for c in attributes:
        kind = attribute_kind(types.get(c.lower(), ""))
        if kind:
            out[c.lower()] = kind
    return out
