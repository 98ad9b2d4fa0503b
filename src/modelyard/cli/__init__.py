"""The command line: parse, call the Python API, print. Nothing here that the API cannot do."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from modelyard._version import __version__
from modelyard.cli.compress import compress_command as _compress_command
from modelyard.cli.curation import attach as _attach_data_tools
from modelyard.cli.experiments import register as _register_experiments
from modelyard.cli.explain import explain_command as _explain_command
from modelyard.cli.federate import register as _register_federate
from modelyard.cli.jobs import register as _register_jobs
from modelyard.cli.methods import register as _register_methods
from modelyard.cli.privacy import register as _register_privacy
from modelyard.cli.security import register as _register_security
from modelyard.cli.serve import register as _register_serving
from modelyard.cli.ui import register as _register_ui
from modelyard.errors import ModelyardError

app = typer.Typer(
    rich_markup_mode=None,  # plain help wraps at any width; rich panels cut option names at 80
    help="modelyard: from data to a deployed, cheap, explainable and private model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

EXIT_USER_ERROR = 2


def _print_version(value: bool) -> None:
    if value:
        console.print(f"modelyard {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """modelyard: from data to a deployed, cheap, explainable and private model."""


def _api() -> Any:
    import modelyard.api as api

    return api


def _headline(metrics: dict[str, Any], title: str) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in (
        "n",
        "loss",
        "perplexity",
        "rougeL",
        "exact_match",
        "accuracy",
        "macro_f1",
        "weighted_f1",
        "ece",
        "latency_p50_ms",
        "latency_p95_ms",
        "throughput_b32_per_s",
    ):
        if key in metrics:
            value = metrics[key]
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
    for warning in metrics.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {warning}")


def _emit(payload: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        console.print_json(json.dumps(payload, default=str))
        return
    shown = payload.get("test", payload)
    if isinstance(shown.get("after"), dict):  # a language-model run: before and after training
        if isinstance(shown.get("before"), dict):
            _headline(shown["before"], f"{title}, before training")
        shown = shown["after"]
    _headline(shown, title)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Project folder to create.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing recipe.")] = False,
) -> None:
    """Write a commented recipe and a copy of the demo data to start from."""
    recipe = _api().init_project(directory, overwrite=overwrite)
    console.print(
        f"wrote {recipe} and {recipe.parent / 'data.csv'}\nnext: modelyard train {recipe}"
    )


@app.command()
def train(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key.sub=value overrides.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run directory.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    nproc: Annotated[
        int | None, typer.Option(help="Train data-parallel in N processes on this node.")
    ] = None,
    nnodes: Annotated[int, typer.Option(help="Nodes of a multi-node run (with --nproc).")] = 1,
    node_rank: Annotated[
        int | None, typer.Option(help="This node's rank 0..nnodes-1 (static rendezvous).")
    ] = None,
    rdzv_endpoint: Annotated[
        str | None, typer.Option(help="HOST:PORT every node reaches (multi-node).")
    ] = None,
    rdzv_id: Annotated[
        str | None, typer.Option(help="Id of the run the nodes join (default: run name).")
    ] = None,
) -> None:
    """Fine-tune a model as the recipe says, evaluate it and save the run."""
    result = _api().train(
        recipe,
        overrides=overrides or [],
        resume=resume,
        overwrite=overwrite,
        progress=progress and not as_json,
        nproc=nproc,
        nnodes=nnodes,
        node_rank=node_rank,
        rdzv_endpoint=rdzv_endpoint,
        rdzv_id=rdzv_id,
    )
    if not result.metrics:  # several nodes: the node of rank 0 wrote the run
        console.print(f"this node's processes finished; the node of rank 0 wrote {result.run_dir}")
        return
    if as_json:
        _emit(
            {"run_dir": str(result.run_dir), "test": result.metrics, "training": result.training},
            as_json,
            "",
        )
        return
    _print_data(result.data_report, result.metrics, result.training)
    _emit({"test": result.metrics}, False, f"{result.run_dir.name}: held-out set")
    _print_finished(result, "your text here")


def _print_data(data: dict[str, Any], metrics: dict[str, Any], training: dict[str, Any]) -> None:
    """Print what training read: rows, classes, where dev and test came from, truncation."""
    rows = data.get("rows") or {}
    if rows:
        splits = ", ".join(f"{k} {v:,}" for k, v in rows.items())
        labels = data.get("labels") or []
        console.print(
            f"data: {sum(rows.values()):,} rows, {len(labels)} classes ({splits})", highlight=False
        )
    for split, source in (data.get("sources") or {}).items():
        if split != "train":
            console.print(f"{split} split: {_short_source(source)}", highlight=False)
    removed = sum(int(r.get("rows", 0)) for r in data.get("removed") or [])
    if removed:
        console.print(f"rows removed while reading: {removed:,} (see data_report.md)")
    cut_train, cut_eval = training.get("train_truncated"), metrics.get("truncated")
    if cut_train is not None or cut_eval is not None:
        console.print(
            f"texts cut to max_length: {cut_train or 0} in train, {cut_eval or 0} in "
            f"{metrics.get('evaluated_on', 'test')}",
            highlight=False,
        )


def _short_source(source: str) -> str:
    # "10% of /long/absolute/path/data.csv" -> "10% of data.csv"
    head, sep, path = source.rpartition(" of ")
    return f"{head}{sep}{Path(path).name}" if sep else Path(source).name


def _shown(path: Path) -> str:
    """Return `path` relative to the working folder when it is inside it (short, and what the
    user typed), else as it is."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _print_finished(result: Any, example: str) -> None:
    """Print the speed line, where the run is, and what to try next."""
    t = result.training
    run = _shown(result.run_dir)
    stopped = t.get("stopped_because")
    if stopped:
        console.print(f"training stopped: {stopped}", highlight=False)
    if "samples_per_s" in t:
        console.print(
            f"trained {t['steps']} steps at {t['samples_per_s']} samples/s "
            f"({t.get('precision')} on {t.get('device')})",
            highlight=False,
        )
    console.print(
        f'run saved to {run}\ntry: modelyard predict {run} "{example}"',
        highlight=False,
    )


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    data: Annotated[Path, typer.Option(help="Labelled file to evaluate on.")],
    text_column: Annotated[
        str | None, typer.Option(help="Text column (default: the recipe's).")
    ] = None,
    label_column: Annotated[
        str | None, typer.Option(help="Label column (default: the recipe's).")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Report folder.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
    robustness: Annotated[
        bool, typer.Option(help="Add accuracy under seeded character and word noise.")
    ] = False,
) -> None:
    """Evaluate a run on a labelled file and write metrics, a report and a confusion matrix."""
    metrics = _api().evaluate(run, data, text_column, label_column, output, robustness)
    _emit(metrics, as_json, f"{run} on {data.name}")
    if robustness and not as_json:
        console.print((Path(metrics["report_dir"]) / "robustness.md").read_text(encoding="utf-8"))
    if not as_json:
        console.print(f"report written to {metrics['report_dir']}")


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    text: Annotated[str | None, typer.Argument(help="One text to classify.")] = None,
    input: Annotated[
        Path | None, typer.Option("--input", help="CSV/TSV/JSONL/Parquet to classify.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Where to write predictions (.csv or .jsonl).")
    ] = None,
    text_column: Annotated[str, typer.Option(help="Text column of --input.")] = "text",
    batch_size: Annotated[int, typer.Option(min=1, help="Texts per forward pass.")] = 32,
    top_k: Annotated[
        int, typer.Option(min=0, help="Show the k most probable labels (0: every label).")
    ] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the prediction as JSON.")] = False,
    max_tokens: Annotated[
        int, typer.Option(min=1, help="Language-model runs: most tokens to generate.")
    ] = 128,
    temperature: Annotated[
        float, typer.Option(min=0.0, help="Language-model runs: sampling temperature (0: greedy).")
    ] = 0.0,
    top_p: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Language-model runs: nucleus sampling mass.")
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Language-model runs: sampling seed.")] = 0,
) -> None:
    """Classify one text, or every row of a file; a language-model run generates from a prompt."""
    if (text is None) == (input is None):
        raise ModelyardError("give either one TEXT or --input FILE (with --output FILE)")
    if text is not None and _api()._lm_kind(run):
        out = _api().generate(run, [text], max_tokens, temperature, top_p, seed)[0]
        console.print_json(json.dumps(out))
        return
    if text is not None and (_api()._tagger_kind(run) or _api()._head_kind(run)):
        console.print_json(json.dumps(_api().predict(run, [text], batch_size)[0]))
        return
    if input is not None:
        if output is None:
            raise ModelyardError("--input needs --output FILE.csv or FILE.jsonl")
        path = _api().predict_file(run, input, output, text_column, batch_size)
        console.print(f"predictions written to {path}")
        return
    record = _api().predict(run, [text], batch_size, top_k or None)[0]
    if as_json:
        console.print_json(json.dumps(record))
        return
    _print_prediction(record, top_k)


def _print_prediction(record: dict[str, Any], top_k: int) -> None:
    table = Table(title=f"{record['predicted_label']} ({record['predicted_score']:.3f})")
    table.add_column("label")
    table.add_column("probability", justify="right")
    for label, p in record["probabilities"].items():
        table.add_row(label, f"{p:.4f}")
    console.print(table)
    if top_k and len(record["probabilities"]) == top_k:
        console.print(f"the {top_k} most probable labels; --top-k 0 shows every label")
    if record["truncated"]:
        console.print("[yellow]note:[/] the text was cut to the model's maximum length")


@app.command()
def quickstart(
    output_dir: Annotated[Path, typer.Option(help="Where to write the run.")] = Path("runs"),
    overwrite: Annotated[
        bool, typer.Option(help="Replace runs/quickstart (default: write quickstart-2, ...).")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train, evaluate and save the demo model on the embedded defaults (a few minutes on a CPU)."""
    api = _api()
    console.print(
        f"[bold]modelyard quickstart[/]: demo data {api.demo_data_path().name}, backbone minilm-l6"
    )
    result = api.quickstart(output_dir, overwrite=overwrite, progress=progress)
    _print_data(result.data_report, result.metrics, result.training)
    _headline(result.metrics, "quickstart: held-out test set")
    _print_finished(result, "I was charged twice")


@app.command("export")
def export_run(
    run: Annotated[Path, typer.Argument(help="Language-model run directory.")],
    format: Annotated[
        str, typer.Option("--format", help="hf: merged Hugging Face folder; gguf: llama.cpp file.")
    ] = "hf",
    quant: Annotated[str, typer.Option(help="GGUF weight type: f16 or q8_0.")] = "f16",
    output: Annotated[Path | None, typer.Option(help="Folder to write.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
) -> None:
    """Export a language-model run as a standalone Hugging Face folder or a GGUF file."""
    path = _api().export(run, format, quant, output, overwrite)
    console.print(f"exported to {path}")


runs_app = typer.Typer(
    rich_markup_mode=None,  # plain help wraps at any width; rich panels cut option names at 80
    help="The runs under a runs folder.",
    no_args_is_help=True,
)


@runs_app.command("list")
def runs_list(
    runs: Annotated[Path, typer.Option(help="Runs folder.")] = Path("runs"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs as JSON.")] = False,
) -> None:
    """List the runs, newest first: name, task, method, headline metric and date."""
    rows = _api().list_runs(runs)
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title=f"runs in {runs}")
    for column in ("name", "task", "method", "metric", "date"):
        table.add_column(column, justify="right" if column == "metric" else "left")
    for row in rows:
        value = row["value"]
        metric = f"{row['metric']} {value:.4f}" if value is not None else row["status"]
        table.add_row(row["name"], row["task"], row["method"], metric, row["created"][:16])
    console.print(table)


app.add_typer(runs_app, name="runs")
_register_experiments(app, runs_app)
app.command("explain")(_explain_command)
app.command("compress")(_compress_command)
_register_methods(app)
_register_serving(app)
_register_ui(app)
_register_privacy(app)
_register_federate(app)
_register_security(app)
_attach_data_tools(app)
_register_jobs(app)


def main() -> None:
    """Entry point of the `modelyard` console script; user errors exit 2 without a traceback."""
    try:
        app()
    except ModelyardError as exc:
        err_console.print(
            Text.assemble(("error: ", "bold red"), str(exc)), highlight=False, soft_wrap=True
        )
        sys.exit(EXIT_USER_ERROR)
