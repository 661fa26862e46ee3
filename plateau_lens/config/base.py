"""The strict base of every config section: pydantic v2 with exact types, no unknown fields,
finite numbers, and error messages that name the field, what it allows and what it got.

``ConfigError`` (a ``ValueError``) carries messages such as
``train.lr must be > 0 (a finite number), got '1e-3' (a string)``.
"""

from __future__ import annotations

import difflib
import typing
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from ..errors import InputError


class ConfigError(InputError):
    """A config value that is unknown, of the wrong type or out of range. ``problems``: one
    line per bad field (the message lists them all)."""

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} config problems:\n  " + "\n  ".join(self.problems)
        super().__init__(message)


class Allowed:
    """``Annotated`` marker: the words a message uses for what a field allows."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return f"Allowed({self.text!r})"


def _numpy_scalar(value: Any) -> Any:
    """numpy integers count as ints (np.float64 already is a float; bools stay refused)."""
    if isinstance(value, np.integer) and not isinstance(value, np.bool_):
        return int(value)
    return value


def _range(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if high is None:
        return f"{'>' if low_open else '>='} {low}"
    if low is None:
        return f"{'<' if high_open else '<='} {high}"
    return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


def Int(ge: int | None = None, le: int | None = None):
    """An integer (bools, floats and strings refused) in [ge, le]."""
    words = "an integer" if ge is None and le is None else f"{_range(ge, le, False, False)} (an integer)"
    return Annotated[int, BeforeValidator(_numpy_scalar), Field(ge=ge, le=le), Allowed(words)]


def Float(gt: float | None = None, ge: float | None = None, lt: float | None = None):
    """A finite number (ints accepted; nan, inf, bools and strings refused)."""
    low = gt if gt is not None else ge
    if low is None and lt is None:
        words = "a finite number"
    else:
        words = f"{_range(low, lt, gt is not None, True)} (a finite number)"
    return Annotated[float, BeforeValidator(_numpy_scalar),
                     Field(gt=gt, ge=ge, lt=lt, allow_inf_nan=False), Allowed(words)]


class Label:
    """``Annotated`` marker: how a message names the field (e.g. ``attention_bias (c)``)."""

    def __init__(self, text: str):
        self.text = text


TYPE_NAMES = {str: "a string", bool: "a boolean", int: "an integer", float: "a float",
              list: "a list", tuple: "a list", dict: "a table", type(None): "nothing"}


def type_name(value: Any) -> str:
    for kind, name in TYPE_NAMES.items():
        if type(value) is kind:
            return name
    return f"a {type(value).__name__}"


def _markers(annotation: Any, kind: type) -> list:
    found = []
    if isinstance(annotation, kind):
        return [annotation]
    for arg in typing.get_args(annotation):
        found += _markers(arg, kind)
    if hasattr(annotation, "__metadata__"):
        for item in annotation.__metadata__:
            found += _markers(item, kind)
    return found


def _base_types(annotation: Any) -> set:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _base_types(typing.get_args(annotation)[0])
    if origin is Literal:
        return {Literal}
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return set().union(*(_base_types(a) for a in typing.get_args(annotation)))
    if origin is not None:
        return {origin}
    return {annotation}


def allowed_words(model: type[BaseModel], name: str) -> str:
    """What field ``name`` of ``model`` allows, in words."""
    hint = typing.get_type_hints(model, include_extras=True).get(name, Any)
    marked = _markers(hint, Allowed)
    if marked:
        return marked[-1].text  # the outermost Annotated marker wins
    choices = [a for a in typing.get_args(_strip(hint)) if typing.get_origin(_strip(hint)) is Literal]
    if choices:
        return f"one of {list(choices)}"
    kinds = _base_types(hint) - {type(None)}
    if kinds == {bool}:
        return "true or false"
    if kinds == {str}:
        return "a string"
    if kinds <= {tuple, list}:
        return "a list of strings"
    return f"of type {hint}"


def _strip(hint: Any) -> Any:
    return typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint


def field_label(model: type[BaseModel], name: str) -> str:
    hint = typing.get_type_hints(model, include_extras=True).get(name, Any)
    labels = _markers(hint, Label)
    return labels[-1].text if labels else name


def format_errors(error: ValidationError, model: type[BaseModel], section: str) -> list[str]:
    """One line per problem: ``section.field must be …, got … (a …)``."""
    prefix = f"{section}." if section else ""
    lines, unknown = [], []
    for item in error.errors(include_url=False):
        loc = item.get("loc", ())
        kind = item["type"]
        if kind == "extra_forbidden":
            unknown.append(str(loc[0]))
            continue
        if kind in ("value_error", "assertion_error"):  # our validators' messages name the field
            lines.append(str(item.get("ctx", {}).get("error", item["msg"])))
            continue
        if not loc:
            lines.append(f"{prefix.rstrip('.') or 'config'}: {item['msg']}")
            continue
        name = str(loc[0])
        where = prefix + field_label(model, name) + "".join(f"[{i}]" for i in loc[1:])
        value = item.get("input")
        if kind == "missing":
            lines.append(f"{where} is required ({allowed_words(model, name)})")
            continue
        shown = f"{value!r}"
        if kind.endswith("_type") or kind in ("finite_number", "literal_error"):
            if kind.endswith("_type"):
                shown += f" ({type_name(value)})"
        words = allowed_words(model, name) if len(loc) == 1 else "a known name"
        lines.append(f"{where} must be {words}, got {shown}")
    renamed = getattr(model, "renamed", {})
    for old in sorted(set(unknown) & set(renamed), reverse=True):
        lines.insert(0, f"{prefix}{old} is now called {prefix}{renamed[old]} (the name the "
                        f"other config sections use): rename the field")
    unknown = [name for name in unknown if name not in renamed]
    if unknown:
        allowed = sorted(model.model_fields)
        table = f"[{section}]" if section else "config"
        near = sorted({close for name in unknown
                       for close in difflib.get_close_matches(name, allowed, n=2, cutoff=0.6)})
        hint = f"; did you mean {near}?" if near else ""
        lines.insert(0, f"unknown {table} field(s) {sorted(unknown)}; allowed: {allowed}{hint}")
    return lines


class StrictModel(BaseModel):
    """Frozen, exact types (a float field takes ints, nothing else converts), unknown fields
    refused; construction raises ``ConfigError`` naming ``<section>.<field>``."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, validate_default=True)
    section: ClassVar[str] = ""
    renamed: ClassVar[dict[str, str]] = {}
    """Old field name -> its name now: an old name given is refused with the new one."""

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise ConfigError(format_errors(error, type(self), self.section)) from None
