"""Argument types shared by the commands: each check in one place, one clear message."""

from __future__ import annotations

import argparse

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _number(text: str, kind: type[float] | type[int]) -> float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def seconds(text: str) -> float:
    """A number of seconds >= 0."""
    value = _number(text, float)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """A number of seconds > 0."""
    value = _number(text, float)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def count(text: str) -> int:
    """A whole number >= 1."""
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def byte_count(text: str) -> int:
    """A whole number of bytes >= 0 (0 meaning off)."""
    value = int(_number(text, int))
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of bytes >= 0, got {text!r}")
    return value


def size(text: str) -> int:
    """Bytes from `8388608`, `8M`, `512K`, `1G` (also with a trailing `B` or `iB`)."""
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = value[-1:] if value[-1:] in _UNITS else ""
    number = value.removesuffix(unit)
    if not number.isdigit() or int(number) < 1:
        raise argparse.ArgumentTypeError(f"expected a size like 8M, got {text!r}")
    return int(number) * _UNITS[unit]
