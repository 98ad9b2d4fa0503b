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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from modelyard.errors import ModelyardError
from modelyard.federated.local import (
    LocalResult,
    arrays_to_moments,
    moments_to_arrays,
    train_locally,
)
from modelyard.federated.payload import load_trainable_state, trainable_state
from modelyard.fsutil import atomic_write_json
from modelyard.models.encoding import Encoded
from modelyard.models.predict import predict_logits
from modelyard.recipe import Recipe
from modelyard.trainer.loop import dev_metrics

STATE_WEIGHTS = "global.safetensors"
STATE_FILE = "state.json"
# FedAvgM's momentum after the last completed round, so a resumed server continues it
STATE_MOMENTUM = "momentum.safetensors"


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
    model = TRAINING_METHODS.get(setup.recipe.train.method).prepare(model, setup.recipe)
    fed = setup.recipe.federated
    if fed is not None and fed.freeze_lora_a:
        # every party seeds the same A, and the server's first message overwrites it anyway
        for name, param in model.named_parameters():
            if "lora_A" in name:
                param.requires_grad_(False)
    return model


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
    where the server names a client by its SuperNode id. `memory` is the node's Flower
    `context.state`, which lasts from one round to the next (None: nothing is kept).
    """

    setup: FederationSetup
    shard: int
    number: int | None
    memory: Any = None


def simulated_client(setup: FederationSetup) -> Callable[[Any], ClientSide]:
    """Return the resolver of a simulation: the client is the SuperNode's partition-id."""

    def resolve(context: Any) -> ClientSide:
        client = int(context.node_config["partition-id"])
        return ClientSide(setup, client, client)

    return resolve


def client_app(resolve: Callable[[Any], ClientSide]) -> Any:
    """Return a Flower ClientApp whose train handler runs one client's local epochs.

    `resolve` maps the Flower Context to the client's setup and shard (a simulated
    partition, or the local file of a SuperNode on the network). A server running
    SecAgg+ is answered through Flower's SecAgg+ mod, which masks the update before it
    leaves the client.
    """
    from flwr.app import Context, Message
    from flwr.client.mod import secaggplus_mod
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        if SECAGG_CONFIGS in msg.content.config_records:
            # the mod runs the protocol's stages and calls the handler for the update only
            return secaggplus_mod(
                msg, context, lambda m, c: secure_train_reply(m, _with_memory(resolve(c), c))
            )
        return train_reply(msg, _with_memory(resolve(context), context))

    return app


def _with_memory(side: ClientSide, context: Any) -> ClientSide:
    return replace(side, memory=context.state)


# what a client keeps in its context.state between rounds (federated.keep_optimizer_state)
OPTIMIZER_MEMORY = "optimizer-state"


# the config record of SecAgg+ messages (flwr.common.secure_aggregation.secaggplus_constants)
SECAGG_CONFIGS = "secaggplus_configs"
# the record the SecAgg+ workflow (Flower's legacy fit messages) carries the weights in
LEGACY_PARAMETERS = "fitins.parameters"


def _local_round(
    side: ClientSide, received: dict[str, np.ndarray], config: Any
) -> tuple[LocalResult, dict[str, Any]]:
    setup, client = side.setup, side.shard
    server_round = int(config["server-round"]) + int(config.get("round-offset", 0))
    if setup.drop.get(server_round) == client:
        raise ClientDropout(f"client {client} left round {server_round}")
    mu = float(config.get("proximal-mu", config.get("proximal_mu", 0.0)))
    memory = side.memory if _keeps_optimizer(setup) else None
    kept = memory.array_records.get(OPTIMIZER_MEMORY) if memory is not None else None
    result = train_locally(
        _client_model(setup),
        setup.recipe,
        setup.shards[client],
        received,
        setup.pad_id,
        setup.recipe.run.seed + 1000 * server_round + client,
        mu,
        server_round=server_round,
        num_labels=len(setup.labels),
        optimizer_moments=_kept_moments(kept),
    )
    if memory is not None and result.optimizer_moments is not None:
        from flwr.app import ArrayRecord

        flat = moments_to_arrays(result.optimizer_moments)
        memory.array_records[OPTIMIZER_MEMORY] = ArrayRecord(
            OrderedDict((k, torch.from_numpy(v)) for k, v in flat.items())
        )
    metrics: dict[str, Any] = {
        "num-examples": result.num_examples,
        "train-seconds": result.seconds,
    }
    if result.privacy is not None:
        metrics["epsilon"] = float(result.privacy.get("epsilon", 0.0))
        if side.number is not None:
            metrics["client"] = side.number
    return result, metrics


def train_reply(msg: Any, side: ClientSide) -> Any:
    """Run one client's round for the server's train message `msg`; return the reply."""
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

    arrays_in: Any = msg.content["arrays"]
    received = {k: v.numpy() for k, v in arrays_in.to_torch_state_dict().items()}
    result, metrics = _local_round(side, received, msg.content["config"])
    arrays = ArrayRecord(OrderedDict((k, torch.from_numpy(v)) for k, v in result.arrays.items()))
    return Message(
        content=RecordDict({"arrays": arrays, "metrics": MetricRecord(metrics)}),
        reply_to=msg,
    )


def secure_train_reply(msg: Any, side: ClientSide) -> Any:
    """Answer a SecAgg+ round's train message: the weights as an ordered list, unnamed.

    The order is the model's own (`trainable_state`), the same on server and clients.
    """
    from flwr.app import Message
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.compat.common import recorddict_compat as compat

    fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    names = list(trainable_state(_client_model(side.setup), _lora_only(side.setup)))
    received = dict(zip(names, parameters_to_ndarrays(fitins.parameters), strict=True))
    result, metrics = _local_round(side, received, fitins.config)
    metrics.pop("num-examples")
    fitres = FitRes(
        Status(Code.OK, "ok"),
        ndarrays_to_parameters([result.arrays[n] for n in names]),
        result.num_examples,
        metrics,
    )
    content = compat.fitres_to_recorddict(fitres, keep_input=True)
    return Message(content=content, reply_to=msg)


def _kept_moments(kept: Any) -> dict[int, dict[str, torch.Tensor]] | None:
    if kept is None:
        return None
    return arrays_to_moments({k: v.numpy() for k, v in kept.to_torch_state_dict().items()})


def _keeps_optimizer(setup: FederationSetup) -> bool:
    fed = setup.recipe.federated
    return fed is not None and fed.keep_optimizer_state


def _lora_only(setup: FederationSetup) -> bool:
    fed = setup.recipe.federated
    assert fed is not None
    return fed.lora_only


def strategy_class(fed: Any, module: Any) -> tuple[Any, dict[str, Any]]:
    """Return the strategy class `fed.strategy` names in `module` and its own arguments.

    `module` is Flower's message-API strategies or its legacy ones (for SecAgg+): both name
    them FedAvg, FedAvgM, FedProx and FedAdam with the same arguments.
    """
    if fed.strategy == "fedprox":
        return module.FedProx, {"proximal_mu": fed.proximal_mu}
    if fed.strategy == "fedadam":
        eta = DEFAULT_SERVER_LR["fedadam"] if fed.server_lr is None else fed.server_lr
        return module.FedAdam, {"eta": eta, "eta_l": fed.client_lr}
    if fed.strategy == "fedavgm":
        eta = DEFAULT_SERVER_LR["fedavgm"] if fed.server_lr is None else fed.server_lr
        return module.FedAvgM, {
            "server_learning_rate": eta,
            "server_momentum": fed.server_momentum,
        }
    return module.FedAvg, {}


# federated.server_lr left unset: each strategy's own scale (a factor on the mean update
# for FedAvgM, a per-coordinate step for FedAdam)
DEFAULT_SERVER_LR = {"fedavgm": 1.0, "fedadam": 0.01}


def make_strategy(setup: FederationSetup, ledger: Ledger, offset: int) -> Any:
    """Return Flower's strategy the recipe names, counting bytes and enforcing min_clients."""
    from flwr.serverapp import strategy

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
    base, extra = strategy_class(fed, strategy)

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


def save_state(
    state_dir: Path,
    done: int,
    state: dict[str, torch.Tensor],
    ledger: Ledger,
    momentum: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write the global weights after round `done` (and the server's momentum, if any) and
    the ledger so far; the ledger last, as it names the round the files belong to."""
    state_dir.mkdir(parents=True, exist_ok=True)
    _write_tensors(state_dir / STATE_WEIGHTS, state)
    if momentum is not None:
        _write_tensors(state_dir / STATE_MOMENTUM, momentum)
    atomic_write_json(
        state_dir / STATE_FILE,
        {
            "completed_rounds": done,
            "rounds": ledger.rounds,
            "privacy": ledger.privacy,
            "client_rows": ledger.client_rows,
        },
    )


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    tmp.replace(path)


def load_momentum(state_dir: Path) -> dict[str, torch.Tensor] | None:
    """Return the server momentum saved with the last completed round, or None."""
    path = state_dir / STATE_MOMENTUM
    return load_file(str(path)) if path.is_file() else None


def strategy_momentum(strategy: Any, names: list[str]) -> dict[str, torch.Tensor] | None:
    """Return FedAvgM's momentum by array name (None for strategies without one, or before
    its first update)."""
    vector = getattr(strategy, "momentum_vector", None)
    if vector is None:
        return None
    return {n: torch.from_numpy(np.asarray(v)) for n, v in zip(names, vector, strict=True)}


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
        run_rounds(grid, context, setup, outcome)

    return app


def run_rounds(grid: Any, context: Any, setup: FederationSetup, outcome: ServerOutcome) -> None:
    """Run the rounds not yet completed over Flower's `grid`, checkpointing each; fill `outcome`.

    Starts from the saved state in `setup.state_dir` when there is one (a resumed server).
    With `federated.secure_aggregation` the rounds run Flower's SecAgg+ workflow.
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

    names = list(state)
    # the strategy, once made: its momentum (FedAvgM) is saved with each round
    server: dict[str, Any] = {}

    def checkpoint(server_round: int, current: dict[str, torch.Tensor]) -> dict[str, Any]:
        absolute = server_round + done
        row = ledger.row(absolute)
        row.update(evaluate_global(model, setup, current))
        row["seconds"] = round(time.time() - row.pop("started", time.time()), 3)
        outcome.state = current
        momentum = strategy_momentum(server.get("strategy"), names)
        save_state(setup.state_dir, absolute, current, ledger, momentum)
        return row

    if fed.secure_aggregation:
        _run_secure_rounds(grid, context, setup, ledger, state, done, checkpoint, server)
        return
    strategy = make_strategy(setup, ledger, done)
    resume_momentum(strategy, setup.state_dir if saved is not None else None, names)
    server["strategy"] = strategy

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round == 0:
            return None
        row = checkpoint(server_round, arrays.to_torch_state_dict())
        return MetricRecord({"accuracy": row["accuracy"], "loss": row["loss"]})

    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(OrderedDict(state)),
        num_rounds=fed.rounds - done,
        timeout=fed.round_timeout,
        train_config=ConfigRecord({"round-offset": done}),
        evaluate_fn=evaluate,
    )


def resume_momentum(strategy: Any, state_dir: Path | None, names: list[str]) -> None:
    """Give a resumed FedAvgM the momentum saved in `state_dir` (None: a fresh start)."""
    saved = load_momentum(state_dir) if state_dir is not None else None
    if saved is not None and hasattr(strategy, "momentum_vector"):
        strategy.momentum_vector = [saved[n].numpy() for n in names]


def _run_secure_rounds(
    grid: Any,
    context: Any,
    setup: FederationSetup,
    ledger: Ledger,
    state: dict[str, torch.Tensor],
    done: int,
    checkpoint: Callable[[int, dict[str, torch.Tensor]], dict[str, Any]],
    server: dict[str, Any],
) -> None:
    # SecAgg+ is a workflow over Flower's legacy strategies: the same FedAvg/FedProx/FedAdam,
    # fed the unmasked sum instead of the clients' individual updates
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

    fed = setup.recipe.federated
    assert fed is not None
    names = list(state)

    def evaluate(server_round: int, arrays: list[np.ndarray], config: Any) -> Any:
        if server_round == 0:
            return None
        current = {n: torch.from_numpy(np.asarray(a)) for n, a in zip(names, arrays, strict=True)}
        row = checkpoint(server_round, current)
        return row["loss"], {"accuracy": row["accuracy"]}

    strategy = make_secure_strategy(setup, ledger, done, names, state, evaluate)
    resume_momentum(strategy, setup.state_dir if done else None, names)
    server["strategy"] = strategy
    legacy = LegacyContext(
        context,
        config=ServerConfig(num_rounds=fed.rounds - done, round_timeout=fed.round_timeout),
        strategy=strategy,
    )
    secagg = SecAggPlusWorkflow(
        num_shares=1.0,
        reconstruction_threshold=fed.min_clients / fed.clients,
        # updates are weighted by example count: the largest shard must fit under max_weight
        max_weight=float(max([len(s) for s in setup.shards], default=0) or 100_000),
        timeout=fed.round_timeout,
    )
    DefaultWorkflow(fit_workflow=secagg)(grid, legacy)


def make_secure_strategy(
    setup: FederationSetup,
    ledger: Ledger,
    offset: int,
    names: list[str],
    state: dict[str, torch.Tensor],
    evaluate: Callable[..., Any],
) -> Any:
    """Return Flower's legacy strategy the recipe names, for the SecAgg+ workflow.

    It counts the bytes the server sends and marks rounds completed when the aggregate
    came back; the bytes clients send are masked shares, not counted here.
    """
    from flwr.common import ndarrays_to_parameters
    from flwr.server import strategy

    fed = setup.recipe.federated
    assert fed is not None
    common: dict[str, Any] = {
        "fraction_fit": fed.fraction_train,
        "fraction_evaluate": 0.0,
        "min_fit_clients": fed.min_clients,
        "min_evaluate_clients": 0,
        "min_available_clients": fed.min_clients,
        "initial_parameters": ndarrays_to_parameters([state[n].numpy() for n in names]),
        "evaluate_fn": evaluate,
        "on_fit_config_fn": lambda r: {"server-round": r, "round-offset": offset},
    }
    base: Any
    base, extra = strategy_class(fed, strategy)

    class Measured(base):
        def configure_fit(self, server_round: int, parameters: Any, client_manager: Any) -> Any:
            pairs = super().configure_fit(server_round, parameters, client_manager)
            row = ledger.row(server_round + offset)
            row["clients_sampled"] = len(pairs)
            row["bytes_sent"] += sum(len(t) for _, ins in pairs for t in ins.parameters.tensors)
            row["started"] = time.time()
            row["secure_aggregation"] = True
            return pairs

        def aggregate_fit(self, server_round: int, results: Any, failures: Any) -> Any:
            aggregated = super().aggregate_fit(server_round, results, failures)
            ledger.row(server_round + offset)["completed"] = aggregated[0] is not None
            return aggregated

    return Measured(**common, **extra)


def accuracy_per_round(ledger: Ledger) -> list[float]:
    """Return the global test accuracy after each round, in round order."""
    return [
        float(r.get("accuracy", np.nan)) for r in sorted(ledger.rounds, key=lambda r: r["round"])
    ]
