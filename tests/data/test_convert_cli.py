"""The ``bgeft data`` dispatcher and the streaming JSON reader underneath convert/validate."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from bgeft.data import jsonstream
from bgeft.data.io import open_text
from bgeft.errors import UserError


def test_help_lists_every_verb_without_importing_heavy_modules():
    code = ("import sys\nfrom bgeft.cli.main import main\ntry:\n    main(['data', '--help'])\nexcept SystemExit:\n"
            "    print(sorted(m for m in ('torch', 'transformers', 'FlagEmbedding', 'faiss') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for verb in ("convert", "validate", "split-book", "mine", "score", "buckets", "gen-queries"):
        assert re.search(rf"\n    {verb}\s", out), verb
    assert out.strip().splitlines()[-1] == "[]"


def test_verb_help_and_unknown_verb(run_cli):
    code, out, _ = run_cli("data", "convert", "--help")
    assert code == 0 and out.startswith("usage: bgeft data convert [-h] -o OUT.jsonl")
    code, _, err = run_cli("data", "convrt", "x")
    assert code == 2
    assert err == ("bgeft: error: bgeft data: unknown verb 'convrt' (did you mean convert?); choose from convert, "
                   "validate, split-book, mine, score, buckets, gen-queries\n")
    code, _, err = run_cli("data", "convert", "x.jsonl")
    assert code == 2 and "the following arguments are required: -o/--output" in err


def test_json_array_streams_across_small_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonstream, "CHUNK_CHARS", 16)
    rows = [{"query": f"问题{i}", "pos": [f"段落{i}"], "neg": ["n"]} for i in range(6)]
    src = tmp_path / "rows.json"
    src.write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
    with open_text(src) as fh:
        got = list(jsonstream.iter_json_values(fh))
    assert [value for _, value in got] == rows
    assert [line for line, _ in got] == [2 + 9 * i for i in range(6)]
    src.write_text(json.dumps(rows, indent=2).replace('],\n    "neg"', ']\n    "neg"', 1))  # drop a comma
    with open_text(src) as fh, pytest.raises(UserError, match=rf"{src}:7: invalid JSON \(Expecting ',' delimiter\)"):
        list(jsonstream.iter_json_values(fh))


def test_validate_reads_json_arrays_with_line_numbers(tmp_path):
    from bgeft.data.validate import check_training_data

    rows = [{"query": "q1", "pos": ["p"], "neg": ["n"]}, {"query": "q2", "pos": [], "neg": ["n"]}]
    src = tmp_path / "train.json"
    src.write_text(json.dumps(rows, indent=2))
    assert check_training_data([src]).errors == [f"{src}:11: pos: empty list"]


def test_one_line_json_array_streams_in_byte_chunks(tmp_path, monkeypatch):
    """A minified array is one line: it is read in chunks, and a character cut between chunks survives."""
    monkeypatch.setattr(jsonstream, "CHUNK_CHARS", 7)
    rows = [{"query": f"渡口{i}", "pos": ["桥长一百八十六米"], "neg": ["镇上的人"]} for i in range(5)]
    src = tmp_path / "rows.json"
    src.write_text(json.dumps(rows, ensure_ascii=False), encoding="gb18030")
    with open_text(src) as fh:
        assert [value for _, value in jsonstream.iter_json_values(fh)] == rows
        assert fh.encoding == "gb18030"


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64])
def test_any_chunk_boundary_parses_like_json_loads(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(jsonstream, "CHUNK_CHARS", chunk)
    values = [{"query": "引号\"和\\u转义\u00e9", "pos": ["x" * 40], "neg": [], "pos_scores": [12345.678e-2, -0.5],
               "flag": True, "none": None}, 123456789, -1.25e10, "字符串", [True, False, None], {}]
    src = tmp_path / "values.json"
    src.write_text(json.dumps(values, ensure_ascii=False), encoding="utf-8")
    with open_text(src) as fh:
        assert [value for _, value in jsonstream.iter_json_values(fh)] == values
