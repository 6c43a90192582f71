"""JSON in and out: bodies are parsed as JSON whatever their Content-Type."""

from __future__ import annotations

import json

from .errors import RequestError


def load_object(data):
    """The JSON object in `data` (bytes-like); RequestError 400 naming what is wrong."""
    if isinstance(data, memoryview):
        data = data.tobytes()
    if not data or not data.strip():
        raise RequestError("request body is empty; expected a JSON object")
    try:
        obj = json.loads(data)
    except UnicodeDecodeError as e:
        raise RequestError(f"request body is not UTF-8 JSON: {e.reason} at byte "
                           f"{e.start}") from None
    except json.JSONDecodeError as e:
        raise RequestError(f"request body is not valid JSON: {e.msg} at line {e.lineno} "
                           f"column {e.colno}") from None
    except RecursionError:
        raise RequestError("request body is not usable JSON: nested too deeply") from None
    if not isinstance(obj, dict):
        raise RequestError(f"request body must be a JSON object, got a JSON "
                           f"{_json_kind(obj)}")
    return obj


def dumps(obj):
    """Compact JSON bytes (NaN and Infinity written as Python's json does)."""
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def _json_kind(v):
    if isinstance(v, list):
        return "array"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "boolean"
    if v is None:
        return "null"
    return "number"
