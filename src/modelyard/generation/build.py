"""Build language models and their tokenizers from local folders, and apply training methods."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.errors import BackboneError, RecipeError
from modelyard.models import backbone_kind, load_tokenizer
from modelyard.models.build import quiet_transformers
from modelyard.recipe import LoraOptions, Recipe


def lm_kind(recipe: Recipe, folder: Path) -> str:
    """Return 'decoder' or 'encoder' for the recipe's backbone; raise BackboneError when unknown."""
    kind = backbone_kind(recipe.model.backbone, folder)
    if kind is None:
        raise BackboneError(
            f"cannot tell whether backbone '{recipe.model.backbone}' is an encoder or a decoder: "
            f"its config.json names no known architecture; use a *ForCausalLM or *ForMaskedLM model"
        )
    return kind


def lm_tokenizer(folder: Path, recipe: Recipe, kind: str) -> Any:
    """Return the backbone's tokenizer with a pad token and, if the recipe gives one, its chat template.

    Raises BackboneError when an encoder's tokenizer has no mask token.
    """
    tokenizer = load_tokenizer(folder)
    if recipe.generation.chat_template is not None:
        tokenizer.chat_template = recipe.generation.chat_template
    if tokenizer.pad_token_id is None:
        # padding never carries loss or attention here, so the end-of-text token can stand in
        tokenizer.pad_token = tokenizer.eos_token
    if kind == "encoder" and tokenizer.mask_token_id is None:
        raise BackboneError(f"the tokenizer in {folder} has no mask token; masked LM needs one")
    return tokenizer


def load_lm(folder: Path, kind: str) -> Any:
    """Return the causal LM (decoder) or masked LM (encoder) stored in `folder`.

    Raises BackboneError when the folder holds no such model.
    """
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    auto = AutoModelForCausalLM if kind == "decoder" else AutoModelForMaskedLM
    try:
        with quiet_transformers():
            return auto.from_pretrained(str(folder), local_files_only=True, use_safetensors=True)
    except (OSError, ValueError) as exc:
        raise BackboneError(
            f"cannot load a {'causal' if kind == 'decoder' else 'masked'} LM from {folder}: {exc}"
        ) from None


def _lora_config(peft: Any, recipe: Recipe, task_type: Any) -> Any:
    opts = recipe.train.lora or LoraOptions()
    explicit = "target_modules" in opts.model_fields_set
    return peft.LoraConfig(
        task_type=task_type,
        r=opts.rank,
        lora_alpha=opts.alpha,
        lora_dropout=opts.dropout,
        # without an explicit list, peft's default for the architecture (q_proj, v_proj for Llama)
        target_modules=list(opts.target_modules) if explicit else None,
        use_dora=opts.use_dora,
    )


def apply_method(model: Any, recipe: Recipe, kind: str) -> Any:
    """Return the model to train as `train.method` says: itself (full), or wrapped in LoRA / IA3 adapters.

    Raises RecipeError for a target module the model does not have.
    """
    method = recipe.train.method
    if method == "full":
        return model
    from modelyard.methods.peft_methods import check_target_modules, peft_module, wrap

    peft = peft_module()
    task_type = peft.TaskType.CAUSAL_LM if kind == "decoder" else None
    if method == "lora":
        config = _lora_config(peft, recipe, task_type)
        if config.target_modules is not None and recipe.train.lora is not None:
            check_target_modules(
                model, list(recipe.train.lora.target_modules), "train.lora.target_modules"
            )
    elif method == "ia3":
        opts = recipe.train.ia3
        kwargs: dict[str, Any] = {}
        if opts is not None and opts.target_modules is not None:
            check_target_modules(model, opts.target_modules, "train.ia3.target_modules")
            kwargs = {
                "target_modules": opts.target_modules,
                "feedforward_modules": opts.feedforward_modules or [],
            }
        config = peft.IA3Config(task_type=task_type, **kwargs)
    else:
        raise RecipeError(
            f"train.method '{method}' cannot train a language model; use full, lora or ia3"
        )
    return wrap(model, config)
