"""Conditions on a JSON metadata column, for the framework adapters' metadata filters.

Comparisons follow Python's on the decoded values, as LlamaIndex's in-memory store applies them
(``llama_index.core.vector_stores.utils.build_metadata_filter_fn``): a string equals only a string, a number
only a number (1 == 1.0), ordering compares like with like and is false across types, a missing key or JSON
null matches only the negative operators. Every condition is TRUE or FALSE, never NULL, so NOT and OR
compose as in Python.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

_NUMBER_TYPES = "('BIGINT', 'UBIGINT', 'DOUBLE')"


def literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


class Field:
    """One metadata key of the JSON column ``column``."""

    def __init__(self, key: str, column: str = "metadata"):
        path = literal("$." + json.dumps(str(key)))
        self.json = f"json_extract({column}, {path})"
        self.type = f"json_type({self.json})"
        self.text = f"json_extract_string({column}, {path})"

    @staticmethod
    def _sure(cond: str) -> str:
        return f"coalesce(({cond}), false)"

    def missing(self) -> str:
        return f"({self.json} IS NULL OR {self.type} = 'NULL')"

    def compare(self, op: str, value: Any) -> str:
        """The key's value <op> value, with Python's typing (op: =, <>, <, <=, >, >=)."""
        if isinstance(value, bool):
            if op not in ("=", "<>"):
                raise ValueError(f"booleans compare with == or != only, not {op}")
            cond = f"{self.type} = 'BOOLEAN' AND {self.text} {op} {literal(str(value).lower())}"
            return self._sure(cond) if op == "=" else f"NOT {self._sure(self.compare('=', value))}"
        if isinstance(value, (int, float)):
            cond = f"{self.type} IN {_NUMBER_TYPES} AND TRY_CAST({self.text} AS DOUBLE) {op} {float(value)!r}"
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
        """The key's value is a list holding value (JSON containment)."""
        return self._sure(f"{self.type} = 'ARRAY' AND json_contains({self.json}, {literal(json.dumps(value))})")

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
        no_items = self._sure(f"{self.type} = 'ARRAY' AND json_array_length({self.json}) = 0")
        return f"({self.missing()} OR {blank} OR {no_items})"
