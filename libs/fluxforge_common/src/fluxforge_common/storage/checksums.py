"""The checksum S3 keeps for every object, computed locally: its ETag.

For an object written in one PUT the ETag is the MD5 of its bytes; for a
multipart upload it is the MD5 of the parts' MD5s followed by `-<parts>`
(AWS reports that form; s3proxy reports the whole MD5). A local file's
`Digest` holds both, for the part size FluxForge uploads with, so a file and an
object compare by size and ETag from a listing alone, and the part MD5s are
sent as each part's Content-MD5, which the server checks against the bytes it
received. Servers that do not make the ETag an MD5 (SSE-KMS or SSE-C
encryption on AWS) cannot be verified this way, and verification says so.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import BinaryIO, Final

READ_BLOCK: Final = 1 << 20


@dataclass(frozen=True)
class Digest:
    """Size and MD5s of some bytes, as S3 checks them; `part_md5s` has one entry per upload part."""

    size: int
    md5: bytes
    part_size: int
    part_md5s: tuple[bytes, ...]

    @property
    def multipart(self) -> bool:
        return len(self.part_md5s) > 1

    @property
    def etag(self) -> str:
        """The ETag S3 gives the object FluxForge uploads from these bytes."""
        if not self.multipart:
            return self.md5.hex()
        combined = hashlib.md5(b"".join(self.part_md5s), usedforsecurity=False).hexdigest()
        return f"{combined}-{len(self.part_md5s)}"

    def matches(self, size: int, etag: str) -> bool:
        """True when an object of `size` bytes with `etag` holds these bytes."""
        etag = etag.strip('"')
        return size == self.size and etag in {self.md5.hex(), self.etag}


def content_md5(md5: bytes) -> str:
    """The Content-MD5 header for an MD5 digest."""
    return base64.b64encode(md5).decode()


class DigestBuilder:
    """A `Digest` computed block by block, for bytes that stream past (a download, a spooled write)."""

    def __init__(self, part_size: int, threshold: int) -> None:
        self.part_size = part_size
        self.threshold = threshold
        self.size = 0
        self._whole = hashlib.md5(usedforsecurity=False)
        self._part = hashlib.md5(usedforsecurity=False)
        self._in_part = 0
        self._parts: list[bytes] = []

    def update(self, block: bytes) -> None:
        view = memoryview(block)
        self._whole.update(view)
        self.size += len(view)
        while view:
            take = view[: self.part_size - self._in_part]
            self._part.update(take)
            self._in_part += len(take)
            view = view[len(take) :]
            if self._in_part == self.part_size:
                self._parts.append(self._part.digest())
                self._part, self._in_part = hashlib.md5(usedforsecurity=False), 0

    def result(self) -> Digest:
        """The digest of everything so far; files under `threshold` bytes are one part."""
        parts = list(self._parts)
        if self._in_part or not parts:
            parts.append(self._part.digest())
        whole = self._whole.digest()
        if self.size < self.threshold:
            parts = [whole]
        return Digest(size=self.size, md5=whole, part_size=self.part_size, part_md5s=tuple(parts))


def digest_stream(f: BinaryIO, part_size: int, threshold: int) -> Digest:
    """Read `f` to its end and return its digest; files of `threshold` bytes or more get parts of `part_size`."""
    builder = DigestBuilder(part_size, threshold)
    while block := f.read(READ_BLOCK):
        builder.update(block)
    return builder.result()


def digest_bytes(data: bytes, part_size: int, threshold: int) -> Digest:
    """`digest_stream` of bytes in memory."""
    builder = DigestBuilder(part_size, threshold)
    builder.update(data)
    return builder.result()
