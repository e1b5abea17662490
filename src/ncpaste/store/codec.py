"""How a paste is laid out in the store: a small fixed header, then a zstd frame.

zstd compressor and decompressor objects are not thread-safe, so each thread
keeps its own (compression runs in worker threads, reads on the event loop).
"""

from __future__ import annotations

import hashlib
import struct
import threading

import zstandard

from ncpaste.core.errors import CorruptPaste
from ncpaste.core.paste import FLAG_SHA256, PasteMeta

FORMAT_VERSION = 1
CHECKSUM_BYTES = 16
TOKEN_HASH_BYTES = 32
# version, flags, reserved, created_ms, expires_ms, size, checksum, token hash
_HEADER = struct.Struct(">BBHqqQ%ds%ds" % (CHECKSUM_BYTES, TOKEN_HASH_BYTES))
HEADER_BYTES = _HEADER.size
# Level 1: on CI log text (bench_clients.ci_log) it costs 29 % less CPU
# than level 3, zstd's default (1 MiB: 1.9 vs 2.7 ms; nc ingest of 1 MiB
# pastes: 5.6 vs 6.5 ms of server CPU each), for 1.5 % more bytes (ratio
# 0.196 vs 0.193), and ingest is CPU-bound. Frames of any level read the same.
ZSTD_LEVEL = 1

_local = threading.local()


def checksum(body: bytes | bytearray | memoryview) -> bytes:
    """The checksum a new record carries (with FLAG_SHA256 in its flags).

    SHA-256 cut to 16 bytes: with the CPU's SHA instructions, which hashlib
    uses, it costs 0.63 ms per MiB here against BLAKE2b's 1.56 ms, and a
    1 MiB paste is checksummed when stored and again when read from disk."""
    return hashlib.sha256(body).digest()[:CHECKSUM_BYTES]


def blake2b_checksum(body: bytes | bytearray | memoryview) -> bytes:
    """BLAKE2b-128: the checksum of records without FLAG_SHA256, and the one
    the export format names (``b2sum -l 128``)."""
    return hashlib.blake2b(body, digest_size=CHECKSUM_BYTES).digest()


def checksum_for(flags: int, body: bytes | bytearray | memoryview) -> bytes:
    """The checksum of ``body`` as a record with ``flags`` keeps it."""
    return checksum(body) if flags & FLAG_SHA256 else blake2b_checksum(body)


def compress(body: bytes | bytearray | memoryview) -> bytes:
    compressor = getattr(_local, "compressor", None)
    if compressor is None:
        # The frame's own checksum (4 bytes) lets a client that gets the
        # stored frame as is (Content-Encoding: zstd) verify it end to end.
        compressor = _local.compressor = zstandard.ZstdCompressor(
            level=ZSTD_LEVEL, write_content_size=True, write_checksum=True
        )
    return compressor.compress(body)


def decompress(frame: bytes | memoryview, size: int) -> bytes:
    decompressor = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = _local.decompressor = zstandard.ZstdDecompressor()
    return decompressor.decompress(frame, max_output_size=size)


def open_body(frame: bytes | memoryview, meta: PasteMeta) -> bytes:
    """Decompress a stored frame and verify it against its metadata."""
    try:
        # zstd trusts the size in the frame header over max_output_size, so
        # check it first: a damaged header must not make us allocate gigabytes.
        if zstandard.frame_content_size(frame) != meta.size:
            raise CorruptPaste("stored paste is damaged")
        body = decompress(frame, meta.size)
    except zstandard.ZstdError:
        raise CorruptPaste("stored paste is damaged") from None
    if len(body) != meta.size or checksum_for(meta.flags, body) != meta.checksum:
        raise CorruptPaste("stored paste is damaged")
    return body


def encode_record(meta: PasteMeta, frame: bytes) -> bytes:
    header = _HEADER.pack(
        FORMAT_VERSION,
        meta.flags,
        0,
        meta.created_ms,
        meta.expires_ms,
        meta.size,
        meta.checksum,
        meta.token_hash,
    )
    return header + frame


def decode_meta(record: bytes | memoryview) -> PasteMeta:
    version, flags, _, created_ms, expires_ms, size, digest, token_hash = _HEADER.unpack_from(
        record
    )
    if version != FORMAT_VERSION:
        raise ValueError(f"unknown record format {version}")
    return PasteMeta(created_ms, expires_ms, size, digest, token_hash, flags)


def record_frame(record: bytes | memoryview) -> memoryview:
    return memoryview(record)[HEADER_BYTES:]
