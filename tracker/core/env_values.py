"""How a setting is read from its TRACKER_* variable: by its type (a number within the
bounds its msgspec Meta declares, a flag, a string), or by the parser its declaration
names (FromEnv) where no type says enough; each raises ValueError with what it expected.
And how a value is written back as a variable."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
MAX_REDIS_SHARDS: Final = 1024
# Plausible's own bound on an event name.
MAX_EVENT_NAME_LENGTH: Final = 120

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class FromEnv:
    """In a setting's Annotated type: how its variable is read when its type does not say
    (a list, a rate with a unit, a pattern), and the variable's name when it is not
    TRACKER_ + the field's name without its `_s` unit."""

    parse: Callable[[str], Any] | None = None
    name: str | None = None


def env_value(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def parse_bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected one of 1/0, true/false, yes/no, on/off")


def choice(options: tuple[str, ...], *, upper: bool) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.upper() if upper else raw.lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)} (any case)")
        return value

    return parse


def parse_origins(raw: str) -> tuple[str, ...]:
    origins = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError(f"origin {origin!r} must be '*' or start with http:// or https://")
    return origins


def parse_site_origins(raw: str) -> tuple[str, ...]:
    origins = parse_origins(raw)
    if "*" in origins:
        raise ValueError("name the site's origins: tracker reads pages only from those")
    return origins


def parse_networks(raw: str) -> tuple[IPNetwork, ...]:
    networks = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an address or CIDR network") from None
    return tuple(networks)


def parse_prefix(raw: str) -> str:
    if not all(ch.isalnum() or ch in "_-." for ch in raw):
        raise ValueError("expected letters, digits, '_', '-' or '.'")
    return raw


def parse_shards(raw: str) -> tuple[int, ...]:
    """`0-3,6`: shard numbers and ranges of them."""
    shards: set[int] = set()
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        first, dash, last = part.partition("-")
        try:
            low, high = int(first), int(last if dash else first)
        except ValueError:
            raise ValueError(f"{part!r}: expected a shard number or a range like 0-3") from None
        if low < 0 or high < low or high >= MAX_REDIS_SHARDS:
            raise ValueError(
                f"{part!r}: expected shards from 0 to {MAX_REDIS_SHARDS - 1}, low-high"
            )
        shards.update(range(low, high + 1))
    return tuple(sorted(shards))


def parse_event_names(raw: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not names:
        raise ValueError("expected a comma list of event names")
    for name in names:
        if len(name) > MAX_EVENT_NAME_LENGTH:
            raise ValueError(f"event names are at most {MAX_EVENT_NAME_LENGTH} characters")
    return names


def parse_one_group_pattern(raw: str) -> str:
    try:
        pattern = re.compile(raw)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    if pattern.groups != 1:
        raise ValueError(f"expected exactly one capture group, found {pattern.groups}")
    return raw


_PER: Final = {"s": 60, "sec": 60, "min": 1, "m": 1, "h": 1 / 60, "hour": 1 / 60}


def parse_rate(raw: str) -> float:
    """Requests per minute: `600`, `600/min`, `10/s` or `36000/h`; 0 turns the limit off."""
    count, _, per = raw.partition("/")
    factor = _PER.get(per.strip().lower() or "min")
    try:
        value = float(count) * factor if factor is not None else -1.0
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise ValueError("expected requests per minute, e.g. 600, 600/min, 10/s or 36000/h")
    return value


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _bounds(info: msgspec.inspect.IntType | msgspec.inspect.FloatType) -> str:
    """The bounds in words: " from 1 to 100", " above 0", " at least 60"."""
    if info.ge is not None and info.le is not None:
        return f" from {_number(info.ge)} to {_number(info.le)}"
    low = ("above", info.gt) if info.gt is not None else ("at least", info.ge)
    high = ("below", info.lt) if info.lt is not None else ("at most", info.le)
    words = [f"{word} {_number(value)}" for word, value in (low, high) if value is not None]
    return " " + " and ".join(words) if words else ""


def within(value: Any, info: msgspec.inspect.Type) -> Any:
    """`value` if it is within the bounds `info` (a field's msgspec type) declares."""
    if isinstance(info, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        kind = "whole number" if isinstance(info, msgspec.inspect.IntType) else "number"
        if (
            (info.ge is not None and value < info.ge)
            or (info.gt is not None and value <= info.gt)
            or (info.le is not None and value > info.le)
            or (info.lt is not None and value >= info.lt)
        ):
            raise ValueError(f"expected a {kind}{_bounds(info)}")
    return value


def parse_typed(raw: str, info: msgspec.inspect.Type) -> Any:
    """A variable read by its field's type: a flag, a whole number or a finite number
    within the declared bounds, a path, or the string itself."""
    if isinstance(info, msgspec.inspect.UnionType):  # `str | None`: set means the str
        info = next(t for t in info.types if not isinstance(t, msgspec.inspect.NoneType))
    if isinstance(info, msgspec.inspect.BoolType):
        return parse_bool(raw)
    if isinstance(info, msgspec.inspect.IntType):
        try:
            number = int(raw)
        except ValueError:
            raise ValueError("expected a whole number" + _bounds(info)) from None
        return within(number, info)
    if isinstance(info, msgspec.inspect.FloatType):
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("expected a number" + _bounds(info)) from None
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
        return within(value, info)
    if isinstance(info, msgspec.inspect.CustomType) and info.cls is Path:
        return Path(raw)
    return raw
