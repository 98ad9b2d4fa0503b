"""Parameter-efficient methods through the peft library: LoRA (and DoRA), IA3, prompt tuning.

Each wraps the freshly built classifier in a peft model whose task head stays trainable
(peft's `modules_to_save`); the run saves only the adapter (see `modelyard.methods.adapters`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from modelyard.errors import RecipeError
from modelyard.methods.catalog import builtin, register_training_method
from modelyard.plugins import require
from modelyard.recipe import IA3Options, LoraOptions, PromptTuningOptions, Recipe


def peft_module() -> Any:
    """Return the imported peft package; raise MissingExtraError with the install hint."""
    return require("peft", extra="methods")


@contextlib.contextmanager
def quiet_peft() -> Iterator[None]:
    """Hide peft's use of a transformers attribute deprecated in v5 (a warning users cannot act on)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        yield


def wrap(model: Any, config: Any) -> Any:
    """Return `model` wrapped by peft with `config`."""
    with quiet_peft():
        return peft_module().get_peft_model(model, config)


def linear_module_names(model: torch.nn.Module) -> list[str]:
    """Return the distinct short names of the model's linear layers (query, key, dense, ...)."""
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }
    return sorted(names)


def check_target_modules(model: torch.nn.Module, targets: list[str], key: str) -> None:
    """Raise RecipeError naming every target that matches no module, with the names that exist."""
    names = [name for name, _ in model.named_modules() if name]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        raise RecipeError(
            f"{key}: no module of the model is called {', '.join(repr(m) for m in missing)}; "
            f"its linear layers are: {', '.join(linear_module_names(model))} "
            "(a dotted suffix such as attention.output.dense also works)"
        )


def task_fields(model: Any) -> dict[str, Any]:
    """Return the peft config fields that keep the model's task head trainable.

    The backbone's own classifier is peft's sequence-classification task; a mean-pooled
    EmbeddingClassifier is no task peft knows, so its head is named instead.
    """
    from modelyard.methods.embedding import is_embedding_classifier

    if is_embedding_classifier(model):
        return {"modules_to_save": ["head"]}
    return {"task_type": peft_module().TaskType.SEQ_CLS}


def prepare_lora(model: Any, recipe: Recipe, fields: dict[str, Any] | None = None) -> Any:
    """Return `model` wrapped with LoRA adapters as `train.lora` says.

    `fields` are the peft task fields (default: those of a sequence classifier, see
    `task_fields`). Raises RecipeError for a target module the model does not have.
    """
    opts = recipe.train.lora or LoraOptions()
    check_target_modules(model, opts.target_modules, "train.lora.target_modules")
    peft = peft_module()
    config = peft.LoraConfig(
        **(task_fields(model) if fields is None else fields),
        r=opts.rank,
        lora_alpha=opts.alpha,
        lora_dropout=opts.dropout,
        target_modules=list(opts.target_modules),
        use_dora=opts.use_dora,
    )
    return wrap(model, config)


def prepare_ia3(model: Any, recipe: Recipe) -> Any:
    """Return `model` wrapped with IA3 scaling vectors as `train.ia3` says.

    Raises RecipeError for a target module the model does not have.
    """
    opts = recipe.train.ia3 or IA3Options()
    peft = peft_module()
    kwargs: dict[str, Any] = {}
    if opts.target_modules is not None:
        check_target_modules(model, opts.target_modules, "train.ia3.target_modules")
        kwargs["target_modules"] = list(opts.target_modules)
        kwargs["feedforward_modules"] = list(opts.feedforward_modules or [])
    config = peft.IA3Config(**task_fields(model), **kwargs)
    return wrap(model, config)


def prepare_prompt_tuning(model: Any, recipe: Recipe) -> Any:
    """Return `model` wrapped with learned virtual tokens as `train.prompt_tuning` says.

    Raises RecipeError when the virtual tokens plus model.max_length exceed the model's positions.
    """
    opts = recipe.train.prompt_tuning or PromptTuningOptions()
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions is not None and opts.num_virtual_tokens + recipe.model.max_length > positions:
        raise RecipeError(
            f"train.prompt_tuning.num_virtual_tokens ({opts.num_virtual_tokens}) + model.max_length "
            f"({recipe.model.max_length}) exceed the model's {positions} positions; lower one of them"
        )
    peft = peft_module()
    init: dict[str, Any] = {"prompt_tuning_init": peft.PromptTuningInit.RANDOM}
    if opts.init_text:
        init = {
            "prompt_tuning_init": peft.PromptTuningInit.TEXT,
            "prompt_tuning_init_text": opts.init_text,
            "tokenizer_name_or_path": model.config.name_or_path,
        }
    config = peft.PromptTuningConfig(
        task_type=peft.TaskType.SEQ_CLS, num_virtual_tokens=opts.num_virtual_tokens, **init
    )
    return wrap(model, config)


register_training_method(builtin("lora", prepare_lora))
register_training_method(builtin("ia3", prepare_ia3))
register_training_method(builtin("prompt-tuning", prepare_prompt_tuning))
