"""Replay the hostile probe of issue 21 against a real server on 127.0.0.1, with bounded loops.

Trains the quickstart run (MiniLM-L6, one epoch, max_length 128), serves it with
`modelyard serve` in its own process, and measures:

- bad_inputs_tried / bad_inputs_5xx: every request of `modelyard.testing.hostile.BAD_INPUTS`
- poisoned_batch_collateral_5xx: legitimate requests answered 5xx while poisoned ones
  (lone surrogates) are sent beside them, concurrently
- explain_peak_rss_growth_mb / explain_seconds: one 10,000-character occlusion explanation
- wrong_key_flood_p50_ratio: legitimate p50 during a wrong-key flood from 64 loopback
  addresses over the p50 before it, with the server on its own core; also with everything
  sharing both cores, and for a flood sending no key (see security_flood.py)
- header_256mb_rss_growth_mb: server RSS growth while two clients each send a 256 MiB header
- hostile_artifacts_tried / hostile_artifacts_traceback: `modelyard predict` and
  `modelyard registry push` on each damaged run of `HOSTILE_ARTIFACTS`
- schemathesis_cases / schemathesis_5xx: generated requests over the OpenAPI schema

Writes bench/results/security.{json,md}. Run with `nice -n 5`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

from common import ROOT, base_parser, machine, write_results
from security_flood import flood_probe
from serve_load import Server, free_port

SERVE_SECTION = {
    "rate_limit": None,  # one legitimate key drives the load; the checks probed are elsewhere
    "max_batch_size": 32,
    "max_wait_ms": 5,
    "max_queue": 256,
    "request_timeout_s": 10,
    "max_chars": 10_000,
    "watch_aliases_s": None,
    "access_log": False,
}
# generated requests run on a server with short texts and a short deadline, as the probe's did
# (explanations of 10,000 characters are probed above, once)
SCHEMA_SECTION = {**SERVE_SECTION, "max_chars": 200, "max_texts": 2}
SERVE_ENTRY = "import typer; from modelyard.cli.serve import serve; typer.run(serve)"
CLI = [sys.executable, "-m", "modelyard"]
LEGIT = "my invoice was charged twice, please refund the second payment"
SCHEMA_CASES = {"positive-model": 3000, "positive": 2000, "negative": 5000}


def train_run(work: Path) -> Path:
    """Train the quickstart recipe for one epoch (real backbone) and return its run folder."""
    from modelyard.api import train

    recipe = ROOT / "examples" / "quickstart.yaml"
    done = work / "runs" / "security"
    if (done / "manifest.json").is_file():  # trained by an earlier run of this benchmark
        return done
    overrides = [
        f"run.output_dir={work / 'runs'}",
        "run.name=security",
        "train.epochs=1",
        "model.max_length=128",
    ]
    return Path(train(recipe, overrides, overwrite=True, progress=False).run_dir)


def prepare(work: Path, run: Path) -> tuple[dict[str, str], str, str]:
    """Fill a registry and key file under `work`; return (env, predict key, admin key)."""
    from modelyard.registry.store import ModelStore
    from modelyard.serve.auth import KeyStore

    home = work / "home"
    shutil.rmtree(home, ignore_errors=True)
    ModelStore(home / "registry").push(run, "tickets")
    keys = KeyStore(home / "keys.json")
    _, predict = keys.create("predict", "bench")
    _, admin = keys.create("admin", "bench")
    return {**os.environ, "MODELYARD_HOME": str(home)}, predict, admin


def start_server(work: Path, env: dict[str, str], section: dict[str, Any], name: str) -> Server:
    """Start `modelyard serve tickets` with the `serve` recipe `section`; return it once ready."""
    recipe = work / f"{name}.yaml"
    recipe.write_text(yaml.safe_dump({"serve": section}), encoding="utf-8")
    port = free_port()
    command = [sys.executable, "-c", SERVE_ENTRY, "tickets", "--port", str(port)]
    server = Server(name, [*command, "--recipe", str(recipe)], env, port, work / f"{name}.log")
    server.wait_ready()
    return server


class PeakRss:
    """Samples a process's RSS every 20 ms in a thread; `peak_mb` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.before_mb = self.now_mb()
        self.peak_mb = self.before_mb
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now_mb(self) -> float:
        """Return the RSS in MB now."""
        return float(self.proc.memory_info().rss / 2**20)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_mb = max(self.peak_mb, self.now_mb())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def bad_inputs(url: str, predict: str, admin: str) -> dict[str, Any]:
    """Send every hostile request once; return how many were tried and answered 5xx."""
    from modelyard.testing.hostile import BAD_INPUTS

    fives: list[str] = []
    unsendable: list[str] = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for case in BAD_INPUTS:
            key = admin if case.scope == "admin" else predict
            headers: dict[str, Any] = {"X-API-Key": key, "Content-Type": "application/json"}
            headers |= case.header_bytes()
            try:
                answer = client.request(
                    case.method, case.url("tickets", "1"), content=case.body, headers=headers
                )
            except httpx.LocalProtocolError:  # a header the HTTP client will not even send
                unsendable.append(case.name)
                continue
            if answer.status_code >= 500:
                fives.append(f"{case.name}: {answer.status_code}")
    return {
        "bad_inputs_tried": len(BAD_INPUTS) - len(unsendable),
        "bad_inputs_5xx": len(fives),
        "bad_5xx": fives,
        "bad_unsendable": unsendable,
    }


async def _poisoned(url: str, key: str, legit: int, poisoned: int) -> tuple[int, int]:
    headers = {"X-API-Key": key}
    bad_body = b'{"texts": ["hi \\ud800"]}'
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def good() -> int:
            answer = await client.post("/v1/predict", json={"texts": [LEGIT]}, headers=headers)
            return answer.status_code

        async def bad() -> int:
            answer = await client.post(
                "/v1/predict",
                content=bad_body,
                headers={**headers, "Content-Type": "application/json"},
            )
            return answer.status_code

        # interleaved, so poisoned texts land in the same batches as legitimate ones
        kinds = ["good"] * legit
        for i in range(poisoned):
            kinds.insert(i * legit // poisoned + i, "bad")
        codes = await asyncio.gather(*(good() if k == "good" else bad() for k in kinds))
    collateral = sum(1 for k, c in zip(kinds, codes, strict=True) if k == "good" and c >= 500)
    poisoned_5xx = sum(1 for k, c in zip(kinds, codes, strict=True) if k == "bad" and c >= 500)
    return collateral, poisoned_5xx


def explain_probe(url: str, key: str, pid: int) -> dict[str, Any]:
    """One 10,000-character occlusion explanation: its time and the server's RSS growth."""
    words = (LEGIT + " ").split()
    text = " ".join(words[i % len(words)] for i in range(3000))[:10_000]
    body = {"texts": [text], "method": "occlusion"}
    with PeakRss(pid) as rss, httpx.Client(base_url=url, timeout=120) as client:
        began = time.perf_counter()
        answer = client.post("/v1/explain", json=body, headers={"X-API-Key": key})
        seconds = time.perf_counter() - began
    time.sleep(1.0)
    after = rss.now_mb()
    result = answer.json()["explanations"][0] if answer.status_code == 200 else {}
    return {
        "explain_status": answer.status_code,
        "explain_seconds": round(seconds, 2),
        "explain_peak_rss_growth_mb": round(rss.peak_mb - rss.before_mb, 1),
        "explain_kept_rss_growth_mb": round(after - rss.before_mb, 1),
        "explain_text_chars": len(text),
        "explain_words_cut": result.get("words_cut"),
    }


def _send_huge_header(port: int, size: int) -> str:
    head = b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
    chunk = b"a" * (1 << 20)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        try:
            conn.sendall(head)
            for _ in range(size // len(chunk)):
                conn.sendall(chunk)
            conn.sendall(b"\r\n\r\n")
            return conn.recv(200).split(b"\r\n")[0].decode("ascii", "replace") or "closed"
        except OSError as exc:
            return f"closed by the server ({type(exc).__name__})"


def header_probe(port: int, pid: int) -> dict[str, Any]:
    """Two clients each send a 256 MiB header at once; return the server's RSS growth."""
    outcomes: list[str] = []
    with PeakRss(pid) as rss:
        threads = [
            threading.Thread(target=lambda: outcomes.append(_send_huge_header(port, 256 << 20)))
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    return {
        "header_256mb_rss_growth_mb": round(rss.peak_mb - rss.before_mb, 1),
        "header_outcomes": outcomes,
    }


def artifacts_probe(run: Path, work: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run `modelyard predict` and `modelyard registry push` on every hostile artifact."""
    from modelyard.testing.hostile import HOSTILE_ARTIFACTS, damaged_copy

    folder = work / "hostile"
    shutil.rmtree(folder, ignore_errors=True)
    tracebacks, accepted = [], []
    for i, case in enumerate(HOSTILE_ARTIFACTS):
        root = damaged_copy(run, case, folder / f"case{i}")
        for command in (
            [*CLI, "predict", str(root), LEGIT],
            [*CLI, "registry", "push", str(root), "--name", f"hostile{i}"],
        ):
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
            if "Traceback" in done.stderr + done.stdout:
                tracebacks.append(f"{case.name}: {command[3]}")
            if done.returncode == 0:
                accepted.append(f"{case.name}: {command[3]}")
    return {
        "hostile_artifacts_tried": len(HOSTILE_ARTIFACTS),
        "hostile_artifacts_traceback": len(tracebacks),
        "hostile_artifacts_accepted": len(accepted),
        "hostile_traceback_cases": tracebacks,
        "hostile_accepted_cases": accepted,
    }


def schemathesis_probe(url: str, admin: str) -> dict[str, Any]:
    """Generated requests over the OpenAPI schema; return the case count and the 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    raw = httpx.get(f"{url}/openapi.json", headers={"X-API-Key": admin}, timeout=30).json()
    schema = schemathesis.openapi.from_dict(raw)
    codes: list[int] = []
    fives: list[str] = []
    plans = [
        (GenerationMode.POSITIVE, {"name": "tickets"}, SCHEMA_CASES["positive-model"]),
        (GenerationMode.POSITIVE, None, SCHEMA_CASES["positive"]),
        (GenerationMode.NEGATIVE, None, SCHEMA_CASES["negative"]),
    ]
    for mode, params, count in plans:
        strategy = schema.as_strategy(mode, path_parameters=params)

        @given(case=strategy)
        @settings(
            max_examples=count,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
        )
        def check(case: Any) -> None:
            try:
                answer = case.call(base_url=url, headers={"X-API-Key": admin}, timeout=60)
            except Exception:  # a request the HTTP client itself cannot send
                return
            codes.append(answer.status_code)
            if answer.status_code >= 500:
                fives.append(f"{case.method} {case.path}: {answer.status_code}")

        check()
        print(f"schemathesis {mode.value} {params}: {len(codes)} cases so far", flush=True)
    return {
        "schemathesis_cases": len(codes),
        "schemathesis_5xx": len(fives),
        "schemathesis_5xx_cases": fives[:20],
        "schemathesis_2xx": sum(1 for c in codes if c < 300),
    }


GOALS = {
    "bad_inputs_5xx": ("==", 0),
    "poisoned_batch_collateral_5xx": ("==", 0),
    "explain_peak_rss_growth_mb": ("<=", 200),
    "explain_seconds": ("<=", SERVE_SECTION["request_timeout_s"]),
    "wrong_key_flood_p50_ratio": ("<=", 3),
    "header_256mb_rss_growth_mb": ("<=", 50),
    "hostile_artifacts_traceback": ("==", 0),
    "schemathesis_cases": (">=", 10_000),
    "schemathesis_5xx": ("==", 0),
}


def goals(fig: dict[str, Any]) -> dict[str, bool]:
    """Return, per goal of the issue, whether the figure meets it."""
    checks = {"==": lambda a, b: a == b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b}
    return {key: bool(checks[op](fig[key], goal)) for key, (op, goal) in GOALS.items()}


def markdown(fig: dict[str, Any]) -> str:
    """Return the results as a markdown table with the goals."""
    lines = [
        "# Security: the hostile probe of issue 21, replayed on 127.0.0.1",
        "",
        f"Run: quickstart (MiniLM-L6, one epoch, max_length 128); server `modelyard serve`, "
        f"request_timeout_s {SERVE_SECTION['request_timeout_s']} (schemathesis: a server with "
        f"max_chars {SCHEMA_SECTION['max_chars']}, request_timeout_s "
        f"{SCHEMA_SECTION['request_timeout_s']}). Machine: {fig['machine'].get('cpu_model')}.",
        "",
        "| figure | value | goal | met |",
        "|---|---|---|---|",
    ]
    for key, (op, goal) in GOALS.items():
        lines.append(f"| {key} | {fig[key]} | {op} {goal} | {fig['goals'][key]} |")
    lines += [
        "",
        f"- bad inputs tried: {fig['bad_inputs_tried']}; hostile artifacts tried: "
        f"{fig['hostile_artifacts_tried']} (each with `predict` and `registry push`; "
        f"accepted: {fig['hostile_artifacts_accepted']})",
        f"- explanation: status {fig['explain_status']}, {fig['explain_words_cut']} words cut, "
        f"RSS kept after it: {fig['explain_kept_rss_growth_mb']} MB",
        f"- legitimate p50: {fig['legit_p50_ms_before']} ms before, "
        f"{fig['legit_p50_ms_during_flood']} ms during a flood of {fig['flood_requests_sent']} "
        "wrong keys from 64 addresses (server on core 0, flood and client on core 1); "
        f"ratio {fig['wrong_key_flood_p50_ratio_shared']} when all share both cores; "
        f"ratio {fig['no_key_flood_p50_ratio_isolated']} for a flood that sends no key at all "
        "(the cheapest refusal: what answering that many requests costs by itself)",
        f"- 256 MiB headers: {fig['header_outcomes']}",
        f"- schemathesis: {fig['schemathesis_2xx']} answers were 2xx",
        "",
    ]
    return "\n".join(lines)


def _flood_only(results: Path, work: Path, env: dict[str, str], predict: str) -> None:
    path = results / "security.json"
    figures = json.loads(path.read_text(encoding="utf-8"))
    server = start_server(work, env, SERVE_SECTION, "server")
    try:
        figures |= flood_probe(server.url, predict, server.proc.pid)
    finally:
        server.stop()
    figures["flood_machine"] = machine()
    figures["goals"] = goals(figures)
    write_results(results, "security", figures, markdown(figures))
    print(markdown(figures))


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument(
        "--only-flood",
        action="store_true",
        help="run the wrong-key flood alone and update its figures in the existing results",
    )
    args = parser.parse_args()
    work = args.work / "security"
    work.mkdir(parents=True, exist_ok=True)
    run = train_run(work)
    env, predict, admin = prepare(work, run)
    if args.only_flood:
        _flood_only(args.results, work, env, predict)
        return
    figures: dict[str, Any] = {"machine": machine()}
    server = start_server(work, env, SERVE_SECTION, "server")
    try:
        pid = server.proc.pid
        figures |= bad_inputs(server.url, predict, admin)
        collateral, poisoned_5xx = asyncio.run(_poisoned(server.url, predict, 150, 50))
        figures |= {"poisoned_batch_collateral_5xx": collateral, "poisoned_5xx": poisoned_5xx}
        figures |= explain_probe(server.url, predict, pid)
        figures |= flood_probe(server.url, predict, pid)
        figures |= header_probe(server.port, pid)
    finally:
        server.stop()
    print("probes done; schemathesis next", flush=True)
    server = start_server(work, env, SCHEMA_SECTION, "schema-server")
    try:
        figures |= schemathesis_probe(server.url, admin)
    finally:
        server.stop()
    figures |= artifacts_probe(run, work, env)
    figures["goals"] = goals(figures)
    write_results(args.results, "security", figures, markdown(figures))
    print(markdown(figures))


if __name__ == "__main__":
    main()
