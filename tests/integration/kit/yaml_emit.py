"""A small YAML emitter for the relay's configuration files: Python dicts,
lists, strings, ints and bools to block-style YAML. Every string value is
double-quoted with escapes, so no address, path or name can turn into a
number, a boolean, a comment or a new key."""

import math
import re

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Words a YAML 1.1 reader takes for booleans or null even as keys.
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}


def dump(doc):
    """doc (a dict, list or scalar) as a YAML document, ending in a newline."""
    return "".join(line + "\n" for line in _lines(doc, 0))


def quote(text):
    """text as a double-quoted YAML scalar: backslash, quote and every
    control or non-ASCII character escaped."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif " " <= ch <= "~":
            out.append(ch)
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def scalar(value):
    """One scalar: strings quoted, ints and finite floats as written,
    booleans as true/false, None as null."""
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if value is None:
        return "null"
    raise TypeError(f"no YAML scalar for {value!r}")


def key(name):
    """A mapping key: plain when it is an identifier (the relay's own key
    names), quoted otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"mapping key {name!r} is not a string")
    if _PLAIN_KEY.fullmatch(name) and name.lower() not in _RESERVED:
        return name
    return quote(name)


def _is_block(value):
    """Non-empty collections take lines of their own; empty ones are [] or {}."""
    return isinstance(value, (dict, list, tuple)) and len(value) > 0


def _lines(value, indent):
    pad = " " * indent
    if isinstance(value, dict) and value:
        for k, v in value.items():
            if _is_block(v):
                yield f"{pad}{key(k)}:"
                yield from _lines(v, indent + 2)
            else:
                yield f"{pad}{key(k)}: {_inline(v)}"
    elif isinstance(value, (list, tuple)) and value:
        for item in value:
            if _is_block(item):
                # The item's first line goes after the dash; the rest
                # keep the indentation it was made with.
                first, *rest = _lines(item, indent + 2)
                yield f"{pad}- {first[indent + 2:]}"
                yield from rest
            else:
                yield f"{pad}- {_inline(item)}"
    else:
        yield pad + _inline(value)


def _inline(value):
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, (list, tuple)):
        return "[]"
    return scalar(value)
