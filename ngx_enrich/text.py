"""msgpack `bin` and `str` alike: byte strings in a decoded record become text.

Fluentd's `in_tail` yields binary strings, which its msgpack formatter and `out_forward` write
as msgpack `bin`; Python's msgpack turns those into `bytes`. Everything else that arrives as
text is `str`. Records are read the same either way: keys and values, at any depth, are decoded
as UTF-8, and bytes that are not UTF-8 are kept as `\\xNN` (as for raw lines) and reported.
Values that are not text (numbers, booleans, nil, ext types) stay as they are.
"""

from __future__ import annotations

from typing import Any, cast


def _decode(raw: bytes) -> tuple[str, bool]:
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace"), True


def _has_bytes(value: Any) -> bool:
    kind = type(value)
    if kind is bytes:
        return True
    if kind is dict:
        for key, item in cast(dict[Any, Any], value).items():
            if type(key) is bytes:
                return True
            inner = type(item)
            if inner is str:  # the common case first
                continue
            if inner is bytes or ((inner is dict or inner is list) and _has_bytes(item)):
                return True
        return False
    if kind is list:
        return any(_has_bytes(v) for v in cast(list[Any], value))
    return False


_KEYS: dict[bytes, str] = {}  # keys recur in every record: decoded once


def _convert(value: Any, bad: list[bool]) -> Any:
    # `cast` after the exact type test: msgpack gives plain bytes, dicts and lists, and the
    # compiled module then uses its own dict iteration and bytes decoding
    kind = type(value)
    if kind is bytes:
        text, broken = _decode(cast(bytes, value))
        if broken:
            bad.append(True)
        return text
    if kind is dict:
        out = {}
        for key, item in cast(dict[Any, Any], value).items():
            if type(key) is bytes:
                known = _KEYS.get(key)
                if known is None:
                    known, broken = _decode(key)
                    if broken:
                        bad.append(True)
                    elif len(_KEYS) < 1024:
                        _KEYS[key] = known
                key = known
            inner = type(item)
            if inner is bytes:
                item, broken = _decode(cast(bytes, item))
                if broken:
                    bad.append(True)
            elif inner is dict or inner is list:
                item = _convert(item, bad)
            out[key] = item
        return out
    if kind is list:
        return [_convert(v, bad) for v in cast(list[Any], value)]
    return value


def as_text(value: Any) -> tuple[Any, bool]:
    """`value` with every byte string decoded; and whether any of them was not UTF-8.

    The value itself is returned, not a copy, when it holds no byte strings (the common case
    for Fluent Bit, which sends `str`).
    """
    if not _has_bytes(value):
        return value, False
    bad: list[bool] = []
    return _convert(value, bad), bool(bad)
