"""`federate`: split the data over clients, run the Flower simulation, save an ordinary run."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from modelyard.data import DataBundle, load_data
from modelyard.errors import ArtifactError, RecipeError
from modelyard.evaluation import classification_metrics, metrics_markdown, plot_confusion
from modelyard.federated.app import (
    FederationSetup,
    ServerOutcome,
    build_model,
    client_app,
    server_app,
    simulated_client,
)
from modelyard.federated.partition import (
    column_partition,
    dirichlet_partition,
    iid_partition,
    parse_partition,
)
from modelyard.federated.payload import load_trainable_state
from modelyard.federated.report import federation_markdown, plot_rounds
from modelyard.fsutil import atomic_write_json, atomic_write_text
from modelyard.model_card import render_model_card
from modelyard.models import load_tokenizer, resolve_backbone
from modelyard.models.encoding import Encoded, encode_split
from modelyard.models.predict import predict_logits
from modelyard.plugins import require
from modelyard.recipe import FederatedConfig, Recipe, load_recipe
from modelyard.registry.manifest import MANIFEST, write_manifest
from modelyard.registry.run import RECIPE

STATE_DIR = "federation"


@dataclass
class FederationResult:
    """A finished federation: the run directory, test metrics and the per-round ledger."""

    run_dir: Path
    metrics: dict[str, Any]
    rounds: list[dict[str, Any]]
    resumed_from: int | None


def with_overrides(recipe: Recipe, clients: int | None, partition: str | None) -> Recipe:
    """Return `recipe` with its `federated` section (a default one if absent) overridden.

    Raises RecipeError when the result is invalid.
    """
    fed = recipe.federated or FederatedConfig()
    update: dict[str, Any] = {}
    if clients is not None:
        update["clients"] = clients
    if partition is not None:
        update["partition"] = partition
    data = recipe.model_dump(mode="json")
    data["federated"] = {**fed.model_dump(mode="json"), **update}
    try:
        return Recipe.model_validate(data)
    except ValueError as err:
        raise RecipeError(f"federate: {err}") from err


def client_shards(recipe: Recipe, bundle: DataBundle) -> list[np.ndarray]:
    """Return each client's row indices into `bundle.train` as `federated.partition` says.

    Raises RecipeError for a bad spec, a column the training file lacks, or too few rows.
    """
    fed = recipe.federated
    assert fed is not None
    scheme, arg = parse_partition(fed.partition)
    seed = recipe.run.seed
    if scheme == "iid":
        return iid_partition(len(bundle.train), fed.clients, seed)
    if scheme == "dirichlet":
        return dirichlet_partition(bundle.train.labels, fed.clients, float(arg or 0), seed)
    return column_partition(_column_values(bundle, str(arg)), fed.clients)


def _column_values(bundle: DataBundle, column: str) -> list[str]:
    split = bundle.train
    if split.rows is None or not split.source:
        raise RecipeError("partition column:NAME needs training rows read from a file")
    frame = pd.read_csv(split.source, dtype=str, keep_default_na=False)
    if column not in frame.columns:
        raise RecipeError(
            f"partition column {column!r} is not in {split.source}; "
            f"its columns are: {', '.join(frame.columns)}"
        )
    values = frame[column].tolist()
    return [values[row - 1] for row in split.rows]


def prepare_federation_dir(recipe: Recipe, resume: bool, overwrite: bool) -> Path:
    """Return the run directory; with `resume`, the interrupted federation's one.

    Raises ArtifactError for a finished or interrupted run without --overwrite/--resume,
    RecipeError when --resume meets a different recipe.
    """
    run_dir = recipe.run_dir()
    saved = run_dir / RECIPE
    if resume:
        if not saved.is_file():
            raise ArtifactError(f"--resume: {run_dir} holds no interrupted federation")
        if yaml.safe_load(saved.read_text(encoding="utf-8")) != recipe.model_dump(mode="json"):
            raise RecipeError(f"--resume: the recipe differs from the one {run_dir} started with")
        return run_dir
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            state = "a finished run" if (run_dir / MANIFEST).is_file() else "an interrupted run"
            raise ArtifactError(
                f"{run_dir} already holds {state}; pass --resume, --overwrite or set run.name=NEW"
            )
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(saved, recipe.to_yaml())
    return run_dir


def federate(
    recipe: Recipe | str | Path,
    clients: int | None = None,
    partition: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    drop: dict[int, int] | None = None,
    overrides: list[str] | None = None,
) -> FederationResult:
    """Train `recipe` across simulated Flower clients and save the result as a run.

    `recipe` is a Recipe or a YAML path (with key=value `overrides`).
    `drop` (round -> client) makes that client fail mid-round, to exercise dropouts.
    Returns the run directory, test metrics and per-round figures. Raises RecipeError,
    DataError, BackboneError or ArtifactError for a user's mistake, MissingExtraError
    without the `federated` extra.
    """
    require("flwr", extra="federated")
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides)
    recipe = with_overrides(recipe, clients, partition)
    fed = recipe.federated
    assert fed is not None
    side = ServerData.load(recipe)
    shards = client_shards(recipe, side.bundle)
    run_dir = prepare_federation_dir(recipe, resume, overwrite)
    setup = side.setup(run_dir, [_subset(side.train, idx) for idx in shards], drop)
    outcome = ServerOutcome()
    simulate(setup, outcome)
    if outcome.state is None:
        raise ArtifactError(f"the federation in {run_dir} finished without global weights")
    return finish(setup, outcome, run_dir, side, [len(s) for s in shards], "flower simulation")


@dataclass
class ServerData:
    """What the server holds: the backbone, tokenizer, labels and the held-out split."""

    recipe: Recipe
    folder: Path
    tokenizer: Any
    bundle: DataBundle
    train: Encoded
    test: Encoded

    @classmethod
    def load(cls, recipe: Recipe) -> ServerData:
        """Resolve the backbone, read the recipe's data and encode train and the held-out split.

        Raises BackboneError or DataError for a user's mistake.
        """
        folder = resolve_backbone(recipe.model.backbone)
        tokenizer = load_tokenizer(folder)
        bundle = load_data(recipe.data, recipe.run.seed)
        max_len = recipe.model.max_length
        held_out = bundle.test if len(bundle.test) else bundle.dev
        return cls(
            recipe,
            folder,
            tokenizer,
            bundle,
            encode_split(tokenizer, bundle.train, max_len),
            encode_split(tokenizer, held_out, max_len),
        )

    def setup(
        self, run_dir: Path, shards: list[Encoded], drop: dict[int, int] | None = None
    ) -> FederationSetup:
        """Return the apps' setup for a federation saving its state under `run_dir`."""
        return FederationSetup(
            recipe=self.recipe,
            folder=self.folder,
            labels=self.bundle.labels,
            pad_id=self.tokenizer.pad_token_id or 0,
            shards=shards,
            test=self.test,
            state_dir=run_dir / STATE_DIR,
            drop=dict(drop or {}),
        )


def simulate(setup: FederationSetup, outcome: ServerOutcome) -> None:
    """Run the Flower simulation engine with one SuperNode per client; fill `outcome`."""
    from flwr.simulation import run_simulation

    fed = setup.recipe.federated
    assert fed is not None
    backend = {
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {
            "num_cpus": fed.simulation_cpus,
            "num_gpus": 0,
            "include_dashboard": False,
            "logging_level": logging.ERROR,
            "log_to_driver": False,
        },
    }
    run_simulation(
        server_app=server_app(setup, outcome),
        client_app=client_app(simulated_client(setup)),
        num_supernodes=fed.clients,
        backend_config=backend,  # type: ignore[arg-type, unused-ignore]
    )


def _subset(data: Encoded, index: np.ndarray) -> Encoded:
    ids = [data.input_ids[i] for i in index]
    types = None if data.token_type_ids is None else [data.token_type_ids[i] for i in index]
    return Encoded(ids, types, [data.labels[i] for i in index], 0)


def finish(
    setup: FederationSetup,
    outcome: ServerOutcome,
    run_dir: Path,
    side: ServerData,
    shard_sizes: list[int],
    engine: str,
) -> FederationResult:
    """Save the global model as an ordinary run: weights, metrics, model card, plot, manifest."""
    from modelyard.methods.catalog import TRAINING_METHODS
    from modelyard.methods.session import MethodSession

    bundle, train, tokenizer = side.bundle, side.train, side.tokenizer
    recipe = setup.recipe
    fed = recipe.federated
    assert fed is not None and outcome.state is not None
    model = build_model(setup)
    load_trainable_state(model, {k: v.numpy() for k, v in outcome.state.items()}, fed.lora_only)
    logits = predict_logits(model, setup.test, setup.pad_id, torch.device("cpu"), None)
    probs = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
    metrics = classification_metrics(
        setup.test.labels, probs, bundle.labels, ece_bins=recipe.evaluate.ece_bins
    )
    metrics["evaluated_on"] = "test" if len(bundle.test) else "dev"
    rounds = sorted(outcome.ledger.rounds, key=lambda r: r["round"])
    federation = {
        **fed.model_dump(mode="json", exclude={"dp"}),
        "dp": None if fed.dp is None else fed.dp.model_dump(mode="json"),
        "engine": engine,
        "client_rows": shard_sizes,
        "rounds_completed": sum(1 for r in rounds if r.get("completed")),
        "bytes_sent": sum(r["bytes_sent"] for r in rounds),
        "bytes_received": sum(r["bytes_received"] for r in rounds),
        "per_round": rounds,
        "client_privacy": outcome.ledger.privacy,
        "resumed_from_round": outcome.resumed_from,
    }
    training: dict[str, Any] = {"federated": federation}
    session = MethodSession(recipe, TRAINING_METHODS.get(recipe.train.method), setup.folder, model)
    extra = session.save(run_dir, tokenizer, bundle, train, training)
    atomic_write_json(run_dir / "metrics.json", {"test": metrics, "training": training})
    plot_confusion(metrics["confusion_matrix"], bundle.labels, run_dir / "confusion.png")
    plot_rounds(rounds, run_dir / "federation.png")
    atomic_write_text(
        run_dir / "report.md",
        metrics_markdown(metrics, f"{recipe.run.name}: test set (federated)", {}),
    )
    data = bundle.report.to_dict()
    card_training = {k: v for k, v in training.items() if k != "federated"}
    card = render_model_card(recipe, bundle.labels, data, metrics, card_training)
    atomic_write_text(run_dir / "MODEL_CARD.md", card + "\n" + federation_markdown(federation))
    write_manifest(
        run_dir,
        kind=session.kind,
        extra={"backbone": recipe.model.backbone, **extra, "federated": True},
    )
    return FederationResult(run_dir, metrics, rounds, outcome.resumed_from)
