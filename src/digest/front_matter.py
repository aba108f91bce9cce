"""Front matter: split it from the body (YAML, TOML or JSON, as Hugo accepts it), read it, and give
typed access to its fields, with errors that name the field and its line. Pure.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tomllib
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from . import simple_yaml
from .errors import ArticleError

_YAML_OPEN = re.compile(r"^---[ \t]*\n", re.MULTILINE)
_YAML_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.MULTILINE)
_TOML_CLOSE = re.compile(r"^\+\+\+[ \t]*$", re.MULTILINE)


def split_front_matter(text: str) -> tuple[str, str, str, int]:
    """(format, front matter, body, line number of the front matter's first line)."""
    if text.startswith("---"):
        first_nl = text.find("\n")
        if first_nl == -1 or text[:first_nl].strip() != "---":
            raise ArticleError("front matter: the opening '---' must stand alone on the first line", line=1)
        close = _YAML_CLOSE.search(text, first_nl + 1)
        if close is None:
            raise ArticleError(
                "front matter: no closing '---'", line=1, hint="end the front matter with a line '---'"
            )
        return "yaml", text[first_nl + 1 : close.start()], text[close.end() :].lstrip("\n"), 2
    if text.startswith("+++"):
        first_nl = text.find("\n")
        close = _TOML_CLOSE.search(text, first_nl + 1) if first_nl != -1 else None
        if close is None:
            raise ArticleError("front matter: no closing '+++'", line=1)
        return "toml", text[first_nl + 1 : close.start()], text[close.end() :].lstrip("\n"), 2
    if text.startswith("{"):
        try:
            meta, end = json.JSONDecoder().raw_decode(text)
        except json.JSONDecodeError as exc:
            raise ArticleError(f"front matter: not valid JSON: {exc.msg}", line=exc.lineno) from None
        if not isinstance(meta, dict):  # pragma: no cover - raw_decode of "{" always yields a dict
            raise ArticleError("front matter: JSON front matter must be an object", line=1)
        return "json", text[:end], text[end:].lstrip("\n"), 1
    raise ArticleError(
        "no front matter",
        line=1,
        hint="start the file with '---' (YAML), '+++' (TOML) or a JSON object",
    )


def load_front_matter(fmt: str, text: str, first_line: int) -> dict[str, Any]:
    if fmt == "yaml":
        meta = simple_yaml.load(text)
        if meta is not None:
            return meta
        import yaml  # here, not at the top: a build with nothing new to read never needs it

        # The C loader is much faster; PyYAML wheels ship it, a build without libyaml would not.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            meta = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            if exc.context_mark is not None and mark is not None and mark.index >= len(text.rstrip()):
                mark = exc.context_mark  # "found end of stream": where the unclosed thing began helps more
            line = first_line + mark.line if mark is not None else None
            raise ArticleError(f"front matter: YAML: {exc.problem or exc.context}", line=line) from None
        except yaml.YAMLError as exc:
            raise ArticleError(f"front matter: YAML: {exc}") from None
    elif fmt == "toml":
        try:
            meta = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            match = re.search(r"line (\d+)", str(exc))
            line = first_line + int(match.group(1)) - 1 if match else None
            raise ArticleError(f"front matter: TOML: {exc}", line=line) from None
    else:
        meta = json.loads(text)
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise ArticleError("front matter must be a mapping of keys to values", line=first_line)
    return meta


class Fields:
    """Typed access to front-matter fields; each error names the field and its line."""

    def __init__(self, meta: Mapping[str, Any], text: str, first_line: int, tz: ZoneInfo) -> None:
        self.meta = meta
        self.source = text
        self.first_line = first_line
        self.tz = tz

    def line_of(self, key: str) -> int | None:
        """The line of `key` in the front matter; only asked on the error path, so a plain scan will do."""
        pattern = re.compile(rf"""^\s*["']?{re.escape(key)}["']?\s*[:=]""")
        for number, line in enumerate(self.source.split("\n")):
            if pattern.match(line):
                return self.first_line + number
        return None

    def _error(self, key: str, problem: str, hint: str | None = None) -> ArticleError:
        return ArticleError(f"front matter: {problem}", line=self.line_of(key), key=key, hint=hint)

    def _missing(self, key: str, hint: str) -> ArticleError:
        return ArticleError(f"front matter: '{key}' is missing", line=self.first_line, key=key, hint=hint)

    def text(self, key: str, required: bool = False) -> str:
        value = self.meta.get(key)
        if value is None or value == "":
            if required:
                raise self._missing(key, f"add a '{key}:' line")
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self._error(key, f"'{key}' must be text, not {_kind(value)}")
        return str(value).strip()

    def boolean(self, key: str) -> bool:
        value = self.meta.get(key, False)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if value is None:
            return False
        raise self._error(key, f"'{key}' must be true or false, not {value!r}")

    def strings(self, key: str) -> list[str]:
        value = self.meta.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(
            isinstance(v, str | int | float) and not isinstance(v, bool) for v in value
        ):
            return [str(v) for v in value]
        raise self._error(key, f"'{key}' must be a list of text or one text")

    def image(self, key: str) -> str:
        value = self.meta.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, dict):  # e.g. PaperMod's cover: {image: ..., alt: ...}
            value = value.get("image") or value.get("src")
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self._error(key, f"'{key}' must be an image path or URL")
        return value.strip()

    def date(self, key: str, required: bool = False) -> dt.datetime | None:
        value = self.meta.get(key)
        if value is None or value == "":
            if required:
                raise self._missing(key, "add e.g. 'date: 2025-06-25T17:10:04+08:00'")
            return None
        parsed = as_datetime(value, self.tz)
        if parsed is None:
            raise self._error(
                key,
                f"'{key}' is not a date ({value!r})",
                hint="use ISO 8601, e.g. 2025-06-25T17:10:04+08:00 or 2025-06-25",
            )
        return parsed


def _kind(value: object) -> str:
    return {list: "a list", dict: "a mapping", bool: "true/false"}.get(type(value), type(value).__name__)


def as_datetime(value: object, tz: ZoneInfo) -> dt.datetime | None:
    """Aware datetimes stay; naive ones and bare dates take the site timezone."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = dt.datetime.fromisoformat(text.replace(" ", "T", 1) if len(text) > 10 else text)
        except ValueError:
            try:
                value = dt.date.fromisoformat(text)
            except ValueError:
                return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=tz)
    return None
