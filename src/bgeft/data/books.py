"""``bgeft data split-book``: raw .txt/.md books -> a BEIR-style passage corpus.

Python API (used by the pipeline)::

    split_books(paths, out, *, by="paragraph", max_tokens=None, overlap=0, tokenizer=None,
                encoding=None) -> SplitSummary

* Chapters: a short line starting with 第<number>章/回/节/卷/部/篇 or "Chapter N" (digits, Roman
  numerals or English number words), or a Markdown ``#`` heading in .md files. The heading becomes the
  passage's ``chapter``, numbered from 1 in ``chapter_index``; text before the first heading is
  chapter 0 ("").
* Paragraphs are separated by blank lines or start with an indented line ("　　" or two spaces).
  Sentences end at 。！？；… ! ? ; or a '.' followed by a space/line end; closing quotes and brackets
  (」』”’）》") stay with the sentence they close.
* ``by``: ``paragraph`` (default) packs whole paragraphs, ``sentence`` packs sentences, ``window``
  cuts fixed token windows. ``max_tokens`` is counted with ``tokenizer`` (the target model's, a path
  or a loaded tokenizer; special tokens not included); packing is greedy, a single paragraph or
  sentence over the budget is cut at token boundaries. Without ``max_tokens`` every paragraph
  (sentence) is its own passage. ``overlap`` (tokens) repeats the tail of a passage at the start of
  the next one: whole sentences/paragraphs for packing modes, tokens for ``window``.
* Rows: ``{"_id": "<book>-c<chapter>-p<n>", "title": "", "text", "book", "chapter",
  "chapter_index", "start", "end"}`` where ``text == book_text[start:end]`` (character offsets in the
  decoded book with LF newlines). Ids are stable for the same book and settings.
"""
from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from bgeft.data.io import open_text
from bgeft.data.records import write_jsonl
from bgeft.data.rejects import Rejects
from bgeft.data.rejects import add_arguments as add_reject_arguments
from bgeft.errors import UserError
from bgeft.safety import check_input, check_output

BY_CHOICES = ("paragraph", "sentence", "window")
_NUM_WORDS = ("one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
              "sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty")
ZH_CHAPTER = re.compile(r"^第[0-9０-９零〇一二三四五六七八九十百千万两]+[章回节節卷部篇](?:$|[\s:：·、.．—-])")
EN_CHAPTER = re.compile(rf"^chapter\s+(?:\d+|[ivxlc]+|(?:{_NUM_WORDS})(?:[- ](?:{_NUM_WORDS}))?)\b", re.I)
MD_HEADING = re.compile(r"^#{1,6}\s+\S")
SENTENCE_END = re.compile(r"(?:[。！？!?；;]+|…+|\.(?=\s|$))[」』”’\"'）)》\]】]*")
INDENT = ("\u3000", "  ", "\t")


@dataclass
class SplitSummary:
    out: str
    books: int = 0
    chapters: int = 0
    passages: int = 0
    lengths: list[int] = field(default_factory=list, repr=False)
    unit: str = "characters"
    rejects: str | None = None  # the --skip-invalid summary line

    def lines(self) -> list[str]:
        out = [self.rejects] if self.rejects else []
        out += [f"split {self.books} book(s), {self.chapters} chapter(s) into {self.passages} passages -> {self.out}"]
        if self.lengths:
            mean = sum(self.lengths) / len(self.lengths)
            out.append(f"passage length ({self.unit}): min {min(self.lengths)}, mean {mean:.1f}, "
                       f"max {max(self.lengths)}")
        return out


def is_chapter_heading(line: str, markdown: bool = False) -> bool:
    s = line.strip()
    if not s or len(s) > 60:
        return False
    if markdown and MD_HEADING.match(s):
        return True
    if ZH_CHAPTER.match(s):
        return not s.endswith(("。", "！", "？", "；", "，"))
    return bool(EN_CHAPTER.match(s))


def find_chapters(text: str, markdown: bool = False) -> list[tuple[int, str, int, int]]:
    """``(index, title, body_start, body_end)`` per chapter: index 0 is the part before the first heading
    (title "", left out when it holds no text), the first heading is chapter 1."""
    chapters, title, start, pos = [], "", 0, 0
    for line in text.splitlines(keepends=True):
        if is_chapter_heading(line, markdown):
            chapters.append((title, start, pos))
            title, start = line.strip().lstrip("#").strip(), pos + len(line)
        pos += len(line)
    chapters.append((title, start, len(text)))
    return [(i, *c) for i, c in enumerate(chapters) if i or text[c[1]:c[2]].strip()]


def _trim(text: str, s: int, e: int) -> tuple[int, int] | None:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return (s, e) if s < e else None


def find_paragraphs(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans, para_start, pos = [], start, start
    for line in text[start:end].splitlines(keepends=True):
        if not line.strip() or line.startswith(INDENT):
            span = _trim(text, para_start, pos)
            if span:
                spans.append(span)
            para_start = pos
        pos += len(line)
    span = _trim(text, para_start, end)
    if span:
        spans.append(span)
    return spans


def find_sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans, s = [], start
    for m in SENTENCE_END.finditer(text, start, end):
        span = _trim(text, s, m.end())
        if span:
            spans.append(span)
        s = m.end()
    span = _trim(text, s, end)
    if span:
        spans.append(span)
    return spans


class TokenCounter:
    """Token counts with the target model's tokenizer (content tokens, no special tokens)."""

    def __init__(self, tokenizer):
        if isinstance(tokenizer, (str, Path)):
            tokenizer = load_tokenizer(tokenizer)
        if not getattr(tokenizer, "is_fast", False):
            raise UserError("--tokenizer: a fast (Rust) tokenizer is needed for token offsets; "
                            "use a model directory that contains tokenizer.json")
        self.tok = tokenizer

    def count(self, text: str) -> int:
        return len(self.tok(text, add_special_tokens=False, verbose=False)["input_ids"])

    def offsets(self, text: str) -> list[tuple[int, int]]:
        enc = self.tok(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [(a, b) for a, b in enc["offset_mapping"] if b > a]


def load_tokenizer(path):
    """A tokenizer from a local directory, a hub id (BAAI/bge-m3) or bgeft:demo-model (models/resolve.py)."""
    from transformers import AutoTokenizer

    if not Path(path).is_dir():  # a tokenizer-only directory (no config.json) is fine as it is
        from bgeft.models.resolve import model_dir

        path = model_dir(path, flag="--tokenizer")
    try:
        return AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise UserError(f"--tokenizer {path}: cannot load a tokenizer there ({str(exc).splitlines()[0]}); "
                        "give the target model's directory") from None


def token_windows(text: str, s: int, e: int, counter: TokenCounter, size: int, overlap: int) -> list[tuple[int, int]]:
    """Cut ``text[s:e]`` into windows of ``size`` tokens, consecutive windows sharing ``overlap``."""
    offs = counter.offsets(text[s:e])
    spans, i = [], 0
    while i < len(offs):
        j = min(i + size, len(offs))
        while j - 1 > i and counter.count(text[s + offs[i][0]:s + offs[j - 1][1]]) > size:
            j -= 1  # a piece tokenized on its own may gain a token (e.g. a leading "▁")
        span = _trim(text, s + offs[i][0], s + offs[j - 1][1])
        if span:
            spans.append(span)
        if j == len(offs):
            break
        i = max(j - overlap, i + 1)
    return spans


def pack(text: str, units: list[tuple[int, int]], counter: TokenCounter, max_tokens: int,
         overlap: int) -> list[tuple[int, int]]:
    """Greedily join consecutive units into passages of at most ``max_tokens`` tokens."""
    pieces = []
    for s, e in units:  # a paragraph over the budget is cut into sentences, a sentence into token windows
        if counter.count(text[s:e]) <= max_tokens:
            pieces.append((s, e))
            continue
        for ss, se in find_sentences(text, s, e):
            if counter.count(text[ss:se]) <= max_tokens:
                pieces.append((ss, se))
            else:
                pieces.extend(token_windows(text, ss, se, counter, max_tokens, 0))
    toks = [counter.count(text[s:e]) for s, e in pieces]
    passages, i, done = [], 0, 0  # done: units [0, done) are already in some passage
    while done < len(pieces):
        j, est = i, 0
        while j < len(pieces) and (j == i or est + toks[j] <= max_tokens):
            est += toks[j]
            j += 1
        while j - 1 > i and counter.count(text[pieces[i][0]:pieces[j - 1][1]]) > max_tokens:
            j -= 1  # the sum of unit counts can be off by a token or two; confirm on the joined text
        if j <= done:  # the carried-over tail left no room for a new unit: drop the overlap
            i = done
            continue
        passages.append((pieces[i][0], pieces[j - 1][1]))
        done, k, carried = j, j, 0
        while overlap and k - 1 > i and carried + toks[k - 1] <= overlap:
            k -= 1
            carried += toks[k]
        while k < done and done < len(pieces) and carried + toks[done] > max_tokens:
            carried -= toks[k]
            k += 1
        i = k
    return passages


def split_text(text: str, *, by: str = "paragraph", max_tokens: int | None = None, overlap: int = 0,
               counter: TokenCounter | None = None, markdown: bool = False):
    """Yield ``(chapter_index, chapter_title, start, end)`` for every passage of one book's text."""
    for ci, title, cs, ce in find_chapters(text, markdown):
        if by == "window":
            span = _trim(text, cs, ce)
            spans = token_windows(text, span[0], span[1], counter, max_tokens, overlap) if span else []
        else:
            units = []
            for ps, pe in find_paragraphs(text, cs, ce):
                units.extend([(ps, pe)] if by == "paragraph" else find_sentences(text, ps, pe))
            spans = pack(text, units, counter, max_tokens, overlap) if max_tokens else units
        for s, e in spans:
            yield ci, title, s, e


def _check_options(by: str, max_tokens: int | None, overlap: int, tokenizer) -> None:
    if by not in BY_CHOICES:
        raise UserError(f"--by {by}: choose one of {', '.join(BY_CHOICES)}")
    if max_tokens is not None and max_tokens < 1:
        raise UserError(f"--max-tokens {max_tokens}: must be a positive number of tokens")
    if overlap < 0:
        raise UserError(f"--overlap {overlap}: must be 0 or more tokens")
    if by == "window" and max_tokens is None:
        raise UserError("--by window needs --max-tokens (the window size in tokens)")
    if overlap and max_tokens is None:
        raise UserError("--overlap needs --max-tokens: overlap is counted in tokens of packed passages")
    if max_tokens is not None and overlap >= max_tokens:
        raise UserError(f"--overlap {overlap}: must be smaller than --max-tokens {max_tokens}")
    if max_tokens is not None and tokenizer is None:
        raise UserError("--max-tokens needs --tokenizer PATH: tokens are counted with the target model's tokenizer")


def split_books(paths, out, *, by: str = "paragraph", max_tokens: int | None = None, overlap: int = 0,
                tokenizer=None, encoding: str | None = None, rejects: Rejects | None = None) -> SplitSummary:
    """Split every book in ``paths`` and write one BEIR corpus to ``out`` (atomically). With ``rejects``
    (``--skip-invalid``) a book that cannot be read (wrong kind of file, bad bytes, no text) is left out
    and listed instead of stopping the run."""
    _check_options(by, max_tokens, overlap, tokenizer)
    check_output(out, [*paths, *([tokenizer] if isinstance(tokenizer, (str, os.PathLike)) else [])])
    counter = TokenCounter(tokenizer) if tokenizer is not None else None
    names: dict[str, Path] = {}
    kept = []
    for p in map(Path, paths):
        if p.suffix.lower() not in (".txt", ".md", ".markdown"):
            _bad_book(rejects, p, "split-book reads .txt and .md books; convert it to plain text first")
            continue
        kept.append(p)
        if p.stem in names:
            raise UserError(f"{p}: another book is also named {p.stem!r} ({names[p.stem]}); "
                            "rename one, ids use the name")
        names[p.stem] = p
    summary = SplitSummary(out=str(out), unit="tokens" if counter else "characters")
    rows = []
    for p in kept:
        check_input(p, "input")  # a missing file or a FIFO is a mistake in the command, not a bad book: it stops
        try:
            with open_text(p, encoding) as src:
                text = src.read()
        except UserError as exc:
            if rejects is None:
                raise
            rejects.reject_message(p, None, str(exc), "book: unreadable")
            continue
        chapters, counts = set(), {}
        for ci, title, s, e in split_text(text, by=by, max_tokens=max_tokens, overlap=overlap, counter=counter,
                                          markdown=p.suffix.lower() != ".txt"):
            chapters.add(ci)
            n = counts[ci] = counts.get(ci, 0) + 1
            passage = text[s:e]
            rows.append({"_id": f"{p.stem}-c{ci}-p{n}", "title": "", "text": passage, "book": p.stem,
                         "chapter": title, "chapter_index": ci, "start": s, "end": e})
            summary.lengths.append(counter.count(passage) if counter else len(passage))
        if not counts:
            _bad_book(rejects, p, "no text found; is it the right file?")
            continue
        summary.books += 1
        summary.chapters += len(chapters)
    if not rows:
        raise UserError("no passages from any book; nothing written")
    if rejects is not None:
        summary.rejects = rejects.finish(summary.books)
    summary.passages = write_jsonl(out, rows)
    return summary


def _bad_book(rejects, path: Path, problem: str) -> None:
    if rejects is None:
        raise UserError(f"{path}: {problem}")
    rejects.reject(path, None, "", problem)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("books", nargs="+", metavar="BOOK", help=".txt or .md book files (UTF-8, BOM or GB18030)")
    parser.add_argument("-o", "--output", required=True, metavar="CORPUS.jsonl", help="BEIR corpus to write")
    parser.add_argument("--by", choices=BY_CHOICES, default="paragraph",
                        help="passage unit: whole paragraphs, sentences, or fixed token windows (default paragraph)")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="token budget per passage, counted with --tokenizer (packs units up to it)")
    parser.add_argument("--overlap", type=int, default=0, help="tokens shared by consecutive passages (default 0)")
    parser.add_argument("--tokenizer", default=None, metavar="PATH",
                        help="target model (directory) whose tokenizer counts tokens")
    parser.add_argument("--encoding", default=None, help="force the books' encoding (default: detect)")
    add_reject_arguments(parser)


def run(args) -> int:
    summary = split_books(args.books, args.output, by=args.by, max_tokens=args.max_tokens, overlap=args.overlap,
                          tokenizer=args.tokenizer, encoding=args.encoding,
                          rejects=Rejects.from_args(args, args.output, "book"))
    for line in summary.lines():
        print(line)
    return 0
