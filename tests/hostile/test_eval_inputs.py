"""Eval refuses what would make its numbers garbage, and writes only where it may (issue 9, items 2, 13, 15)."""
from __future__ import annotations

import json
import os

import pytest

from bgeft.errors import UserError
from bgeft.eval.datasets import load_eval_data
from bgeft.eval.rerank import load_candidates


def _beir(root, qrels="q1\td1\t1\nq2\td2\t1\n"):
    root.mkdir()
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "title": "", "text": f"passage {i}"}) + "\n"
                                               for i in (1, 2, 3)))
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": f"query {i}"}) + "\n"
                                                for i in (1, 2)))
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    return root


def _retriever(run_cli, data, *extra):
    return run_cli("eval", "retriever", "--model", data.parent / "no-model", "--data", data, *extra)


@pytest.mark.parametrize("weights, shown", [("nan,0.2,0.4", "[nan, 0.2, 0.4]"), ("0.4,inf,0.4", "[0.4, inf, 0.4]"),
                                            ("0.4,0.2,-inf", "[0.4, 0.2, -inf]")])
def test_hybrid_weights_must_be_finite(run_cli, tree, tmp_path, weights, shown):
    data = _beir(tmp_path / "beir")
    tree.snapshot()
    code, _, err = _retriever(run_cli, data, "--weights", weights)
    assert (code, err) == (2, f"bgeft: error: --weights {shown}: expected three finite non-negative numbers "
                              "dense,sparse,colbert (not all zero) such as 0.4,0.2,0.4\n")
    tree.assert_untouched()


def test_conflicting_duplicate_qrels(run_cli, tree, tmp_path):
    data = _beir(tmp_path / "beir", "q1\td1\t1\nq2\td2\t1\nq1\td1\t0\n")
    tree.snapshot()
    code, _, err = _retriever(run_cli, data)
    assert (code, err) == (2, f"bgeft: error: {data / 'qrels' / 'test.tsv'}:4: query-id 'q1', corpus-id 'd1' is judged "
                              "0 here but 1 on line 2; keep one judgement per pair\n")
    tree.assert_untouched()


def test_identical_duplicate_qrels_are_harmless(tmp_path):
    data = load_eval_data(_beir(tmp_path / "beir", "q1\td1\t1\nq2\td2\t1\nq1\td1\t1\n"))
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}}


@pytest.mark.parametrize("score", ["0.5", "inf", "nan", "-inf", "1e400"])
def test_non_integer_grades_are_refused(run_cli, tree, tmp_path, score):
    data = _beir(tmp_path / "beir", f"q1\td1\t{score}\nq2\td2\t1\n")
    tree.snapshot()
    code, _, err = _retriever(run_cli, data)
    assert (code, err) == (2, f"bgeft: error: {data / 'qrels' / 'test.tsv'}:2: score {score!r} is not an integer "
                              "relevance grade; use 0, 1, 2... (ranking metrics take whole grades: 0.5 would silently "
                              "count as 0)\n")
    tree.assert_untouched()


def test_whole_number_grades_still_load(tmp_path):
    data = load_eval_data(_beir(tmp_path / "beir", "q1\td1\t1.0\nq2\td2\t2\n"))
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}


@pytest.mark.parametrize("text, where, shown", [
    ('{"q1": {"d1": Infinity, "d2": 0.5}}', "query 'q1', doc 'd1'", "inf"),
    ('{"q1": {"d1": NaN}}', "query 'q1', doc 'd1'", "nan"),
    ('{"q1": {"d1": "high"}}', "query 'q1', doc 'd1'", "'high'"),
    ("q1 Q0 d1 1 inf run\n", "line 1", "'inf'"),
])
def test_candidate_scores_must_be_finite(tmp_path, text, where, shown):
    data = load_eval_data(_beir(tmp_path / "beir"))
    run = tmp_path / "run.json"
    run.write_text(text)
    with pytest.raises(UserError) as info:
        load_candidates(run, data)
    assert str(info.value) == (f"{run}: {where}: score {shown} is not a finite number; candidates are ranked by "
                               "score, so every score must be a real number")


def test_fifo_qrels_are_refused_not_read(run_cli, tree, tmp_path):
    data = _beir(tmp_path / "beir")
    (data / "qrels" / "test.tsv").unlink()
    os.mkfifo(data / "qrels" / "test.tsv")
    tree.snapshot()
    with pytest.raises(UserError, match=r"^qrels .*test.tsv: is a FIFO \(named pipe\), not a regular file; bgeft reads "
                                        r"only regular files \(copy the data into a file first\)$"):
        load_eval_data(data)
    tree.assert_untouched()


def test_fifo_candidates_are_refused(tmp_path):
    data = load_eval_data(_beir(tmp_path / "beir"))
    os.mkfifo(tmp_path / "run.json")
    with pytest.raises(UserError, match=r"^--candidates .*run.json: is a FIFO \(named pipe\), not a regular file"):
        load_candidates(tmp_path / "run.json", data)


def test_out_may_not_hold_the_data_or_be_the_working_directory(run_cli, tree, tmp_path, monkeypatch):
    data = _beir(tmp_path / "beir")
    tree.snapshot()
    code, _, err = _retriever(run_cli, data, "--out", tmp_path)
    assert (code, err) == (2, f"bgeft: error: --out {tmp_path}: contains the input {data}; writing there could "
                              "destroy it: choose an output outside the inputs\n")
    monkeypatch.chdir(tmp_path / "beir")
    code, _, err = _retriever(run_cli, data, "--out", ".")
    assert (code, err) == (2, "bgeft: error: --out .: is the working directory; bgeft never writes over it: choose "
                              "a new directory (e.g. outputs/NAME)\n")
    link = tmp_path / "cache-link"
    link.symlink_to(data)
    tree.snapshot()
    code, _, err = _retriever(run_cli, data, "--cache-dir", link)
    assert (code, err) == (2, f"bgeft: error: --cache-dir {link}: is a symbolic link (to {data}); bgeft does not "
                              "replace links: give the real path of the output instead\n")
    tree.assert_untouched()
