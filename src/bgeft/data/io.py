"""Encoding-aware line reading and atomic output files, shared by every ``bgeft data`` command.

``open_text(path)`` detects UTF-8, UTF-8 with BOM and the GB18030 family (GB2312 and GBK are subsets of
GB18030), turns CRLF into LF and decodes line by line, so a bad byte is reported as ``file:line`` instead
of a traceback. Only regular files are read: a FIFO or device is refused (reading one hangs).
``atomic_writer`` lives in :mod:`bgeft.io` (the one atomic writer) and is re-exported here.
"""
from __future__ import annotations

import codecs
import os
from collections.abc import Iterator

from bgeft.errors import UserError
from bgeft.io import atomic_writer  # noqa: F401  (re-exported: data verbs import it from here)
from bgeft.safety import check_input

SAMPLE_BYTES = 1 << 16
# Names users may pass to --encoding, mapped to the codec we decode with.
ENCODING_ALIASES = {
    "utf8": "utf-8", "utf-8": "utf-8", "utf-8-sig": "utf-8-sig", "utf8-sig": "utf-8-sig",
    "gb18030": "gb18030", "gbk": "gb18030", "gb2312": "gb18030", "cp936": "gb18030",
}
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def normalize_encoding(name: str) -> str:
    """The codec for a user-given ``--encoding`` (GBK/GB2312 decode as their superset GB18030)."""
    key = name.strip().lower().replace("_", "-")
    if key in ENCODING_ALIASES:
        return ENCODING_ALIASES[key]
    try:
        info = codecs.lookup(key)
    except LookupError:
        raise UserError(f"--encoding {name}: unknown encoding (use utf-8, utf-8-sig, gb18030, gbk or gb2312)") from None
    if not getattr(info, "_is_text_encoding", True):
        raise UserError(f"--encoding {name}: {info.name} is not a text encoding (it transforms bytes or text); "
                        "use utf-8, utf-8-sig, gb18030, gbk or gb2312")
    return info.name


def detect_encoding(sample: bytes, path: str = "<input>") -> str:
    """Pick the codec for a file from its first bytes: ``utf-8-sig``, ``utf-8`` or ``gb18030``."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith(_UTF16_BOMS):
        raise UserError(f"{path}: UTF-16 text is not supported; re-save it as UTF-8")
    if _decodes(sample, "utf-8"):
        return "utf-8"
    # Mostly valid UTF-8 with a few broken bytes is a damaged UTF-8 file, not GB18030: keep UTF-8 so the
    # broken line is reported. GB18030 Chinese read as UTF-8 is almost all errors.
    utf8_bad = sample.decode("utf-8", errors="replace").count("\ufffd")
    non_ascii = sum(1 for byte in sample if byte > 127)
    if utf8_bad <= non_ascii // 100:
        return "utf-8"
    if _decodes(sample, "gb18030"):
        return "gb18030"
    if sample.decode("gb18030", errors="replace").count("\ufffd") * 10 < utf8_bad:
        return "gb18030"  # GB18030 with a broken byte: keep it so that line is reported
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    if best is not None and best.encoding.lower() in ("gb18030", "gbk", "gb2312", "cp936", "hz"):
        return "gb18030"
    return "utf-8"  # the first undecodable line is reported with its number


def _decodes(sample: bytes, codec: str) -> bool:
    decoder = codecs.getincrementaldecoder(codec)("strict")
    try:
        decoder.decode(sample, final=False)  # a character cut at the sample's end is fine
    except UnicodeDecodeError:
        return False
    return True


class _Hashed:
    """A binary file that feeds each of its bytes to ``digest`` exactly once and in order, whatever the
    reader's seeks; ``finish()`` hashes the rest the reader did not read (a check stopped early)."""

    def __init__(self, raw, digest):
        self._raw, self.digest, self._pos, self._done = raw, digest, 0, 0

    def _feed(self, data: bytes) -> bytes:
        start, self._pos = self._pos, self._pos + len(data)
        if start <= self._done < self._pos:
            self.digest.update(data[self._done - start:])
            self._done = self._pos
        return data

    def read(self, size: int = -1) -> bytes:
        return self._feed(self._raw.read(size))

    def readline(self, size: int = -1) -> bytes:
        return self._feed(self._raw.readline(size))

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = self._raw.seek(offset, whence)
        return self._pos

    def close(self) -> None:
        try:
            self.seek(self._done)
            while self.read(1 << 20):
                pass
        finally:
            self._raw.close()


class TextSource:
    """A read-only text file decoded line by line. Iterating yields lines ending in ``\\n`` (CRLF is
    turned into LF); ``lineno`` is the number of the line last returned. ``encoding`` is what was used.
    ``digest`` (a hashlib object) receives every byte of the file by the time it is closed, so a check
    and its sha256 read the file once."""

    def __init__(self, path: str | os.PathLike, encoding: str | None = None, digest=None):
        self.path = str(path)
        if os.path.exists(path):
            check_input(path, "input")  # a FIFO or device: refuse instead of hanging on open/read
        try:
            self._file = open(path, "rb")
        except FileNotFoundError:
            raise UserError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise UserError(f"{path}: is a directory, expected a file") from None
        except PermissionError:
            raise UserError(f"{path}: permission denied") from None
        if digest is not None:
            self._file = _Hashed(self._file, digest)
        self.forced = encoding is not None
        if encoding is None:
            sample = self._file.read(SAMPLE_BYTES)
            self._file.seek(0)
            self.encoding = detect_encoding(sample, self.path)
            self._sample_ascii = sample.isascii()
        else:
            self.encoding = normalize_encoding(encoding)
            self._sample_ascii = False
        self._codec = "utf-8" if self.encoding == "utf-8-sig" else self.encoding
        self._chunk_decoder = None
        self._seen_non_ascii = False
        self.lineno = 0
        self.bytes_read = 0
        if self.encoding == "utf-8-sig" and self._file.read(3) != codecs.BOM_UTF8:
            self._file.seek(0)

    def readline(self) -> str:
        raw = self._file.readline()
        if not raw:
            return ""
        self.lineno += 1
        self.bytes_read += len(raw)
        if raw.endswith(b"\r\n"):
            raw = raw[:-2] + b"\n"
        if raw.isascii():
            return raw.decode("ascii")
        try:
            text = raw.decode(self._codec)
        except UnicodeDecodeError as exc:
            text = self._retry_as_gb18030(raw, exc)
        self._seen_non_ascii = True
        return text

    def read_chunk(self, size: int = 1 << 20, line: bool = False) -> str:
        """About ``size`` bytes of text (with ``line``: stopping at the first line end), cut anywhere; a
        character split at the boundary is completed by the next call; '' at end of file. Lets a one-line
        multi-gigabyte JSON file stream in bounded memory. Do not mix with ``readline``."""
        if self._chunk_decoder is None:
            self._chunk_decoder = codecs.getincrementaldecoder(self._codec)("strict")
        while True:
            raw = self._file.readline(size) if line else self._file.read(size)
            pending = self._chunk_decoder.getstate()[0]  # bytes of a character cut by the last chunk
            try:
                text = self._chunk_decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as exc:
                data = pending + raw
                line_start = data.rfind(b"\n", 0, exc.start) + 1
                self._decode_error(data[line_start:], exc.start - line_start,
                                   self.lineno + data.count(b"\n", 0, exc.start) + 1)
            self.lineno += raw.count(b"\n")
            self.bytes_read += len(raw)
            if text or not raw:
                return text.replace("\r\n", "\n")

    def _retry_as_gb18030(self, raw: bytes, exc: UnicodeDecodeError) -> str:
        # The detection sample was plain ASCII and this is the first non-ASCII line: it may be GB18030.
        if self._codec == "utf-8" and not self.forced and self._sample_ascii and not self._seen_non_ascii:
            try:
                text = raw.decode("gb18030")
            except UnicodeDecodeError:
                pass
            else:
                self._codec = self.encoding = "gb18030"
                return text
        self._decode_error(raw, exc.start, self.lineno)

    def _decode_error(self, raw: bytes, start: int, line: int) -> None:
        """Raise the message for bytes that do not decode; ``raw`` begins where line ``line`` begins."""
        name = {"utf-8": "UTF-8", "gb18030": "GB18030"}.get(self._codec, self._codec)
        column = len(raw[:start].decode(self._codec, errors="replace")) + 1
        raise UserError(f"{self.path}:{line}: invalid {name} bytes at column {column} "
                        f"(byte {raw[start:start + 1].hex()}); re-save the file as UTF-8 or pass --encoding")

    def __iter__(self) -> Iterator[str]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def read(self) -> str:
        return "".join(self)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TextSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_text(path: str | os.PathLike, encoding: str | None = None, digest=None) -> TextSource:
    """Open ``path`` for reading as text; ``encoding`` forces a codec instead of detecting one; ``digest``
    (a hashlib object) is fed the file's bytes (all of them once the file is closed)."""
    return TextSource(path, encoding, digest)
