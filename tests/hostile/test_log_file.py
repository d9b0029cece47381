"""``--log FILE`` (data and eval verbs) never lands on a file the command reads or writes, nor on a FIFO."""
from __future__ import annotations

import json
import os

ROW = json.dumps({"query": "what is a river", "pos": ["A river is water."], "neg": ["A hill."]}) + "\n"


def test_log_onto_the_input_is_refused(run_cli, tree, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text(ROW * 3)
    tree.snapshot()
    code, out, err = run_cli("data", "validate", data, "--log", data)
    assert code == 2
    assert err == (f"bgeft: error: --log {data}: is also a file this command reads or writes ({data}); "
                   "choose another file\n")
    tree.assert_untouched()


def test_log_onto_the_output_is_refused(run_cli, tree, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text(ROW * 3)
    out_path = tmp_path / "clean.jsonl"
    tree.snapshot()
    code, out, err = run_cli("data", "validate", data, "--fix", out_path, "--log", tmp_path / "." / "clean.jsonl")
    assert code == 2 and "is also a file this command reads or writes" in err
    tree.assert_untouched()


def test_log_onto_a_fifo_is_refused(run_cli, tree, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text(ROW * 3)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    tree.snapshot()
    code, out, err = run_cli("data", "validate", data, "--log", fifo)
    assert (code, err) == (2, f"bgeft: error: --log {fifo}: not a regular file; choose a file path\n")
    tree.assert_untouched()


def test_a_good_log_is_written_and_the_command_runs(run_cli, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text(ROW * 3)
    code, out, err = run_cli("data", "validate", data, "--log", tmp_path / "validate.log")
    assert code == 0 and "3" in out and err == ""
    assert (tmp_path / "validate.log").is_file()
