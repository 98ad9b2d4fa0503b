"""A tiny Llama (2 layers, hidden 32) with a byte-level BPE tokenizer and a ChatML template,
built in code, and small chat and text files."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
COLOURS = ["red", "green", "blue", "yellow", "black", "white"]
ANIMALS = ["cat", "dog", "horse", "bird", "fish", "cow"]


def corpus(n: int = 200, seed: int = 0) -> list[str]:
    """Return n short sentences about animals and colours."""
    rng = random.Random(seed)
    return [
        f"the {rng.choice(COLOURS)} {rng.choice(ANIMALS)} sees the {rng.choice(ANIMALS)}."
        for _ in range(n)
    ]


def qa_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Return instruction rows whose answer is a fixed function of the question."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        animal = rng.choice(ANIMALS)
        rows.append(
            {
                "instruction": f"what colour is the {animal}?",
                "input": "",
                "output": f"the {animal} is {COLOURS[ANIMALS.index(animal)]}.",
            }
        )
    return rows


def build_tokenizer(template: str | None = CHATML) -> PreTrainedTokenizerFast:
    """Return a byte-level BPE tokenizer trained on the test corpus, with ChatML special tokens."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    texts = (
        corpus()
        + [json.dumps(r) for r in qa_rows(50)]
        + ["what colour is the ? user assistant system"]
    )
    core.train_from_iterator(texts, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token="<|im_start|>",
    )
    tok.chat_template = template
    return tok


def save_tiny_llama(folder: Path, template: str | None = CHATML, varied: bool = False) -> Path:
    """Save a 2-layer Llama (hidden 32) and its tokenizer to `folder`; return it.

    `varied`: larger random weights, so greedy answers vary from token to token instead of
    repeating one, and an end-of-turn embedding of zeros, so answers rarely end early.
    """
    tok = build_tokenizer(template)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
        initializer_range=0.2 if varied else 0.02,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    if varied:
        with torch.no_grad():
            # a zero row gives the end-of-turn token a logit of 0, below the best of the others
            model.get_input_embeddings().weight[tok.eos_token_id] = 0.0
    model.save_pretrained(str(folder), safe_serialization=True)
    tok.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama model folder whose tokenizer has a ChatML template."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_llama_no_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same tiny Llama, but its tokenizer has no chat template."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama-nt"), template=None)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """Write rows as JSONL; return the path."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def sft_recipe(tmp_path: Path, tiny_llama: Path) -> dict:
    """A generation recipe on the tiny Llama: 60 instruction rows, LoRA, a few steps."""
    data = write_jsonl(tmp_path / "chat.jsonl", qa_rows(60))
    return {
        "task": "generation",
        "run": {"name": "sft", "output_dir": str(tmp_path / "runs"), "seed": 3},
        "data": {"path": str(data), "split": {"dev": 0.1, "test": 0.1}},
        "model": {"backbone": str(tiny_llama), "max_length": 64},
        "train": {
            "epochs": 2,
            "batch_size": 8,
            "lr": 5e-3,
            "precision": "fp32",
            "num_threads": 1,
            "checkpoint_every": 4,
        },
        "generation": {"max_new_tokens": 8, "eval_samples": 2},
    }


@pytest.fixture()
def clm_recipe(tmp_path: Path, tiny_llama: Path) -> dict:
    """A language-modeling recipe on the tiny Llama over a plain-text file."""
    text = tmp_path / "corpus.txt"
    text.write_text("\n\n".join(corpus(120)) + "\n", encoding="utf-8")
    return {
        "task": "language-modeling",
        "run": {"name": "clm", "output_dir": str(tmp_path / "runs"), "seed": 3},
        "data": {"path": str(text), "split": {"dev": 0.1, "test": 0.1}},
        "model": {"backbone": str(tiny_llama), "max_length": 48},
        "train": {
            "epochs": 2,
            "batch_size": 4,
            "lr": 3e-3,
            "precision": "fp32",
            "num_threads": 1,
            "checkpoint_every": None,
        },
    }
