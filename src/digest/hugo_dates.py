"""Dates as Hugo 0.111 reads them from front matter (spf13/cast 1.5's formats, Go's time.Parse rules).

Pure. A value Hugo cannot turn into a time gives None (Hugo then tries the next key of the chain).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any

import yaml

from .front_matter import FrontMatterLoader

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_LONG_MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_LONG_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_YMD = r"(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})"
_HMS = r"(?P<H>\d{1,2}):(?P<M>\d{2}):(?P<S>\d{2})(?P<f>[.,]\d+)?"
_ZONE = r"(?P<Z>[A-Z]{3,5}|[A-Z]{3}[+-]\d{1,2}|[A-Z][a-z][A-Z]{2})"  # Go's parseTimeZone, roughly

# (pattern, how the zone is taken): "local" = no zone, use the site's; "wall" = a zone name only,
# which cast replaces by the site's zone keeping the wall clock; "offset" = the numeric offset.
_FORMATS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile("^" + pattern + "$"), kind)
    for pattern, kind in (
        (_YMD + "T" + _HMS + r"(?P<z>Z|[+-]\d{2}:\d{2})", "offset"),  # RFC 3339
        (_YMD + "T" + _HMS, "local"),
        (
            r"(?P<a>[A-Za-z]{3}), (?P<d>\d{2}) (?P<b>[A-Za-z]{3}) (?P<Y>\d{4}) "
            + _HMS
            + r" (?P<z>[+-]\d{4})",
            "offset",
        ),
        (r"(?P<a>[A-Za-z]{3}), (?P<d>\d{2}) (?P<b>[A-Za-z]{3}) (?P<Y>\d{4}) " + _HMS + " " + _ZONE, "wall"),
        (
            r"(?P<d>\d{2}) (?P<b>[A-Za-z]{3}) (?P<y>\d{2}) (?P<H>\d{1,2}):(?P<M>\d{2}) (?P<z>[+-]\d{4})",
            "offset",
        ),
        (r"(?P<d>\d{2}) (?P<b>[A-Za-z]{3}) (?P<y>\d{2}) (?P<H>\d{1,2}):(?P<M>\d{2}) " + _ZONE, "wall"),
        (r"(?P<A>[A-Za-z]+), (?P<d>\d{2})-(?P<b>[A-Za-z]{3})-(?P<y>\d{2}) " + _HMS + " " + _ZONE, "wall"),
        (_YMD + " " + _HMS + r" (?P<z>[+-]\d{4}) " + _ZONE, "offset"),  # Go's Time.String()
        (_YMD + "T" + _HMS + r"(?P<z>[+-]\d{4})", "offset"),
        (_YMD + " " + _HMS + r"(?P<z>Z|[+-]\d{4})", "offset"),
        (_YMD + " " + _HMS, "local"),
        (
            r"(?P<a>[A-Za-z]{3}) (?P<b>[A-Za-z]{3})  ?(?P<d>\d{1,2}) " + _HMS + r" (?P<Y>\d{4})",
            "local",
        ),  # ANSIC
        (
            r"(?P<a>[A-Za-z]{3}) (?P<b>[A-Za-z]{3})  ?(?P<d>\d{1,2}) "
            + _HMS
            + " "
            + _ZONE
            + r" (?P<Y>\d{4})",
            "wall",
        ),
        (
            r"(?P<a>[A-Za-z]{3}) (?P<b>[A-Za-z]{3}) (?P<d>\d{2}) " + _HMS + r" (?P<z>[+-]\d{4}) (?P<Y>\d{4})",
            "offset",
        ),
        (_YMD + " " + _HMS + r"(?P<z>Z|[+-]\d{2}:\d{2})", "offset"),
        (_YMD, "local"),
        (r"(?P<d>\d{2}) (?P<b>[A-Za-z]{3}) (?P<Y>\d{4})", "local"),
        (_YMD + " " + _HMS + r" (?P<z>[+-]\d{2}:\d{2})", "offset"),
        (_YMD + " " + _HMS + r" (?P<z>[+-]\d{4})", "offset"),
    )
)


def _offset(text: str) -> tzinfo:
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4])))


def _build(groups: dict[str, str | None], kind: str, zone: tzinfo) -> datetime | None:
    weekday = (groups.get("a") or "").lower()
    long_weekday = (groups.get("A") or "").lower()
    if (weekday and weekday not in _DAYS) or (long_weekday and long_weekday not in _LONG_DAYS):
        return None
    if groups.get("b"):
        name = (groups["b"] or "").lower()
        if name not in _MONTHS:
            return None
        month = _MONTHS.index(name) + 1
    else:
        month = int(groups["m"] or 0)
    if groups.get("Y"):
        year = int(groups["Y"] or 0)
    else:
        short = int(groups["y"] or 0)
        year = 1900 + short if short >= 69 else 2000 + short
    fraction = (groups.get("f") or "")[1:]
    micro = int((fraction + "000000")[:6]) if fraction else 0
    try:
        # An offset Python cannot hold (+99:00; Go refuses it too) makes no date, as a bad day does.
        tz = _offset(groups["z"] or "Z") if kind == "offset" else zone
        return datetime(
            year,
            month,
            int(groups["d"] or 0),
            int(groups.get("H") or 0),
            int(groups.get("M") or 0),
            int(groups.get("S") or 0),
            micro,
            tzinfo=tz,
        )
    except ValueError:
        return None


def parse_hugo_date(value: Any, zone: tzinfo, fmt: str = "yaml") -> datetime | None:
    """The instant Hugo reads from a front-matter value, or None if Hugo cannot read one.

    Strings follow cast's formats; TOML's datetimes and dates are times (a local one in `zone`);
    integers are Unix seconds, except in JSON, whose numbers are floats to Hugo and no date.
    Go's time-only formats ("3:04PM", "Jan _2 15:04:05") give Hugo a time in year 0, which Python
    cannot hold: they count as unreadable here.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=zone)
    if isinstance(value, int) and fmt != "json":
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    return _parse_text(value, zone)


@lru_cache(maxsize=4096)
def _parse_text(text: str, zone: tzinfo) -> datetime | None:
    for pattern, kind in _FORMATS:
        found = pattern.match(text)
        if found:
            built = _build(found.groupdict(), kind, zone)
            if built is not None:
                return built
    return None


class HugoYAMLLoader(yaml.SafeLoader):
    """PyYAML's safe loader seeing values as Hugo's YAML library (yaml.v2) hands them to Hugo: a
    timestamp stays a string, so Hugo's own date rules decide (`2020-1-2 10:00` is no date to Hugo),
    and `y`/`n` are booleans."""


HugoYAMLLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

# yaml.v2 also reads y, Y, n and N as booleans (PyYAML keeps them as strings).
_YAML_V2_BOOLS = {"y": True, "yes": True, "true": True, "on": True, "n": False, "no": False, "false": False}
_YAML_V2_BOOLS["off"] = False


def _construct_bool(loader: yaml.SafeLoader, node: yaml.Node) -> bool:
    value = loader.construct_scalar(node)  # type: ignore[arg-type]
    return _YAML_V2_BOOLS[str(value).lower()]


HugoYAMLLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))
HugoYAMLLoader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)


class HugoCYAMLLoader(FrontMatterLoader):
    """`HugoYAMLLoader` on libyaml's parser (about five times faster), as the plain mode's loader:
    the same resolvers and constructors as `HugoYAMLLoader`, so the same values; a document whose
    aliases expand past `front_matter.MAX_YAML_VALUES` values is refused, as the plain mode refuses it.
    `HugoCYAMLNoAliasLoader` is for a text without a '*'."""


class HugoCYAMLNoAliasLoader(HugoCYAMLLoader):
    has_aliases = False


HugoCYAMLLoader.yaml_implicit_resolvers = HugoYAMLLoader.yaml_implicit_resolvers
HugoCYAMLLoader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
