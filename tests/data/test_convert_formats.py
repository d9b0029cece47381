"""bgeft data convert: every input format converts a small fixture into exactly the expected rows."""
from __future__ import annotations

import json

import pytest


def rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def convert(run_cli, *argv):
    code, out, err = run_cli("data", "convert", *map(str, argv))
    assert code == 0, err
    return out


TRAINING = [
    {"query": "渡口在哪里？", "pos": ["渡口在镇子东头。"], "neg": ["桥在西边。", "学校在山上。"]},
    {"query": "who repairs clocks", "pos": ["The watchmaker repairs clocks."], "neg": [],
     "pos_scores": [5.5], "prompt": "Find the passage."},
]


def test_jsonl_training_rows_pass_through(tmp_path, run_cli):
    src = write(tmp_path / "in.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in TRAINING))
    out = convert(run_cli, src, "-o", tmp_path / "out.jsonl")
    assert "in.jsonl: detected JSONL, training records, encoding utf-8" in out
    assert "wrote 2 training rows" in out
    assert "1 row(s) have no negatives yet: run bgeft data mine" in out
    assert rows(tmp_path / "out.jsonl") == TRAINING


def test_json_array_of_retrieval_records(tmp_path, run_cli):
    records = [{"query": "q1", "positive": "p1", "negative": ["n1", "n2"], "id": 7},
               {"query": "q2", "positive": ["p2a", "p2b"], "negative": "n3"}]
    src = write(tmp_path / "in.json", json.dumps(records, indent=2))
    out = convert(run_cli, src, "-o", tmp_path / "out.jsonl")
    assert "detected JSON, retrieval records" in out
    assert "fields not carried over: id" in out
    assert rows(tmp_path / "out.jsonl") == [
        {"query": "q1", "pos": ["p1"], "neg": ["n1", "n2"]},
        {"query": "q2", "pos": ["p2a", "p2b"], "neg": ["n3"]},
    ]


def test_csv_with_json_and_python_list_cells(tmp_path, run_cli):
    src = write(tmp_path / "in.csv",
                'query,pos,neg,pos_scores\n'
                'q1,"[""p1"", ""p1b""]","[\'n1\', \'n, 2\']","[1, 2.5]"\n'
                '"q2, quoted",p2,,\n')
    out = convert(run_cli, src, "-o", tmp_path / "out.jsonl")
    assert "detected CSV with fields query, pos, neg, pos_scores, training records" in out
    assert rows(tmp_path / "out.jsonl") == [
        {"query": "q1", "pos": ["p1", "p1b"], "neg": ["n1", "n, 2"], "pos_scores": [1.0, 2.5]},
        {"query": "q2, quoted", "pos": ["p2"], "neg": []},
    ]


def test_tsv_with_header(tmp_path, run_cli):
    src = write(tmp_path / "in.tsv", 'query\tpositive\tnegative\nq1\t["p1"]\t["n1", "n2"]\nq2\t"quoted" p2\t\n')
    out = convert(run_cli, src, "-o", tmp_path / "out.jsonl")
    assert "detected TSV with fields query, positive, negative, retrieval records" in out
    assert rows(tmp_path / "out.jsonl") == [
        {"query": "q1", "pos": ["p1"], "neg": ["n1", "n2"]},
        {"query": "q2", "pos": ['"quoted" p2'], "neg": []},
    ]


def test_msmarco_tsv_grouped_by_query(tmp_path, run_cli):
    src = write(tmp_path / "top1000.tsv",
                "1\twhat is a ferry\t10\tA ferry carries people across water.\t1\n"
                "1\twhat is a ferry\t11\tA bridge spans a river.\t0\n"
                "1\twhat is a ferry\t12\tTea is sold at the bridge.\t0\n"
                "2\twho fixes clocks\t20\tThe baker bakes bread.\t0\n"
                "3\twhen was the bridge built\t30\tThe bridge was finished in 1998.\t2\n")
    out = convert(run_cli, src, "-o", tmp_path / "out.jsonl")
    assert "detected MS MARCO TSV (query_id, query, doc_id, document, relevance)" in out
    assert "skipped 1 MS MARCO query without a relevant document" in out
    assert rows(tmp_path / "out.jsonl") == [
        {"query": "what is a ferry", "pos": ["A ferry carries people across water."],
         "neg": ["A bridge spans a river.", "Tea is sold at the bridge."]},
        {"query": "when was the bridge built", "pos": ["The bridge was finished in 1998."], "neg": []},
    ]


def test_dureader(tmp_path, run_cli):
    record = {"question": "渡船几点开？", "answers": ["五点半"], "documents": [
        {"is_selected": True, "title": "t", "paragraphs": ["无关段落", "渡船每天五点半开。"], "most_related_para": 1},
        {"is_selected": False, "title": "t2", "paragraphs": ["桥修了两年。", "桥很长。"]},
    ]}
    other = {"question": "没有答案", "documents": [{"is_relevant": False, "paragraphs": ["x"]}]}
    src = write(tmp_path / "dureader.json", json.dumps(record, ensure_ascii=False) + "\n"
                + json.dumps(other, ensure_ascii=False) + "\n")
    out = convert(run_cli, src, "-o", tmp_path / "out.jsonl")
    assert "detected JSONL, dureader records" in out
    assert "skipped 1 DuReader question without a relevant document" in out
    assert rows(tmp_path / "out.jsonl") == [
        {"query": "渡船几点开？", "pos": ["渡船每天五点半开。"], "neg": ["桥修了两年。\n桥很长。"]}]


def test_dureader_retrieval(tmp_path, run_cli):
    record = {
        "question_id": "q1",
        "question": "桥有多长？",
        "answer_paragraphs": [
            {"paragraph_id": "p1", "paragraph_text": "新桥长一百八十六米。"},
            {"paragraph_id": "p2", "paragraph_text": "桥宽九米。"},
        ],
    }
    src = write(tmp_path / "dureader_retrieval.jsonl", json.dumps(record, ensure_ascii=False) + "\n")
    out = convert(run_cli, src, "-o", tmp_path / "out.jsonl")
    assert "detected JSONL, dureader records" in out
    assert rows(tmp_path / "out.jsonl") == [
        {"query": "桥有多长？", "pos": ["新桥长一百八十六米。", "桥宽九米。"], "neg": []}
    ]


def test_squad(tmp_path, run_cli):
    data = {"version": "v2.0", "data": [{"title": "Town", "paragraphs": [
        {"context": "The ferry leaves at five.", "qas": [
            {"id": "a", "question": "When does the ferry leave?", "answers": [{"text": "five"}]},
            {"id": "b", "question": "What is the mayor's name?", "is_impossible": True, "answers": []}]},
        {"context": "The bridge took two years.", "qas": [
            {"id": "c", "question": "How long did the bridge take?", "answers": []}]},
    ]}]}
    src = write(tmp_path / "squad.json", json.dumps(data, indent=1))
    out = convert(run_cli, src, "-o", tmp_path / "out.jsonl")
    assert "detected JSON, squad records" in out
    assert "skipped 1 SQuAD unanswerable question" in out
    assert rows(tmp_path / "out.jsonl") == [
        {"query": "When does the ferry leave?", "pos": ["The ferry leaves at five."],
         "neg": ["The bridge took two years."]},
        {"query": "How long did the bridge take?", "pos": ["The bridge took two years."],
         "neg": ["The ferry leaves at five."]},
    ]


TOPICS = """<?xml version="1.0" encoding="UTF-8"?>
<topics>
  <topic number="1">
    <query>ferry schedule</query>
    <question>When does the ferry run?</question>
  </topic>
  <topic number="2">
    <title>bridge
      history</title>
  </topic>
</topics>
"""


def test_trec_topics_to_beir_queries(tmp_path, run_cli):
    src = write(tmp_path / "topics.xml", TOPICS)
    out = convert(run_cli, src, "-o", tmp_path / "queries.jsonl")
    assert "detected TREC-style XML topics" in out
    assert "wrote 2 BEIR query rows (_id, text)" in out
    assert rows(tmp_path / "queries.jsonl") == [{"_id": "1", "text": "ferry schedule"},
                                                {"_id": "2", "text": "bridge history"}]


def test_trec_topics_with_qrels_and_corpus(tmp_path, run_cli):
    src = write(tmp_path / "topics.xml", TOPICS)
    qrels = write(tmp_path / "qrels.txt", "1 0 d1 2\n1 0 d2 0\n1 0 missing 0\n2 0 d2 0\n")
    corpus = write(tmp_path / "corpus.jsonl", "".join(json.dumps(d) + "\n" for d in [
        {"_id": "d1", "title": "", "text": "The ferry runs every hour."},
        {"_id": "d2", "title": "", "text": "Tea at the bridge."},
        {"_id": "d3", "title": "", "text": "Unjudged."}]))
    out = convert(run_cli, src, "-o", tmp_path / "out.jsonl", "--qrels", qrels, "--corpus", corpus)
    assert "skipped 1 TREC topic without a relevant document in the corpus" in out
    assert rows(tmp_path / "out.jsonl") == [
        {"query": "ferry schedule", "pos": ["The ferry runs every hour."], "neg": ["Tea at the bridge."]}]


STS = [
    {"sentence1": "The ferry leaves at five.", "sentence2": "At five the ferry departs.", "score": 4.8},
    {"sentence1": "The bridge took two years.", "sentence2": "Building the bridge took two years.", "score": 5},
    {"sentence1": "Tea is sold here.", "sentence2": "The river floods.", "score": 0.4},
]


def test_sts_pairs(tmp_path, run_cli):
    src = write(tmp_path / "sts.jsonl", "".join(json.dumps(r) + "\n" for r in STS))
    out = convert(run_cli, src, "-o", tmp_path / "out.jsonl", "--negatives", "10")
    assert "skipped 1 STS pair scoring below 4" in out
    got = rows(tmp_path / "out.jsonl")
    assert [(r["query"], r["pos"], r["type"], r["prompt"]) for r in got] == [
        ("The ferry leaves at five.", ["At five the ferry departs."], "symmetric_sts",
         "Retrieve semantically similar text."),
        ("The bridge took two years.", ["Building the bridge took two years."], "symmetric_sts",
         "Retrieve semantically similar text."),
    ]
    # negatives: every other sentence of the file, never the row's own pair
    assert sorted(got[0]["neg"]) == sorted(["The bridge took two years.", "Building the bridge took two years.",
                                            "Tea is sold here.", "The river floods."])
    assert sorted(got[1]["neg"]) == sorted(["The ferry leaves at five.", "At five the ferry departs.",
                                            "Tea is sold here.", "The river floods."])


LABELLED = [
    ("明天有雨", "天气"),
    ("主队赢了", "体育"),
    ("台风要来了", "天气"),
    ("新球场开放", "体育"),
    ("面馆开张", "美食"),
]


def test_classification_labels_become_pos_and_neg(tmp_path, run_cli):
    src = write(tmp_path / "labels.csv", "text,label\n" + "".join(f"{t},{lab}\n" for t, lab in LABELLED))
    out = convert(run_cli, src, "-o", tmp_path / "cls-no_in_batch_neg.jsonl", "--prompt", "Classify the text.")
    assert "classification records (text/label; --format classification|clustering chooses)" in out
    assert rows(tmp_path / "cls-no_in_batch_neg.jsonl") == [
        {"query": t, "pos": [lab], "neg": [x for x in ("天气", "体育", "美食") if x != lab],
         "prompt": "Classify the text.", "type": "symmetric_class"} for t, lab in LABELLED]


def test_clustering_pos_is_another_text_of_the_label(tmp_path, run_cli):
    src = write(tmp_path / "labels.jsonl", "".join(json.dumps({"text": t, "label": lab}, ensure_ascii=False) + "\n"
                                                   for t, lab in LABELLED))
    outdir = tmp_path / "topics-no_in_batch_neg"
    out = convert(run_cli, src, "-o", outdir / "train.jsonl", "--format", "clustering", "--negatives", "2")
    assert "skipped 1 clustering text whose label has no other text" in out
    got = rows(outdir / "train.jsonl")
    label = dict(LABELLED)
    assert [r["query"] for r in got] == ["明天有雨", "主队赢了", "台风要来了", "新球场开放"]
    for r in got:
        assert r["type"] == "symmetric_clustering"
        assert r["pos"] != [r["query"]] and label[r["pos"][0]] == label[r["query"]]
        assert len(r["neg"]) == 2 and all(label[n] != label[r["query"]] for n in r["neg"])


def test_label_data_needs_a_no_in_batch_neg_output(tmp_path, run_cli):
    src = write(tmp_path / "labels.csv", "text,label\n" + "".join(f"{t},{lab}\n" for t, lab in LABELLED))
    code, _, err = run_cli("data", "convert", str(src), "-o", str(tmp_path / "cls.jsonl"))
    assert code == 2
    assert "classification rows must train without in-batch negatives" in err
    assert "cls-no_in_batch_neg.jsonl" in err
    assert not (tmp_path / "cls.jsonl").exists()


def test_inputs_of_different_kinds_are_refused(tmp_path, run_cli):
    a = write(tmp_path / "a.jsonl", json.dumps(TRAINING[0], ensure_ascii=False) + "\n")
    b = write(tmp_path / "b.jsonl", json.dumps(STS[0]) + "\n")
    code, _, err = run_cli("data", "convert", str(a), str(b), "-o", str(tmp_path / "out.jsonl"))
    assert code == 2 and "inputs have different kinds of records" in err and "b.jsonl: sts" in err


def test_several_inputs_concatenate(tmp_path, run_cli):
    a = write(tmp_path / "a.jsonl", json.dumps(TRAINING[0], ensure_ascii=False) + "\n")
    b = write(tmp_path / "b.json", json.dumps([{"query": "q", "positive": "p", "negative": ["n"]}]))
    convert(run_cli, a, b, "-o", tmp_path / "out.jsonl")
    assert rows(tmp_path / "out.jsonl") == [TRAINING[0], {"query": "q", "pos": ["p"], "neg": ["n"]}]


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "tsv"])
def test_forced_container_format(tmp_path, run_cli, fmt):
    text = {"jsonl": '{"query": "q", "pos": ["p"], "neg": ["n"]}\n',
            "json": '[{"query": "q", "pos": ["p"], "neg": ["n"]}]',
            "csv": "query,pos,neg\nq,p,n\n", "tsv": "query\tpos\tneg\nq\tp\tn\n"}[fmt]
    src = write(tmp_path / "data.txt", text)
    convert(run_cli, src, "-o", tmp_path / "out.jsonl", "--format", fmt)
    assert rows(tmp_path / "out.jsonl") == [{"query": "q", "pos": ["p"], "neg": ["n"]}]


@pytest.mark.parametrize("name,fmt,out_name", [
    ("sts_pairs.jsonl", "auto", "sts.jsonl"),
    ("classification.jsonl", "classification", "cls-no_in_batch_neg.jsonl"),
    ("clustering.jsonl", "clustering", "clu-no_in_batch_neg.jsonl"),
])
def test_converted_example_data_passes_validate(tmp_path, run_cli, example_data, name, fmt, out_name):
    from bgeft.data.validate import check_training_data

    out = tmp_path / out_name
    convert(run_cli, example_data / "raw" / name, "-o", out, "--format", fmt)
    report = check_training_data([out], kd_required=False)
    assert report.ok, report.format()
    assert report.rows_checked == len(out.read_text(encoding="utf-8").splitlines()) > 0


def test_drawn_negatives_are_reproducible(tmp_path, run_cli, example_data):
    src = example_data / "raw" / "clustering.jsonl"
    for name in ("a-no_in_batch_neg.jsonl", "b-no_in_batch_neg.jsonl"):
        convert(run_cli, src, "-o", tmp_path / name, "--format", "clustering", "--negatives", "3")
    convert(run_cli, src, "-o", tmp_path / "c-no_in_batch_neg.jsonl", "--format", "clustering", "--negatives", "3",
            "--seed", "7")
    a, b, c = (tmp_path / f"{x}-no_in_batch_neg.jsonl" for x in "abc")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
