"""--skip-invalid / --max-rejects / the rejects file on the row-reading data verbs, and validate --fix repairs.

The input is shaped like a real public QA set: {"query", "pos"} rows without ``neg`` (mining input) with
a few dirty rows (an empty question, a blank positive, an unreadable line)."""
from __future__ import annotations

import json

import pytest

from bgeft.data.rejects import Rejects, parse_max_rejects
from bgeft.errors import UserError

ROWS = [
    '{"query": "桥有多长？", "pos": ["桥长一百八十六米。"]}',
    '{"query": "", "pos": ["孤立的答案"]}',
    '{"query": "渡口在哪里？", "pos": ["渡口在镇子的南头。"]}',
    '{"query": "  ", "pos": ["另一个孤立的答案"]}',
    '{"query": "谁做的钟？", "pos": ["宋青山做了钟。"]}',
    '{"query": "河水涨了吗？", "pos": ["河水涨了。", "夏天河水会涨。"]}',
]


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def qa(tmp_path):
    return write(tmp_path / "qa.jsonl", ROWS)


def test_convert_stops_at_the_first_bad_row_and_names_the_flag(qa, tmp_path, run_cli):
    code, _, err = run_cli("data", "convert", qa, "-o", tmp_path / "out.jsonl")
    assert code == 2
    assert err == f"bgeft: error: {qa}:2: query: empty string; or pass --skip-invalid to leave bad records out\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa.jsonl"]


def test_convert_skip_invalid_writes_rejects_with_the_original_lines(qa, tmp_path, run_cli):
    out = tmp_path / "out.jsonl"
    code, stdout, _ = run_cli("data", "convert", qa, "-o", out, "--skip-invalid")
    assert code == 0
    assert f"kept 4, rejected 2: query: empty string (2) (listed in {out}.rejects)" in stdout
    assert [row["query"] for row in read(out)] == ["桥有多长？", "渡口在哪里？", "谁做的钟？", "河水涨了吗？"]
    assert read(tmp_path / "out.jsonl.rejects") == [
        {"file": str(qa), "line": 2, "reason": "query: empty string", "text": ROWS[1]},
        {"file": str(qa), "line": 4, "reason": "query: empty string", "text": ROWS[3]},
    ]


def test_max_rejects_fails_a_mostly_rejected_run_and_writes_nothing(qa, tmp_path, run_cli):
    out = tmp_path / "out.jsonl"
    code, _, err = run_cli("data", "convert", qa, "-o", out, "--skip-invalid", "--max-rejects", "1")
    assert code == 2
    assert err == ("bgeft: error: rejected 2 of 6 rows (33.3%), more than --max-rejects 1 (query: empty string (2)); "
                   "is --format right? nothing written\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa.jsonl"]
    code, _, err = run_cli("data", "convert", qa, "-o", out, "--skip-invalid", "--max-rejects", "20%")
    assert code == 2 and "more than --max-rejects 20%" in err
    code, _, _ = run_cli("data", "convert", qa, "-o", out, "--skip-invalid", "--max-rejects", "34%")
    assert code == 0 and len(read(out)) == 4


@pytest.mark.parametrize("text,message", [
    ("ten", "--max-rejects ten: expected a number of rows (e.g. 10) or a percentage (e.g. 5%)"),
    ("1.5", "--max-rejects 1.5: expected a number of rows (e.g. 10) or a percentage (e.g. 5%)"),
    ("150%", "--max-rejects 150%: a percentage is at most 100%"),
])
def test_max_rejects_values(text, message):
    with pytest.raises(UserError, match=f"^{message}$".replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        parse_max_rejects(text)


def test_max_rejects_needs_skip_invalid(qa, tmp_path, run_cli):
    code, _, err = run_cli("data", "convert", qa, "-o", tmp_path / "o.jsonl", "--max-rejects", "3")
    assert code == 2
    assert err == ("bgeft: error: --max-rejects goes with --skip-invalid (without it the first bad row stops the "
                   "run)\n")


def test_unreadable_json_line_is_rejected_verbatim(tmp_path, run_cli):
    src = write(tmp_path / "in.jsonl", [ROWS[0], '{"query": "截断的行", "pos": ["半', ROWS[2]])
    code, stdout, _ = run_cli("data", "convert", src, "-o", tmp_path / "o.jsonl", "--skip-invalid")
    assert code == 0 and "kept 2, rejected 1: row: invalid JSON (1)" in stdout
    (reject,) = read(tmp_path / "o.jsonl.rejects")
    assert reject["line"] == 2 and reject["text"] == '{"query": "截断的行", "pos": ["半'
    assert reject["reason"].startswith("invalid JSON (")


def test_rejects_file_is_not_read_as_training_data(qa, tmp_path, run_cli):
    """FlagEmbedding trains on every .json/.jsonl of a train_data directory: the rejects must not be one."""
    from bgeft.data.validate import ValidationReport, training_files

    out_dir = tmp_path / "train"
    run_cli("data", "convert", qa, "-o", out_dir / "rows.jsonl", "--skip-invalid")
    assert (out_dir / "rows.jsonl.rejects").is_file()
    assert training_files([out_dir], ValidationReport()) == [out_dir / "rows.jsonl"]


def test_validate_fix_repairs_mining_input(tmp_path, run_cli):
    src = write(tmp_path / "in.jsonl", [
        ROWS[0],
        '{"query": "q2", "pos": ["a", "a", "  ", "b"]}',
        ROWS[1],
    ])
    out = tmp_path / "fixed.jsonl"
    code, stdout, _ = run_cli("data", "validate", src, "--fix", out)
    assert code == 0
    assert read(out) == [{"query": "桥有多长？", "pos": ["桥长一百八十六米。"], "neg": []},
                         {"query": "q2", "pos": ["a", "b"], "neg": []}]
    assert "checked as mining input" in stdout
    assert "fixed 2 row(s): missing neg set to [] (mining input)" in stdout
    assert "fixed 1 row(s): duplicate items within a row removed" in stdout
    assert "fixed 1 row(s): empty or whitespace-only items removed" in stdout
    assert f"wrote 2 valid row(s) to {out}; dropped 1 (1 query: empty string)" in stdout
    assert read(tmp_path / "fixed.jsonl.rejects") == [
        {"file": str(src), "line": 3, "reason": "query: empty string", "text": ROWS[1]}]


def test_validate_fix_removes_positives_from_neg_with_their_scores(tmp_path, run_cli):
    row = {"query": "q", "pos": ["a"], "neg": ["a", "n", "n", ""], "pos_scores": [3.0],
           "neg_scores": [3.0, 1.0, 1.0, 0.0]}
    src = write(tmp_path / "in.jsonl", [json.dumps(row)])
    code, stdout, _ = run_cli("data", "validate", src, "--fix", tmp_path / "f.jsonl")
    assert code == 0
    assert read(tmp_path / "f.jsonl") == [{"query": "q", "pos": ["a"], "neg": ["n"], "pos_scores": [3.0],
                                           "neg_scores": [1.0]}]
    for fix in ("positives removed from neg", "duplicate items", "empty or whitespace-only"):
        assert fix in stdout


def test_validate_for_training_requires_neg(qa, tmp_path, run_cli):
    code, stdout, _ = run_cli("data", "validate", qa, "--for", "training", "--fix", tmp_path / "f.jsonl",
                              "--strict")
    assert code == 1
    assert f"error: {qa}:1: neg: missing (use [] and run bgeft data mine)" in stdout
    assert "wrote 0 valid row(s)" in stdout


def test_validate_fix_max_rejects(qa, tmp_path, run_cli):
    code, _, err = run_cli("data", "validate", qa, "--fix", tmp_path / "f.jsonl", "--max-rejects", "10%")
    assert code == 2 and "rejected 2 of 6 rows (33.3%), more than --max-rejects 10%" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa.jsonl"]


def test_mine_skip_invalid(qa, tmp_path, run_cli, demo_model):
    out = tmp_path / "mined.jsonl"
    code, _, err = run_cli("data", "mine", qa, "-o", out, "--model", demo_model, "--fp32", "--range", "0-5",
                           "--negatives", "2")
    assert code == 2
    assert err == f"bgeft: error: {qa}:2: query: empty string; or pass --skip-invalid to leave bad rows out\n"
    code, stdout, _ = run_cli("data", "mine", qa, "-o", out, "--model", demo_model, "--fp32", "--range", "0-5",
                              "--negatives", "2", "--skip-invalid")
    assert code == 0
    assert f"kept 4, rejected 2: query: empty string (2) (listed in {out}.rejects)" in stdout
    mined = read(out)
    assert [row["query"] for row in mined] == ["桥有多长？", "渡口在哪里？", "谁做的钟？", "河水涨了吗？"]
    assert all(row["neg"] and not set(row["neg"]) & set(row["pos"]) for row in mined)
    assert [r["line"] for r in read(tmp_path / "mined.jsonl.rejects")] == [2, 4]


def test_rejects_collects_each_row_once(tmp_path):
    rejects = Rejects(tmp_path / "o.jsonl", skip=True)
    rejects.reject("in.jsonl", 3, "query", "empty string")
    rejects.reject("in.jsonl", 3, "query", "empty string")  # a converter reading its input twice
    assert rejects.count == 1
    assert rejects.finish(5) == f"kept 5, rejected 1: query: empty string (1) (listed in {tmp_path}/o.jsonl.rejects)"
