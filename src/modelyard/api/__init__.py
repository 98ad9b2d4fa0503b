"""The public Python API, one function per stage; the CLI only wraps these functions
(`modelyard.cli.surface` maps every command to its function, and a test checks the map).

Modules: this one (train, evaluate, predict, explain, quickstart, language models, runs),
`experiments` (hyper-parameter search, comparing runs), `registry` (push, aliases),
`security` (API, signing and encryption keys; sign, verify, encrypt, decrypt) and `stages`
(compress, training methods, privacy audit, data tools).
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from modelyard.api.experiments import compare_runs as compare_runs
from modelyard.api.experiments import tune as tune
from modelyard.api.registry import list_models as list_models
from modelyard.api.registry import push as push
from modelyard.api.registry import set_alias as set_alias
from modelyard.api.security import create_api_key as create_api_key
from modelyard.api.security import create_encryption_key as create_encryption_key
from modelyard.api.security import create_signing_key as create_signing_key
from modelyard.api.security import decrypt as decrypt
from modelyard.api.security import encrypt as encrypt
from modelyard.api.security import list_api_keys as list_api_keys
from modelyard.api.security import revoke_api_key as revoke_api_key
from modelyard.api.security import sign as sign
from modelyard.api.security import verify as verify
from modelyard.api.stages import audit as audit
from modelyard.api.stages import audit_membership as audit_membership
from modelyard.api.stages import compress as compress
from modelyard.api.stages import compression_methods as compression_methods
from modelyard.api.stages import merge as merge
from modelyard.api.stages import scan_pii as scan_pii
from modelyard.api.stages import simulate_al as simulate_al
from modelyard.api.stages import training_methods as training_methods
from modelyard.curation.api import label_import as label_import
from modelyard.curation.api import label_next as label_next
from modelyard.curation.relabel import set_label as relabel
from modelyard.curation.relabel import undo_last as undo_label
from modelyard.errors import DataError
from modelyard.explainability.api import evaluate_explanations as evaluate_explanations
from modelyard.explainability.api import explain as explain
from modelyard.explainability.api import explain_file as explain_file
from modelyard.federated.deploy import join_federation as join_federation
from modelyard.federated.deploy import serve_federation as serve_federation
from modelyard.federated.keys import create_keys as create_federation_keys
from modelyard.federated.run import federate as federate
from modelyard.fsutil import atomic_write_text
from modelyard.inference import Predictions, backend_predictions, predict_proba
from modelyard.inference import predict_file as _predict_file
from modelyard.pipeline import RunResult, run_training
from modelyard.recipe import DEFAULT_BACKBONE, DEFAULT_MAX_LENGTH, Recipe, build_recipe, load_recipe
from modelyard.registry.run import LoadedRun, load_run

DEMO_DATA = "support_tickets.csv"


def _as_recipe(recipe: Recipe | str | Path, overrides: list[str] | None) -> Recipe:
    if isinstance(recipe, Recipe):
        if overrides:
            return build_recipe(recipe.model_dump(mode="json"), "recipe", overrides)
        return recipe
    return load_recipe(recipe, overrides)


def _lm_kind(run: Any) -> bool:
    """Return True when `run` is a path to a language-model run (causal or masked LM)."""
    if not isinstance(run, str | Path) or not (Path(run) / "manifest.json").is_file():
        return False
    from modelyard.generation import LM_KINDS
    from modelyard.registry.manifest import read_manifest

    return read_manifest(Path(run)).get("kind") in LM_KINDS


def _tagger_kind(run: Any) -> bool:
    """Return True when `run` is a path to a token-classification run."""
    from modelyard.tagging import is_tagger

    return isinstance(run, str | Path) and is_tagger(run)


def _head_kind(run: Any) -> bool:
    """Return True when `run` is a path to a multi-label or regression run."""
    from modelyard.seqtasks import head_kind

    return isinstance(run, str | Path) and head_kind(run) is not None


def generate(
    run: str | Path,
    prompts: list[str] | str,
    max_tokens: int = 128,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Return the text a language-model run generates for each prompt (greedy at temperature 0).

    A chat run (task generation) answers each prompt as a user message; a continued
    pre-training run continues it. Raises ArtifactError for a run that cannot generate.
    """
    from modelyard.generation import SamplingOptions, load_lm_run
    from modelyard.generation.use import generate_text

    batch = [prompts] if isinstance(prompts, str) else list(prompts)
    options = SamplingOptions(max_tokens, temperature, top_p, seed)
    return generate_text(load_lm_run(run), batch, options)


def _as_run(run: LoadedRun | str | Path) -> LoadedRun:
    return run if isinstance(run, LoadedRun) else load_run(run)


def _backend(run: LoadedRun | str | Path) -> Any | None:
    """Return the inference backend of a non-PyTorch artifact (ONNX, ...), or None for a run."""
    from modelyard.registry.manifest import read_manifest
    from modelyard.registry.run import loads_as_torch_run

    if isinstance(run, LoadedRun):
        return None
    if loads_as_torch_run(read_manifest(Path(run)).get("kind", "classifier")):
        return None
    from modelyard.backends import load_backend

    return load_backend(run)


def train(
    recipe: Recipe | str | Path,
    overrides: list[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    nproc: int | None = None,
    nnodes: int = 1,
    node_rank: int | None = None,
    rdzv_endpoint: str | None = None,
    rdzv_id: str | None = None,
) -> RunResult:
    """Train the run a recipe describes and return its directory and figures.

    `recipe` is a Recipe or a YAML path; `overrides` are `key.sub=value` strings. With
    `resume`, continue an interrupted run from its last checkpoint. With `nproc`, train
    data-parallel in that many processes on this node (`nnodes`, `node_rank`, `rdzv_endpoint`
    and `rdzv_id` join nodes; see docs/training.md). Raises a ModelyardError subclass for a
    user's mistake.
    """
    resolved = _as_recipe(recipe, overrides)
    if nproc is None and (nnodes, node_rank, rdzv_endpoint, rdzv_id) == (1, None, None, None):
        return run_training(resolved, resume=resume, overwrite=overwrite, progress=progress)
    from modelyard.api.distributed import train_distributed
    from modelyard.errors import LaunchError
    from modelyard.trainer.launch import LaunchPlan

    if nproc is None:
        raise LaunchError("--nnodes, --node-rank and --rdzv-* go with --nproc N (processes a node)")
    plan = LaunchPlan(nproc, nnodes, node_rank, rdzv_endpoint, rdzv_id)
    return train_distributed(resolved, plan, resume, overwrite, progress)


def evaluate(
    run: LoadedRun | str | Path,
    data: str | Path,
    text_column: str | None = None,
    label_column: str | None = None,
    output: str | Path | None = None,
    robustness: bool = False,
) -> dict[str, Any]:
    """Evaluate a run or artifact of any kind on a labelled file; return the metrics and write
    them to `output`.

    `output` defaults to `RUN/evaluations/<file stem>/` (outside the run's manifest). With
    `robustness`, accuracy under seeded character- and word-level noise is added.
    Raises DataError for a bad file or a label the model does not know.
    """
    from modelyard.backends import TorchBackend, evaluate_file
    from modelyard.registry import read_recipe

    if _lm_kind(run):
        from modelyard.generation import load_lm_run
        from modelyard.generation.use import evaluate_lm_run

        return evaluate_lm_run(
            load_lm_run(Path(str(run))), Path(data), Path(output) if output else None
        )
    if _tagger_kind(run):
        from modelyard.tagging.use import evaluate_tagger_file

        return evaluate_tagger_file(Path(str(run)), Path(data), Path(output) if output else None)
    if _head_kind(run):
        from modelyard.seqtasks.use import evaluate_head_file

        return evaluate_head_file(Path(str(run)), Path(data), Path(output) if output else None)
    backend = _backend(run)
    if backend is None:
        loaded = _as_run(run)
        backend, recipe = TorchBackend.from_run(loaded), loaded.recipe
    else:
        recipe = read_recipe(backend.path)
    out = Path(output) if output else None
    return evaluate_file(backend, recipe, Path(data), text_column, label_column, out, robustness)


def predict(
    run: LoadedRun | str | Path,
    texts: list[str] | str,
    batch_size: int = 32,
    top_k: int | None = None,
) -> list[dict[str, Any]]:
    """Return, for each text, `predicted_label`, `predicted_score`, `truncated` and
    `probabilities` (most probable first; the `top_k` most probable, every class when None).

    For a language-model run, the generated text of each prompt (see `generate`); for a
    token-classification run, each text's `entities` (label, start, end, text, score: character
    offsets into the text), its `words` and their `tags`, and `truncated`; for a multi-label
    run, `labels` (at or above their tuned thresholds) and `probabilities`; for a regression
    run, `value`.
    """
    batch = [texts] if isinstance(texts, str) else list(texts)
    if _lm_kind(run):
        return generate(Path(str(run)), batch)
    if _tagger_kind(run):
        from modelyard.tagging.use import predict_run

        return predict_run(Path(str(run)), batch, batch_size)
    if _head_kind(run):
        from modelyard.seqtasks import load_head_run

        return load_head_run(Path(str(run))).predict(batch, batch_size)
    backend = _backend(run)
    if backend is not None:
        return list(backend_predictions(backend, batch).records(top_k))
    preds: Predictions = predict_proba(_as_run(run), batch, batch_size=batch_size)
    return list(preds.records(top_k))


def predict_file(
    run: LoadedRun | str | Path,
    source: str | Path,
    output: str | Path,
    text_column: str = "text",
    batch_size: int = 32,
) -> Path:
    """Predict every row of `source` and write CSV or JSONL to `output`; return its path.

    Raises ArtifactError for a language-model run (generate from prompts with `generate`).
    """
    if _lm_kind(run):
        from modelyard.errors import ArtifactError

        raise ArtifactError(
            f"{run} is a language-model run: file prediction classifies rows; generate with "
            '`modelyard predict RUN "prompt"` (or modelyard.api.generate)'
        )
    if _tagger_kind(run) or _head_kind(run):
        from modelyard.errors import ArtifactError

        raise ArtifactError(
            f"{run} is not a classification run: file prediction classifies rows; predict texts "
            'with `modelyard predict RUN "text"` (or modelyard.api.predict)'
        )
    model = _backend(run) or _as_run(run)
    return _predict_file(model, Path(source), Path(output), text_column, batch_size)


def demo_data_path() -> Path:
    """Return the path of the bundled demo dataset (support tickets, 4 classes)."""
    packaged = resources.files("modelyard") / "demo" / DEMO_DATA
    if packaged.is_file():
        return Path(str(packaged))
    source_tree = Path(__file__).resolve().parents[3] / "examples" / DEMO_DATA
    if source_tree.is_file():
        return source_tree
    raise DataError(
        f"the demo dataset {DEMO_DATA} is missing from this installation; reinstall modelyard"
    )


def quickstart_recipe(output_dir: str | Path = "runs", name: str = "quickstart") -> Recipe:
    """Return the recipe of the demo run: the bundled dataset and the default backbone."""
    return build_recipe(
        {
            "run": {"name": name, "output_dir": str(output_dir), "seed": 42},
            "data": {"path": str(demo_data_path()), "split": {"dev": 0.1, "test": 0.15}},
            "model": {"backbone": "minilm-l6", "max_length": 64},
            "train": {"batch_size": 16, "lr": 8e-5, "checkpoint_every": None},
        }
    )


def next_free_name(output_dir: str | Path, name: str) -> str:
    """Return `name`, or `name-2`, `name-3`, ... : the first that names no folder in `output_dir`."""
    root, candidate, n = Path(output_dir), name, 1
    while (root / candidate).exists():
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def quickstart(
    output_dir: str | Path = "runs", overwrite: bool = False, progress: bool = True
) -> RunResult:
    """Train, evaluate and save the demo run on the embedded defaults; return its result.

    An earlier `OUTPUT_DIR/quickstart` is kept: the new run goes to `quickstart-2`, `-3`, ...
    unless `overwrite` replaces it.
    """
    name = "quickstart" if overwrite else next_free_name(output_dir, "quickstart")
    return run_training(quickstart_recipe(output_dir, name), overwrite=overwrite, progress=progress)


def list_runs(runs: str | Path = "runs") -> list[dict[str, Any]]:
    """Return every run folder under `runs`, newest first: name, task, method, the headline
    metric (accuracy, else macro-F1, else none), its value, status, creation date and path."""
    from modelyard.registry.summary import is_run_dir, summarise

    root = Path(runs)
    if not root.is_dir():
        raise DataError(f"no runs folder at {root}; train one with `modelyard quickstart`")
    found = [summarise(p.name, p, "runs") for p in sorted(root.iterdir()) if is_run_dir(p)]
    rows = []
    for run in sorted(found, key=lambda r: r.created, reverse=True):
        metric = next((k for k in ("accuracy", "macro_f1") if k in run.metrics), None)
        rows.append(
            {
                "name": run.name,
                "task": run.task,
                "method": run.method,
                "metric": metric,
                "value": run.metrics.get(metric) if metric else None,
                "status": run.status,
                "created": run.created,
                "path": str(run.path),
            }
        )
    return rows


def init_project(directory: str | Path, overwrite: bool = False) -> Path:
    """Create `directory` with a commented recipe and a copy of the demo data; return the recipe path.

    Raises DataError when the recipe already exists and `overwrite` is false.
    """
    from modelyard.templates import RECIPE_TEMPLATE

    root = Path(directory)
    recipe = root / "recipe.yaml"
    if recipe.exists() and not overwrite:
        raise DataError(f"{recipe} already exists; pass --overwrite to replace it")
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(demo_data_path(), root / "data.csv")
    atomic_write_text(recipe, RECIPE_TEMPLATE)
    return recipe


def export(
    run: str | Path,
    format: str = "hf",
    quant: str = "f16",
    output: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Export a language-model run: `hf` (adapters merged into a standalone Hugging Face folder,
    itself a run whose manifest names its parent) or `gguf` (one llama.cpp file, f16 or q8_0).

    Returns the path written. Raises ArtifactError for a run that cannot be exported there.
    """
    from modelyard.generation.export import export_run

    return export_run(Path(run), format, quant, Path(output) if output else None, overwrite)


__all__ = [
    "audit",
    "audit_membership",
    "compare_runs",
    "compress",
    "compression_methods",
    "create_api_key",
    "create_encryption_key",
    "create_federation_keys",
    "create_signing_key",
    "decrypt",
    "encrypt",
    "evaluate",
    "evaluate_explanations",
    "explain",
    "explain_file",
    "export",
    "federate",
    "generate",
    "init_project",
    "join_federation",
    "label_import",
    "label_next",
    "list_api_keys",
    "list_models",
    "list_runs",
    "merge",
    "predict",
    "predict_file",
    "push",
    "quickstart",
    "relabel",
    "revoke_api_key",
    "scan_pii",
    "serve_federation",
    "set_alias",
    "sign",
    "simulate_al",
    "train",
    "training_methods",
    "tune",
    "undo_label",
    "verify",
    "zeroshot",
]


def zeroshot(
    labels_file: str | Path,
    data: str | Path,
    output: str | Path = "runs/zeroshot",
    backbone: str = DEFAULT_BACKBONE,
    max_length: int = DEFAULT_MAX_LENGTH,
    temperature: float = 0.05,
    text_column: str = "text",
    label_column: str = "label",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Build the zero-shot artifact at `output`, evaluate it on `data` and return the metrics.

    The report goes to `output/evaluations/<data stem>/` as `modelyard evaluate` writes it.
    Raises DataError, ArtifactError or BackboneError as `build_zeroshot` and `evaluate` do.
    """
    from modelyard.methods.zeroshot import build_zeroshot

    path = build_zeroshot(labels_file, output, backbone, max_length, temperature, overwrite, data)
    metrics = evaluate(path, data, text_column, label_column)
    metrics["run_dir"] = str(path)
    return metrics
