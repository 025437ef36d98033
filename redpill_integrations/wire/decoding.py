"""Content decoding that never inflates past a byte limit (decompression bombs stop at the cap).

We always send ``Accept-Encoding: identity``; servers that compress anyway are decoded here with a
bound: ``gzip``/``x-gzip``/``deflate`` with zlib's ``max_length``, ``zstd`` (when the optional
``zstandard`` package is installed, as httpx itself requires) through a sink that stops at the
budget, so one small chunk of a bomb can never become gigabytes in memory. ``deflate`` is decoded
exactly as httpx decodes it: zlib-wrapped (RFC 1950) first, raw (RFC 1951) if that fails on the
first chunk, so the capture records the bytes the consumer parsed (``docs/capture.md``).

Encodings httpx would decode but this module cannot bound (``br``) raise
:class:`UnsupportedEncoding`: the fetchers refuse them, the capture stops recording. Encodings httpx
does not know pass through undecoded when ``passthrough_unknown`` (as httpx does for the consumer).
"""

from __future__ import annotations

import zlib
from typing import IO, Any, cast

import httpx
from httpx import _decoders  # httpx's own content decoders (those Response.iter_bytes uses)

try:  # the same optional dependency httpx uses for zstd
    import zstandard
except ImportError:  # pragma: no cover - depends on the environment
    zstandard = None  # type: ignore[assignment]

__all__ = ["BoundedDecoder", "DecodeOverflow", "UnsupportedEncoding", "decoder_for"]

_ZLIB = ("gzip", "x-gzip", "deflate")


class DecodeOverflow(Exception):
    """Decoding would produce more than the limit."""


class UnsupportedEncoding(Exception):
    """A content encoding this module does not decode with a bound."""


class _Zlib:
    def __init__(self, encoding: str) -> None:
        self._gzip = encoding in ("gzip", "x-gzip")
        wbits = zlib.MAX_WBITS | 16 if self._gzip else zlib.MAX_WBITS
        self._d = zlib.decompressobj(wbits)
        self._first = not self._gzip

    def decode(self, data: bytes, budget: int) -> bytes:
        first, self._first = self._first, False
        try:
            return self._decode(data, budget)
        except zlib.error:
            if not first:
                raise
            # httpx's DeflateDecoder: a first chunk that is not zlib-wrapped is raw deflate
            self._d = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._decode(data, budget)

    def _decode(self, data: bytes, budget: int) -> bytes:
        out = bytearray()
        pending = data
        while pending:
            out += self._d.decompress(pending, budget - len(out) + 1)
            if len(out) > budget:
                raise DecodeOverflow
            pending = self._d.unconsumed_tail
        return bytes(out)

    def flush(self, budget: int) -> bytes:
        out = self._d.flush()
        if len(out) > budget:
            raise DecodeOverflow
        return out


class _Sink:
    """Where zstandard writes decoded output; raises as soon as the budget is exceeded."""

    def __init__(self) -> None:
        self.budget = 0
        self.out = bytearray()

    def write(self, data: Any) -> int:
        self.out += data
        if len(self.out) > self.budget:
            raise DecodeOverflow
        return len(data)


class _Zstd:
    """zstd through ``stream_writer``: output arrives in bounded pieces (128 KiB) that the sink
    refuses past the budget, unlike ``decompressobj().decompress`` which inflates a whole frame."""

    def __init__(self) -> None:
        assert zstandard is not None
        self._sink = _Sink()
        self._w = zstandard.ZstdDecompressor().stream_writer(
            cast(IO[bytes], self._sink), closefd=False
        )
        self._seen = False

    def decode(self, data: bytes, budget: int) -> bytes:
        self._sink.budget, self._sink.out = budget, bytearray()
        self._seen = self._seen or bool(data)
        try:
            self._w.write(data)
        except zstandard.ZstdError as exc:
            raise httpx.DecodingError(str(exc)) from exc
        return bytes(self._sink.out)

    def flush(self, budget: int) -> bytes:
        return self.decode(b"", budget) if self._seen else b""


_Stage = _Zlib | _Zstd


def _stage(encoding: str) -> _Stage:
    return _Zstd() if encoding == "zstd" else _Zlib(encoding)


def _bounded(encoding: str) -> bool:
    return encoding in _ZLIB or (encoding == "zstd" and zstandard is not None)


class BoundedDecoder:
    """Decodes a (possibly multiply) encoded body, at most ``limit`` bytes in total."""

    def __init__(self, encodings: list[str], limit: int) -> None:
        # Content-Encoding lists encodings in the order applied: decode in reverse (as httpx).
        self._stages = [_stage(e) for e in reversed(encodings)]
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
    headers: httpx.Headers, limit: int, *, passthrough_unknown: bool = False
) -> BoundedDecoder | None:
    """``None`` for identity; a :class:`BoundedDecoder` for gzip/deflate/zstd. Encodings httpx
    does not decode either are ``None`` when ``passthrough_unknown`` (the consumer sees them
    undecoded too); anything else raises :class:`UnsupportedEncoding`."""
    encodings = [
        e.strip().lower()
        for e in headers.get_list("content-encoding", split_commas=True)
        if e.strip().lower() not in ("", "identity")
    ]
    if passthrough_unknown:  # like httpx: encodings it does not know are not decoded
        encodings = [e for e in encodings if e in _decoders.SUPPORTED_DECODERS or _bounded(e)]
    if not encodings:
        return None
    if all(_bounded(e) for e in encodings):
        return BoundedDecoder(encodings, limit)
    raise UnsupportedEncoding(", ".join(encodings))
