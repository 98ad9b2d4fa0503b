"""Dashboard benchmark: every page's load time in a real browser with 200 runs in the store,
axe-core's serious accessibility violations, and the screenshots docs/ui.md shows.

The store is real: a tiny run trained here (the in-code 2-layer BERT of the tests) with its
compressed variants, faithfulness report, label audit and jobs, a second run trained for
thousands of steps (a long curve), and copies of the tiny run up to 200 runs. The copies vary
their name, learning rate and figures (seeded jitter, so the list has something to sort) and
get a fresh manifest, so each is a complete artifact that verifies. Each page is loaded once
to warm up and then `--repeats` times in headless Chromium; a load is the navigation's start
to its load event (Navigation Timing), and the page's figure is the median.

    python bench/ui.py [--quick] [--screenshots docs/ui]
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import base_parser, machine, write_results

PAGES = (
    ("login", "/login"),
    ("runs (200 runs)", "/runs"),
    ("runs sorted by accuracy", "/runs?sort=accuracy&order=desc&method=full"),
    ("run", "/runs/tiny"),
    ("run with a long curve", "/runs/long"),
    ("compare 5 runs", "/compare?run=tiny&run=long&run=sweep-000&run=sweep-001&run=sweep-002"),
    ("compression", "/runs/tiny/compression"),
    (
        "explain (occlusion)",
        "/runs/tiny/explain?text=my+invoice+was+charged+twice&method=occlusion",
    ),
    ("playground", "/playground?model=tiny&text=where+is+my+parcel"),
    ("labels", "/labels"),
    ("audit", "/labels/audit/tiny"),
    ("jobs", "/jobs"),
    ("job", "/jobs/1"),
)
SHOTS = {
    "runs": "/runs?sort=accuracy&order=desc",
    "run": "/runs/long",
    "compare": "/compare?run=tiny&run=long&run=tiny-quick#curves",
    "compression": "/runs/tiny/compression",
    "explain": "/runs/tiny/explain?text=my+invoice+was+charged+twice+please+refund&method=occlusion",
    "audit": "/labels/audit/tiny",
    "playground": "/playground?model=tiny&text=where+is+my+parcel%0Ai+was+charged+twice",
    "jobs": "/jobs",
}
LOAD_JS = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  return n.loadEventEnd - n.startTime;
}"""


def load_average() -> str:
    """Return `uptime`'s load averages (the machine is shared: this says how busy it was)."""
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def train_long(root: Path, backbone: Path, train_csv: Path, steps: int) -> Path:
    """Train a run of about `steps` optimizer steps (batch 4): a curve of thousands of points."""
    from tests.ui.workspace import recipe

    from modelyard.api import train
    from modelyard.recipe import build_recipe

    spec = recipe(root, backbone, train_csv, "long")
    spec["train"].update(batch_size=4, max_steps=steps, epochs=1000, eval_every=50, lr=1e-3)
    return train(build_recipe(spec), progress=False).run_dir


def copy_runs(source: Path, runs: Path, count: int, seed: int = 0) -> list[Path]:
    """Copy `source` into `count` runs with varied names, learning rates and figures, each
    with a fresh manifest; return their folders."""
    from modelyard.registry.manifest import read_manifest, write_manifest

    rng = random.Random(seed)
    manifest = read_manifest(source)
    extra = {k: v for k, v in manifest.items() if k in ("method", "backbone")}
    made = []
    for i in range(count):
        target = runs / f"sweep-{i:03d}"
        shutil.copytree(source, target)
        (target / "manifest.json").unlink()
        recipe = yaml.safe_load((target / "recipe.yaml").read_text(encoding="utf-8"))
        recipe["run"]["name"] = target.name
        recipe["train"]["lr"] = round(10 ** rng.uniform(-4, -2), 6)
        (target / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
        metrics = json.loads((target / "metrics.json").read_text(encoding="utf-8"))
        for key in ("accuracy", "macro_f1"):
            metrics["test"][key] = round(
                min(1.0, max(0.0, metrics["test"][key] + rng.gauss(0, 0.1))), 4
            )
        (target / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
        write_manifest(target, kind=manifest.get("kind", "classifier"), extra=extra)
        made.append(target)
    return made


def build_store(work: Path, quick: bool) -> tuple[Any, int]:
    """Build the workspace and fill its runs folder to 200 runs; return it and the run count."""
    from tests.conftest import build_tiny_backbone
    from tests.ui.workspace import build_workspace

    shutil.rmtree(work, ignore_errors=True)
    backbone = build_tiny_backbone(work / "tiny-bert")
    ws = build_workspace(work / "ws", backbone)
    train_long(ws.root, backbone, ws.train_csv, 600 if quick else 3000)
    existing = [p for p in ws.runs.iterdir() if (p / "recipe.yaml").is_file()]
    copy_runs(ws.run, ws.runs, 200 - len(existing))
    total = sum(1 for p in ws.runs.iterdir() if (p / "recipe.yaml").is_file())
    return ws, total


def measure(page: Any, url: str, repeats: int) -> list[float]:
    """Load `url` once to warm up, then `repeats` times; return each load time in ms."""
    page.goto(url, wait_until="load")
    times = []
    for _ in range(repeats):
        page.goto(url, wait_until="load")
        times.append(round(float(page.evaluate(LOAD_JS)), 1))
    return times


def axe_serious(page: Any, axe: str) -> list[dict[str, Any]]:
    """Return axe-core's serious and critical violations on the page now shown."""
    page.add_script_tag(content=axe)
    result = page.evaluate("async () => await axe.run(document)")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": len(v["nodes"])}
        for v in result["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


def run_browser(ws: Any, url: str, repeats: int, shots: Path | None) -> dict[str, Any]:
    """Time and check every page; save the screenshots; return the figures."""
    from playwright.sync_api import sync_playwright
    from tests.ui.conftest import AXE, CHROMIUM, CHROMIUM_ARGS, log_in

    axe = AXE.read_text(encoding="utf-8")
    pages: dict[str, Any] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
        page = context.new_page()
        page.goto(f"{url}/runs")
        cold = round(float(page.evaluate(LOAD_JS)), 1)  # the redirect to login, cache cold
        log_in(page, url, ws.admin_key)
        first = page.evaluate(LOAD_JS)  # the first run list: every summary read from disk
        for name, path in PAGES:
            times = measure(page, f"{url}{path}", repeats)
            pages[name] = {"path": path, "load_ms": times, "median_ms": statistics.median(times),
                           "axe_serious": axe_serious(page, axe)}  # fmt: skip
        if shots is not None:
            take_screenshots(page, url, shots)
        version = browser.version
        browser.close()
    return {"pages": pages, "first_runs_list_ms": round(float(first), 1),
            "login_redirect_ms": cold, "chromium": version}  # fmt: skip


def take_screenshots(page: Any, url: str, shots: Path) -> None:
    """Save a 1280x800 PNG of each page in SHOTS, and of the login page."""
    shots.mkdir(parents=True, exist_ok=True)
    for name, path in SHOTS.items():
        page.goto(f"{url}{path}", wait_until="load")
        if "#" in path:
            page.locator(f"#{path.split('#')[1]}").scroll_into_view_if_needed()
        page.screenshot(path=str(shots / f"{name}.png"))
    context = page.context.browser.new_context(viewport={"width": 1280, "height": 800})
    login = context.new_page()
    login.goto(f"{url}/login")
    login.screenshot(path=str(shots / "login.png"))
    context.close()


def markdown(figures: dict[str, Any]) -> str:
    """Return the results as a markdown table."""
    lines = [
        "# Dashboard: page load times and accessibility",
        "",
        f"{figures['runs_in_store']} runs in the store; headless {figures['chromium']}; "
        f"median of {figures['repeats']} loads after one warm-up (navigation start to load "
        "event). Load before / after: "
        f"`{figures['load_before']}` / `{figures['load_after']}`.",
        "",
        "| page | median ms | loads ms | axe serious |",
        "|---|---:|---|---:|",
    ]
    for name, page in figures["pages"].items():
        loads = ", ".join(f"{t:.0f}" for t in page["load_ms"])
        lines.append(f"| {name} | {page['median_ms']:.0f} | {loads} | {len(page['axe_serious'])} |")
    lines += [
        "",
        f"pages_tested {figures['pages_tested']}, axe_serious_violations "
        f"{figures['axe_serious_violations']}, largest_page_ms {figures['largest_page_ms']:.0f} "
        f"(goal 500); the first run list after start, with every summary read from disk: "
        f"{figures['first_runs_list_ms']:.0f} ms.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Build the store, serve the dashboard on 127.0.0.1, measure, write the results."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter long curve, 3 loads a page")
    parser.add_argument("--repeats", type=int, default=None, help="measured loads per page")
    parser.add_argument("--screenshots", type=Path, default=None, help="save PNGs here")
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 7)
    from tests.serve.conftest import start_server, stop_server
    from tests.ui.conftest import ui_app

    before = load_average()
    started = time.perf_counter()
    ws, total = build_store(args.work / "ui", args.quick)
    live = start_server(ui_app(ws))
    try:
        measured = run_browser(ws, live.url, repeats, args.screenshots)
    finally:
        stop_server(live)
    pages = measured["pages"]
    figures = {
        "pages_tested": len(pages),
        "axe_serious_violations": sum(len(p["axe_serious"]) for p in pages.values()),
        "largest_page_ms": max(p["median_ms"] for p in pages.values()),
        "slowest_page": max(pages, key=lambda n: pages[n]["median_ms"]),
        "runs_in_store": total,
        "repeats": repeats,
        "quick": args.quick,
        **measured,
        "load_before": before,
        "load_after": load_average(),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
    }
    write_results(args.results, "ui", figures, markdown(figures))
    print(markdown(figures))


if __name__ == "__main__":
    main()
