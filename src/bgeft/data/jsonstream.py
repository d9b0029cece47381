"""Streaming JSON readers that report ``file:line`` for every problem.

``iter_jsonl`` reads one value per line. ``iter_json_values`` reads a JSON array (or the array under one
key of a top-level object, e.g. SQuAD's ``data``) element by element, holding only the current element
in memory, so a multi-gigabyte array converts in bounded memory.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator

from bgeft.data.io import TextSource
from bgeft.errors import UserError

CHUNK_CHARS = 1 << 20
MAX_ELEMENT_CHARS = 256 << 20
_decoder = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\r\n]*")


def iter_jsonl(src: TextSource, on_error=None) -> Iterator[tuple[int, object]]:
    """``(line number, value)`` for every non-blank line. An invalid line (bad JSON or bytes that do not
    decode) raises UserError, or, when ``on_error`` is given, is passed to it as a message and skipped."""
    loads = json.loads
    while True:
        try:
            line = src.readline()
        except UserError as exc:  # undecodable bytes; the reader has already moved past this line
            if on_error is None:
                raise
            on_error(str(exc))
            continue
        if not line:
            return
        if line.isspace():
            continue
        try:
            value = loads(line)
        except json.JSONDecodeError:
            message = _line_error(src, line)
            if on_error is None:
                raise UserError(message) from None
            on_error(message)
            continue
        yield src.lineno, value


def _line_error(src: TextSource, line: str) -> str:
    text = line.rstrip("\r\n")
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        cut = " (truncated line?)" if exc.pos >= len(text.rstrip()) else ""
        return f"{src.path}:{src.lineno}: invalid JSON ({exc.msg} at column {exc.colno}){cut}; fix or delete this line"
    return f"{src.path}:{src.lineno}: invalid JSON; fix or delete this line"


class _Buffer:
    def __init__(self, src: TextSource):
        self.src, self.text, self.pos, self.base_line, self.eof = src, "", 0, 1, False
        self._mark, self._mark_line = 0, 1  # line number at text[_mark], advanced as positions grow

    def fill(self, want: int = CHUNK_CHARS) -> bool:
        if self.eof:
            return False
        if self.pos > len(self.text) // 2:  # drop what was consumed
            self.base_line = self.line(self.pos)
            self.text, self.pos = self.text[self.pos:], 0
            self._mark, self._mark_line = 0, self.base_line
        parts, size = [], 0
        while size < want:
            chunk = self.src.read_chunk(min(want, CHUNK_CHARS))
            if not chunk:
                self.eof = True
                break
            parts.append(chunk)
            size += len(chunk)
        self.text += "".join(parts)
        return bool(parts)

    def peek(self) -> str:
        """The next non-whitespace character ('' at end of file), without consuming it."""
        while True:
            self.pos = _WHITESPACE.match(self.text, self.pos).end()
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.fill():
                return ""

    def line(self, pos: int | None = None) -> int:
        pos = self.pos if pos is None else pos
        if pos < self._mark:
            return self.base_line + self.text.count("\n", 0, pos)
        self._mark_line += self.text.count("\n", self._mark, pos)
        self._mark = pos
        return self._mark_line

    def fail(self, problem: str, pos: int | None = None) -> UserError:
        return UserError(f"{self.src.path}:{self.line(pos)}: {problem}")

    def expect(self, char: str, what: str) -> None:
        found = self.peek()
        if found != char:
            shown = f"{found!r}" if found else "end of file"
            raise self.fail(f"invalid JSON: expected {what}, found {shown}"
                            + (" (truncated file?)" if not found else ""))
        self.pos += 1

    def value(self) -> object:
        self.peek()
        want = CHUNK_CHARS
        while True:
            try:
                value, end = _decoder.raw_decode(self.text, self.pos)
                if end == len(self.text) and not self.eof:  # a number or literal may go on in the next chunk
                    raise json.JSONDecodeError("cut", self.text, end)
            except json.JSONDecodeError as exc:
                # chunks are cut anywhere: an error close to the buffer's end, or a string running past
                # it, may only mean the element continues in the next chunk
                at_end = len(self.text) - exc.pos <= 16 or exc.msg.startswith("Unterminated string")
                if at_end and self.eof:
                    raise self.fail(f"invalid JSON: {exc.msg} at end of file (truncated file?)") from None
                if at_end and len(self.text) - self.pos > MAX_ELEMENT_CHARS:
                    raise self.fail("JSON element larger than 256 MiB") from None
                if not at_end:
                    raise self.fail(f"invalid JSON ({exc.msg})", exc.pos) from None
                self.fill(want)
                want *= 2
                continue
            self.pos = end
            return value


def iter_json_values(src: TextSource, key: str | None = None) -> Iterator[tuple[int, object]]:
    """Elements of a top-level JSON array, or of the array at ``key`` in a top-level object; a top-level
    object without ``key`` is yielded as one value. Yields ``(line where the element starts, value)``."""
    buf = _Buffer(src)
    first = buf.peek()
    if first == "[":
        yield from _array(buf)
    elif first == "{" and key is not None:
        yield from _keyed_array(buf, key)
    elif first:
        line = buf.line()
        yield line, buf.value()
    else:
        raise UserError(f"{src.path}: empty file")
    if buf.peek():
        raise buf.fail("invalid JSON: extra data after the top-level value (JSON Lines? use --format jsonl)")


def _array(buf: _Buffer) -> Iterator[tuple[int, object]]:
    buf.expect("[", "'['")
    if buf.peek() == "]":
        buf.pos += 1
        return
    while True:
        buf.peek()
        line = buf.line()
        yield line, buf.value()
        nxt = buf.peek()
        if nxt == "]":
            buf.pos += 1
            return
        buf.expect(",", "',' or ']' after an array element")


def _keyed_array(buf: _Buffer, key: str) -> Iterator[tuple[int, object]]:
    buf.expect("{", "'{'")
    found = False
    while buf.peek() != "}":
        if buf.peek() != '"':
            buf.expect('"', "a quoted key")
        name = buf.value()
        buf.expect(":", "':' after a key")
        if name == key:
            if buf.peek() != "[":
                raise buf.fail(f"{key}: expected a JSON array")
            found = True
            yield from _array(buf)
        else:
            buf.value()  # skip other top-level values such as SQuAD's "version"
        if buf.peek() != "}":
            buf.expect(",", "',' or '}' in the top-level object")
    buf.pos += 1
    if not found:
        raise UserError(f"{buf.src.path}: no top-level {key!r} array (a JSON file must hold an array of records, "
                        f"one record per line, or SQuAD's {{\"{key}\": [...]}})")
