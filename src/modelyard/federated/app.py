"""The Flower apps: a ClientApp that trains locally and a ServerApp that runs the strategy.

The server's strategy is Flower's own FedAvg, FedProx or FedAdam, extended only to count
the bytes each round sends and receives, to refuse a round with too few replies, and to
checkpoint the global weights after every completed round (so a killed server resumes).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from modelyard.errors import ModelyardError
from modelyard.federated.local import train_locally
from modelyard.federated.payload import load_trainable_state, trainable_state
from modelyard.fsutil import atomic_write_json
from modelyard.models.encoding import Encoded
from modelyard.models.predict import predict_logits
from modelyard.recipe import Recipe
from modelyard.trainer.loop import dev_metrics

STATE_WEIGHTS = "global.safetensors"
STATE_FILE = "state.json"


class ClientDropout(ModelyardError):
    """A client left mid-round (raised on purpose by fault injection, or by a real failure)."""


@dataclass
class FederationSetup:
    """Everything the apps need: the recipe, the backbone, each client's shard, the test split."""

    recipe: Recipe
    folder: Path
    labels: list[str]
    pad_id: int
    shards: list[Encoded]
    test: Encoded
    state_dir: Path
    # fault injection for tests and the benchmark: round -> client that fails in that round
    drop: dict[int, int] = field(default_factory=dict)


@dataclass
class Ledger:
    """Per-round figures the server measured: bytes each way, replies, accuracy, time."""

    rounds: list[dict[str, Any]] = field(default_factory=list)
    privacy: dict[str, dict[str, Any]] = field(default_factory=dict)
    # training rows each client reported, by SuperNode id (the latest round's figure)
    client_rows: dict[str, int] = field(default_factory=dict)

    def row(self, server_round: int) -> dict[str, Any]:
        """Return the record of `server_round`, creating it on first use."""
        for row in self.rounds:
            if row["round"] == server_round:
                return row
        row = {"round": server_round, "bytes_sent": 0, "bytes_received": 0}
        self.rounds.append(row)
        return row


_MODELS: dict[str, torch.nn.Module] = {}


def build_model(setup: FederationSetup) -> torch.nn.Module:
    """Return a fresh model to train: the backbone's classifier, LoRA-wrapped when asked."""
    from modelyard.methods.catalog import TRAINING_METHODS
    from modelyard.methods.task_model import build_task_model

    torch.manual_seed(setup.recipe.run.seed)
    model = build_task_model(setup.folder, setup.labels, setup.recipe.model.pooling)
    return TRAINING_METHODS.get(setup.recipe.train.method).prepare(model, setup.recipe)


def _client_model(setup: FederationSetup) -> torch.nn.Module:
    # the global weights overwrite every trained tensor each round, so one model per
    # process serves every client it simulates; Opacus wraps its model, so DP builds anew
    key = str(setup.state_dir)
    if setup.recipe.federated is not None and setup.recipe.federated.dp is not None:
        return build_model(setup)
    if key not in _MODELS:
        _MODELS[key] = build_model(setup)
    return _MODELS[key]


@dataclass
class ClientSide:
    """What one client's train handler works with: the setup, its shard, its number.

    `number` names the client in the model card's privacy lines; None on the network,
    where the server names a client by its SuperNode id.
    """

    setup: FederationSetup
    shard: int
    number: int | None


def simulated_client(setup: FederationSetup) -> Callable[[Any], ClientSide]:
    """Return the resolver of a simulation: the client is the SuperNode's partition-id."""

    def resolve(context: Any) -> ClientSide:
        client = int(context.node_config["partition-id"])
        return ClientSide(setup, client, client)

    return resolve


def client_app(resolve: Callable[[Any], ClientSide]) -> Any:
    """Return a Flower ClientApp whose train handler runs one client's local epochs.

    `resolve` maps the Flower Context to the client's setup and shard (a simulated
    partition, or the local file of a SuperNode on the network).
    """
    from flwr.app import Context, Message
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        return train_reply(msg, resolve(context))

    return app


def train_reply(msg: Any, side: ClientSide) -> Any:
    """Run one client's round for the server's train message `msg`; return the reply."""
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

    setup, client = side.setup, side.shard
    config: Any = msg.content["config"]
    server_round = int(config["server-round"]) + int(config.get("round-offset", 0))
    fed = setup.recipe.federated
    assert fed is not None
    if setup.drop.get(server_round) == client:
        raise ClientDropout(f"client {client} left round {server_round}")
    model = _client_model(setup)
    arrays_in: Any = msg.content["arrays"]
    received = arrays_in.to_torch_state_dict()
    result = train_locally(
        model,
        setup.recipe,
        setup.shards[client],
        {k: v.numpy() for k, v in received.items()},
        setup.pad_id,
        setup.recipe.run.seed + 1000 * server_round + client,
        float(config.get("proximal-mu", 0.0)),
        server_round=server_round,
        num_labels=len(setup.labels),
    )
    metrics: dict[str, Any] = {
        "num-examples": result.num_examples,
        "train-seconds": result.seconds,
    }
    if result.privacy is not None:
        metrics["epsilon"] = float(result.privacy.get("epsilon", 0.0))
        if side.number is not None:
            metrics["client"] = side.number
    arrays = ArrayRecord(OrderedDict((k, torch.from_numpy(v)) for k, v in result.arrays.items()))
    return Message(
        content=RecordDict({"arrays": arrays, "metrics": MetricRecord(metrics)}),
        reply_to=msg,
    )


def make_strategy(setup: FederationSetup, ledger: Ledger, offset: int) -> Any:
    """Return Flower's strategy the recipe names, counting bytes and enforcing min_clients."""
    from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

    fed_config = setup.recipe.federated
    assert fed_config is not None
    fed = fed_config
    common: dict[str, Any] = {
        "fraction_train": fed.fraction_train,
        "fraction_evaluate": 0.0,
        "min_train_nodes": fed.min_clients,
        "min_available_nodes": fed.min_clients,
    }
    base: Any
    if fed.strategy == "fedprox":
        base, extra = FedProx, {"proximal_mu": fed.proximal_mu}
    elif fed.strategy == "fedadam":
        base, extra = FedAdam, {"eta": fed.server_lr, "eta_l": fed.client_lr}
    else:
        base, extra = FedAvg, {}

    class Measured(base):
        def configure_train(self, server_round: int, arrays: Any, config: Any, grid: Any) -> Any:
            messages = list(super().configure_train(server_round, arrays, config, grid))
            row = ledger.row(server_round + offset)
            row["clients_sampled"] = len(messages)
            row["bytes_sent"] += sum(m.content["arrays"].count_bytes() for m in messages)
            row["started"] = time.time()
            return messages

        def aggregate_train(self, server_round: int, replies: Any) -> Any:
            replies = list(replies)
            valid = [r for r in replies if not r.has_error()]
            row = ledger.row(server_round + offset)
            row["clients_replied"] = len(valid)
            row["clients_failed"] = len(replies) - len(valid)
            row["bytes_received"] += sum(r.content["arrays"].count_bytes() for r in valid)
            for r in valid:
                metrics = r.content["metrics"]
                ledger.client_rows[str(r.metadata.src_node_id)] = int(metrics["num-examples"])
                if "epsilon" in metrics:
                    who = metrics.get("client", r.metadata.src_node_id)
                    ledger.privacy[str(int(who))] = {"epsilon": float(metrics["epsilon"])}
            if len(valid) < fed.min_clients:
                # too few replies: keep the previous global weights, the round does not count
                row["completed"] = False
                return None, None
            row["completed"] = True
            return super().aggregate_train(server_round, valid)

    return Measured(**common, **extra)


def evaluate_global(
    model: torch.nn.Module, setup: FederationSetup, state: dict[str, torch.Tensor]
) -> dict[str, float]:
    """Load `state` into the server's model and return its loss, accuracy and macro-F1 on test."""
    fed = setup.recipe.federated
    assert fed is not None
    load_trainable_state(model, {k: v.numpy() for k, v in state.items()}, fed.lora_only)
    logits = predict_logits(model, setup.test, setup.pad_id, torch.device("cpu"), None)
    return dev_metrics(logits, setup.test.labels)


def save_state(state_dir: Path, done: int, state: dict[str, torch.Tensor], ledger: Ledger) -> None:
    """Write the global weights after round `done` and the ledger so far, weights first."""
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / f".{STATE_WEIGHTS}.tmp"
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    tmp.replace(state_dir / STATE_WEIGHTS)
    atomic_write_json(
        state_dir / STATE_FILE,
        {
            "completed_rounds": done,
            "rounds": ledger.rounds,
            "privacy": ledger.privacy,
            "client_rows": ledger.client_rows,
        },
    )


def load_state(state_dir: Path) -> tuple[int, dict[str, torch.Tensor], Ledger] | None:
    """Return (completed rounds, global weights, ledger) of an interrupted federation, or None."""
    path = state_dir / STATE_FILE
    if not path.is_file() or not (state_dir / STATE_WEIGHTS).is_file():
        return None
    saved = json.loads(path.read_text(encoding="utf-8"))
    ledger = Ledger(
        rounds=saved["rounds"],
        privacy=saved.get("privacy", {}),
        client_rows=saved.get("client_rows", {}),
    )
    return int(saved["completed_rounds"]), load_file(str(state_dir / STATE_WEIGHTS)), ledger


@dataclass
class ServerOutcome:
    """What the server app leaves behind for the caller."""

    state: dict[str, torch.Tensor] | None = None
    ledger: Ledger = field(default_factory=Ledger)
    resumed_from: int | None = None


def server_app(setup: FederationSetup, outcome: ServerOutcome) -> Any:
    """Return a Flower ServerApp that runs the remaining rounds and fills `outcome`."""
    from flwr.app import Context
    from flwr.serverapp import Grid, ServerApp

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run_rounds(grid, setup, outcome)

    return app


def run_rounds(grid: Any, setup: FederationSetup, outcome: ServerOutcome) -> None:
    """Run the rounds not yet completed over Flower's `grid`, checkpointing each; fill `outcome`.

    Starts from the saved state in `setup.state_dir` when there is one (a resumed server).
    """
    from flwr.app import ArrayRecord, ConfigRecord, MetricRecord

    fed = setup.recipe.federated
    assert fed is not None
    model = build_model(setup)
    saved = load_state(setup.state_dir)
    if saved is not None:
        done, state, ledger = saved
        outcome.resumed_from = done
    else:
        done, ledger = 0, Ledger()
        state = {k: torch.from_numpy(v) for k, v in trainable_state(model, fed.lora_only).items()}
    outcome.ledger, outcome.state = ledger, state
    if done >= fed.rounds:
        return
    strategy = make_strategy(setup, ledger, done)

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round == 0:
            return None
        current = arrays.to_torch_state_dict()
        absolute = server_round + done
        row = ledger.row(absolute)
        row.update(evaluate_global(model, setup, current))
        row["seconds"] = round(time.time() - row.pop("started", time.time()), 3)
        outcome.state = current
        save_state(setup.state_dir, absolute, current, ledger)
        return MetricRecord({"accuracy": row["accuracy"], "loss": row["loss"]})

    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(OrderedDict(state)),
        num_rounds=fed.rounds - done,
        timeout=fed.round_timeout,
        train_config=ConfigRecord({"round-offset": done}),
        evaluate_fn=evaluate,
    )


def accuracy_per_round(ledger: Ledger) -> list[float]:
    """Return the global test accuracy after each round, in round order."""
    return [
        float(r.get("accuracy", np.nan)) for r in sorted(ledger.rounds, key=lambda r: r["round"])
    ]
