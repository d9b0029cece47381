"""What a finished run adds to its output dir: sentence-transformers config files (so the dense
model loads in sentence-transformers as well as FlagEmbedding) and a short model card."""
from __future__ import annotations

import json
from pathlib import Path

from bgeft.train.checkpoints import checkpoints

LOAD_SNIPPETS = {
    "embedder.m3": ("from FlagEmbedding import BGEM3FlagModel\n"
                    "model = BGEM3FlagModel('{out}')\n"
                    "out = model.encode(['...'], return_dense=True, return_sparse=True, return_colbert_vecs=True)"),
    "embedder.base": ("from FlagEmbedding import FlagModel\n"
                      "model = FlagModel('{out}')\nvecs = model.encode(['...'])"),
    "reranker.base": ("from FlagEmbedding import FlagReranker\n"
                      "model = FlagReranker('{out}')\nscore = model.compute_score([['query', 'passage']])"),
}


def write_sentence_transformers_config(output_dir: Path, recipe: dict) -> bool:
    """Transformer -> Pooling (cls/mean as trained) -> Normalize. Returns False if not applicable."""
    config_path = output_dir / "config.json"
    if not config_path.is_file():
        return False
    config = json.loads(config_path.read_text(encoding="utf-8"))
    training, data = recipe.get("training") or {}, recipe.get("data") or {}
    pooling = training.get("sentence_pooling_method", "cls")
    if pooling not in ("cls", "mean", "last_token"):
        return False
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if training.get("normalize_embeddings", True):
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
        (output_dir / "2_Normalize").mkdir(exist_ok=True)
    (output_dir / "1_Pooling").mkdir(exist_ok=True)
    (output_dir / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": config.get("hidden_size"),
        "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": pooling == "last_token",
        "include_prompt": True,
    }, indent=2) + "\n", encoding="utf-8")
    (output_dir / "modules.json").write_text(json.dumps(modules, indent=2) + "\n", encoding="utf-8")
    (output_dir / "sentence_bert_config.json").write_text(json.dumps({
        "max_seq_length": int(data.get("passage_max_len", 128)), "do_lower_case": False}, indent=2) + "\n",
        encoding="utf-8")
    prompt = data.get("query_instruction_for_retrieval")
    (output_dir / "config_sentence_transformers.json").write_text(json.dumps({
        "prompts": {"query": prompt} if prompt else {},
        "default_prompt_name": None,
        "similarity_fn_name": "cosine" if training.get("normalize_embeddings", True) else "dot",
    }, indent=2) + "\n", encoding="utf-8")
    return True


def _final_loss(output_dir: Path) -> str:
    found = checkpoints(output_dir)
    state = found[-1] / "trainer_state.json" if found else None
    if not state or not state.is_file():
        return "not recorded (no checkpoint kept)"
    history = json.loads(state.read_text(encoding="utf-8")).get("log_history", [])
    losses = [h["loss"] for h in history if "loss" in h]
    return f"{losses[-1]:.4f} at step {history[-1].get('step')}" if losses else "not logged"


def write_model_card(output_dir: Path, recipe: dict, recipe_path: Path, command: str) -> None:
    task = recipe.get("task", "")
    model, data, training = (recipe.get(k) or {} for k in ("model", "data", "training"))
    snippet = LOAD_SNIPPETS.get(task, "").format(out=output_dir)
    lines = [
        f"# {output_dir.name}",
        "",
        f"Fine-tuned with bgeft on FlagEmbedding (task `{task}`).",
        "",
        "| | |", "|---|---|",
        f"| base model | `{model.get('model_name_or_path')}` |",
        f"| training data | {', '.join(f'`{p}`' for p in data.get('train_data') or [])} |",
        f"| recipe | `{recipe_path}` (resolved copy: `bgeft_run.yaml`) |",
        f"| learning rate | {training.get('learning_rate', 'FlagEmbedding default')} |",
        f"| epochs / max steps | {training.get('num_train_epochs', 'default')} / {training.get('max_steps', '-')} |",
        f"| last logged loss | {_final_loss(output_dir)} |",
        "",
        "## Command", "", "```", command.strip(), "```",
    ]
    from bgeft.eval.history import card_section

    lines += card_section(output_dir)
    if snippet:
        lines += ["", "## Load it", "", "```python", snippet, "```"]
    if task.startswith("embedder") and (output_dir / "modules.json").is_file():
        lines += ["", "Dense embeddings also load with sentence-transformers:", "", "```python",
                  "from sentence_transformers import SentenceTransformer",
                  f"model = SentenceTransformer('{output_dir}')", "```"]
    (output_dir / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
