"""PyTorch variants: plain classifiers, and shrunk or int8 ones with their own artifact kind.

A plain variant (distilled, magnitude-pruned, half precision) is an ordinary run folder
of kind `classifier` (`embedding-classifier` when the parent is one). A variant whose
layers no longer match its config (pruned heads or neurons) or whose Linear layers hold
int8 weights is of kind `torch-compressed-classifier`: its `compression.json` records the
layer shapes, the quantization and the architecture (a Hugging Face sequence classifier, or
the mean-pooled embedding classifier), and the loader rebuilds that structure before
loading the safetensors.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from modelyard.backends import TorchBackend
from modelyard.errors import ArtifactError
from modelyard.inference import predict_proba
from modelyard.models.build import load_tokenizer, quiet_transformers
from modelyard.registry.manifest import verify_manifest
from modelyard.registry.records import read_labels, read_recipe
from modelyard.registry.run import LoadedRun

TORCH_KIND = "torch-compressed-classifier"
EMBEDDING_ARCHITECTURE = "embedding-classifier"
WEIGHTS = "model.safetensors"
INT8 = "int8-dynamic"


@contextlib.contextmanager
def quiet_torch_ao() -> Iterator[None]:
    """Silence torch.ao's deprecation notices: its dynamic int8 path still works in torch 2.x."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_(tensor|channel).*")
        warnings.filterwarnings("ignore", message=".*quantized tensor creation.*")
        yield


def quantize_linear_int8(model: Any, per_channel: bool = False) -> Any:
    """Return a copy of `model` whose nn.Linear layers hold int8 weights (dynamic activations),
    with one scale per output channel when `per_channel`."""
    ao = torch.ao.quantization
    qconfig = ao.per_channel_dynamic_qconfig if per_channel else ao.default_dynamic_qconfig
    with quiet_torch_ao():
        return ao.quantize_dynamic(
            model, {torch.nn.Linear: qconfig}, dtype=torch.qint8, inplace=False
        )


def is_embedding_model(model: Any) -> bool:
    """Return True when `model` is modelyard's mean-pooled embedding classifier."""
    from modelyard.methods.embedding import is_embedding_classifier

    return bool(is_embedding_classifier(model))


def bare_encoder(model: Any) -> Any:
    """Return the transformer under `model`'s task head (its `base_model`, or the embedding
    classifier's encoder)."""
    return model.encoder if is_embedding_model(model) else getattr(model, "base_model", None)


def encoder_layers(model: Any) -> Any:
    """Return the encoder's list of layers of a BERT-style model; raise ArtifactError otherwise."""
    layers = getattr(getattr(bare_encoder(model), "encoder", None), "layer", None)
    if layers is None or not hasattr(layers[0], "attention"):
        raise ArtifactError(
            f"{type(model).__name__} is not a BERT-style encoder (base_model.encoder.layer[i]"
            ".attention); structured pruning and layer distillation support BERT, RoBERTa, "
            "MiniLM, ELECTRA and their kin"
        )
    return layers


def layer_shapes(model: Any) -> list[dict[str, int]]:
    """Return, per encoder layer, its number of attention heads and feed-forward width."""
    return [
        {
            "heads": int(layer.attention.self.query.out_features)
            // int(layer.attention.self.attention_head_size),
            "intermediate": int(layer.intermediate.dense.out_features),
        }
        for layer in encoder_layers(model)
    ]


def _keep_rows(linear: torch.nn.Linear, index: torch.Tensor, dim: int) -> torch.nn.Linear:
    from transformers.pytorch_utils import prune_linear_layer

    index = index.to(device=linear.weight.device, dtype=torch.long)
    return prune_linear_layer(linear, index, dim=dim)  # type: ignore[arg-type]


def keep_heads(layer: Any, heads: list[int]) -> None:
    """Shrink one layer's attention to the heads in `heads` (the matrices really get smaller)."""
    attn = layer.attention.self
    size = attn.attention_head_size
    index = torch.cat([torch.arange(h * size, (h + 1) * size) for h in sorted(heads)])
    for name in ("query", "key", "value"):
        setattr(attn, name, _keep_rows(getattr(attn, name), index, 0))
    layer.attention.output.dense = _keep_rows(layer.attention.output.dense, index, 1)
    attn.num_attention_heads = len(heads)
    attn.all_head_size = len(heads) * size


def keep_neurons(layer: Any, neurons: list[int]) -> None:
    """Shrink one layer's feed-forward block to the hidden units in `neurons`."""
    index = torch.tensor(sorted(neurons), dtype=torch.long)
    layer.intermediate.dense = _keep_rows(layer.intermediate.dense, index, 0)
    layer.output.dense = _keep_rows(layer.output.dense, index, 1)


def apply_shapes(model: Any, shapes: list[dict[str, int]]) -> None:
    """Shrink a freshly built model to `shapes` (from `layer_shapes`) so saved weights fit."""
    layers = encoder_layers(model)
    if len(shapes) != len(layers):
        raise ArtifactError(
            f"compression.json describes {len(shapes)} layers, the config {len(layers)}"
        )
    for layer, shape in zip(layers, shapes, strict=True):
        keep_heads(layer, list(range(shape["heads"])))
        keep_neurons(layer, list(range(shape["intermediate"])))


def int8_tensors(model: Any) -> dict[str, torch.Tensor]:
    """Return a safetensors-ready dict of a dynamically quantized model: int8 weights with
    their scales and zero points, and every other tensor as it is."""
    qlinears = {n: m for n, m in model.named_modules() if _is_qlinear(m)}
    out = {
        k: v.contiguous()
        for k, v in model.state_dict().items()
        if isinstance(v, torch.Tensor) and not any(k.startswith(q + ".") for q in qlinears)
    }
    for name, module in qlinears.items():
        weight = module.weight()
        out[f"{name}.weight"] = weight.int_repr().contiguous()
        if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            out[f"{name}.weight_scale"] = weight.q_per_channel_scales().float()
            out[f"{name}.weight_zero_point"] = weight.q_per_channel_zero_points()
        else:
            out[f"{name}.weight_scale"] = torch.tensor([weight.q_scale()], dtype=torch.float32)
            out[f"{name}.weight_zero_point"] = torch.tensor([weight.q_zero_point()])
        if module.bias() is not None:
            out[f"{name}.bias"] = module.bias().detach().contiguous()
    return out


def _is_qlinear(module: Any) -> bool:
    return isinstance(module, torch.ao.nn.quantized.dynamic.Linear)


def load_int8_tensors(model: Any, tensors: dict[str, torch.Tensor]) -> None:
    """Put int8 weights saved by `int8_tensors` back into a dynamically quantized `model`."""
    qlinears = {n: m for n, m in model.named_modules() if _is_qlinear(m)}

    def packed(key: str) -> bool:
        return any(key.startswith(q + ".") for q in qlinears)

    state = model.state_dict()
    rest = {k: v for k, v in tensors.items() if not packed(k)}
    missing = sorted(k for k in state if not packed(k) and k not in rest)
    unexpected = sorted(set(rest) - set(state))
    if missing or unexpected:
        raise ArtifactError(
            f"int8 weights do not fit the model: missing {missing}, unexpected {unexpected}"
        )
    # updated in place: the state dict's metadata tells the quantized layers its format
    # version, and their own entries go back as they are, to be replaced just below
    state.update(rest)
    model.load_state_dict(state)
    with quiet_torch_ao():
        for name, module in qlinears.items():
            module.set_weight_bias(_requantize(tensors, name), tensors.get(f"{name}.bias"))


def _requantize(tensors: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    q = tensors[f"{name}.weight"].float()
    scale, zero = tensors[f"{name}.weight_scale"], tensors[f"{name}.weight_zero_point"]
    if scale.numel() == 1:
        weight = (q - zero.item()) * scale.item()
        return torch.quantize_per_tensor(weight, scale.item(), int(zero.item()), torch.qint8)
    weight = (q - zero[:, None]) * scale[:, None]
    return torch.quantize_per_channel(weight, scale.double(), zero, 0, torch.qint8)


@dataclass
class TorchCompressed:
    """A PyTorch variant in memory; `shapes`/`quantization` set make it a compressed kind."""

    model: Any
    parent: LoadedRun
    details: dict[str, Any] = field(default_factory=dict)
    shapes: list[dict[str, int]] | None = None
    quantization: str | None = None
    tokenizer: Any = None  # a student on another backbone brings its own

    @property
    def kind(self) -> str:
        """Return the artifact kind this variant is saved as."""
        if self.shapes is not None or self.quantization is not None:
            return TORCH_KIND
        return EMBEDDING_ARCHITECTURE if is_embedding_model(self.model) else "classifier"

    def as_run(self) -> LoadedRun:
        """Return the parent run with this variant's model in its place."""
        return replace(
            self.parent, model=self.model, tokenizer=self.tokenizer or self.parent.tokenizer
        )

    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        """Return class probabilities and truncation flags for `texts`."""
        preds = predict_proba(self.as_run(), texts)
        return preds.probs, preds.truncated

    def save(self, directory: Path) -> None:
        """Write config.json and model.safetensors (int8 weights packed when quantized)."""
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(str(directory))
        if self.kind == "classifier":
            with quiet_transformers():
                self.model.save_pretrained(str(directory), safe_serialization=True)
            return
        if self.kind == EMBEDDING_ARCHITECTURE:
            from modelyard.methods.embedding import save_embedding_files

            tokenizer = self.tokenizer or self.parent.tokenizer
            save_embedding_files(directory, self.model, tokenizer, self.parent.labels)
            return
        if is_embedding_model(self.model):
            self.details["architecture"] = EMBEDDING_ARCHITECTURE
        self.model.config.save_pretrained(str(directory))
        tensors = int8_tensors(self.model) if self.quantization == INT8 else self.model.state_dict()
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(directory / WEIGHTS))
        self.details.update(shapes=self.shapes, quantization=self.quantization)


def _empty_model(config: Any, info: dict[str, Any], labels: list[str]) -> Any:
    from transformers import AutoModel, AutoModelForSequenceClassification

    with quiet_transformers():
        if info.get("architecture") == EMBEDDING_ARCHITECTURE:
            from modelyard.methods.embedding import EmbeddingClassifier

            return EmbeddingClassifier(AutoModel.from_config(config), len(labels))
        return AutoModelForSequenceClassification.from_config(config)


def load_torch_variant(path: str | Path) -> LoadedRun:
    """Return the verified `torch-compressed-classifier` artifact at `path`, ready for inference.

    Raises ArtifactError when a file differs from the manifest or the weights do not fit.
    """
    from transformers import AutoConfig

    root = Path(path)
    manifest = verify_manifest(root)
    try:
        info = json.loads((root / "compression.json").read_text(encoding="utf-8"))
        config = AutoConfig.from_pretrained(str(root), local_files_only=True)
        model = _empty_model(config, info, read_labels(root))
        if info.get("shapes"):
            apply_shapes(model, info["shapes"])
        tensors = load_file(str(root / WEIGHTS))
        if info.get("quantization") == INT8:
            model = quantize_linear_int8(model, bool(info.get("per_channel")))
            load_int8_tensors(model, tensors)
        else:
            model.load_state_dict(tensors, strict=True)
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
        raise ArtifactError(f"cannot load the compressed model in {root}: {exc}") from None
    labels, recipe = read_labels(root), read_recipe(root)
    return LoadedRun(root, model.eval(), load_tokenizer(root), labels, manifest, recipe)


class TorchVariantBackend(TorchBackend):
    """A `torch-compressed-classifier` artifact served by PyTorch on the CPU."""

    def __init__(self, path: Path, batch_size: int = 32) -> None:
        self._serve(load_torch_variant(path), batch_size)
