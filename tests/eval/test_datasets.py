"""Loading the three accepted layouts, and the exact messages for broken data directories."""
import json

import pytest

from bgeft.errors import UserError
from bgeft.eval.datasets import load_eval_data, write_custom_layout
from tests.eval.helpers import DOCS, QRELS, QUERIES, write_beir


def test_beir_with_graded_qrels_and_a_query_without_relevant_docs(tmp_path):
    data = load_eval_data(write_beir(tmp_path / "d"))
    assert data.layout == "beir" and len(data.corpus) == 6
    assert data.qrels["q1"] == {"d1": 2, "d5": 1}
    assert data.skipped == ["q4"] and "q4" not in data.eval_qids
    assert data.doc_texts()[0] == "River the river runs past the old town and the ferry crosses it"


def test_custom_layout_round_trip_equals_beir(tmp_path):
    beir = load_eval_data(write_beir(tmp_path / "d"))
    custom = load_eval_data(write_custom_layout(beir, tmp_path / "custom"))
    assert custom.layout == "custom"
    assert (custom.corpus, custom.qrels) == (beir.corpus, beir.qrels)
    assert custom.corpus_fingerprint() == beir.corpus_fingerprint()


def test_training_jsonl_becomes_corpus_of_all_passages(tmp_path):
    f = tmp_path / "train.jsonl"
    rows = [{"query": "q a", "pos": ["p1"], "neg": ["n1", "p2"]}, {"query": "q b", "pos": ["p2", "p3"], "neg": ["n1"]}]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    data = load_eval_data(f)
    assert data.layout == "train-jsonl"
    assert [d["text"] for d in data.corpus.values()] == ["p1", "n1", "p2", "p3"]
    assert data.qrels == {"q0": {"d0": 1}, "q1": {"d2": 1, "d3": 1}}


def test_missing_qrels(tmp_path):
    root = write_beir(tmp_path / "d", qrels_file=False)
    with pytest.raises(UserError, match=r"d: missing qrels/test\.tsv; BEIR data needs corpus\.jsonl, queries\.jsonl "
                                        r"and qrels/test\.tsv with rows query-id<TAB>corpus-id<TAB>score"):
        load_eval_data(root)


def test_qrels_naming_unknown_ids(tmp_path):
    root = write_beir(tmp_path / "d", qrels=QRELS + [("q1", "d99", 1), ("q77", "d1", 1)])
    with pytest.raises(UserError, match=r"test\.tsv: 2 judgement\(s\) name unknown ids: line 8: corpus-id 'd99' is "
                                        r"not in corpus\.jsonl; line 9: query-id 'q77' is not in the queries file; "
                                        r"fix the ids or delete those rows"):
        load_eval_data(root)


def test_empty_corpus(tmp_path):
    root = write_beir(tmp_path / "d", docs={})
    with pytest.raises(
        UserError, match=r"corpus\.jsonl: corpus is empty; add one JSON object per line with _id, title, text"
    ):
        load_eval_data(root)


def test_missing_corpus(tmp_path):
    root = write_beir(tmp_path / "d")
    (root / "corpus.jsonl").unlink()
    with pytest.raises(
        UserError, match=r"d: missing corpus\.jsonl; BEIR data needs corpus\.jsonl \(_id, title, text\)"
    ):
        load_eval_data(root)


def test_bad_json_line_names_file_and_line(tmp_path):
    root = write_beir(tmp_path / "d")
    with (root / "queries.jsonl").open("a") as fh:
        fh.write("{not json\n")
    with pytest.raises(UserError, match=r"queries\.jsonl:5: not valid JSON"):
        load_eval_data(root)


def test_no_data_at_all(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"empty: corpus\.jsonl not found; expected a BEIR directory"):
        load_eval_data(tmp_path / "empty")


def test_cli_reports_bad_data_dir(run_cli, tmp_path, m3_tiny):
    root = write_beir(tmp_path / "d", qrels_file=False)
    code, _, err = run_cli("eval", "retriever", "--model", m3_tiny, "--data", root, "--device", "cpu")
    assert code == 2
    assert err.startswith("bgeft: error: ") and "missing qrels/test.tsv" in err


def test_fixture_sizes_are_consistent():
    assert len(QUERIES) == 4 and len(DOCS) == 6
