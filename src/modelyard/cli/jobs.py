"""`modelyard jobs ...`: a thin map of modelyard.jobs.api (same names, same defaults)."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from modelyard.errors import ModelyardError
from modelyard.jobs import api
from modelyard.jobs.spec import FINISHED, STATES, Job, format_memory
from modelyard.jobs.stages import STAGES

jobs_app = typer.Typer(
    rich_markup_mode=None,  # plain help wraps at any width; rich panels cut option names at 80
    help="Job queue: run training, compression, audits and evaluations in the background, "
    "placed by the cores, memory and GPUs they ask for (local queue, or a Ray cluster).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()

Queue = Annotated[
    Path | None,
    typer.Option(
        help="Queue file (default: $MODELYARD_JOBS_QUEUE or $MODELYARD_HOME/jobs/queue.db)."
    ),
]
Backend = Annotated[str, typer.Option(help="local (the queue file) or ray (a Ray cluster).")]
Address = Annotated[
    str | None, typer.Option(help="Ray jobs address, e.g. http://127.0.0.1:8265 (--backend ray).")
]
TokenFile = Annotated[
    Path | None,
    typer.Option(help="File holding the Ray cluster's auth token (default: $RAY_AUTH_TOKEN, ...)."),
]
Insecure = Annotated[
    bool, typer.Option(help="Allow a remote Ray cluster without a token (protected otherwise).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
JobId = Annotated[str, typer.Argument(metavar="ID", help="Job id (see `modelyard jobs list`).")]


def _when(stamp: float | None) -> str:
    if not stamp:
        return "-"
    return datetime.fromtimestamp(stamp, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _print_json(payload: Any) -> None:
    console.print_json(json.dumps(payload, default=str))


@jobs_app.command("submit")
def submit_command(
    target: Annotated[
        str,
        typer.Argument(
            help="Recipe (train, audit), run folder (compress, evaluate) or program (command)."
        ),
    ],
    args: Annotated[
        list[str] | None,
        typer.Argument(help="The stage's own arguments: overrides, and options after `--`."),
    ] = None,
    stage: Annotated[str, typer.Option(help=f"One of: {', '.join(STAGES.names())}.")] = "train",
    cpus: Annotated[float, typer.Option(help="CPU cores the job holds.")] = 1.0,
    memory: Annotated[str, typer.Option(help="Memory the job holds, e.g. 4G or 512M.")] = "1G",
    gpus: Annotated[int, typer.Option(help="GPUs the job holds.")] = 0,
    priority: Annotated[
        int, typer.Option(help="Higher runs first; waiting jobs gain priority.")
    ] = 0,
    name: Annotated[str | None, typer.Option(help="A name to list it by.")] = None,
    max_retries: Annotated[
        int, typer.Option(help="Retries after a retryable failure (exit 75).")
    ] = 3,
    max_crashes: Annotated[
        int, typer.Option(help="Re-runs after a crash before it is failed.")
    ] = 3,
    queue: Queue = None,
    backend: Backend = "local",
    address: Address = None,
    token_file: TokenFile = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Queue a stage (train, compress, audit, evaluate) or a command to run in the background."""
    job = api.submit(
        target, args, stage, cpus, memory, gpus, priority, name, max_retries, max_crashes,
        queue, backend, address, token_file, insecure,
    )  # fmt: skip
    if as_json:
        _print_json(job.to_dict())
    else:
        console.print(f"job {job.id} queued: {job.spec.name}", highlight=False)


@jobs_app.command("list")
def list_command(
    state: Annotated[
        str | None, typer.Option(help=f"Only jobs in this state: {', '.join(STATES)}.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many, newest first.")] = 50,
    queue: Queue = None,
    backend: Backend = "local",
    address: Address = None,
    token_file: TokenFile = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """List jobs, newest first."""
    jobs = api.list_jobs(state, limit, queue, backend, address, token_file, insecure)
    if as_json:
        _print_json([job.to_dict() for job in jobs])
        return
    table = Table(title=f"{len(jobs)} jobs")
    for column in (
        "id",
        "state",
        "stage",
        "name",
        "cpus",
        "memory",
        "gpus",
        "prio",
        "tries",
        "started",
        "cost $",
    ):
        table.add_column(column)
    for job in jobs:
        r = job.spec.resources
        table.add_row(
            job.id, job.state, job.spec.stage, job.spec.name, f"{r.cpus:g}", format_memory(r.memory),
            str(r.gpus), str(job.spec.priority), str(job.attempts), _when(job.started_at), f"{job.cost:.4f}",
        )  # fmt: skip
    console.print(table)


def _describe(job: Job) -> str:
    r = job.spec.resources
    lines = [
        f"job {job.id} ({job.backend}): {job.state}",
        f"name: {job.spec.name}",
        f"stage: {job.spec.stage} {job.spec.target} {' '.join(job.spec.args)}".rstrip(),
        f"folder: {job.spec.cwd}",
        f"asks for: {r.cpus:g} CPUs, {format_memory(r.memory)}, {r.gpus} GPUs; priority {job.spec.priority}",
        f"attempts: {job.attempts} (retries {job.retries}/{job.spec.max_retries}, "
        f"crashes {job.crashes}/{job.spec.max_crashes})",
        f"submitted {_when(job.submitted_at)}, started {_when(job.started_at)}, "
        f"finished {_when(job.finished_at)}",
        f"cost: {job.cost_line()}",
    ]
    if job.exit_code is not None:
        lines.append(f"exit code: {job.exit_code}")
    if job.message:
        lines.append(f"message: {job.message}")
    return "\n".join(lines)


@jobs_app.command("show")
def show_command(
    job_id: JobId,
    queue: Queue = None,
    backend: Backend = "local",
    address: Address = None,
    token_file: TokenFile = None,
    insecure: Insecure = False,
    as_json: AsJson = False,
) -> None:
    """Show one job: what it runs, what it holds, its attempts, cost line and last message."""
    job = api.show(job_id, queue, backend, address, token_file, insecure)
    events = api.history(job_id, queue) if backend == "local" else []
    if as_json:
        _print_json({**job.to_dict(), "history": events})
        return
    console.print(_describe(job), highlight=False, markup=False)
    for event in events:
        detail = f" ({event['detail']})" if event["detail"] else ""
        console.print(
            f"  {_when(event['at'])} {event['kind']} attempt {event['attempt']}{detail}",
            highlight=False, markup=False,
        )  # fmt: skip


@jobs_app.command("logs")
def logs_command(
    job_id: JobId,
    tail: Annotated[int | None, typer.Option(help="Only the last N lines.")] = None,
    follow: Annotated[bool, typer.Option(help="Keep printing until the job finishes.")] = False,
    queue: Queue = None,
    backend: Backend = "local",
    address: Address = None,
    token_file: TokenFile = None,
    insecure: Insecure = False,
) -> None:
    """Print a job's output (every attempt, each after a === header line)."""
    options = (queue, backend, address, token_file, insecure)
    text = api.logs(job_id, tail, *options)
    print(text, end="" if text.endswith("\n") or not text else "\n", flush=True)
    shown = len(api.logs(job_id, None, *options)) if follow else 0
    while follow and api.show(job_id, *options).state not in FINISHED:
        time.sleep(1.0)
        text = api.logs(job_id, None, *options)
        print(text[shown:], end="", flush=True)
        shown = len(text)
    if follow:
        print(api.logs(job_id, None, *options)[shown:], end="", flush=True)


@jobs_app.command("cancel")
def cancel_command(
    job_id: JobId,
    queue: Queue = None,
    backend: Backend = "local",
    address: Address = None,
    token_file: TokenFile = None,
    insecure: Insecure = False,
) -> None:
    """Cancel a job: a queued one never starts, a running one has its process group stopped."""
    job = api.cancel(job_id, queue, backend, address, token_file, insecure)
    note = (
        "stopping (its worker sends SIGTERM, then SIGKILL)" if job.state == "running" else job.state
    )
    console.print(f"job {job.id}: {note}", highlight=False)


@jobs_app.command("retry")
def retry_command(
    job_id: JobId,
    queue: Queue = None,
    backend: Backend = "local",
    address: Address = None,
    token_file: TokenFile = None,
    insecure: Insecure = False,
) -> None:
    """Queue a failed or cancelled job again (on Ray: submit it as a new job)."""
    job = api.retry(job_id, queue, backend, address, token_file, insecure)
    console.print(f"job {job.id} queued again: {job.spec.name}", highlight=False)


@jobs_app.command("worker")
def worker_command(
    queue: Queue = None,
    cpus: Annotated[
        float | None, typer.Option(help="Cores to hand out (default: all usable).")
    ] = None,
    memory: Annotated[str | None, typer.Option(help="Memory to hand out (default: all).")] = None,
    gpus: Annotated[
        int | None, typer.Option(help="GPUs to hand out (default: all visible).")
    ] = None,
    poll_s: Annotated[float, typer.Option(help="Seconds between looks at the queue.")] = 0.5,
    lease_s: Annotated[
        float, typer.Option(help="A worker on another host silent this long is dead.")
    ] = 30.0,
    grace_s: Annotated[float, typer.Option(help="Seconds between SIGTERM and SIGKILL.")] = 10.0,
    aging_s: Annotated[
        float, typer.Option(help="A waiting job gains one priority level per this many seconds.")
    ] = 60.0,
    reserve_after_s: Annotated[
        float, typer.Option(help="A job blocked this long holds back lower ones.")
    ] = 300.0,
    backoff_s: Annotated[
        float, typer.Option(help="First retry delay; it doubles per retry.")
    ] = 10.0,
    price_per_cpu_hour: Annotated[
        float, typer.Option(help="Dollars per CPU-hour, for cost lines.")
    ] = 0.05,
    price_per_gpu_hour: Annotated[
        float, typer.Option(help="Dollars per GPU-hour, for cost lines.")
    ] = 1.0,
    exit_when_idle: Annotated[
        bool, typer.Option(help="Stop when nothing is queued or running.")
    ] = False,
    max_seconds: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Run queued jobs on this machine until stopped (Ctrl-C or SIGTERM re-queue running jobs)."""
    summary = api.run_worker(
        queue, cpus, memory, gpus, poll_s, lease_s, grace_s, aging_s, reserve_after_s, backoff_s,
        price_per_cpu_hour, price_per_gpu_hour, exit_when_idle, max_seconds,
    )  # fmt: skip
    console.print(
        f"worker {summary['worker']} stopped: {summary['started']} attempts started, "
        f"{summary['finished']} finished, {summary['recovered']} jobs of dead workers re-queued",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Attach the `jobs` command group to the main command line."""
    app.add_typer(jobs_app, name="jobs")


def main() -> None:
    """Run the jobs CLI; a user error prints one line and exits 2."""
    try:
        jobs_app(prog_name="modelyard jobs")
    except ModelyardError as exc:
        Console(stderr=True).print(
            Text.assemble(("error: ", "bold red"), str(exc)), highlight=False, soft_wrap=True
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
