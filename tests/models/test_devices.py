"""One device syntax for every verb; the older --devices spelling still works with a note."""
from __future__ import annotations

import pytest

from bgeft.errors import UserError
from bgeft.models.devices import device_spec, half_precision, parse_devices


def _verb_parsers():
    import argparse

    from bgeft.data import mine, score
    from bgeft.eval.cli import build_parser

    out = {}
    for name, module in (("data mine", mine), ("data score", score)):
        p = argparse.ArgumentParser(prog=name)
        module.add_arguments(p)
        out[name] = (p, ["in.jsonl", "-o", "o.jsonl", "--model" if name == "data mine" else "--reranker", "m"])
    ev = build_parser()
    out["eval retriever"] = (ev, ["retriever", "--model", "m", "--data", "d"])
    out["eval reranker"] = (ev, ["reranker", "--model", "m", "--data", "d"])
    out["eval pipeline"] = (ev, ["pipeline", "--retriever", "m", "--reranker", "r", "--data", "d"])
    out["eval bench"] = (ev, ["bench", "--model", "m"])
    return out


@pytest.mark.parametrize("spec", ["auto", "cpu", "cuda", "cuda:1", "npu:0", "cuda:0,cuda:1"])
def test_every_verb_accepts_the_same_device_syntax(spec):
    for name, (parser, argv) in _verb_parsers().items():
        args = parser.parse_args(argv + ["--device", spec])
        assert device_spec(args) == spec, name


def test_old_devices_spelling_still_works(capsys):
    for name in ("data mine", "data score"):
        parser, argv = _verb_parsers()[name]
        args = parser.parse_args(argv + ["--devices", "cuda:0", "cuda:1"])
        assert device_spec(args) == "cuda:0,cuda:1"
        assert "note: --devices is deprecated; write --device cuda:0,cuda:1" in capsys.readouterr().err


def test_parse_devices():
    assert parse_devices("cpu") == parse_devices(["cpu"]) == ["cpu"]
    assert parse_devices(None) == parse_devices("auto")
    assert half_precision(["cuda:0"]) and not half_precision(["cpu"])
    with pytest.raises(UserError, match=r"--device 'gpu0': unknown device 'gpu0'; use auto, cpu, cuda, cuda:N"):
        parse_devices("gpu0")
    with pytest.raises(UserError, match=r"unknown device 'cuda:x'"):
        parse_devices("cuda:x")


def test_cli_device_error_is_one_line(run_cli, tmp_path):
    src = tmp_path / "t.jsonl"
    src.write_text('{"query": "q", "pos": ["p"]}\n', encoding="utf-8")
    code, _, err = run_cli("data", "mine", src, "-o", tmp_path / "o.jsonl", "--model", "bgeft:demo-model",
                           "--range", "0-1", "--device", "tpu")
    assert code == 2 and err.strip().splitlines()[-1].endswith("unknown device 'tpu'; use auto, cpu, cuda, cuda:N, "
                                                               "npu, npu:N or a comma list such as cuda:0,cuda:1")
