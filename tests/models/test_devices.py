"""One device syntax for every verb; the older --devices spelling still works with a note."""
from __future__ import annotations

import pytest

from bgeft.errors import UserError
from bgeft.models.devices import device_spec, half_precision, parse_devices


def _verb_parsers():
    """Every verb of the one verb table that takes --device, with the arguments it needs (parsed by ``bgeft``'s
    own parser); a new verb with --device and no entry here fails the completeness check below."""
    from bgeft.cli.main import build_parser

    top = build_parser()
    needs = {
        "data mine": ["in.jsonl", "-o", "o.jsonl", "--model", "m"],
        "data score": ["in.jsonl", "-o", "o.jsonl", "--reranker", "m"],
        "eval retriever": ["--model", "m", "--data", "d"],
        "eval reranker": ["--model", "m", "--data", "d"],
        "eval pipeline": ["--retriever", "m", "--reranker", "r", "--data", "d"],
        "eval compare": ["--baseline", "a", "--candidate", "b", "--data", "d"],
        "eval bench": ["--model", "m"],
    }
    return {name: (top, [*name.split(), *argv]) for name, argv in needs.items()}


def _verbs_with_device() -> set[str]:
    import argparse

    from bgeft.cli.main import build_parser

    def walk(parser, prefix):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, f"{prefix} {name}".strip())
            elif "--device" in action.option_strings:
                yield prefix

    return set(walk(build_parser(), ""))


def test_the_device_test_covers_every_verb_with_a_device_option():
    # `bgeft k8s --device gpu|npu` names the cluster nodes' accelerator kind, not a device of this machine
    assert _verbs_with_device() - {"k8s"} == set(_verb_parsers())


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
