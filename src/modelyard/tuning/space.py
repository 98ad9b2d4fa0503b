"""The search space: `--param KEY=DISTRIBUTION:ARGS` specs, checked against the recipe schema.

    train.lr=loguniform:1e-5:1e-3     a float, sampled on a log scale
    train.warmup_ratio=uniform:0:0.2  a float, sampled uniformly
    train.epochs=int:2:6              an integer (int:LO:HI:STEP for a step)
    train.method=choice:full,lora     one of the listed values (read as YAML scalars)

KEY is a dotted recipe key. A spec is checked before any trial runs: the key must name a
value of the recipe schema (not a section), and the range's ends or every choice must make a
valid recipe with the rest of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args

import yaml
from pydantic import BaseModel

from modelyard.errors import RecipeError
from modelyard.recipe import Recipe, build_recipe, deep_merge
from modelyard.tuning.errors import TuningError

DISTRIBUTIONS = {
    "loguniform": "loguniform:LO:HI (a float on a log scale, LO > 0)",
    "uniform": "uniform:LO:HI (a float)",
    "int": "int:LO:HI or int:LO:HI:STEP (an integer)",
    "choice": "choice:A,B,... (one of the values)",
}
Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class ParamSpec:
    """One dimension of the search: a recipe key and how its values are drawn."""

    key: str
    kind: str  # one of DISTRIBUTIONS
    low: float = 0.0
    high: float = 0.0
    step: int = 1
    choices: tuple[Scalar, ...] = ()
    text: str = ""

    def suggest(self, trial: Any) -> Scalar:
        """Return the value `trial` (an optuna Trial) draws for this key."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=self.step)
        return trial.suggest_float(self.key, self.low, self.high, log=self.kind == "loguniform")

    def probes(self) -> list[Scalar]:
        """Return the values that must make a valid recipe: the range's ends or every choice."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return [int(self.low), int(self.high)]
        return [self.low, self.high]


def _fail(text: str, why: str) -> TuningError:
    return TuningError(f"--param {text}: {why}")


def _number(text: str, raw: str, integer: bool) -> float:
    try:
        return float(int(raw)) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise _fail(text, f"'{raw}' is not {kind}") from None


def parse_param(text: str) -> ParamSpec:
    """Return the spec of `KEY=DISTRIBUTION:ARGS`.

    Raises TuningError for a malformed spec, an unknown distribution or an empty range.
    """
    key, sep, rest = text.partition("=")
    key = key.strip()
    if not sep or not key or ":" not in rest:
        raise _fail(text, "expected KEY=DISTRIBUTION:ARGS, e.g. train.lr=loguniform:1e-5:1e-3")
    kind, _, args = rest.partition(":")
    kind = kind.strip()
    if kind not in DISTRIBUTIONS:
        raise _fail(
            text,
            f"unknown distribution '{kind}'; use one of: " + "; ".join(DISTRIBUTIONS.values()),
        )
    if kind == "choice":
        return ParamSpec(key, kind, choices=_choices(text, args), text=text)
    parts = args.split(":")
    if len(parts) not in ((2, 3) if kind == "int" else (2,)):
        raise _fail(text, f"{kind} takes {DISTRIBUTIONS[kind]}")
    low, high = (_number(text, p, kind == "int") for p in parts[:2])
    step = int(_number(text, parts[2], True)) if len(parts) == 3 else 1
    if low >= high:
        raise _fail(text, f"the range is empty: LO ({parts[0]}) must be below HI ({parts[1]})")
    if kind == "loguniform" and low <= 0:
        raise _fail(text, f"loguniform needs LO above 0; got {parts[0]} (use uniform instead)")
    if step < 1:
        raise _fail(text, f"STEP must be 1 or more; got {step}")
    return ParamSpec(key, kind, low, high, step, text=text)


def _choices(text: str, args: str) -> tuple[Scalar, ...]:
    values: list[Scalar] = []
    for raw in args.split(","):
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        if isinstance(value, list | dict) or value is None:
            raise _fail(text, f"choice values are plain scalars; got '{raw}'")
        values.append(value)
    if len(values) < 2 or len(set(map(repr, values))) != len(values):
        raise _fail(text, "choice needs two or more different values, e.g. choice:full,lora")
    return tuple(values)


def _sections(annotation: Any) -> list[type[BaseModel]]:
    """Return the recipe sections an annotation holds (`X | None` holds X)."""
    options = [a for a in (get_args(annotation) or (annotation,)) if a is not type(None)]
    return [a for a in options if isinstance(a, type) and issubclass(a, BaseModel)]


def _is_section(annotation: Any) -> bool:
    """Return True when every value an annotation allows (besides null) is a recipe section."""
    options = [a for a in (get_args(annotation) or (annotation,)) if a is not type(None)]
    return len(_sections(annotation)) == len(options) > 0


def check_key(spec: ParamSpec) -> None:
    """Raise TuningError unless the spec's key names a value of the recipe schema."""
    model: type[BaseModel] = Recipe
    parts = spec.key.split(".")
    for depth, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            where = "'" + ".".join(parts[:depth]) + "'" if depth else "the recipe"
            allowed = ", ".join(sorted(model.model_fields))
            raise _fail(spec.text, f"unknown recipe key '{part}' in {where}; allowed: {allowed}")
        sections = _sections(field.annotation)
        if depth == len(parts) - 1:
            if _is_section(field.annotation):
                keys = ", ".join(sorted(sections[0].model_fields))
                raise _fail(spec.text, f"'{spec.key}' is a section; tune one of its keys: {keys}")
            return
        if len(sections) != 1:
            raise _fail(spec.text, f"'{'.'.join(parts[: depth + 1])}' has no keys to tune")
        model = sections[0]


def nested(key: str, value: Any) -> dict[str, Any]:
    """Return `{"a": {"b": value}}` for the key `a.b`."""
    tree: Any = value
    for part in reversed(key.split(".")):
        tree = {part: tree}
    return dict(tree)


def apply(base: dict[str, Any], values: dict[str, Any], source: str = "recipe") -> Recipe:
    """Return the recipe `base` (a recipe as plain data) with `values` set by dotted key.

    Raises RecipeError when the result is not a valid recipe.
    """
    raw = base
    for key, value in values.items():
        raw = deep_merge(raw, nested(key, value))
    return build_recipe(raw, source)


def parse_space(texts: list[str], recipe: Recipe) -> list[ParamSpec]:
    """Return the specs of `texts`, each checked against the recipe schema and `recipe`.

    Raises TuningError for no spec, a repeated key, an unknown key or a value the recipe
    refuses.
    """
    if not texts:
        raise TuningError(
            "nothing to search: give one --param or more, e.g. --param train.lr=loguniform:1e-5:1e-3"
        )
    specs = [parse_param(t) for t in texts]
    keys = [s.key for s in specs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise TuningError(f"--param names {', '.join(repeated)} more than once; give each key once")
    base = recipe.model_dump(mode="json")
    for spec in specs:
        check_key(spec)
        for value in spec.probes():
            try:
                apply(base, {spec.key: value})
            except RecipeError as exc:
                raise _fail(spec.text, f"the recipe refuses {spec.key}={value}; {exc}") from None
    return specs
