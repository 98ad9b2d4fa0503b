"""What a recipe knows of each training method, as plain data.

The recipe validates `train.method` and its option sections against this table, so loading a
recipe never imports the methods themselves. `modelyard.methods` registers each method's code
under the same name; a plug-in method declares its spec here first (see `declare_method`).
"""

from __future__ import annotations

from dataclasses import dataclass

# the artifact kinds a training method saves
CLASSIFIER = "classifier"
ADAPTER = "adapter-classifier"
EMBEDDING = "embedding-classifier"


@dataclass(frozen=True)
class MethodSpec:
    """A training method as the recipe sees it.

    `kind` is the artifact it saves, `options` the section under `train` holding its options
    (None: it has none), `own_procedure` whether it trains by its own procedure instead of the
    fine-tuning loop.
    """

    name: str
    summary: str
    kind: str = CLASSIFIER
    options: str | None = None
    own_procedure: bool = False


METHOD_SPECS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("full", "every weight trains (full fine-tuning)"),
        MethodSpec("bitfit", "biases and the task head train (BitFit)"),
        MethodSpec("linear-probe", "frozen backbone, only the task head trains"),
        MethodSpec("lora", "low-rank adapters (LoRA, or DoRA)", ADAPTER, "lora"),
        MethodSpec("ia3", "learned activation scaling (IA3)", ADAPTER, "ia3"),
        MethodSpec(
            "prompt-tuning", "learned virtual tokens before the input", ADAPTER, "prompt_tuning"
        ),
        MethodSpec(
            "setfit",
            "few-shot: contrastive pairs, then a logistic-regression head",
            EMBEDDING,
            "setfit",
            own_procedure=True,
        ),
    )
}


def declare_method(spec: MethodSpec) -> MethodSpec:
    """Add a plug-in method's spec and return it; raise ValueError if the name is taken."""
    if spec.name in METHOD_SPECS:
        raise ValueError(f"training method '{spec.name}' is already declared")
    METHOD_SPECS[spec.name] = spec
    return spec


def method_spec(name: str) -> MethodSpec:
    """Return the spec of method `name`; raise ValueError naming the known methods if unknown."""
    if name not in METHOD_SPECS:
        raise ValueError(
            f"unknown training method '{name}'; available: {', '.join(sorted(METHOD_SPECS))}"
        )
    return METHOD_SPECS[name]


def option_sections() -> dict[str, str]:
    """Return {section under `train`: the method whose options it holds}."""
    return {s.options: s.name for s in METHOD_SPECS.values() if s.options is not None}
