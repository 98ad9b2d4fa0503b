"""Fixtures for serving: tiny classifier artifacts in a registry, API keys, live servers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import uvicorn
import yaml
from fastapi import FastAPI
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from modelyard.registry.manifest import write_manifest
from modelyard.registry.run import save_model_files
from modelyard.registry.store import ModelStore
from modelyard.serve.app import create_app
from modelyard.serve.auth import KeyStore
from modelyard.serve.settings import ServeSettings

LABELS = ["account", "billing", "shipping"]
MAX_LENGTH = 16


def build_artifact(backbone: Path, folder: Path, seed: int) -> Path:
    """Write a tiny 3-label classifier run (random head, seeded) with a verified manifest."""
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(backbone), num_labels=len(LABELS), local_files_only=True
    )
    tokenizer = AutoTokenizer.from_pretrained(str(backbone), local_files_only=True)
    save_model_files(folder, model, tokenizer, LABELS)
    recipe = {"model": {"backbone": str(backbone), "max_length": MAX_LENGTH}}
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    write_manifest(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> list[Path]:
    """Two tiny classifier runs whose weights differ (seeds 1 and 2)."""
    root = tmp_path_factory.mktemp("serve-runs")
    return [build_artifact(tiny_backbone, root / f"run{seed}", seed) for seed in (1, 2)]


@pytest.fixture()
def store(tmp_path: Path, tiny_runs: list[Path]) -> ModelStore:
    """A registry holding `tiny` version 1 (alias production) and version 2."""
    registry = ModelStore(tmp_path / "registry")
    registry.push(tiny_runs[0], "tiny")
    registry.push(tiny_runs[1], "tiny")
    registry.set_alias("tiny:1", "production")
    return registry


@dataclass
class Keys:
    """A key file with one predict key and one admin key."""

    store: KeyStore
    predict: str
    admin: str

    def headers(self, scope: str = "predict") -> dict[str, str]:
        """Return request headers carrying the key of `scope`."""
        return {"Authorization": f"Bearer {self.predict if scope == 'predict' else self.admin}"}


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """One predict key and one admin key in a key file of their own."""
    store = KeyStore(tmp_path_factory.mktemp("keys") / "keys.json")
    _, predict = store.create("predict", "tests")
    _, admin = store.create("admin", "tests")
    return Keys(store, predict, admin)


@pytest.fixture()
def make_app(store: ModelStore, keys: Keys) -> Callable[..., FastAPI]:
    """Return a builder of apps serving `tiny:production` with settings overridden by kwargs."""

    def build(**overrides: object) -> FastAPI:
        options: dict[str, object] = {"models": ["tiny:production"], "watch_aliases_s": None}
        options.update(overrides)
        return create_app(ServeSettings.model_validate(options), store=store, keys=keys.store)

    return build


def wait_until(
    condition: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition"
) -> None:
    """Poll `condition` until it holds; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        pause.wait(0.01)


@dataclass
class LiveServer:
    """A uvicorn server in a thread on 127.0.0.1, and the app it serves."""

    app: FastAPI
    url: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread


def start_server(app: FastAPI) -> LiveServer:
    """Run `app` under uvicorn in a daemon thread on 127.0.0.1 (a free port); return once it accepts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=10))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    live = LiveServer(app, f"http://127.0.0.1:{port}", port, server, thread)
    wait_until(lambda: server.started, what="the server to start")
    return live


def stop_server(live: LiveServer) -> None:
    """Ask the server to exit and wait for its thread (bounded)."""
    live.server.should_exit = True
    live.thread.join(20)


@pytest.fixture()
def live_server() -> Iterator[Callable[[FastAPI], LiveServer]]:
    """Return a starter of live servers on 127.0.0.1; all of them stop after the test."""
    running: list[LiveServer] = []

    def start(app: FastAPI) -> LiveServer:
        running.append(start_server(app))
        return running[-1]

    yield start
    for live in running:
        stop_server(live)


def build_lm_run(folder: Path) -> Path:
    """Write a chat-tuned generation run: the varied tiny Llama (ChatML) with a manifest."""
    from tests.generation.conftest import save_tiny_llama

    save_tiny_llama(folder, varied=True)
    recipe = {"task": "generation", "model": {"backbone": str(folder), "max_length": 64}}
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    write_manifest(folder, kind="causal-lm")
    return folder


@pytest.fixture(scope="session")
def lm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generation run on the tiny Llama."""
    return build_lm_run(tmp_path_factory.mktemp("lm-run") / "chat")


@pytest.fixture()
def lm_store(store: ModelStore, lm_run: Path) -> ModelStore:
    """The registry of `store` plus `chat` version 1, a generation run."""
    store.push(lm_run, "chat")
    return store


@pytest.fixture()
def make_lm_app(lm_store: ModelStore, keys: Keys) -> Callable[..., FastAPI]:
    """Return a builder of apps serving `chat` (generation) beside `tiny:production`."""

    def build(**overrides: object) -> FastAPI:
        options: dict[str, object] = {
            "models": ["chat", "tiny:production"],
            "watch_aliases_s": None,
            "max_new_tokens": 64,
        }
        options.update(overrides)
        return create_app(ServeSettings.model_validate(options), store=lm_store, keys=keys.store)

    return build
