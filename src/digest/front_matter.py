"""Front matter: split it from the body (YAML, TOML or JSON, as Hugo accepts it: after blank lines or
spaces, CRLF and a BOM already gone), read it with python-frontmatter's handlers, and give typed access
to its fields, with errors that name the field and its line (YAML's from PyYAML's mark). Pure.

YAML is read by PyYAML's C safe loader, bounded: aliases that expand past `MAX_YAML_VALUES` values
are refused, and so is a scalar Python cannot hold (a 5,000-digit number, a date in year 0); nesting
is bounded by libyaml (1,000 levels) and, for TOML and JSON, by Python's recursion limit. Every value an
error message quotes is shown through `shown`, whose repr is bounded however large the value.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import reprlib
import tomllib
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from frontmatter.default_handlers import BaseHandler, JSONHandler, YAMLHandler

from .errors import ArticleError

# Aliases may make a small document mean a huge one (9 anchors of 9 aliases each: 9**9 strings, the
# "billion laughs"). PyYAML shares the repeated objects, so loading is cheap, but anything that walks
# the value (a comparison, a repr in an error message) is not: more values than this are refused.
MAX_YAML_VALUES = 100_000
_LONG_NUMBER = re.compile(r"value has (\d+) digits")
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 80
_short.maxlist = _short.maxtuple = _short.maxdict = _short.maxset = 5
_short.maxlevel = 2


def shown(value: object) -> str:
    """A value as an error message shows it: repr, bounded however large or deep the value is."""
    return _short.repr(value)


class _TomlHandler(BaseHandler):
    """python-frontmatter's handler API with the standard library's TOML 1.0 reader (the package's own
    TOML handler needs the unmaintained `toml` package, TOML 0.5)."""

    FM_BOUNDARY = re.compile(r"^\+{3,}\s*$", re.MULTILINE)
    START_DELIMITER = END_DELIMITER = "+++"

    def load(self, fm: str, **kwargs: object) -> Any:
        return tomllib.loads(fm)


_STR, _SEQ, _MAP = "tag:yaml.org,2002:str", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"


class FrontMatterLoader(yaml.CSafeLoader):
    """PyYAML's C safe loader, quicker on front matter and giving the same values: each scalar is
    resolved without the wildcard and path steps a loader without such resolvers never takes (it runs
    for every scalar, and most titles and tags, in Chinese, start with a character no implicit type
    does); and when the text has no alias (`has_aliases` False: no '*'), every node stands for one
    value, made once, so strings, lists and string-keyed mappings are built directly and only the rest
    goes through the constructors (a third of the time of walking every node through them).
    A document whose aliases expand past `MAX_YAML_VALUES` values is refused. A subclass may change
    the resolvers and constructors (the Hugo mode's do)."""

    has_aliases = True

    def resolve(self, kind: type[yaml.Node], value: str, implicit: tuple[bool, bool]) -> str:
        resolvers = self.yaml_implicit_resolvers
        if None in resolvers or self.yaml_path_resolvers:
            return str(super().resolve(kind, value, implicit))  # type: ignore[no-untyped-call]
        if kind is yaml.ScalarNode:
            if implicit[0]:
                for tag, pattern in resolvers.get(value[0] if value else "", ()):
                    if pattern.match(value):
                        return str(tag)
            return _STR
        return _SEQ if kind is yaml.SequenceNode else _MAP

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        if self.has_aliases:
            _refuse_expansion(node)  # past MAX_YAML_VALUES values, aliases counted in full
        return self.construct_document(node)

    def construct_document(self, node: yaml.Node) -> Any:
        if self.has_aliases:
            return super().construct_document(node)
        try:
            return self._construct(node)
        finally:
            self.constructed_objects = {}
            self.recursive_objects = {}

    def _construct(self, node: yaml.Node) -> Any:
        tag = node.tag
        if tag == _STR and type(node) is yaml.ScalarNode:
            return node.value
        if tag == _SEQ and type(node) is yaml.SequenceNode:
            return [self._construct(item) for item in node.value]
        if (
            tag == _MAP
            and type(node) is yaml.MappingNode
            and all(type(key) is yaml.ScalarNode and key.tag == _STR for key, _ in node.value)
        ):
            return {key.value: self._construct(value) for key, value in node.value}
        return self.construct_object(node, deep=True)


class _NoAliasLoader(FrontMatterLoader):
    has_aliases = False


class _LocatingLoader(FrontMatterLoader):
    """Run again, only when loading raised ValueError: a scalar Python cannot hold (a date in year 0,
    hour 25, a 5,000-digit number) becomes an error carrying that scalar's mark. (Not the first loader:
    wrapping every node's construction costs a third of the loading time.)"""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            problem = _bad_scalar(node, exc)
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None


def _bad_scalar(node: yaml.Node, exc: Exception) -> str:
    digits = _LONG_NUMBER.search(str(exc))
    if digits:
        return f"a number of {digits.group(1)} digits is too long to read"
    if node.tag.endswith(":timestamp"):
        return f"{shown(node.value)} is not a valid date or time ({exc})"
    return f"{shown(node.value)} cannot be read ({exc})"


def _refuse_expansion(root: yaml.Node) -> None:
    """Count the values the document stands for, each alias counted in full, without expanding any
    (each node's size once, from its children's); refuse at the top-level key where the count passes
    the limit."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(node: yaml.Node) -> int:
        stack = [node]
        while stack:
            current = stack[-1]
            key = id(current)
            if key in sizes:
                stack.pop()
            elif isinstance(current, yaml.ScalarNode):
                sizes[key] = 1
                stack.pop()
            elif key not in visiting:
                visiting.add(key)
                stack.extend(c for c in _children(current) if id(c) not in sizes and id(c) not in visiting)
            else:  # its children are counted (a recursive alias, which YAML allows, counts once)
                visiting.discard(key)
                sizes[key] = 1 + sum(sizes.get(id(c), 1) for c in _children(current))
                stack.pop()
        return sizes[id(node)]

    pairs = root.value if isinstance(root, yaml.MappingNode) else [(root, root)]
    total = 0
    for key_node, value_node in pairs:
        total += size(key_node) + size(value_node)
        if total > MAX_YAML_VALUES:
            raise yaml.constructor.ConstructorError(
                None, None, f"aliases here expand to more than {MAX_YAML_VALUES} values", key_node.start_mark
            )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return list(node.value)


_YAML = YAMLHandler()
_TOML = _TomlHandler()
_JSON = JSONHandler()


def decode_text(raw: bytes) -> str:
    """An article's bytes as text: UTF-8 with or without a byte order mark, line ends made "\n";
    an ArticleError naming the line of the first byte that is not UTF-8."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ArticleError("not UTF-8 text", line=line, hint="save the file as UTF-8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n") if b"\r" in raw else text


def split_front_matter(text: str) -> tuple[str, str, str, int]:
    """(format, front matter, body, line number of the front matter's first line), as Hugo finds it:
    after any blank lines or spaces, between `---` lines (YAML) or `+++` lines (TOML), or one JSON
    object. The text is already decoded, without its byte order mark, with LF line ends."""
    start = len(text) - len(text.lstrip())
    skipped = text.count("\n", 0, start)
    rest = text[start:]
    for fmt, handler in (("yaml", _YAML), ("toml", _TOML)):
        assert handler.FM_BOUNDARY is not None
        opening = handler.FM_BOUNDARY.match(rest)
        if opening is None:
            continue
        delimiter = handler.START_DELIMITER
        try:
            fm, body = handler.split(rest)
        except ValueError:
            raise ArticleError(
                f"front matter: no closing '{delimiter}'",
                line=skipped + 1,
                hint=f"end the front matter with a line '{delimiter}'",
            ) from None
        first_line = skipped + rest.count("\n", 0, opening.end()) + 1
        if "\n" not in opening.group() and fm.startswith("\n"):  # the end of the opening line
            fm, first_line = fm[1:], first_line + 1
        return fmt, fm, body.lstrip("\n"), first_line
    if rest.startswith("---"):
        raise ArticleError("front matter: the opening '---' must stand alone on its line", line=skipped + 1)
    if rest.startswith("{"):
        try:
            _, end = json.JSONDecoder().raw_decode(rest)
        except json.JSONDecodeError as exc:
            raise ArticleError(
                f"front matter: not valid JSON: {exc.msg}", line=skipped + exc.lineno
            ) from None
        except RecursionError:
            raise ArticleError("front matter: JSON: nested too deeply", line=skipped + 1) from None
        except ValueError as exc:
            raise ArticleError(f"front matter: JSON: {_value_problem(exc)}", line=skipped + 1) from None
        return "json", rest[:end], rest[end:].lstrip("\n"), skipped + 1
    raise ArticleError(
        "no front matter",
        line=skipped + 1,
        hint="start the file with '---' (YAML), '+++' (TOML) or a JSON object",
    )


def _value_problem(exc: ValueError) -> str:
    digits = _LONG_NUMBER.search(str(exc))
    return f"a number of {digits.group(1)} digits is too long to read" if digits else str(exc)


def load_front_matter(fmt: str, text: str, first_line: int) -> dict[str, Any]:
    """The front matter's fields, read by python-frontmatter's handler for its format."""
    if fmt == "yaml":
        loader = FrontMatterLoader if "*" in text else _NoAliasLoader  # no '*', no alias: nothing to count
        try:
            try:
                meta = _YAML.load(text, Loader=loader)
            except (ValueError, OverflowError):
                meta = _YAML.load(text, Loader=_LocatingLoader)  # raises it again, with its line
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            if exc.context_mark is not None and mark is not None and mark.index >= len(text.rstrip()):
                mark = exc.context_mark  # "found end of stream": where the unclosed thing began helps more
            line = first_line + mark.line if mark is not None else None
            problem = str(exc.problem or exc.context)
            hint = "use fewer anchors and aliases" if problem.startswith("aliases here expand") else None
            raise ArticleError(f"front matter: YAML: {problem}", line=line, hint=hint) from None
        except yaml.YAMLError as exc:
            raise ArticleError(f"front matter: YAML: {exc}") from None
        except RecursionError:
            raise ArticleError("front matter: YAML: nested too deeply", line=first_line) from None
    elif fmt == "toml":
        try:
            meta = _TOML.load(text)
        except tomllib.TOMLDecodeError as exc:
            match = re.search(r"line (\d+)", str(exc))
            line = first_line + int(match.group(1)) - 1 if match else None
            raise ArticleError(f"front matter: TOML: {exc}", line=line) from None
        except RecursionError:
            raise ArticleError("front matter: TOML: nested too deeply", line=first_line) from None
        except ValueError as exc:
            raise ArticleError(f"front matter: TOML: {_value_problem(exc)}", line=first_line) from None
    else:
        try:
            meta = _JSON.load(text)
        except RecursionError:  # pragma: no cover - split_front_matter decoded it already
            raise ArticleError("front matter: JSON: nested too deeply", line=first_line) from None
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
        raise self._error(key, f"'{key}' must be true or false, not {shown(value)}")

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
                f"'{key}' is not a date ({shown(value)})",
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
        moment = value if value.tzinfo is not None else value.replace(tzinfo=tz)
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day, tzinfo=tz)
    else:
        return None
    try:  # in UTC it must still be a date Python can hold (0001-01-01T00:00+14:00 is not)
        moment.astimezone(dt.UTC)
    except OverflowError:
        return None
    return moment
