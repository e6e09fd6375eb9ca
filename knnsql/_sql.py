"""SQL building blocks on sqlglot: quoted identifiers, literals, window bounds, and the ``where``
validator.

Every statement the Python layer runs is built as a sqlglot expression and rendered with quoted
identifiers, so a table or column name can never change the statement's shape. User filters
(``.where("lang = 'en'")``) are parsed and accepted only as one boolean expression over the
table's own columns: no statements, no subqueries, no functions with side effects.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from typing import Iterable, Optional, Sequence

import numpy as np
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

DIALECT = "duckdb"


class FilterError(ValueError):
    """A ``where`` filter that is not one side-effect-free boolean expression over the table."""


def ident(name: str) -> exp.Identifier:
    return exp.Identifier(this=name, quoted=True)


def column(name: str, table: Optional[str] = None) -> exp.Column:
    return exp.Column(this=ident(name), table=ident(table) if table else None)


def table_ref(name: str, alias: Optional[str] = None) -> exp.Table:
    t = exp.Table(this=ident(name))
    return t.as_(alias, quoted=True) if alias else t


def lit(value) -> exp.Expression:
    """A SQL literal for a Python str/int/float/bool/None."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, float)):
        return exp.Literal.number(repr(value) if isinstance(value, float) else str(value))
    if isinstance(value, str):
        return exp.Literal.string(value)
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def func(name: str, *args: exp.Expression, **named: exp.Expression) -> exp.Expression:
    """A function call; ``named`` become DuckDB named arguments (``k := 10``)."""
    params = list(args) + [exp.PropertyEQ(this=exp.Identifier(this=key), expression=value)
                           for key, value in named.items()]
    return exp.Anonymous(this=name, expressions=params)


def render(expression: exp.Expression) -> str:
    return expression.sql(dialect=DIALECT, identify=True)


@functools.lru_cache(maxsize=4096)
def quote_ident(name: str) -> str:
    """A double-quoted identifier (cached: searches quote the same column names on every call)."""
    return render(ident(name))


def bound_param(value):
    """Window bounds as DuckDB parameters: numbers, datetime/date, numpy/pandas datetimes."""
    if value is None:
        return None
    if isinstance(value, np.datetime64):
        import datetime as _dt
        us = value.astype("datetime64[us]").astype(np.int64)
        return _dt.datetime(1970, 1, 1) + _dt.timedelta(microseconds=int(us))
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


def bound_literal(value) -> str:
    """A SQL string literal for a window bound (numbers, dates, datetimes, ISO strings)."""
    value = bound_param(value)
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text.replace("'", "''") + "'"


# Functions a filter may call that sqlglot does not model as typed nodes. Everything else that
# parses as an unknown function is refused: it might read files, touch sequences or settings.
_ALLOWED_ANONYMOUS = {
    "contains", "starts_with", "ends_with", "prefix", "suffix", "regexp_matches", "regexp_full_match",
    "list_contains", "list_has", "array_contains", "list_has_any", "list_has_all", "len", "length",
    "strlen", "lower", "upper", "abs", "round", "floor", "ceil", "greatest", "least", "coalesce",
    "ifnull", "nullif", "date_part", "date_trunc", "year", "month", "day", "hour", "epoch", "epoch_ms",
    "isnan", "isinf", "isfinite", "hash", "md5", "cardinality", "array_length", "list_extract",
    "strftime", "strptime", "make_date", "make_timestamp", "to_timestamp", "age", "trim", "ltrim", "rtrim",
    "concat", "substring", "substr", "ilike_escape", "like_escape", "jaccard", "levenshtein",
}
# Typed sqlglot nodes that are statements, subqueries or have side effects.
_FORBIDDEN = (exp.Query, exp.Subquery, exp.DDL, exp.DML, exp.Command, exp.Placeholder,
              exp.Parameter, exp.Star, exp.Lambda, exp.Window, exp.AggFunc, exp.Table, exp.Into,
              exp.Pragma, exp.Set, exp.Use, exp.Transaction, exp.ReadCSV, exp.ReadParquet, exp.ToFile)


@contextlib.contextmanager
def _sqlglot_quiet():
    """sqlglot logs a warning for text it falls back to parsing as a command; for user filters that
    is an error we raise ourselves, not log noise."""
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@functools.lru_cache(maxsize=512)
def _filter_sql_cached(text: str, columns: Optional[tuple], what: str) -> str:
    return render(parse_filter(text, columns, what=what))


def filter_sql(text: str, columns: Optional[Iterable[str]], *, what: str = "where") -> str:
    """``render(parse_filter(...))``, remembered per (text, columns): a search repeated with the same
    filter parses it once (sqlglot costs ~2 ms a parse). Errors are raised every time, never cached."""
    if not isinstance(text, str):
        return render(parse_filter(text, columns, what=what))
    return _filter_sql_cached(text, None if columns is None else tuple(columns), what)


def parse_filter(text: str, columns: Optional[Iterable[str]], *, what: str = "where") -> exp.Expression:
    """Parses ``text`` as one boolean expression over ``columns``; raises FilterError otherwise.

    Identifiers in the result are the table's own column names, to be rendered quoted. With
    ``columns=None`` (a source whose columns are not known here, such as a user's query) column names
    are not checked; everything else is.
    """
    if not isinstance(text, str) or not text.strip():
        raise FilterError(f"{what}() takes a non-empty SQL boolean expression as a string, got {text!r}")
    try:
        with _sqlglot_quiet():
            parsed = sqlglot.parse(text, dialect=DIALECT)
    except (ParseError, sqlglot.errors.TokenError) as exc:
        raise FilterError(f"{what}({text!r}) is not a valid SQL expression: {exc}") from None
    parsed = [p for p in parsed if p is not None]
    if len(parsed) != 1:
        raise FilterError(f"{what}({text!r}) must be one expression, not {len(parsed)} statements")
    tree = parsed[0]
    known = None if columns is None else {c.lower(): c for c in columns}
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN):
            raise FilterError(f"{what}({text!r}) may not contain {type(node).__name__.lower()} "
                              "(only a boolean expression over the table's columns is accepted)")
        if isinstance(node, exp.Func) and type(node).__name__.lower().startswith(("read", "write", "copy")):
            raise FilterError(f"{what}({text!r}) may not read or write files")
        if isinstance(node, exp.Anonymous) and node.name.lower() not in _ALLOWED_ANONYMOUS:
            raise FilterError(f"{what}({text!r}) calls {node.name}(), which filters may not use; "
                              "filter in db.sql() if you need it")
        if isinstance(node, exp.Column):
            if node.table:
                raise FilterError(f"{what}({text!r}): write column names without a table qualifier "
                                  f"({node.sql(dialect=DIALECT)})")
            name = node.name
            if known is None:
                continue
            if name.lower() not in known:
                raise FilterError(f"{what}({text!r}) names column {name!r}, which the table lacks; "
                                  f"columns are {sorted(known.values())}")
            node.set("this", ident(known[name.lower()]))
    # sqlglot is lenient: a lone operator such as '@' (DuckDB's abs) parses into a node missing its
    # operand, which renders to SQL nothing parses. Accept only what survives a round trip.
    try:
        with _sqlglot_quiet():
            sqlglot.parse_one(render(tree), dialect=DIALECT)
    except (ParseError, sqlglot.errors.TokenError):
        raise FilterError(f"{what}({text!r}) is not a complete SQL expression") from None
    if not isinstance(tree, (exp.Predicate, exp.Connector, exp.Not, exp.Boolean, exp.Paren, exp.Is,
                             exp.In, exp.Between, exp.Like, exp.ILike, exp.Anonymous, exp.Func,
                             exp.Column)):
        raise FilterError(f"{what}({text!r}) must be a boolean expression (a comparison, IN, "
                          "BETWEEN, LIKE, AND/OR...)")
    return tree


def in_list(col: exp.Expression, values: Sequence[int]) -> exp.Expression:
    return exp.In(this=col, expressions=[lit(int(v)) for v in values])
