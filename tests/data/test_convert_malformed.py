"""The malformed-input corpus (tests/data/malformed/): every file fails with one exact message naming
file:line, exit code 2, and leaves no output (and no temporary file) behind."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bgeft.data.convert import convert
from bgeft.errors import UserError

MALFORMED = Path(__file__).parent / "malformed"
NOT_CLOSED = "(a field opened with a double quote is never closed)"
QUOTING = 'quote fields as "..." and double any quote inside them'
SKIP = "; or pass --skip-invalid to leave bad records out"  # a record-level problem can be skipped

# file, extra arguments, message after "bgeft: error: " ({f} = the input path)
CASES = [
    ("truncated_line.jsonl", [], "{f}:2: invalid JSON (Expecting ',' delimiter at column 38) (truncated line?)" + SKIP),
    (
        "truncated_array.json",
        [],
        "{f}:3: invalid JSON: Expecting property name enclosed in double quotes at end of file (truncated file?)",
    ),
    (
        "extra_after_array.json",
        [],
        "{f}:2: invalid JSON: extra data after the top-level value (JSON Lines? use --format jsonl)",
    ),
    ("row_not_object.jsonl", [], "{f}:2: expected a JSON object, found a list" + SKIP),
    ("query_number.jsonl", [], "{f}:2: query: expected a string, found a number" + SKIP),
    ("query_empty.jsonl", [], "{f}:2: query: empty string" + SKIP),
    ("pos_empty_list.jsonl", [], "{f}:2: pos: empty list" + SKIP),
    ("pos_empty_string.jsonl", [], "{f}:2: pos[1]: empty string" + SKIP),
    ("neg_item_number.jsonl", [], "{f}:2: neg[1]: expected a string, found a number" + SKIP),
    ("scores_nan.jsonl", [], "{f}:2: pos_scores: non-finite number 'NaN'" + SKIP),
    ("scores_length.jsonl", [], "{f}:2: pos_scores: 2 scores for 1 pos passages" + SKIP),
    ("scores_text.jsonl", [], "{f}:2: neg_scores: expected a number, found 'high'" + SKIP),
    ("prompt_list.jsonl", [], "{f}:2: prompt: expected a string, found a list" + SKIP),
    (
        "invalid_utf8.jsonl",
        [],
        "{f}:3: invalid UTF-8 bytes at column 13 (byte ff); re-save the file as UTF-8 or pass --encoding",
    ),
    (
        "invalid_gb18030.jsonl",
        [],
        "{f}:41: invalid GB18030 bytes at column 13 (byte 81); re-save the file as UTF-8 or pass --encoding",
    ),
    ("utf16.jsonl", [], "{f}: UTF-16 text is not supported; re-save it as UTF-8"),
    ("empty.jsonl", [], "{f}: empty file"),
    (
        "unknown_shape.jsonl",
        [],
        "{f}:1: cannot tell the record shape from fields body, title; expected "
        "query/pos/neg, query/positive/negative, query/passage/label, sentence1/sentence2/score, text/label, "
        "question/documents or question/answer_paragraphs (DuReader) or SQuAD's "
        "data/paragraphs/qas (or pass --format)",
    ),
    ("broken_quote.csv", [], f"{{f}}:3: broken CSV quoting: unexpected end of data {NOT_CLOSED}; {QUOTING}"),
    ("quote_then_text.csv", [], f"{{f}}:2: broken CSV quoting: ',' expected after '\"'; {QUOTING}"),
    ("csv_column_count.csv", [], "{f}:3: expected 3 columns (query, pos, neg), found 4"),
    (
        "csv_bad_list_cell.csv",
        [],
        "{f}:2: neg: cell starts with '[' but is neither a JSON nor a Python list: \"['n1', n2\"" + SKIP,
    ),
    (
        "csv_repeated_header.csv",
        [],
        "{f}:1: header row has empty or repeated column names (query, pos, pos); give every column its own name",
    ),
    (
        "topics_missing.xml",
        [],
        '{f}: no <topic> elements found (expected TREC-style <topics><topic number="1">'
        "<title>…</title></topic></topics>)",
    ),
    ("topics_broken.xml", [], "{f}:3: invalid XML: mismatched tag"),
    (
        "topic_without_number.xml",
        [],
        '{f}:3: topic: no number attribute (<topic number="1">) and no inline '
        "<positive> passages; give topics numbers (for --qrels) or their passages" + SKIP,
    ),
    ("topic_without_text.xml", [], "{f}:3: topic 2: no <query>, <title>, <question> or <description> text" + SKIP),
    (
        "msmarco_column_count.tsv",
        ["--format", "msmarco"],
        "{f}:2: expected 5 tab-separated columns (query_id, query, doc_id, document, relevance), found 4",
    ),
    ("msmarco_relevance.tsv", ["--format", "msmarco"], "{f}:2: relevance: expected a number, found 'yes'"),
    ("sts_missing_score.jsonl", [], "{f}:2: score: missing" + SKIP),
    ("sts_bad_score.jsonl", [], "{f}:2: score: expected a number, found 'high'" + SKIP),
    ("label_null.jsonl", [], "{f}:2: label: expected a string, found null" + SKIP),
    ("label_single.jsonl", [], "{f}: classification needs at least two labels, found ['天气']"),
    (
        "dureader_no_flag.jsonl",
        [],
        "{f}:1: documents[0]: is_relevant (or DuReader 2.0's is_selected) missing; "
        "mark each document true or false" + SKIP,
    ),
    (
        "squad_no_data.json",
        [],
        "{f}: no top-level 'data' array (a JSON file must hold an array of records, one "
        'record per line, or SQuAD\'s {{"data": [...]}})',
    ),
]


def test_corpus_is_complete():
    assert len(CASES) >= 25
    assert sorted(name for name, _, _ in CASES) == sorted(p.name for p in MALFORMED.iterdir())


@pytest.mark.parametrize("name,extra,message", CASES, ids=[c[0] for c in CASES])
def test_malformed_input_fails_cleanly(tmp_path, run_cli, name, extra, message):
    src = MALFORMED / name
    out_dir = tmp_path / "out-no_in_batch_neg"  # label files need a *-no_in_batch_neg output
    out_dir.mkdir()
    code, stdout, stderr = run_cli("data", "convert", str(src), "-o", str(out_dir / "train.jsonl"), *extra)
    assert code == 2
    assert stderr == f"bgeft: error: {message.format(f=src)}\n"
    assert list(out_dir.iterdir()) == []  # neither the output nor a temporary file


def test_failure_keeps_an_existing_output_untouched(tmp_path):
    out = tmp_path / "train.jsonl"
    out.write_text("previous contents\n")
    with pytest.raises(UserError, match=r"truncated_line.jsonl:2: invalid JSON"):
        convert([MALFORMED / "truncated_line.jsonl"], out, log=lambda _: None)
    assert out.read_text() == "previous contents\n"
    assert [p.name for p in tmp_path.iterdir()] == ["train.jsonl"]


def test_output_may_not_be_an_input(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text('{"query": "q", "pos": ["p"], "neg": ["n"]}\n')
    with pytest.raises(UserError, match=r"-o .*a.jsonl: is also an input \(.*a.jsonl\); write to a new path"):
        convert([src], src, log=lambda _: None)
    assert src.read_text() == '{"query": "q", "pos": ["p"], "neg": ["n"]}\n'


@pytest.mark.parametrize("name,extra,message", [c for c in CASES if c[2].endswith(SKIP)],
                         ids=[c[0] for c in CASES if c[2].endswith(SKIP)])
def test_skip_invalid_lists_the_bad_record(tmp_path, run_cli, name, extra, message):
    """Every record-level problem of the corpus is skippable: left out, listed with its line and reason."""
    src = MALFORMED / name
    out = tmp_path / "out-no_in_batch_neg" / "train.jsonl"
    code, stdout, stderr = run_cli("data", "convert", src, "-o", out, *extra, "--skip-invalid")
    where = message.format(f=src).split(": ")[0]
    line = int(where.rpartition(":")[2])
    if code == 0:
        assert "rejected 1:" in stdout
        (reject,) = [json.loads(x) for x in Path(f"{out}.rejects").read_text(encoding="utf-8").splitlines()]
        assert (reject["file"], reject["line"]) == (str(src), line)
        assert message.format(f=src).removesuffix(SKIP).endswith(reject["reason"])
    else:  # the bad record was the only one of its kind (or left one label): nothing left to write
        assert ("nothing written" in stderr and "rejected" in stderr) or "needs at least two labels" in stderr
        assert not out.exists()
