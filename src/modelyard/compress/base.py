"""The compression-method registry, the parent run every method reads, and variant artifacts.

A method is a function `(ctx, arg) -> Compressed` registered in `COMPRESSION_METHODS`; `arg` is the
text after the colon of its spec (`prune-heads:0.3` -> "0.3"). A `Compressed` model
predicts in memory and writes its model files; `save_variant` turns it into an artifact
whose manifest names its parent.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from modelyard._deprecated import renamed
from modelyard.data import DataBundle, Split, load_data
from modelyard.errors import ArtifactError, DataError, RecipeError
from modelyard.fsutil import atomic_write_json, replace_dir
from modelyard.models.encoding import Encoded, encode_split
from modelyard.plugins import Registry
from modelyard.recipe import CompressConfig
from modelyard.registry.calibration import CALIBRATION
from modelyard.registry.manifest import relative_parent, sha256_file, write_manifest
from modelyard.registry.run import LABELS, RECIPE, LoadedRun
from modelyard.registry.store import is_number

COMPRESSION_FILE = "compression.json"


class VariantFiles(Protocol):
    """A compressed model of any task, before it is written as an artifact."""

    details: dict[str, Any]

    @property
    def kind(self) -> str:
        """Return the manifest kind the variant is saved as."""
        ...

    def save(self, directory: Path) -> None:
        """Write the model files (weights, graph, config) into `directory`."""
        ...


class Compressed(VariantFiles, Protocol):
    """A compressed classifier held in memory, before it is written as an artifact."""

    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        """Return (probabilities of shape (len(texts), labels), per-text truncation flags)."""
        ...


MethodFn = Callable[["CompressContext", "str | None"], Compressed]
COMPRESSION_METHODS: Registry[MethodFn] = Registry("compression method")
ArgRule = Literal["none", "fraction", "student"]
_ARG_RULES: dict[str, tuple[ArgRule, str]] = {}
_SUMMARIES: dict[str, str] = {}


def register_compression_method(
    name: str, summary: str, arg: ArgRule = "none", example: str = ""
) -> Callable[[MethodFn], MethodFn]:
    """Return a decorator registering a method under `name` with the kind of argument it takes.

    `summary` is the one line `modelyard compress --list` shows; `arg` is "none", "fraction"
    (a number in (0, 1) to remove) or "student" (a layer count or a backbone); `example`
    is shown in error messages and the listing.
    """

    def decorator(fn: MethodFn) -> MethodFn:
        COMPRESSION_METHODS.add(name, fn)
        _ARG_RULES[name] = (arg, example)
        _SUMMARIES[name] = summary
        return fn

    return decorator


def describe_methods() -> dict[str, str]:
    """Return {example spec: one-line summary} for every registered method."""
    return {_ARG_RULES[name][1] or name: _SUMMARIES[name] for name in COMPRESSION_METHODS}


@dataclass
class MethodSpec:
    """One entry of `--methods`: a registered name and its optional argument."""

    name: str
    arg: str | None

    @property
    def label(self) -> str:
        """Return the spec as the user wrote it, e.g. `prune-heads:0.3`."""
        return self.name if self.arg is None else f"{self.name}:{self.arg}"

    @property
    def slug(self) -> str:
        """Return a directory-safe name of the spec, e.g. `prune-heads-0.3`."""
        return "".join(c if c.isalnum() or c in "-." else "-" for c in self.label)


def parse_methods(specs: list[str]) -> list[MethodSpec]:
    """Return the parsed and checked specs; raise UnknownPluginError naming the registered methods.

    Raises RecipeError for an empty spec, a bad argument or a spec given twice; BackboneError
    for a distillation student that is not on this machine.
    """
    parsed = []
    for raw in specs:
        text = raw.strip()
        if not text:
            raise RecipeError(
                f"empty compression method in {specs}; e.g. --methods onnx,int8-dynamic"
            )
        name, _, arg = text.partition(":")
        COMPRESSION_METHODS.get(name)
        parsed.append(MethodSpec(name, arg or None))
        check_arg(parsed[-1])
    labels = [s.label for s in parsed]
    repeated = sorted({x for x in labels if labels.count(x) > 1})
    if repeated:
        raise RecipeError(f"compression method(s) given twice: {', '.join(repeated)}")
    return parsed


def check_arg(spec: MethodSpec) -> None:
    """Validate the argument of `spec` before any work starts; raise RecipeError when it is wrong."""
    rule, example = _ARG_RULES.get(spec.name, ("none", ""))
    if rule == "none" and spec.arg is not None:
        raise RecipeError(
            f"{spec.label}: the method '{spec.name}' takes no argument; write '{spec.name}'"
        )
    if rule == "fraction":
        fraction_arg(spec.name, spec.arg, 0.5)
    if rule == "student":
        if spec.arg is None:
            raise RecipeError(
                f"{spec.name} needs a student: {spec.name}:N keeps N of the teacher's layers, "
                f"{spec.name}:BACKBONE starts from another backbone (e.g. {example})"
            )
        if not is_number(spec.arg):
            from modelyard.models import resolve_backbone

            resolve_backbone(spec.arg)


def fraction_arg(spec_name: str, arg: str | None, default: float) -> float:
    """Return `arg` as a fraction in (0, 1), or `default` when absent; raise RecipeError otherwise."""
    if arg is None:
        return default
    try:
        value = float(arg)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise RecipeError(
            f"{spec_name}:{arg}: the argument is the fraction to remove, a number between 0 and 1 "
            f"(exclusive), e.g. {spec_name}:{default}"
        )
    return value


@dataclass
class CompressContext:
    """The parent run and settings every method reads; training data loads on first use."""

    run: LoadedRun
    cfg: CompressConfig
    work_dir: Path
    seed: int = 42
    threads: int | None = None
    _bundle: DataBundle | None = field(default=None, repr=False)
    cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def data(self) -> DataBundle:
        """Return the parent recipe's splits (loaded once); raise DataError when it has no data."""
        if self._bundle is None:
            cfg = self.run.recipe.data
            if not cfg.has_source:
                raise DataError(
                    f"{self.run.path / RECIPE} has no data section: methods that calibrate or "
                    "fine-tune need the run's training data"
                )
            bundle = load_data(cfg, self.seed)
            if bundle.labels != self.run.labels:
                raise DataError(
                    f"the training data of {self.run.path} now has labels {bundle.labels}, "
                    f"but the model was trained on {self.run.labels}"
                )
            self._bundle = bundle
        return self._bundle

    def train_split(self) -> Split:
        """Return the parent run's training split."""
        return self.data().train

    def train_encoded(self) -> Encoded:
        """Return the training split tokenised with the parent's tokenizer (cached)."""
        if "train_encoded" not in self.cache:
            self.cache["train_encoded"] = encode_split(
                self.run.tokenizer, self.train_split(), self.run.max_length
            )
        encoded: Encoded = self.cache["train_encoded"]
        return encoded

    def sample_texts(self, n: int) -> list[str]:
        """Return a seeded sample of at most `n` training texts."""
        texts = self.train_split().texts
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(texts))[:n]
        return [texts[i] for i in sorted(order)]

    def scratch(self, name: str) -> Path:
        """Return an empty scratch directory `name` under the work directory."""
        path = self.work_dir / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path


def refuse_embedding_parent(ctx: CompressContext, method: str) -> None:
    """Raise ArtifactError when the parent run is an embedding classifier, which `method`
    cannot compress."""
    if ctx.run.manifest.get("kind") == "embedding-classifier":
        raise ArtifactError(
            f"{method} compresses Hugging Face classifiers; {ctx.run.path} is an "
            "embedding-classifier run (model.pooling: mean). Use onnx, int8-dynamic, "
            "int8-static, torch-int8, prune, prune-heads or prune-ffn"
        )


class VariantParent(Protocol):
    """What writing a variant reads of its parent run (a LoadedRun, or another task's run)."""

    @property
    def path(self) -> Path:
        """Return the run folder."""
        ...

    @property
    def tokenizer(self) -> Any:
        """Return the run's tokenizer."""
        ...

    @property
    def manifest(self) -> dict[str, Any]:
        """Return the run's manifest."""
        ...


def save_variant(compressed: Compressed, ctx: CompressContext, spec: MethodSpec, out: Path) -> Path:
    """Write `compressed` as an artifact at `out` (atomically) and return `out` (see
    `write_variant`)."""
    return write_variant(compressed, ctx.run, spec.label, out)


def write_variant(
    compressed: VariantFiles,
    parent: VariantParent,
    method: str,
    out: Path,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write `compressed` as an artifact at `out` (atomically) and return `out`.

    The artifact holds the model files, the parent's tokenizer, labels, recipe and calibration
    record (its temperature), a `compression.json` of what `method` did, and a manifest
    naming the parent (with `extra` fields, e.g. the task of a run that is not a classifier).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        # a method with its own tokenizer (a student on another backbone) overwrites this one
        parent.tokenizer.save_pretrained(str(tmp))
        compressed.save(tmp)
        for name in (LABELS, RECIPE, CALIBRATION):
            if (parent.path / name).is_file():
                shutil.copyfile(parent.path / name, tmp / name)
        atomic_write_json(tmp / COMPRESSION_FILE, {"method": method, **compressed.details})
        lineage = {**_lineage(parent), **(extra or {})}
        write_manifest(
            tmp, kind=compressed.kind, parent=relative_parent(parent.path, out), extra=lineage
        )
        return replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _lineage(parent: VariantParent) -> dict[str, Any]:
    return {
        "parent_manifest_sha256": sha256_file(parent.path / "manifest.json"),
        "backbone": parent.manifest.get("backbone"),
    }


__getattr__ = renamed(
    "modelyard.compress.base",
    {"METHODS": "COMPRESSION_METHODS", "register_method": "register_compression_method"},
    globals(),
)
