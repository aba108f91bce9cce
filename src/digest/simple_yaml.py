"""A fast reader for the plain shape of YAML front matter, with PyYAML's exact results, or None.

Front matter is nearly always flat: `key: value`, `key: [a, b]`, or `key:` followed by `- item` lines.
PyYAML's C parser still builds every value with Python code, which makes it the slowest step of a cold
build (about 0.23 ms an article). This module reads only that flat shape, resolves plain scalars with
PyYAML's own implicit resolvers and constructors (so `yes`, `~` and timestamps mean what they mean to
PyYAML), and returns None for anything else: the caller then asks PyYAML. A test checks, on a generated
corpus and on tricky cases, that whenever this returns a mapping PyYAML returns the same one.
"""

from __future__ import annotations

import functools
import re
from typing import Any

_KEY_VALUE = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*):(?:[ ]+(.*?))?[ ]*")
_ESCAPE = re.compile(r"\\(.?)")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "n": "\n", "t": "\t"}
_PLAIN_FORBIDDEN_START = set("-?:,[]{}#&*!|>'\"%@`")
_FLOW_FORBIDDEN = set("[]{}#&*!|>'%@`\\")


@functools.cache
def _pyyaml() -> tuple[dict[str, Any], Any, Any]:
    """PyYAML's implicit resolvers, a SafeConstructor and ScalarNode, on first use (start-up time)."""
    import yaml

    return yaml.resolver.Resolver.yaml_implicit_resolvers, yaml.constructor.SafeConstructor(), yaml.ScalarNode


class _Unsupported(Exception):
    """This shape is for PyYAML to read."""


def load(text: str) -> dict[str, Any] | None:
    """The mapping PyYAML would return for text, or None when text is not of the flat shape."""
    try:
        return _load(text)
    except _Unsupported:
        return None


def _load(text: str) -> dict[str, Any] | None:
    if "\t" in text:
        raise _Unsupported
    result: dict[str, Any] = {}
    open_key: str | None = None  # a `key:` with no value, which `- item` lines may follow
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped[0] == "-":
            if open_key is None or (len(stripped) > 1 and stripped[1] != " "):
                raise _Unsupported
            if result[open_key] is None:
                result[open_key] = []
            result[open_key].append(_scalar(stripped[2:].strip()))
            continue
        if line[0] == " ":
            raise _Unsupported  # nested mappings, folded scalars
        match = _KEY_VALUE.fullmatch(line)
        if match is None:
            raise _Unsupported
        key, value = match.group(1), match.group(2)
        if _kind(key) != "str":
            raise _Unsupported  # a key such as `yes:` or `1:` is not a string to PyYAML
        if key in result:
            raise _Unsupported  # PyYAML's choice between duplicates is its own business
        if value is None or value == "":
            result[key] = None
            open_key = key
        else:
            result[key] = _value(value)
            open_key = None
    return result or None


def _value(text: str) -> Any:
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        if not inner:
            return []
        if _FLOW_FORBIDDEN & set(inner):
            raise _Unsupported
        return [_scalar(part.strip(), flow=True) for part in _split_flow(inner)]
    return _scalar(text)


def _split_flow(inner: str) -> list[str]:
    parts = []
    for part in inner.split(","):
        if part.count('"') not in (0, 2):
            raise _Unsupported
        parts.append(part)
    if not parts[-1].strip():
        parts.pop()  # a trailing comma
    if any(not p.strip() for p in parts):
        raise _Unsupported
    return parts


def _scalar(text: str, flow: bool = False) -> Any:
    if not text:
        return None
    first = text[0]
    if first == '"':
        inner = text[1:-1]
        if len(text) < 2 or not text.endswith('"') or text.endswith('\\"'):
            raise _Unsupported
        if "\\" in inner:
            inner = _ESCAPE.sub(_unescape, inner)
        if '"' in _ESCAPE.sub("", text[1:-1]):
            raise _Unsupported
        return inner
    if first == "'":
        inner = text[1:-1]
        if len(text) < 2 or not text.endswith("'") or "'" in inner.replace("''", ""):
            raise _Unsupported
        return inner.replace("''", "'")
    if first in _PLAIN_FORBIDDEN_START or ": " in text or " #" in text or text.endswith(":"):
        raise _Unsupported
    if flow and (":" in text):
        raise _Unsupported
    kind = _kind(text)
    if kind == "str":
        return text
    if kind == "null":
        return None
    _, constructor, scalar_node = _pyyaml()
    if kind == "bool":
        return constructor.bool_values[text.lower()]
    return constructor.construct_yaml_timestamp(scalar_node("tag:yaml.org,2002:timestamp", text))


def _unescape(match: re.Match[str]) -> str:
    escaped = _ESCAPES.get(match.group(1))
    if escaped is None:
        raise _Unsupported  # \x41, \u00e9, line continuations…: PyYAML knows them all
    return escaped


_KINDS = {
    "tag:yaml.org,2002:bool": "bool",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:timestamp": "timestamp",
}
_kinds: dict[str, str] = {}  # plain scalar → its kind; keys, tags and booleans repeat across articles


def _kind(text: str) -> str:
    """How PyYAML would resolve a plain scalar: "str", "bool", "null" or "timestamp" (other tags, such
    as numbers, are rare in front matter: PyYAML reads those documents)."""
    kind = _kinds.get(text)
    if kind is None:
        kind = "str"
        for tag, pattern in _pyyaml()[0].get(text[:1], ()):
            if pattern.match(text):
                if tag not in _KINDS:
                    raise _Unsupported
                kind = _KINDS[tag]
                break
        if len(_kinds) > 100_000:
            _kinds.clear()
        _kinds[text] = kind
    return kind
