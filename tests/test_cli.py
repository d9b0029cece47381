"""The `bgeft` verbs that need no training: ls, cat, cp, validate, env, demo-model, --help."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def test_ls_lists_every_shipped_recipe_with_its_summary(run_cli):
    code, out, _ = run_cli("ls")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert names == sorted(p.stem for p in (REPO / "recipes").glob("*.yaml"))
    assert any(line.startswith("bge-m3_unified") and "self-distillation" in line for line in out.splitlines())


def test_cat_prints_the_recipe_and_suggests_on_typo(run_cli):
    code, out, _ = run_cli("cat", "bge-reranker")
    assert code == 0 and out == (REPO / "recipes" / "bge-reranker.yaml").read_text(encoding="utf-8")
    code, _, err = run_cli("cat", "bge-m3_unifed")
    assert code == 2
    assert "bgeft: error: no shipped recipe named 'bge-m3_unifed' (did you mean bge-m3_unified" in err


def test_cp_copy_validates_from_anywhere(run_cli, tmp_path, monkeypatch):
    code, out, _ = run_cli("cp", "bge-m3_unified", tmp_path)
    assert code == 0 and out.strip() == f"copied bge-m3_unified to {tmp_path / 'bge-m3_unified.yaml'}"
    copied = (tmp_path / "bge-m3_unified.yaml").read_text(encoding="utf-8")
    assert f"{REPO / 'ds_configs'}/zero0.json" in copied and "../ds_configs" not in copied
    assert copied.splitlines()[0].startswith("# BGE-M3 unified")  # comments survive
    monkeypatch.chdir("/")
    assert run_cli("validate", tmp_path / "bge-m3_unified.yaml")[0] == 0
    code, _, err = run_cli("cp", "bge-m3_unified", tmp_path)
    assert code == 2 and "already exists; choose another DEST or delete it first" in err


def test_validate_cli_reports_every_problem_with_exit_2(run_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"task": "reranker.base", "model": {"model_name_or_path": "x"},
                                   "data": {"train_data": [str(tmp_path)]},
                                   "training": {"output_dir": "o", "learning_rat": 1}}), encoding="utf-8")
    code, _, err = run_cli("validate", bad, "training.max_steps=abc")
    assert code == 2
    assert err.startswith(f"bgeft: error: 3 problem(s) in {bad}:")
    assert f"{bad}:8: training.learning_rat: unknown key (did you mean learning_rate?)" in err
    assert "override 'training.max_steps=abc': training.max_steps: expected an integer, got 'abc'" in err
    assert "training.dataloader_drop_last: must be true for rerankers" in err


def test_validate_accepts_a_shipped_name_and_intermixed_flags(run_cli):
    code, out, _ = run_cli("validate", "demo_cpu_reranker", "training.max_steps=3")
    assert code == 0 and "OK (task reranker.base" in out


def test_dry_run_prints_the_plan_without_touching_output_dir(run_cli, tmp_path, demo_model):
    out_dir = tmp_path / "run"
    code, out, err = run_cli("train", REPO / "recipes" / "demo_cpu_reranker.yaml", "--dry-run",
                             f"model.model_name_or_path={demo_model}", f"training.output_dir={out_dir}")
    assert code == 0, err
    assert (
        "-m bgeft.train.worker reranker.base" in out
        and "--use_cpu True" in out
        and "--dataloader_drop_last True" in out
    )
    assert not out_dir.exists()


def test_env_reports_versions_and_device(run_cli):
    code, out, _ = run_cli("env")
    assert code == 0
    assert "ok       FlagEmbedding          1.4.2" in out and "device: cpu x1" in out


def test_demo_model_is_m3_ready_and_idempotent(run_cli, tmp_path):
    dest = tmp_path / "m"
    code, out, _ = run_cli("demo-model", dest)
    assert code == 0 and f"M3-ready all-MiniLM-L6-v2 in {dest}" in out
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(dest)
    assert tok.eos_token == "[SEP]" and tok.eos_token_id == tok.sep_token_id
    mtime = (dest / "model.safetensors").stat().st_mtime
    assert run_cli("demo-model", dest)[0] == 0 and (dest / "model.safetensors").stat().st_mtime == mtime
    other = tmp_path / "occupied"
    other.mkdir()
    (other / "x").write_text("x")
    code, _, err = run_cli("demo-model", other)
    assert code == 2 and (f"demo-model DEST {other}: exists and is not empty: choose a new directory "
                          "(--force rebuilds only a directory demo-model made)") in err


def test_help_ls_and_cat_do_not_import_torch():
    code = ("import sys; from bgeft.cli.main import main; [main(a) for a in (['ls'], ['cat', 'demo_cpu_m3'])];"
            " print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False False"
    result = subprocess.run([sys.executable, "-m", "bgeft.cli.main", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "train" in result.stdout and "pipeline" in result.stdout


def test_flagembedding_dataclasses_get_the_last_word(run_cli, tmp_path, demo_model):
    """A recipe that passes the static checks but that HF TrainingArguments rejects fails before launch."""
    code, _, err = run_cli("train", REPO / "recipes" / "demo_cpu_m3.yaml", "--dry-run",
                           f"model.model_name_or_path={demo_model}", f"training.output_dir={tmp_path / 'o'}",
                           "training.load_best_model_at_end=true", "training.eval_strategy=no")
    assert code == 2
    assert "training: FlagEmbedding's EncoderOnlyEmbedderM3TrainingArguments rejects it:" in err
    assert "load_best_model_at_end" in err


def test_the_verb_table_loads_no_heavy_module():
    """`bgeft --help` (and every verb's parser) imports the verb modules explicitly; numpy, scipy, torch,
    transformers, FlagEmbedding and faiss load only inside a verb's run."""
    code = ("import sys\nfrom bgeft.cli.main import build_parser\nbuild_parser()\n"
            "print(sorted(m for m in ('numpy', 'scipy', 'torch', 'transformers', 'FlagEmbedding', 'faiss', 'sklearn')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_group_without_a_sub_verb_prints_its_verbs_with_exit_2(run_cli):
    from bgeft.cli.main import VERBS

    groups = [name for name, (module, _) in VERBS.items() if hasattr(module, "SUB_VERBS")]
    assert groups == ["data", "eval", "pipeline"]
    for group in groups:
        code, out, err = run_cli(group)
        assert code == 2, group
        assert out.startswith(f"usage: bgeft {group} [-h] VERB ...\n"), out
        for verb in VERBS[group][0].SUB_VERBS:
            assert f"    {verb} " in out or f"    {verb}\n" in out, (group, verb)
        assert err == ""
