"""The federation as separate processes over the network, on Flower's Deployment Engine.

`serve_federation` (`modelyard federate server`) starts a Flower SuperLink with TLS and
SuperNode authentication, registers the clients' public keys, submits a Flower App
Bundle whose ServerApp runs the same rounds as the simulation (`app.run_rounds`), waits
for it and saves the run. `join_federation` (`modelyard federate client`) starts a Flower
SuperNode that trains on a local file; its ClientApp is the simulation's train handler
(`app.train_reply`) over that file. The rows never leave the client's machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.errors import ArtifactError, ModelyardError, RecipeError
from modelyard.federated.app import (
    STATE_FILE,
    ClientSide,
    FederationSetup,
    ServerOutcome,
    client_app,
    load_state,
    run_rounds,
)
from modelyard.federated.keys import CA_CERT, SERVER_CERT, SERVER_KEY, authorized_keys
from modelyard.federated.run import (
    STATE_DIR,
    FederationResult,
    ServerData,
    finish,
    prepare_federation_dir,
    with_overrides,
)
from modelyard.fsutil import atomic_write_text
from modelyard.models.encoding import Encoded, encode_split
from modelyard.plugins import require
from modelyard.recipe import Recipe, load_recipe
from modelyard.registry.run import RECIPE

APP_MODULE = "modelyard_federation"
CONNECTION = "modelyard"
DEFAULT_ADDRESS = "0.0.0.0:9092"
_FAB_PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "modelyard-federation"
version = "1.0.0"
description = "modelyard's federated fine-tuning (a ServerApp and a ClientApp)"
license = "Apache-2.0"

[tool.flwr.app]
publisher = "modelyard"

[tool.flwr.app.components]
serverapp = "{module}:server"
clientapp = "{module}:client"

[tool.flwr.app.config]
run-dir = ""
labels = "[]"
fingerprint = ""
"""
_FAB_MODULE = '''"""The Flower apps of a modelyard federation: both live in modelyard itself."""

from modelyard.federated.deploy import client, server

__all__ = ["client", "server"]
'''


class FederationFailed(ModelyardError):
    """The networked federation did not finish: the SuperLink or the ServerApp failed."""


def fingerprint(recipe: Recipe) -> str:
    """Return a short hash of what server and clients must agree on: model, training, federation.

    Data paths and run names may differ from machine to machine; these sections may not.
    """
    shared = recipe.model_dump(mode="json", include={"model", "train", "federated"})
    return hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- the apps in the bundle


def _make_apps() -> tuple[Any, Any]:
    from flwr.app import Context
    from flwr.serverapp import Grid, ServerApp

    server_side = ServerApp()

    @server_side.main()
    def _main(grid: Grid, context: Context) -> None:
        run_dir = Path(str(context.run_config["run-dir"]))
        recipe = load_recipe(run_dir / RECIPE)
        run_rounds(grid, context, ServerData.load(recipe).setup(run_dir, []), ServerOutcome())

    return server_side, client_app(network_client)


def __getattr__(name: str) -> Any:
    # the apps are built on first use so that importing this module does not import flwr
    if name in ("server", "client"):
        server_side, client_side = _make_apps()
        globals().update(server=server_side, client=client_side)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_CLIENTS: dict[tuple[str, str, str], ClientSide] = {}


def network_client(context: Any) -> ClientSide:
    """Return this SuperNode's client: its recipe and local file (node config), the run's labels.

    Raises RecipeError when the client's recipe disagrees with the server's on the model,
    training or federation sections.
    """
    recipe_path = str(context.node_config["recipe"])
    data_path = str(context.node_config["data"])
    labels = json.loads(str(context.run_config["labels"]))
    key = (recipe_path, data_path, json.dumps(labels))
    if key not in _CLIENTS:
        recipe = load_recipe(recipe_path)
        expected = str(context.run_config["fingerprint"])
        if fingerprint(recipe) != expected:
            raise RecipeError(
                f"{recipe_path}: its model, train or federated section differs from the "
                "server's recipe; use the same recipe on every machine"
            )
        _CLIENTS[key] = ClientSide(local_setup(recipe, Path(data_path), labels), 0, None)
    return _CLIENTS[key]


def local_setup(recipe: Recipe, data: Path, labels: list[str]) -> FederationSetup:
    """Return the setup of a client whose training rows are all of `data`, labelled as `labels`.

    Raises DataError for an unreadable file or a label outside `labels`.
    """
    from modelyard.data import load_data
    from modelyard.models import load_tokenizer, resolve_backbone
    from modelyard.recipe.data import SplitConfig

    folder = resolve_backbone(recipe.model.backbone)
    tokenizer = load_tokenizer(folder)
    cfg = recipe.data.model_copy(
        update={
            "path": data,
            "train": None,
            "dev": None,
            "test": None,
            "labels": labels,
            "max_rows": None,
            "split": SplitConfig(dev=0.0, test=0.0),
        }
    )
    bundle = load_data(cfg, recipe.run.seed)
    train = encode_split(tokenizer, bundle.train, recipe.model.max_length)
    return FederationSetup(
        recipe=recipe,
        folder=folder,
        labels=labels,
        pad_id=tokenizer.pad_token_id or 0,
        shards=[train],
        test=Encoded([], None, [], 0),
        state_dir=data.parent,
    )


# ---------------------------------------------------------------- processes


@dataclass
class Security:
    """TLS and node authentication files, or `insecure` (plain gRPC, no authentication)."""

    insecure: bool
    ca_cert: Path | None = None
    server_cert: Path | None = None
    server_key: Path | None = None
    client_keys: tuple[Path, ...] = ()

    @classmethod
    def for_server(cls, keys: Path | None, insecure: bool) -> Security:
        """Return the server's files from the `keys` directory (`modelyard federate keys`).

        Raises ArtifactError when a file is missing and not `insecure`.
        """
        if insecure:
            return cls(insecure=True)
        if keys is None:
            raise ArtifactError(
                "federate server runs with TLS and client authentication: pass --keys DIR "
                "(create it with `modelyard federate keys DIR --clients N`) or --insecure"
            )
        needed = [keys / CA_CERT, keys / SERVER_CERT, keys / SERVER_KEY]
        missing = [str(p) for p in needed if not p.is_file()]
        if missing:
            raise ArtifactError(f"federation keys missing: {', '.join(missing)}")
        public = tuple(authorized_keys(keys))
        if not public:
            raise ArtifactError(f"{keys} holds no client public keys (client-*.pub)")
        return cls(False, needed[0], needed[1], needed[2], public)


def _flower_tool(name: str) -> str:
    tool = Path(sys.executable).parent / name
    return str(tool) if tool.exists() else name


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _process_group(cmd: list[str], log: Path, env: dict[str, str]) -> Iterator[Any]:
    # its own session, so that stopping it also stops the SuperExec and app processes it spawns
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        yield proc
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    # the group's other members (SuperExec, app processes) may outlive the leader
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


@contextlib.contextmanager
def _exit_on_sigterm() -> Iterator[None]:
    # SIGTERM becomes SystemExit, so that the SuperNode's process group is stopped with us
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _flwr_env(home: Path) -> dict[str, str]:
    return {**os.environ, "FLWR_HOME": str(home)}


def _flwr(args: list[str], home: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [_flower_tool("flwr"), *args, "--format", "json"],
        capture_output=True,
        text=True,
        env=_flwr_env(home),
        timeout=120,
        check=False,
    )
    try:
        out: dict[str, Any] = json.loads(proc.stdout[proc.stdout.index("{") :])
    except ValueError:
        out = {"success": False, "error-message": (proc.stdout + proc.stderr).strip()[-2000:]}
    return out


# ---------------------------------------------------------------- the server


def serve_federation(
    recipe: Recipe | str | Path,
    keys: str | Path | None = None,
    insecure: bool = False,
    address: str = DEFAULT_ADDRESS,
    resume: bool = False,
    overwrite: bool = False,
    overrides: list[str] | None = None,
    start_timeout: float = 120.0,
) -> FederationResult:
    """Run the server of a federation over the network and save the result as a run.

    Starts a Flower SuperLink whose Fleet API listens on `address` with TLS (the
    certificate and key in `keys`) and SuperNode authentication (every `client-*.pub` in
    `keys` is registered; any other SuperNode is refused), submits the federation and
    waits for its rounds; `insecure` turns both off. The evaluation uses the recipe's
    held-out split on the server; the server's training rows, if any, are not used.
    Returns the run directory, test metrics and per-round figures. Raises ArtifactError
    for missing keys, RecipeError/DataError for the recipe, FederationFailed when the
    federation does not finish.
    """
    require("flwr", extra="federated")
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides)
    recipe = with_overrides(recipe, None, None)
    fed = recipe.federated
    assert fed is not None
    security = Security.for_server(Path(keys) if keys is not None else None, insecure)
    side = ServerData.load(recipe)
    run_dir = prepare_federation_dir(recipe, resume, overwrite)
    work = run_dir / STATE_DIR
    home = work / "flower"
    app_dir = work / "app"
    for folder in (home, app_dir):
        folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(app_dir / "pyproject.toml", _FAB_PYPROJECT.format(module=APP_MODULE))
    atomic_write_text(app_dir / f"{APP_MODULE}.py", _FAB_MODULE)
    control = f"127.0.0.1:{free_port()}"
    _write_connection(home, control, security)
    cmd = [
        _flower_tool("flower-superlink"),
        "--fleet-api-address",
        address,
        "--control-api-address",
        control,
        "--serverappio-api-address",
        f"127.0.0.1:{free_port()}",
        "--disable-runtime-dependency-installation",
    ]
    if security.insecure:
        cmd.append("--insecure")
    else:
        cmd += [
            "--ssl-ca-certfile",
            str(security.ca_cert),
            "--ssl-certfile",
            str(security.server_cert),
            "--ssl-keyfile",
            str(security.server_key),
            "--enable-supernode-auth",
        ]
    # a TOML file, as `flwr run --run-config` takes it: JSON strings are TOML basic strings
    run_config = work / "run_config.toml"
    atomic_write_text(
        run_config,
        f"run-dir = {json.dumps(str(run_dir.resolve()))}\n"
        f"labels = {json.dumps(json.dumps(side.bundle.labels))}\n"
        f"fingerprint = {json.dumps(fingerprint(recipe))}\n",
    )
    with _process_group(cmd, work / "superlink.log", _flwr_env(home)) as link:
        _register_clients(security, home, link, start_timeout)
        started = _flwr(["run", str(app_dir), CONNECTION, "--run-config", str(run_config)], home)
        if not started.get("success"):
            raise FederationFailed(f"the SuperLink refused the run: {started}")
        run_id = str(started["run-id"])
        budget = fed.rounds * (fed.round_timeout + 60.0) + start_timeout
        status = _wait_for_run(run_id, home, link, budget, work, fed.rounds)
    saved = load_state(work)
    if saved is None or saved[0] < fed.rounds:
        done = 0 if saved is None else saved[0]
        raise FederationFailed(
            f"the federation stopped after {done} of {fed.rounds} rounds ({status}); "
            f"see {work / 'superlink.log'} and `--resume` to continue"
        )
    done, state, ledger = saved
    outcome = ServerOutcome(state=state, ledger=ledger, resumed_from=None)
    setup = side.setup(run_dir, [])
    sizes = list(ledger.client_rows.values())
    return finish(setup, outcome, run_dir, side, sizes, "flower deployment engine")


def _write_connection(home: Path, control: str, security: Security) -> None:
    lines = ["[superlink]", f'default = "{CONNECTION}"', "", f"[superlink.{CONNECTION}]"]
    lines.append(f'address = "{control}"')
    if security.insecure:
        lines.append("insecure = true")
    else:
        lines.append(f"root-certificates = {json.dumps(str(security.ca_cert))}")
    atomic_write_text(home / "config.toml", "\n".join(lines) + "\n")


def _register_clients(
    security: Security, home: Path, link: subprocess.Popen[bytes], timeout: float
) -> None:
    # the first call also waits for the SuperLink's Control API to come up
    deadline = time.monotonic() + timeout
    for public in security.client_keys:
        while True:
            reply = _flwr(["supernode", "register", str(public), CONNECTION], home)
            if reply.get("success"):
                break
            if link.poll() is not None or time.monotonic() > deadline:
                raise FederationFailed(f"could not register client key {public}: {reply}")
            time.sleep(0.5)
    if not security.client_keys:
        _wait_for_control(home, link, deadline)


def _wait_for_control(home: Path, link: subprocess.Popen[bytes], deadline: float) -> None:
    while not _flwr(["ls", CONNECTION], home).get("success"):
        if link.poll() is not None or time.monotonic() > deadline:
            raise FederationFailed("the SuperLink's Control API did not come up")
        time.sleep(0.5)


def _wait_for_run(
    run_id: str,
    home: Path,
    link: subprocess.Popen[bytes],
    budget: float,
    state_dir: Path,
    rounds: int,
) -> str:
    # the checkpoint says when the last round is in; Flower's run status (a `flwr` process
    # each time, so asked rarely) says when the ServerApp failed before that
    deadline = time.monotonic() + budget
    asked = 0.0
    while time.monotonic() < deadline:
        if link.poll() is not None:
            raise FederationFailed(f"the SuperLink exited with code {link.returncode}")
        saved = state_dir / STATE_FILE
        if saved.is_file():
            done = json.loads(saved.read_text(encoding="utf-8"))["completed_rounds"]
            if done >= rounds:
                return "finished:completed"
        if time.monotonic() - asked > 15.0:
            asked = time.monotonic()
            reply = _flwr(["ls", CONNECTION, "--run-id", run_id], home)
            for run in reply.get("runs", []):
                status = str(run.get("status", ""))
                if str(run.get("run-id")) == run_id and status.startswith("finished"):
                    return status
        time.sleep(1.0)
    raise FederationFailed(f"run {run_id} did not finish within {budget:.0f} s")


# ---------------------------------------------------------------- a client


def join_federation(
    recipe: str | Path,
    data: str | Path,
    server: str,
    key: str | Path | None = None,
    root_certificates: str | Path | None = None,
    insecure: bool = False,
    max_wait: float = 60.0,
) -> int:
    """Run one client: a Flower SuperNode that trains on `data` for the server at `server`.

    Connects with TLS (trusting `root_certificates`, the federation's CA) and
    authenticates with the private `key`; `insecure` turns both off. Runs until the
    server has gone for `max_wait` seconds (Flower's SuperNode decides; it may wait
    longer) or SIGTERM/Ctrl-C, which stop the SuperNode too; returns its exit code. Raises
    ArtifactError for a missing file, RecipeError for an invalid recipe.
    """
    require("flwr", extra="federated")
    recipe_path, data_path = Path(recipe).resolve(), Path(data).resolve()
    load_recipe(recipe_path)  # a broken recipe fails here, not in the first round
    if not data_path.is_file():
        raise ArtifactError(f"client data not found: {data_path}")
    node_config = f"recipe={json.dumps(str(recipe_path))} data={json.dumps(str(data_path))}"
    cmd = [
        _flower_tool("flower-supernode"),
        "--superlink",
        server,
        "--clientappio-api-address",
        f"127.0.0.1:{free_port()}",
        "--node-config",
        node_config,
        "--max-wait-time",
        str(max_wait),
    ]
    if insecure:
        cmd.append("--insecure")
    else:
        if key is None or root_certificates is None:
            raise ArtifactError(
                "federate client runs with TLS and authentication: pass --key CLIENT.key and "
                "--root-certificates ca.crt (from `modelyard federate keys`), or --insecure"
            )
        for path in (Path(key), Path(root_certificates)):
            if not path.is_file():
                raise ArtifactError(f"not found: {path}")
        cmd += [
            "--root-certificates",
            str(Path(root_certificates).resolve()),
            "--auth-supernode-private-key",
            str(Path(key).resolve()),
        ]
    # a SuperNode that dials before the server has registered its key is refused at once:
    # start it again until the server has had `max_wait` seconds to register it
    deadline = time.monotonic() + max_wait
    with tempfile.TemporaryDirectory(prefix="modelyard-supernode-") as home, _exit_on_sigterm():
        while True:
            proc = subprocess.Popen(cmd, env=_flwr_env(Path(home)), start_new_session=True)
            try:
                code = proc.wait()
            finally:
                _stop_group(proc)
            if code == 0 or time.monotonic() > deadline:
                return code
            time.sleep(2.0)
