"""Use a trained language-model run: generate from prompts, evaluate on a held-out file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.errors import ArtifactError, DataError
from modelyard.fsutil import atomic_write_json, atomic_write_text
from modelyard.generation.artifacts import LoadedLM
from modelyard.generation.data import read_conversations, read_documents
from modelyard.generation.generate import SamplingOptions, chat, complete
from modelyard.generation.heldout import LMTask, evaluate_lm
from modelyard.generation.report import samples_markdown
from modelyard.recipe import Recipe


def run_recipe(loaded: LoadedLM) -> Recipe:
    """Return the recipe the run was trained with (validated when the run loaded)."""
    return loaded.recipe


def _spec(loaded: LoadedLM, recipe: Recipe) -> LMTask:
    kind = "decoder" if loaded.is_causal else "encoder"
    return LMTask(recipe.task, kind, recipe.model.max_length, False, recipe.run.seed)


def generate_text(
    loaded: LoadedLM, prompts: list[str], options: SamplingOptions
) -> list[dict[str, Any]]:
    """Return, per prompt, the generated text and its token count.

    A chat run answers each prompt as a user message; a continued-pre-training run continues
    the text. Raises ArtifactError for a masked-LM run, which does not generate.
    """
    if not loaded.is_causal:
        raise ArtifactError(
            f"{loaded.path} is a masked-LM run: it fills masks but does not generate text; use it as "
            "a backbone (model.backbone: the run folder) for a classifier"
        )
    recipe = run_recipe(loaded)
    if recipe.task == "generation":
        system = recipe.generation.system_prompt
        head = [{"role": "system", "content": system}] if system else []
        convos = [[*head, {"role": "user", "content": p}] for p in prompts]
        out = chat(loaded.model, loaded.tokenizer, convos, options)
    else:
        out = complete(loaded.model, loaded.tokenizer, prompts, options)
    return [
        {"prompt": p, "text": t, "tokens": n}
        for p, t, n in zip(prompts, out.texts, out.tokens, strict=True)
    ]


def evaluate_lm_run(loaded: LoadedLM, data: Path, output: Path | None = None) -> dict[str, Any]:
    """Evaluate the run on a held-out file read as its recipe reads data; write and return the metrics.

    Chat runs get loss, perplexity, ROUGE-L, exact match and samples; others loss and
    perplexity. Raises DataError for an unreadable file.
    """
    recipe = run_recipe(loaded)
    report: dict[str, Any] = {}
    if recipe.task == "generation":
        items: list[Any] = read_conversations(data, recipe, report)
    else:
        items = read_documents(data, recipe, report)
    if not items:
        raise DataError(f"{data}: nothing to evaluate")
    device = next(loaded.model.parameters()).device
    metrics = evaluate_lm(
        loaded.model, loaded.tokenizer, items, _spec(loaded, recipe), recipe.generation, device
    )
    metrics.update({k: v for k, v in report.items() if k.startswith("dropped")})
    out = output or loaded.path / "evaluations" / data.stem
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", metrics)
    lines = [f"# {loaded.path.name} on {data.name}", ""]
    lines += [f"- {k}: {v}" for k, v in metrics.items() if k != "samples"]
    if metrics.get("samples"):
        lines += ["", "## Samples", "", samples_markdown(metrics["samples"])]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    metrics["report_dir"] = str(out)
    return metrics
