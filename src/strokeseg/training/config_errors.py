"""A pydantic validation error as the one line a user reads: the dotted key, the value given and
what was expected (``training/config.py`` builds every config through it)."""

from __future__ import annotations

import difflib

from pydantic import BaseModel, ValidationError

from strokeseg.errors import StrokesegError

_PROBLEMS = {
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "int_parsing": "expected an integer",
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a section of keys",
    "model_type": "expected a section of keys",
    "model_attributes_type": "expected a section of keys",
    "string_type": "expected a text value",
    "too_short": "expected at least one value",
}


def _problem(error: dict) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    bounds = {
        "greater_than": "must be > {gt}",
        "greater_than_equal": "must be >= {ge}",
        "less_than": "must be < {lt}",
        "less_than_equal": "must be <= {le}",
        "multiple_of": "must be a multiple of {multiple_of}",
        "literal_error": "expected one of {expected}",
    }
    if kind in bounds:
        return bounds[kind].format(**ctx)
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return _PROBLEMS.get(kind, error["msg"])


def _section_at(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    model = root
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def one_line(error: ValidationError, where: str, root: type[BaseModel]) -> StrokesegError:
    """The first validation error of the model ``root`` as one line naming the dotted key
    (``data.split[1]``); an unknown key gets the nearest valid name of its section."""
    first = error.errors()[0]
    loc = first["loc"]
    dotted = ""
    for part in loc:
        dotted += f"[{part}]" if isinstance(part, int) else (f".{part}" if dotted else part)
    if first["type"] == "extra_forbidden":
        section = _section_at(root, loc[:-1])
        valid = list(section.model_fields) if section else []
        near = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        hint = f"did you mean {'.'.join([*map(str, loc[:-1]), near[0]])}?" if near else ""
        return StrokesegError(
            f"{where}: unknown key {dotted}; " + (hint or f"valid: {', '.join(valid)}")
        )
    if not loc:
        return StrokesegError(f"{where}: {_problem(first)}")
    shown = f" {first['input']!r}" if not isinstance(first["input"], (dict, list)) else ""
    return StrokesegError(f"{where}: {dotted}{shown}: {_problem(first)}")
