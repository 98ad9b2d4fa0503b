"""The federation over the network: keys, TLS, SuperNode authentication, a saved run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from modelyard.errors import ArtifactError, RecipeError
from modelyard.federated.deploy import fingerprint, free_port, serve_federation
from modelyard.federated.keys import authorized_keys, create_keys
from modelyard.recipe import Recipe
from tests.conftest import make_rows, write_csv

pytest.importorskip("flwr")


def test_keys_are_a_ca_a_server_certificate_and_client_key_pairs(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import (
        load_ssh_private_key,
        load_ssh_public_key,
    )

    files = create_keys(tmp_path / "keys", clients=2, hosts=["fed.example.org", "10.0.0.7"])
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)  # raises unless the CA signed it
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "fed.example.org"} <= set(names.get_values_for_type(x509.DNSName))
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {
        "127.0.0.1",
        "10.0.0.7",
    }
    assert authorized_keys(files.directory) == files.client_public_keys
    for private, public in zip(files.client_keys, files.client_public_keys, strict=True):
        assert private.stat().st_mode & 0o077 == 0  # private keys readable by the owner only
        key = load_ssh_private_key(private.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1"
        assert load_ssh_public_key(public.read_bytes()) == key.public_key()
    with pytest.raises(ArtifactError, match="already holds"):
        create_keys(files.directory, clients=1)


def test_server_refuses_to_start_without_keys_unless_insecure(fed_recipe: Recipe) -> None:
    with pytest.raises(ArtifactError, match="--insecure"):
        serve_federation(fed_recipe)


def test_fingerprint_ignores_data_paths_but_not_training(fed_recipe: Recipe) -> None:
    moved = fed_recipe.model_copy(
        update={"data": fed_recipe.data.model_copy(update={"path": Path("/elsewhere.csv")})}
    )
    assert fingerprint(moved) == fingerprint(fed_recipe)
    faster = fed_recipe.model_copy(
        update={"train": fed_recipe.train.model_copy(update={"lr": 0.5})}
    )
    assert fingerprint(faster) != fingerprint(fed_recipe)


def _client(recipe: Path, data: Path, server: str, key: Path, ca: Path, wait: float) -> Any:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    cmd = [sys.executable, "-m", "modelyard", "federate", "client", str(recipe)]
    cmd += ["--data", str(data), "--server", server, "--key", str(key)]
    cmd += ["--root-certificates", str(ca), "--max-wait", str(wait)]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finish(proc: Any) -> str:
    try:
        return str(proc.communicate(timeout=60)[0])
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        return str(proc.communicate(timeout=60)[0])


@pytest.mark.slow
def test_server_and_clients_over_tls_refuse_an_unknown_key(
    fed_recipe: Recipe, tmp_path: Path
) -> None:
    spec = fed_recipe.model_dump(mode="json")
    spec["federated"].update(clients=2, min_clients=2, rounds=1)
    recipe = Recipe.model_validate(spec)
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe.to_yaml(), encoding="utf-8")
    rows = make_rows(80, seed=3)
    shards = [write_csv(tmp_path / f"client{i}.csv", rows[i::2]) for i in range(2)]
    keys = create_keys(tmp_path / "keys", clients=2)
    rogue = create_keys(tmp_path / "rogue", clients=1)  # a key the server never registered
    server = f"127.0.0.1:{free_port()}"
    outcome: dict[str, Any] = {}

    def run_server() -> None:
        try:
            outcome["result"] = serve_federation(path, keys=keys.directory, address=server)
        except Exception as err:
            outcome["error"] = err

    thread = threading.Thread(target=run_server)
    thread.start()
    intruder = _client(path, shards[0], server, rogue.client_keys[0], keys.ca_cert, 20)
    clients = [
        _client(path, shards[i], server, keys.client_keys[i], keys.ca_cert, 60) for i in range(2)
    ]
    thread.join(timeout=540)
    # the server is done; a SuperNode may keep retrying past its wait: SIGTERM stops it
    intruder_log = _finish(intruder)
    for client in clients:
        _finish(client)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    # the unregistered key was refused; the two registered clients trained (2 replies)
    assert intruder.returncode != 0
    assert "No SuperNode found with the given public key" in intruder_log
    result = outcome["result"]
    assert [r["clients_replied"] for r in result.rounds] == [1 * 2]
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    federation = metrics["training"]["federated"]
    assert federation["engine"] == "flower deployment engine"
    assert sorted(federation["client_rows"]) == [40, 40]
    assert json.loads((result.run_dir / "manifest.json").read_text())["federated"] is True
    from modelyard.api import predict

    assert len(predict(result.run_dir, ["hello world"])) == 1


def test_a_client_with_another_recipe_is_refused(fed_recipe: Recipe, tmp_path: Path) -> None:
    from modelyard.federated.deploy import network_client

    path = tmp_path / "recipe.yaml"
    path.write_text(fed_recipe.to_yaml(), encoding="utf-8")
    data = write_csv(tmp_path / "local.csv", make_rows(20))

    context = SimpleNamespace(
        node_config={"recipe": str(path), "data": str(data)},
        run_config={"labels": json.dumps(["a", "b", "c"]), "fingerprint": "0" * 16},
    )
    with pytest.raises(RecipeError, match="differs from the server's recipe"):
        network_client(context)
