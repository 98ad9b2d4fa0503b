"""Markdown for bench/data_tools.py results."""

from __future__ import annotations

from typing import Any

_LEARNERS = {
    "audit": "5-fold logistic regression on frozen MiniLM-L6 mean-pooled embeddings (the default)",
    "audit_finetune": "3-fold fine-tuning of MiniLM-L6 (2 epochs, lr 5e-5, batch 32, max length 64)",
    "audit_finetune_head": "5-fold fine-tuning of MiniLM-L6 with mean pooling and the head started "
    "from the label names (`model.head_init: {}`; 2 epochs, lr 5e-5, batch 32, max length 64)",
    "audit_dynamics": "`audit.learner: dynamics`, one fine-tune of MiniLM-L6 on all the noisy "
    "rows (mean pooling, the label-name head; 3 epochs, lr 5e-5, batch 32, max length 64), each "
    "row's probabilities averaged over 4 snapshots an epoch. Its accuracy column is in-sample "
    "(the model trained on the rows it scores, under their noisy labels). modelyard applies "
    "`predicted_neq_given` to this learner (`audit.filter_by: auto`)",
}


def _audit(fig: dict[str, Any], key: str) -> list[str]:
    intro = (
        f"Learner: {_LEARNERS[key]}. Baseline: the same number of rows as the rule the "
        "audit applies by default flags, with the lowest self-confidence under the same "
        "probabilities."
    )
    title = f"Label audit, {key} (10% of labels flipped at random, seed 42)"
    # the dynamics learner scores the rows it trained on
    accuracy = "in-sample accuracy" if key == "audit_dynamics" else "OOF accuracy"
    return _audit_section(title, intro, ("dataset", accuracy), fig[key])


def _audit_section(
    title: str, intro: str, columns: tuple[str, str], results: dict[str, Any]
) -> list[str]:
    """Return one audit section: heading, text, the table of every method, the oracle line."""
    lines = [
        f"## {title}",
        "",
        intro,
        "",
        f"| {columns[0]} | rows | {columns[1]} (true labels) | method | flagged | precision "
        "| recall | F1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    seconds = "; ".join(f"{k} {r['seconds']} s" for k, r in results.items() if "seconds" in r)
    timing = (
        [
            "",
            f"Seconds to the probabilities and ranking, in this part's own run: {seconds} "
            "(the machine is shared: compare them only between parts run together)",
        ]
        if seconds
        else []
    )
    return [*lines, *_audit_rows(results), *_oracle_line(results), *timing, ""]


def _oracle_line(results: dict[str, Any]) -> list[str]:
    best = {
        k: r["best_threshold_oracle"] for k, r in results.items() if "best_threshold_oracle" in r
    }
    if not best:
        return []
    return [
        "",
        "Oracle threshold (the best F1 any cut of the self-confidence ranking reaches, the cut "
        "chosen with the true flips; an upper bound for this learner's probabilities): "
        + "; ".join(f"{k} F1 {b['f1']} at {b['flagged']} flagged" for k, b in best.items()),
    ]


def _audit_rows(results: dict[str, Any]) -> list[str]:
    lines = []
    for name, r in results.items():
        for method in (
            "cleanlab_both",
            "cleanlab_prune_by_noise_rate",
            "cleanlab_confident_learning",
            "cleanlab_predicted_neq_given",
            "baseline_lowest_self_confidence",
        ):
            if method not in r:  # figures from before the rule was measured
                continue
            m = r[method]
            lines.append(
                f"| {name} | {r['rows']} | {r['oof_accuracy_vs_true_labels']} | {method} | {m['flagged']} "
                f"| {m['precision']} | {m['recall']} | {m['f1']} |"
            )
    return lines


def _audit_reference(fig: dict[str, Any]) -> list[str]:
    ref = fig["audit_reference"]
    intro = (
        "Not how the audit works (it sees only the noisy rows): the probabilities for the 8,000 "
        "rows come from a learner trained on clean SST-2 train rows the sample does not hold "
        f"(embedding: logistic regression on {ref['embedding'].get('reference_rows')} rows; "
        f"finetune: MiniLM-L6 fine-tuned 1 epoch on {ref['finetune'].get('reference_rows')} "
        "rows). It shows how far confident learning gets on SST-2 when the learner is much "
        "better informed than any out-of-fold learner on the audited rows can be. The accuracy "
        "column is that learner's accuracy on the sample's true labels."
    )
    title = "Label audit of SST-2 with learners trained on clean rows outside the sample"
    return _audit_section(title, intro, ("learner", "accuracy"), ref)


def _al(fig: dict[str, Any]) -> list[str]:
    lines = [
        "## Active learning (50 to 2,000 labels, steps of 50, mean of seeds)",
        "",
        "Learner: logistic regression on frozen MiniLM-L6 embeddings computed once; the first "
        "50 labels are random; every later batch of 50 is chosen by the strategy. Plots: "
        "`bench/work/data_tools/al_<dataset>.png`.",
        "",
    ]
    return lines + _al_tables(fig["active_learning"])


def _al_finetune(fig: dict[str, Any], key: str) -> list[str]:
    r = fig[key]
    head = (
        ", its head started as the zero-shot classifier of the label names (`model.head_init`)"
        if r.get("head_init")
        else ""
    )
    lines = [
        "## Active learning on SST-2 with a fine-tuned learner"
        + (", zero-shot head" if r.get("head_init") else "")
        + (f", rows of {r['min_words']}+ words" if r.get("min_words") else "")
        + " (mean of seeds)",
        "",
        "Learner: MiniLM-L6 (mean pooling) fine-tuned afresh at every label count (5 epochs, "
        f"lr 1e-4, batch 16){head}; the first 50 labels are random, each later batch up to the "
        f"next count is chosen by the strategy from a {r['pool_rows']}-row pool scored by the "
        f"previous model. {r['seconds']:.0f} s in all.",
        "",
    ]
    if r.get("min_words"):
        lines += [
            f"`>={r['min_words']}w`: the strategy draws only from the {r['pool_rows_min_words']} "
            f"pool rows of at least {r['min_words']} words, the length 98% of the served (test) "
            "texts reach (their lengths only, never their labels; `label next --min-words`). "
            "`random` draws from the whole pool and is the reference"
            + (
                ": its curves are those of the section above (same learner, pool, seeds and "
                "schedule; the runs are deterministic: a rerun of random's seed 0 repeated its "
                "first four counts to the digit)."
                if r.get("random_reused_from_al_ft_head")
                else "."
            ),
            "",
        ]
    return lines + _al_tables({"sst2": r})


def _al_tables(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for name, r in results.items():
        acc = r["mean_accuracy"]
        counts = sorted(int(n) for n in acc["random"])  # JSON keys are strings
        marks = (
            counts
            if len(counts) <= 8
            else [n for n in (50, 200, 500, 1000, 1500, 2000) if n in counts]
        )
        lines += [
            f"### {name} (pool {r['pool_rows']}, test {r['test_rows']})",
            "",
            f"Random's accuracy at the most labels: {r['random_accuracy_at_max']}; fewest labels "
            f"with which each strategy matches it: {r['labels_to_match_random_at_max']}",
            "",
            "| strategy | " + " | ".join(str(n) for n in marks) + " |",
            "|---|" + "---|" * len(marks),
        ]
        for strategy, row in acc.items():
            cells = [str(row.get(str(n), row.get(n, ""))) for n in marks]
            lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _few(fig: dict[str, Any], key: str) -> list[str]:
    f = fig[key]
    head = f.get("head_init")
    lines = [
        "## Self-training and augmentation (200 labelled SST-2 rows, 40 of them dev)"
        + (", label-name head" if head else ""),
        "",
        "Fine-tuned MiniLM-L6"
        + (
            " (mean pooling, the head started as the zero-shot classifier of the label names)"
            if head
            else ""
        )
        + ", 5 epochs, lr 1e-4, batch 16, max length 64. Self-training: 8,000 "
        f"unlabelled rows, {f['rounds']} rounds, the round with the best dev accuracy kept; two "
        "selection rules: `threshold` (probability at least 0.9, at most 500 per class per round) "
        "and `top_fraction` (the most confident 10% of the pool per round, class-balanced: "
        "curriculum labelling). Gains are against round 0 of the same run. EDA: 4 augmented "
        "copies per row (alpha 0.1, backbone-vocabulary synonyms). Test: the 872 GLUE dev rows.",
        "",
        "| seed | 200 alone | + self-training, threshold 0.9 (pseudo-labels) "
        "| + self-training, top 10% (pseudo-labels) | + EDA | EDA rows added |",
        "|---|---|---|---|---|---|",
    ]
    for r in f["per_seed"]:
        st = r["self_training"]
        cells = [
            f"{st[k]['accuracy']:.4f} ({st[k]['pseudo_labels_used']})"
            for k in ("threshold", "top_fraction")
        ]
        lines.append(
            f"| {r['seed']} | {r['alone']:.4f} | {cells[0]} | {cells[1]} "
            f"| {r['eda']:.4f} | {r['eda_rows_added']} |"
        )
    stops = {
        x["rounds"][-1]["stopped"]
        for r in f["per_seed"]
        for x in r["self_training"].values()
        if x["rounds"][-1].get("stopped")
    }
    lines += [
        "",
        f"Median gains: self-training, threshold 0.9 {f['self_training_gain_threshold_median']:+.4f} "
        f"(per seed {f['self_training_gains_threshold']}); top 10% "
        f"{f['self_training_gain_top_fraction_median']:+.4f} (per seed "
        f"{f['self_training_gains_top_fraction']}); EDA {f['augment_gain_median']:+.4f} "
        f"(per seed {f['augment_gains']}).",
        "",
    ]
    lines += [f"Stopped early: {why}" for why in sorted(stops)] + ([""] if stops else [])
    return lines


def render(fig: dict[str, Any]) -> str:
    """Return the whole report."""
    keys = [
        k
        for k in fig
        if k.startswith(("audit_f1", "al_labels", "self_training_gain", "augment_gain"))
    ]
    lines = ["# Data-centric tools benchmark", "", f"Machine: {fig['machine']}", ""]
    lines += ["| key | value |", "|---|---|"] + [f"| {k} | {fig[k]} |" for k in keys] + [""]
    if fig.get("quick"):
        lines += ["**Quick mode: small slices, not the benchmark's figures.**", ""]
    for key in _LEARNERS:
        if key in fig:
            lines += _audit(fig, key)
    if "audit_reference" in fig:
        lines += _audit_reference(fig)
    if "active_learning" in fig:
        lines += _al(fig)
    for key in (
        "active_learning_finetune",
        "active_learning_finetune_head",
        "active_learning_finetune_head_min_words",
    ):
        if key in fig:
            lines += _al_finetune(fig, key)
    for key in ("few_labels", "few_labels_head"):
        if key in fig:
            lines += _few(fig, key)
    return "\n".join(lines) + "\n"
