"""`bgeft eval` argument handling."""


def test_no_verb_prints_help(run_cli):
    code, out, _ = run_cli("eval")
    assert code == 2 and "retriever" in out and "bench" in out


def test_data_is_required(run_cli, m3_tiny):
    code, _, err = run_cli("eval", "retriever", "--model", m3_tiny)
    assert code == 2
    assert err.strip() == ("bgeft: error: bgeft eval retriever: --data DIR is required (BEIR, FlagEmbedding custom "
                           "or training JSONL)")


def test_missing_model_dir(run_cli, beir_dir, tmp_path):
    (tmp_path / "m").mkdir()
    code, _, err = run_cli("eval", "retriever", "--model", tmp_path / "m", "--data", beir_dir)
    assert code == 2 and err.strip().endswith(f"--model {tmp_path / 'm'}: no config.json there; give a model directory "
                                              "saved by save_pretrained / FlagEmbedding, a hub id, or bgeft:demo-model")


def test_bad_batch_sizes(run_cli, m3_tiny):
    code, _, err = run_cli("eval", "bench", "--model", m3_tiny, "--batch-sizes", "1,x")
    assert code == 2 and "--batch-sizes '1,x': expected comma-separated integers" in err
