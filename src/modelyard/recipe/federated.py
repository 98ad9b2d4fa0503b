"""The `federated:` section: how `modelyard federate` trains across clients."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from modelyard.recipe.base import Section
from modelyard.recipe.training import PrivacyConfig


class FederatedConfig(Section):
    """Federated training on Flower: clients, data split, strategy and rounds."""

    clients: int = Field(5, ge=1, le=1000, description="Number of clients (Flower SuperNodes).")
    partition: str = Field(
        "iid",
        description="How the training rows are split over simulated clients: iid, "
        "dirichlet:ALPHA (label skew, smaller is stronger) or column:NAME (one client per value).",
    )
    strategy: Literal["fedavg", "fedavgm", "fedprox", "fedadam"] = Field(
        "fedavg",
        description="Server strategy: fedavg (weighted mean), fedavgm (the mean update taken "
        "with a server learning rate and momentum), fedprox (mean plus a proximal term on "
        "clients) or fedadam (server-side Adam over the mean update).",
    )
    rounds: int = Field(5, ge=1, le=10000, description="Federated rounds.")
    local_epochs: float = Field(
        1.0, gt=0, le=100, description="Passes each client makes over its data per round."
    )
    fraction_train: float = Field(
        1.0, gt=0, le=1, description="Share of the clients sampled to train in each round."
    )
    min_clients: int = Field(
        2,
        ge=1,
        description="A round needs this many clients to start and this many replies to count; "
        "clients that fail or time out are left out.",
    )
    round_timeout: float = Field(
        600.0, gt=0, description="Seconds the server waits for a round's replies."
    )
    proximal_mu: float = Field(
        0.01, ge=0, description="fedprox: weight mu of the proximal term mu/2·||w - w_global||²."
    )
    server_lr: float | None = Field(
        None,
        gt=0,
        description="The server's learning rate: fedavgm's factor on the mean update "
        "(default 1.0), fedadam's eta (default 0.01).",
    )
    server_momentum: float = Field(
        0.0, ge=0, lt=1, description="fedavgm: the server's momentum over the rounds' updates."
    )
    client_lr: float = Field(
        0.01, gt=0, description="fedadam: the clients' learning rate as the strategy assumes it."
    )
    schedule: Literal["federation", "round"] = Field(
        "federation",
        description="federation: the learning-rate schedule (warmup, then linear decay) spans "
        "all rounds, each client's round continuing it where the last round left off; round: "
        "every round warms up and decays to zero on its own.",
    )
    logit_adjustment: bool = Field(
        True,
        description="Clients add the log of their own label shares to the logits in the "
        "training loss (logit adjustment), so a client that holds mostly one label does not "
        "pull the shared head towards it; predictions use the plain logits. Classification.",
    )
    keep_optimizer_state: bool = Field(
        True,
        description="Each client keeps its optimizer's state (AdamW's moments and step) from "
        "one round to its next instead of starting a fresh optimizer every round; the "
        "state stays on the client. Not under federated.dp.",
    )
    freeze_lora_a: bool = Field(
        False,
        description="Keep every LoRA A matrix at its shared initialisation and train B and the "
        "head only (FFA-LoRA): the average of the clients' B·A is then exactly the average B "
        "times A, which plain LoRA averaging is not.",
    )
    lora_only: bool = Field(
        True,
        description="Send only the LoRA adapters and the task head (train.method must be lora); "
        "false: send the whole model every round.",
    )
    dp: PrivacyConfig | None = Field(
        None,
        description="Client-side DP-SGD (Opacus) with this budget per client; each client's "
        "epsilon goes into the model card.",
    )
    secure_aggregation: bool = Field(
        False,
        description="Flower's secure aggregation (SecAgg+): the server learns only the sum of "
        "the clients' masked, quantized updates, never one client's; a round survives dropouts "
        "while min_clients clients remain.",
    )
    simulation_cpus: int = Field(
        1, ge=1, le=64, description="CPU cores the simulation engine may use (one client each)."
    )

    @model_validator(mode="after")
    def _min_fits_clients(self) -> FederatedConfig:
        if self.min_clients > self.clients:
            raise ValueError(
                f"federated.min_clients ({self.min_clients}) exceeds federated.clients "
                f"({self.clients}); lower min_clients"
            )
        return self
