"""Content decoding that never inflates past a byte limit (decompression bombs stop at the cap).

We always send ``Accept-Encoding: identity``; servers that compress anyway are decoded here for
``gzip``/``x-gzip``/``deflate`` with zlib's ``max_length``, so one 64 KiB chunk of a bomb can never
become gigabytes in memory. Other encodings (``br``, ``zstd``) fall back to httpx's own decoders
(whose output per chunk is not bounded) for the capture path, and are refused by the fetchers.
"""

from __future__ import annotations

import zlib

import httpx
from httpx import _decoders  # httpx's own content decoders (those Response.iter_bytes uses)

__all__ = ["BoundedDecoder", "DecodeOverflow", "UnsupportedEncoding", "decoder_for"]


class DecodeOverflow(Exception):
    """Decoding would produce more than the limit."""


class UnsupportedEncoding(Exception):
    """A content encoding this module does not decode with a bound."""


class _Zlib:
    def __init__(self, encoding: str) -> None:
        self._gzip = encoding in ("gzip", "x-gzip")
        self._d: zlib._Decompress | None = (
            zlib.decompressobj(zlib.MAX_WBITS | 16) if self._gzip else None
        )

    def decode(self, data: bytes, budget: int) -> bytes:
        if self._d is None:  # deflate: zlib-wrapped (RFC 1950) or raw (RFC 1951), as httpx does
            raw = not (data[:1] == b"\x78")
            self._d = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
        out = bytearray()
        pending = data
        while pending:
            out += self._d.decompress(pending, budget - len(out) + 1)
            if len(out) > budget:
                raise DecodeOverflow
            pending = self._d.unconsumed_tail
        return bytes(out)

    def flush(self, budget: int) -> bytes:
        if self._d is None:
            return b""
        out = self._d.flush()
        if len(out) > budget:
            raise DecodeOverflow
        return out


class BoundedDecoder:
    """Decodes a (possibly multiply) encoded body, at most ``limit`` bytes in total."""

    def __init__(self, encodings: list[str], limit: int) -> None:
        self._stages = [_Zlib(e) for e in encodings]
        self._left = limit

    def decode(self, data: bytes) -> bytes:
        for stage in self._stages:
            if not data:
                return b""
            data = stage.decode(data, self._left)
        self._left -= len(data)
        return data

    def flush(self) -> bytes:
        data = b""
        for stage in self._stages:
            data = (stage.decode(data, self._left) if data else b"") + stage.flush(self._left)
        self._left -= len(data)
        if self._left < 0:
            raise DecodeOverflow
        return data


def decoder_for(
    headers: httpx.Headers, limit: int, *, allow_unbounded: bool = False
) -> BoundedDecoder | _decoders.ContentDecoder | None:
    """``None`` for identity; a :class:`BoundedDecoder` for gzip/deflate; httpx's decoder for other
    known encodings when ``allow_unbounded``; otherwise :class:`UnsupportedEncoding`."""
    encodings = [
        e.strip().lower()
        for e in headers.get_list("content-encoding", split_commas=True)
        if e.strip().lower() not in ("", "identity")
    ]
    if not encodings:
        return None
    if all(e in ("gzip", "x-gzip", "deflate") for e in encodings):
        return BoundedDecoder(encodings, limit)
    if allow_unbounded:  # like httpx: encodings it does not know pass through undecoded
        found = [
            _decoders.SUPPORTED_DECODERS[e]()
            for e in encodings
            if e in _decoders.SUPPORTED_DECODERS
        ]
        if not found:
            return None
        return found[0] if len(found) == 1 else _decoders.MultiDecoder(children=found)
    raise UnsupportedEncoding(", ".join(encodings))
