"""bgeft data validate and check_training_data: the rows FlagEmbedding would crash on are errors."""
from __future__ import annotations

import json

import pytest

from bgeft.data.validate import check_training_data
from bgeft.errors import UserError

GOOD = {"query": "渡口在哪里？", "pos": ["渡口在镇子东头。"], "neg": ["桥在西边。", "学校在山上。"]}


def write_rows(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n"
                            for r in rows), encoding="utf-8")
    return path


def test_clean_file_is_ok(tmp_path):
    src = write_rows(tmp_path / "train.jsonl", [GOOD, {**GOOD, "query": "桥在哪里？"}])
    report = check_training_data([src])
    assert report.ok and report.errors == [] and report.warnings == [] and report.rows_checked == 2
    assert report.format() == "checked 2 rows in 1 file(s): 0 error(s), 0 warning(s)"


def test_every_row_problem_is_reported_with_file_line_and_key(tmp_path):
    src = write_rows(tmp_path / "train.jsonl", [
        GOOD,
        {**GOOD, "pos": []},
        GOOD,
        {**GOOD, "query": "q2", "neg": []},
        {**GOOD, "query": "q3", "pos_scores": [float("nan")], "neg_scores": [1.0]},
        {**GOOD, "query": "渡口在镇子东头。"},
        '{"query": "cut", "pos": ["p"',
        {"query": "q4", "pos": "p", "neg": ["n"]},
    ])
    report = check_training_data([src])
    assert not report.ok
    assert report.errors == [
        f"{src}:2: pos: empty list",
        f"{src}:3: row: duplicate of {src}:1",
        f"{src}:4: neg: empty list; run bgeft data mine to add hard negatives",
        f"{src}:5: pos_scores[0]: non-finite score nan",
        f"{src}:5: neg_scores: 1 scores for 2 neg passages",
        f"{src}:6: pos[0]: identical to the query (teaches nothing)",
        f"{src}:7: invalid JSON (Expecting ',' delimiter at column 29) (truncated line?); fix or delete this line",
        f"{src}:8: pos: expected a list of strings, found a string",
    ]
    assert report.rows_checked == 8 and report.rows_dropped == 7


def test_knowledge_distillation_requires_scores(tmp_path):
    src = write_rows(tmp_path / "train.jsonl", [GOOD, {**GOOD, "query": "q", "pos_scores": [3.0],
                                                       "neg_scores": [1.0, -2]}])
    report = check_training_data([src], kd_required=True)
    assert report.errors == [
        f"{src}:1: {key}: missing (knowledge_distillation needs teacher scores on every row; run bgeft data score)"
        for key in ("pos_scores", "neg_scores")
    ]
    assert check_training_data([src]).ok  # without distillation FlagEmbedding drops the score columns


def test_prompt_on_some_rows_only_is_an_error(tmp_path):
    src = write_rows(
        tmp_path / "train.jsonl", [GOOD, {**GOOD, "query": "q", "prompt": "Find it."}, {**GOOD, "query": "r"}]
    )
    assert check_training_data([src]).errors == [
        f"{src}:1: prompt: missing on 2 of 3 rows but set on the others (FlagEmbedding would use None as their "
        "prompt); set it on every row or none"]


def test_directories_are_read_like_flagembedding(tmp_path):
    data = tmp_path / "retrieval"
    (data / "nested").mkdir(parents=True)
    write_rows(data / "a.jsonl", [GOOD])
    (data / "b.json").write_text(json.dumps([{**GOOD, "query": "q2"}], ensure_ascii=False, indent=1), encoding="utf-8")
    write_rows(data / "notes.txt", ["not read"])
    write_rows(data / "nested" / "c.jsonl", [GOOD])
    other = write_rows(tmp_path / "extra.tsv", ["not read"])
    report = check_training_data([data, other, tmp_path / "missing.jsonl"])
    assert report.files == [str(data / "a.jsonl"), str(data / "b.json")]
    assert report.rows_checked == 2
    assert report.errors == [f"{tmp_path / 'missing.jsonl'}: no such file"]
    assert report.warnings == [
        f"{data / 'nested'}: subdirectory ignored (FlagEmbedding reads only files directly inside {data}); "
        "list it in train_data to train on it",
        f"{other}: skipped (FlagEmbedding reads only .json/.jsonl files); rename it or run bgeft data convert",
    ]


def test_empty_and_non_utf8_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    gbk = tmp_path / "gbk.jsonl"
    gbk.write_bytes((json.dumps(GOOD, ensure_ascii=False) + "\n").encode("gbk"))
    report = check_training_data([empty, gbk])
    assert report.errors == [
        f"{empty}: no rows (the datasets library cannot load an empty file; delete it)",
        f"{gbk}: encoded as GB18030; FlagEmbedding reads UTF-8 only (bgeft data validate --fix OUT or bgeft data "
        "convert rewrite it as UTF-8)",
    ]


def test_short_negative_lists_are_a_warning(tmp_path):
    src = write_rows(tmp_path / "train.jsonl", [GOOD, {**GOOD, "query": "q", "neg": ["n"] * 7}])
    report = check_training_data([src], train_group_size=8)
    assert report.ok
    assert report.warnings == ["1 row(s) have fewer than train_group_size-1 = 7 negatives; FlagEmbedding "
                               "repeats negatives to fill the group"]


def test_token_budget_uses_the_tokenizer(tmp_path, tiny_xlmr):
    long_text = "渡口在镇子东头" * 20
    src = write_rows(tmp_path / "train.jsonl", [{**GOOD, "neg": ["桥在西边。", long_text]}])
    report = check_training_data([src], tokenizer=tiny_xlmr, max_tokens=64)
    assert report.ok
    assert len(report.warnings) == 1
    assert report.warnings[0].startswith(f"{src}:1: neg[1]: ")
    assert report.warnings[0].endswith(" tokens > 64; FlagEmbedding truncates it (split long passages with "
                                       "bgeft data split-book)")


def test_cli_strict_and_fix(tmp_path, run_cli):
    src = write_rows(tmp_path / "train.jsonl", [GOOD, {**GOOD, "pos": []}, GOOD, {**GOOD, "query": "q2"}])
    code, out, _ = run_cli("data", "validate", str(src))
    assert code == 0
    assert f"error: {src}:2: pos: empty list" in out
    assert out.endswith("checked 4 rows in 1 file(s): 2 error(s), 0 warning(s)\n")
    code, _, _ = run_cli("data", "validate", str(src), "--strict")
    assert code == 1
    fixed = tmp_path / "fixed.jsonl"
    code, out, _ = run_cli("data", "validate", str(src), "--fix", str(fixed))
    assert code == 0
    assert f"wrote 2 valid row(s) to {fixed}; dropped 2 (1 pos: empty list; 1 row: duplicate)" in out
    assert [json.loads(line) for line in fixed.read_text(encoding="utf-8").splitlines()] == [
        GOOD,
        {**GOOD, "query": "q2"},
    ]
    code, out, _ = run_cli("data", "validate", str(fixed), "--strict")
    assert code == 0


def test_fix_needs_one_input_file(tmp_path):
    a = write_rows(tmp_path / "a.jsonl", [GOOD])
    b = write_rows(tmp_path / "b.jsonl", [GOOD])
    with pytest.raises(UserError, match=r"--fix writes one file: give exactly one input file \(found 2\)"):
        check_training_data([a, b], fix_out=tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_format_limits_messages():
    from bgeft.data.validate import ValidationReport

    report = ValidationReport()
    for i in range(5):
        report.error(f"f.jsonl:{i + 1}: pos: empty list")
    report.rows_checked = 5
    assert report.format(limit=2).splitlines() == [
        "error: f.jsonl:1: pos: empty list", "error: f.jsonl:2: pos: empty list", "... and 3 more errors",
        "checked 5 rows in 0 file(s): 5 error(s), 0 warning(s)"]


def test_verdict_matches_flagembedding(tmp_path, tiny_xlmr):
    """What validate accepts, FlagEmbedding's dataset reads; the empty neg list it rejects crashes it."""
    from FlagEmbedding.abc.finetune.embedder import AbsEmbedderDataArguments, AbsEmbedderTrainDataset
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_xlmr))
    (tmp_path / "good").mkdir()
    (tmp_path / "bad").mkdir()
    good = write_rows(tmp_path / "good" / "train.jsonl", [GOOD])
    bad = write_rows(tmp_path / "bad" / "train.jsonl", [{**GOOD, "neg": []}])

    def dataset(path):
        args = AbsEmbedderDataArguments(train_data=[str(path)], train_group_size=4, cache_path=str(tmp_path / "cache"))
        return AbsEmbedderTrainDataset(args, tokenizer)

    assert check_training_data([good]).ok
    query, passages, _ = dataset(good)[0]
    assert query == GOOD["query"] and len(passages) == 4
    assert check_training_data([bad]).errors == [f"{bad}:1: neg: empty list; run bgeft data mine to add hard negatives"]
    with pytest.raises(ZeroDivisionError):
        dataset(bad)[0]


def test_fix_skips_undecodable_lines_and_keeps_going(tmp_path):
    src = tmp_path / "train.jsonl"
    src.write_bytes((json.dumps(GOOD, ensure_ascii=False) + "\n").encode() + b'{"query": "\xff"}\n'
                    + (json.dumps({**GOOD, "query": "q2"}, ensure_ascii=False) + "\n").encode())
    fixed = tmp_path / "fixed.jsonl"
    report = check_training_data([src], fix_out=fixed)
    assert report.errors == [f"{src}:2: invalid UTF-8 bytes at column 12 (byte ff); re-save the file as UTF-8 or "
                             "pass --encoding"]
    assert [json.loads(line)["query"] for line in fixed.read_text(encoding="utf-8").splitlines()] == [
        GOOD["query"],
        "q2",
    ]


def test_one_type_per_file(tmp_path):
    src = write_rows(
        tmp_path / "train.jsonl",
        [
            {**GOOD, "type": "normal"},
            {**GOOD, "query": "q", "type": "symmetric_sts"},
            {**GOOD, "query": "r", "type": "only_1neg"},
        ],
    )
    assert check_training_data([src]).errors == [
        f"{src}:2: type: 'symmetric_sts' but line 1 has 'normal'; FlagEmbedding asserts one type per batch and "
        "batches within a file: put each type in its own file"]


def test_a_single_path_string_is_one_path(tmp_path):
    src = write_rows(tmp_path / "train.jsonl", [GOOD])
    report = check_training_data(str(src))
    assert report.ok and report.files == [str(src)]


def test_tokenizer_may_be_a_hub_id(tmp_path, monkeypatch, tiny_xlmr, run_cli):
    """--tokenizer goes through the one model resolver: a hub id resolves from the Hugging Face cache."""
    import shutil

    import huggingface_hub.constants as hf

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "models--BAAI--tiny-xlmr"
    shutil.copytree(tiny_xlmr, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    src = tmp_path / "train.jsonl"
    src.write_text('{"query": "q", "pos": ["a rather long positive passage here"], "neg": ["n"]}\n', encoding="utf-8")
    code, out, _ = run_cli("data", "validate", src, "--tokenizer", "BAAI/tiny-xlmr", "--max-tokens", "3")
    assert code == 0
    assert f"warning: {src}:1: pos[0]: " in out and "tokens > 3; FlagEmbedding truncates it" in out


def test_the_check_hashes_each_file_in_the_same_pass(tmp_path):
    """digests: the sha256 of every byte of each file, also of one the check stops reading early (a broken
    JSON array), one with a BOM (read twice at the start) and one bigger than a read chunk."""
    import hashlib

    clean = write_rows(tmp_path / "a.jsonl", [GOOD] * 3)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + clean.read_bytes())
    broken = tmp_path / "broken.json"
    broken.write_text("[" + json.dumps(GOOD) + ", {oops}, " + json.dumps(GOOD) * 50 + "]", encoding="utf-8")
    big = write_rows(tmp_path / "big.jsonl", [{**GOOD, "query": "q" * 2000 + str(i)} for i in range(600)])
    digests: dict[str, str] = {}
    report = check_training_data([clean, bom, broken, big], digests=digests)
    assert report.rows_checked > 600 and any(str(broken) in e for e in report.errors)
    assert digests == {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in (clean, bom, broken, big)}
