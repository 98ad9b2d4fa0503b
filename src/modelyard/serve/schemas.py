"""Request and response bodies of the HTTP API (they become the OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from modelyard.serve.limits import Text


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PredictRequest(_Body):
    """Texts to classify, and which model to use when several are served."""

    texts: list[Text] = Field(description="Texts to classify (limits: see the server settings).")
    model: str | None = Field(None, description="Model name; optional when one model is served.")
    top_k: int | None = Field(
        None, ge=1, description="Return the k most probable labels only (default: every label)."
    )


class PredictionItem(_Body):
    """The answer for one text."""

    predicted_label: str = Field(description="The most probable label.")
    predicted_score: float = Field(description="Its probability.")
    probabilities: dict[str, float] = Field(
        description="Label -> probability, most probable first (the top_k first when asked)."
    )
    truncated: bool = Field(description="True when the text was cut to the model's maximum length.")
    label: str = Field(description="Deprecated: the same as predicted_label.", deprecated=True)
    score: float = Field(description="Deprecated: the same as predicted_score.", deprecated=True)


class Entity(_Body):
    """One entity a token classifier found in a text."""

    label: str = Field(description="The entity type (PER, LOC, ...).")
    start: int = Field(description="Offset of its first character in the text.")
    end: int = Field(description="Offset just past its last character (text[start:end]).")
    text: str = Field(description="The entity's text.")
    score: float = Field(description="Mean probability of its words' tags.")


class EntitiesItem(_Body):
    """The answer of a token classifier for one text."""

    entities: list[Entity] = Field(description="Entity spans, in the order of the text.")
    words: list[str] = Field(description="The words the text was split into.")
    tags: list[str] = Field(description="The tag of every word (BIO or BIOES).")
    truncated: bool = Field(description="True when words past the maximum length went untagged.")


class LabelSetItem(_Body):
    """The answer of a multi-label run for one text."""

    labels: list[str] = Field(description="The labels at or above their thresholds.")
    probabilities: dict[str, float] = Field(
        description="Label -> probability, most probable first."
    )
    truncated: bool = Field(description="True when the text was cut to the model's maximum length.")


class ValueItem(_Body):
    """The answer of a regression run for one text."""

    value: float = Field(description="The predicted number.")
    truncated: bool = Field(description="True when the text was cut to the model's maximum length.")


class PredictResponse(_Body):
    """Predictions in the order of the request's texts."""

    model: str
    version: str = Field(description="The registry version that answered.")
    predictions: (
        list[PredictionItem] | list[EntitiesItem] | list[LabelSetItem] | list[ValueItem]
    ) = Field(
        description="Classifiers: a label and probabilities per text; token classifiers: "
        "entity spans per text; multi-label runs: a label set; regression runs: a value."
    )


class ModelInfo(_Body):
    """A served model."""

    name: str
    version: str
    reference: str = Field(
        description="What the server follows: NAME:VERSION, NAME:ALIAS or NAME:latest."
    )
    labels: list[str]
    backend: str = Field(description="The inference backend (torch, onnx, generation, ...).")
    queue_depth: int = Field(description="Texts (classifiers) or requests (generation) waiting.")
    kind: str = Field(
        "classifier",
        description="classifier, generation (OpenAI routes), token-classification, multi-label "
        "or regression.",
    )


class OpenAIModel(_Body):
    """A served model as OpenAI's `GET /v1/models` lists it."""

    id: str
    object: str = "model"
    created: int = Field(description="Unix time the server loaded it.")
    owned_by: str = "modelyard"


class ModelsResponse(_Body):
    """Every served model: `models` in modelyard's shape, `data` in OpenAI's."""

    models: list[ModelInfo]
    object: str = "list"
    data: list[OpenAIModel] = Field(default_factory=list)


class ReloadRequest(_Body):
    """Which version to swap to."""

    version: str | None = Field(
        None,
        description="A version number or alias of the same model; absent: what the served reference points to now.",
    )


class ReloadResponse(_Body):
    """The outcome of a hot swap."""

    name: str
    previous_version: str
    version: str
    changed: bool


class ErrorBody(_Body):
    """Every error answer: a message saying what was wrong and how to fix it."""

    error: str
    code: str


class Health(_Body):
    """A health probe's answer."""

    live: bool | None = None
    ready: bool | None = None


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Return the OpenAPI `responses` entry documenting the error answers `codes`."""
    return {code: {"model": ErrorBody, "description": "Error"} for code in codes}
