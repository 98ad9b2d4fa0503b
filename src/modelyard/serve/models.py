"""The models a server holds: resolved from the registry, loaded, and swapped in place.

A served model follows its reference: `name:production` or `name` (latest) moves when
the registry moves, and `check_aliases` swaps in the new version while requests keep
flowing. An explicit reload (the admin route) can also switch to any stored version.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from modelyard.backends import Backend, load_backend
from modelyard.errors import ModelyardError
from modelyard.registry.store import (
    ModelRef,
    ModelStore,
    RegistryError,
    ResolvedModel,
    is_number,
    parse_ref,
)
from modelyard.serve.engine import Predictor
from modelyard.serve.errors import ConflictError, NotFoundError
from modelyard.serve.llm import ServedGenerator, is_generation_artifact, load_generator
from modelyard.serve.metrics import ServeMetrics
from modelyard.serve.settings import ServeSettings
from modelyard.serve.tagging import ServedTagger, is_tagging_artifact, load_served_tagger

log = logging.getLogger("modelyard.serve")
Loader = Callable[[Path], Backend]


@dataclass
class ServedModel:
    """One model being served: the reference it follows, the version loaded, its predictor."""

    ref: ModelRef
    resolved: ResolvedModel
    predictor: Predictor
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def name(self) -> str:
        """Return the model name."""
        return self.ref.name

    @property
    def version(self) -> str:
        """Return the version now answering requests."""
        return self.predictor.version

    @property
    def backend(self) -> Backend:
        """Return the backend now answering requests."""
        return self.predictor.backend


@dataclass(frozen=True)
class Swap:
    """The outcome of a reload: the model and its version before and after."""

    name: str
    previous: str
    version: str

    @property
    def changed(self) -> bool:
        """Return True when a different version was swapped in."""
        return self.previous != self.version


class ModelSet:
    """The served models by name; loads them from the registry and hot-swaps versions."""

    def __init__(
        self,
        settings: ServeSettings,
        store: ModelStore,
        metrics: ServeMetrics,
        loader: Loader = load_backend,
    ) -> None:
        self.settings, self.store, self.metrics, self.loader = settings, store, metrics, loader
        self.models: dict[str, ServedModel] = {}
        self.generators: dict[str, ServedGenerator] = {}
        self.taggers: dict[str, ServedTagger] = {}

    def load_all(self) -> None:
        """Resolve and load every configured model; raise RegistryError or ArtifactError on failure.

        Classifiers get a batching predictor; language-model runs a generation engine.
        """
        for text in self.settings.models:
            ref = parse_ref(text)
            resolved = self.store.resolve(ref)
            if is_generation_artifact(resolved.path):
                self.generators[ref.name] = load_generator(
                    ref, resolved, self.settings, self.metrics
                )
                log.info("serving %s as %s (generation)", ref, resolved)
                continue
            if is_tagging_artifact(resolved.path):
                self.taggers[ref.name] = load_served_tagger(
                    ref, resolved, self.settings, self.metrics
                )
                log.info("serving %s as %s (%s)", ref, resolved, self.taggers[ref.name].task)
                continue
            predictor = Predictor(
                self._warm(self.loader(resolved.path)),
                str(resolved.version),
                self.settings.max_batch_size,
                self.settings.max_wait_ms,
                self.settings.max_queue,
                on_batch=self.metrics.batch_hook(ref.name),
                nice=self.settings.inference_nice,
            )
            self.metrics.watch_queue(ref.name, _depth_of(predictor))
            self.metrics.version.labels(ref.name).set(resolved.version)
            self.models[ref.name] = ServedModel(ref, resolved, predictor)
            log.info("serving %s as %s", ref, resolved)

    def get(self, name: str | None) -> ServedModel:
        """Return the served model `name` (or the only one when `name` is None).

        Raises NotFoundError naming the served models.
        """
        if name is None and len(self.models) == 1:
            return next(iter(self.models.values()))
        if name is not None and name in self.models:
            return self.models[name]
        if name is not None and name in self.generators:
            raise NotFoundError(
                f"model '{name}' generates text; use /v1/chat/completions or /v1/completions"
            )
        if name is not None and name in self.taggers:
            raise NotFoundError(
                f"model '{name}' is a {self.taggers[name].task} run; use /v1/predict (it answers "
                "in the task's own shape)"
            )
        served = ", ".join(sorted(self.models))
        if name is None:
            raise NotFoundError(f"several models are served; name one of: {served}")
        raise NotFoundError(f"model '{name}' is not served here; served: {served}")

    def saturated(self) -> bool:
        """Return True when every prediction request would be refused: classifiers only (no
        tagger, which queues elsewhere) and each one's queue full."""
        return (
            bool(self.models)
            and not self.taggers
            and all(served.predictor.full for served in self.models.values())
        )

    def tagger(self, name: str | None) -> ServedTagger | None:
        """Return the token classifier `name` answers to (the only model served when `name` is
        None and it is one), or None when the request is for a classifier."""
        if name is not None:
            return self.taggers.get(name)
        if len(self.taggers) == 1 and not self.models:
            return next(iter(self.taggers.values()))
        return None

    def generator(self, name: str | None) -> ServedGenerator:
        """Return the generation model `name` (or the only one when `name` is None).

        Raises NotFoundError naming the served generation models.
        """
        if name is None and len(self.generators) == 1:
            return next(iter(self.generators.values()))
        if name is not None and name in self.generators:
            return self.generators[name]
        served = ", ".join(sorted(self.generators)) or "(none)"
        if name is None:
            raise NotFoundError(f"name the model to use; generation models served: {served}")
        raise NotFoundError(
            f"model '{name}' is not a generation model served here; generation models: {served}"
        )

    async def reload(self, name: str, tag: str | None = None) -> Swap:
        """Swap model `name` to the version `tag` names (default: its own reference's target).

        The new version loads in a thread while the old one keeps answering; requests already
        queued are answered by whichever is current when their batch runs. Raises
        NotFoundError for an unknown model, version or alias, ArtifactError for a bad artifact.
        """
        served = self.get(name)
        async with served.lock:
            previous = served.version
            target = self._resolve(served, tag)
            if str(target.version) != previous:
                backend = await self._load(target, previous)
                served.predictor.swap(backend, str(target.version))
                served.resolved = target
                self.metrics.version.labels(name).set(target.version)
                log.info("swapped %s from version %s to %s", name, previous, target.version)
            return Swap(name, previous, served.version)

    def _resolve(self, served: ServedModel, tag: str | None) -> ResolvedModel:
        try:
            return self.store.resolve(parse_ref(f"{served.name}:{tag}") if tag else served.ref)
        except RegistryError:
            # the registry's own message names its folder; answers over HTTP never carry paths
            versions = ", ".join(map(str, self.store.versions(served.name))) or "(none)"
            aliases = ", ".join(self.store.aliases(served.name)) or "(none)"
            raise NotFoundError(
                f"'{served.name}:{tag or served.ref.tag}' names no stored version; "
                f"versions: {versions}; aliases: {aliases}"
            ) from None

    async def _load(self, target: ResolvedModel, previous: str) -> Backend:
        try:
            backend = await anyio.to_thread.run_sync(self.loader, target.path)
        except ModelyardError as exc:
            log.error("cannot load %s: %s", target, exc)
            raise ConflictError(
                f"version {target.version} of '{target.name}' failed to load and was not swapped in; "
                f"version {previous} keeps serving (details in the server log)"
            ) from None
        return await anyio.to_thread.run_sync(self._warm, backend)

    @staticmethod
    def _warm(backend: Backend) -> Backend:
        # the first forward pass allocates and picks kernels; pay that before traffic arrives
        backend.predict_proba(["warm up"] * 2)
        return backend

    async def check_aliases(self) -> list[Swap]:
        """Reload every model whose reference (alias or latest) now points elsewhere; return the swaps."""
        swaps = []
        for name, served in self.models.items():
            if is_number(served.ref.tag):
                continue
            swap = await self.reload(name)
            if swap.changed:
                swaps.append(swap)
        return swaps

    def drain(self) -> None:
        """Ask every predictor to stop waiting for full batches."""
        for served in self.models.values():
            served.predictor.drain()

    def close(self) -> None:
        """Answer what is queued and stop every predictor."""
        for served in self.models.values():
            served.predictor.close(self.settings.drain_timeout_s)
        for generator in self.generators.values():
            generator.engine.close(self.settings.drain_timeout_s)


def _depth_of(predictor: Predictor) -> Callable[[], int]:
    return lambda: predictor.depth
