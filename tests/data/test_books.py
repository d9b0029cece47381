"""bgeft data split-book: chapters, Chinese sentence splitting, token budgets, offsets, errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bgeft.data.books import TokenCounter, find_sentences, is_chapter_heading, split_books
from bgeft.errors import UserError

BOOK = """第一章 渡口

　　渡口在镇子的南头。他问：「师傅，对岸就是青石镇吗？」周老四点点头！
　　第一堂课上，林远舟吹了一首《茉莉花》。教室里安静极了……窗外下着雨；没人说话。

第二章 钟表铺

钟表铺的老板叫宋青山。他说：“这钟是一九六五年买的。”然后笑了。
"""


def read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_sentences_keep_closing_quotes():
    text = "他问：「师傅，对岸就是青石镇吗？」周老四点点头！教室里安静极了……窗外下着雨；没人说话。He left. Then"
    got = [text[s:e] for s, e in find_sentences(text, 0, len(text))]
    assert got == ["他问：「师傅，对岸就是青石镇吗？」", "周老四点点头！", "教室里安静极了……", "窗外下着雨；",
                   "没人说话。", "He left.", "Then"]


@pytest.mark.parametrize("line,expected", [
    ("第一章 渡口", True), ("第十二回", True), ("第3节：开始", True), ("Chapter 7", True),
    ("CHAPTER IV. The River", True), ("Chapter Twenty-One", True),
    ("第一堂课上，林远舟吹了一首歌。", False), ("第一章的故事很长，我们从渡口说起。", False),
    ("Chapters of life", False),
])
def test_chapter_headings(line, expected):
    assert is_chapter_heading(line) is expected


def test_paragraphs_chapters_offsets(tmp_path):
    book = tmp_path / "river.txt"
    book.write_text(BOOK, encoding="utf-8")
    summary = split_books([book], tmp_path / "corpus.jsonl")
    preface = tmp_path / "preface.txt"
    preface.write_text("序言。\n\n" + BOOK, encoding="utf-8")
    split_books([preface], tmp_path / "p.jsonl")
    assert [(r["_id"], r["chapter"]) for r in read(tmp_path / "p.jsonl")][:2] == [
        ("preface-c0-p1", ""), ("preface-c1-p1", "第一章 渡口")]
    rows = read(tmp_path / "corpus.jsonl")
    assert [r["_id"] for r in rows] == ["river-c1-p1", "river-c1-p2", "river-c2-p1"]
    assert [r["chapter_index"] for r in rows] == [1, 1, 2]
    assert [r["chapter"] for r in rows] == ["第一章 渡口", "第一章 渡口", "第二章 钟表铺"]
    assert rows[1]["text"] == "第一堂课上，林远舟吹了一首《茉莉花》。教室里安静极了……窗外下着雨；没人说话。"
    for r in rows:
        assert BOOK[r["start"]:r["end"]] == r["text"]
        assert r["title"] == "" and r["book"] == "river"
    assert (summary.books, summary.chapters, summary.passages) == (1, 2, 3)


def test_sentence_mode_and_gb18030_crlf(tmp_path):
    book = tmp_path / "gb.txt"
    book.write_bytes(BOOK.replace("\n", "\r\n").encode("gb18030"))
    split_books([book], tmp_path / "c.jsonl", by="sentence")
    texts = [r["text"] for r in read(tmp_path / "c.jsonl")]
    assert texts[:3] == ["渡口在镇子的南头。", "他问：「师傅，对岸就是青石镇吗？」", "周老四点点头！"]
    assert texts[-2:] == ["他说：“这钟是一九六五年买的。”", "然后笑了。"]


def test_token_budget_overlap_and_window(tmp_path, tiny_xlmr):
    book = tmp_path / "long.md"
    body = "".join(f"第{i}句话说的是河边的故事，镇上的人都知道。" for i in range(40))
    book.write_text(f"# Chapter 1\n\n{body}\n\n# 第二章 尾声\n\n{body}\n", encoding="utf-8")
    counter = TokenCounter(tiny_xlmr)
    split_books([book], tmp_path / "p.jsonl", by="sentence", max_tokens=60, overlap=25, tokenizer=tiny_xlmr)
    rows = read(tmp_path / "p.jsonl")
    assert {r["chapter"] for r in rows} == {"Chapter 1", "第二章 尾声"}
    assert all(counter.count(r["text"]) <= 60 for r in rows)
    same_chapter = [(a, b) for a, b in zip(rows, rows[1:]) if a["chapter"] == b["chapter"]]
    assert same_chapter and all(b["start"] < a["end"] for a, b in same_chapter)  # overlapping spans
    assert all(a["text"].endswith(b["text"][: b["text"].index("。") + 1]) for a, b in same_chapter)

    split_books([book], tmp_path / "w.jsonl", by="window", max_tokens=40, overlap=10, tokenizer=tiny_xlmr)
    windows = read(tmp_path / "w.jsonl")
    assert all(counter.count(r["text"]) <= 40 for r in windows)
    assert max(counter.count(r["text"]) for r in windows) >= 38
    text = book.read_text(encoding="utf-8")
    assert all(text[r["start"]:r["end"]] == r["text"] for r in windows)


@pytest.mark.parametrize("kwargs,message", [
    (dict(max_tokens=100), "--max-tokens needs --tokenizer PATH"),
    (dict(by="window"), "--by window needs --max-tokens"),
    (dict(overlap=5), "--overlap needs --max-tokens"),
    (dict(max_tokens=10, overlap=10, tokenizer="x"), "--overlap 10: must be smaller than --max-tokens 10"),
])
def test_option_errors(tmp_path, kwargs, message):
    book = tmp_path / "b.txt"
    book.write_text(BOOK, encoding="utf-8")
    with pytest.raises(UserError, match=message):
        split_books([book], tmp_path / "out.jsonl", **kwargs)
    assert not (tmp_path / "out.jsonl").exists()


def test_cli_errors_leave_no_output(tmp_path, run_cli):
    pdf = tmp_path / "b.pdf"
    pdf.write_bytes(b"%PDF")
    code, _, err = run_cli("data", "split-book", pdf, "-o", tmp_path / "c.jsonl")
    assert code == 2 and f"{pdf}: split-book reads .txt and .md books" in err
    bad = tmp_path / "bad.txt"
    bad.write_bytes("第一章\n好\n".encode() + b"\xff\xfe\xfa\n")
    code, _, err = run_cli("data", "split-book", bad, "-o", tmp_path / "c.jsonl")
    assert code == 2 and f"{bad}:3: invalid UTF-8 bytes" in err
    assert not (tmp_path / "c.jsonl").exists()


def test_cli_runs(tmp_path, run_cli, example_data):
    code, out, _ = run_cli("data", "split-book", example_data / "book" / "river_town.txt", "-o", tmp_path / "c.jsonl")
    assert code == 0 and "5 chapter(s)" in out
    rows = read(tmp_path / "c.jsonl")
    assert rows[0]["chapter"] == "第一章 渡口" and len({r["_id"] for r in rows}) == len(rows)


def test_split_book_skip_invalid_leaves_unreadable_books_out(tmp_path, run_cli):
    good = tmp_path / "good.txt"
    good.write_text("第一章 开始\n\n河水涨了。\n", encoding="utf-8")
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n   \n", encoding="utf-8")
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    out = tmp_path / "corpus.jsonl"
    code, _, err = run_cli("data", "split-book", good, blank, pdf, "-o", out)
    assert code == 2
    assert err == (f"bgeft: error: {pdf}: split-book reads .txt and .md books; convert it to plain text first; "
                   "or pass --skip-invalid to leave bad books out\n")
    code, stdout, _ = run_cli("data", "split-book", good, blank, pdf, "-o", out, "--skip-invalid")
    assert code == 0
    assert "kept 1, rejected 2:" in stdout
    assert [json.loads(line)["book"] for line in out.read_text(encoding="utf-8").splitlines()] == ["good"]
    rejects = [json.loads(line) for line in Path(f"{out}.rejects").read_text(encoding="utf-8").splitlines()]
    assert [(r["file"], r["line"]) for r in rejects] == [(str(pdf), None), (str(blank), None)]
    assert rejects[1]["reason"] == "no text found; is it the right file?"
