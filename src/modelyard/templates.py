"""Text templates written by `modelyard init`."""

from modelyard.recipe import TrainConfig
from modelyard.recipe.training import EVAL_ROWS, EVALS_PER_EPOCH, EarlyStoppingConfig


def _line(section: type[TrainConfig] | type[EarlyStoppingConfig], name: str, comment: str) -> str:
    """Return `name: default  # comment` with the schema's default, so the template never
    drifts from it, the comment aligned with the template's other comments."""
    value = section.model_fields[name].default
    text = "null" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
    indent = "    " if section is EarlyStoppingConfig else "  "
    return f"{indent}{name}: {text}".ljust(27) + f" # {comment}"


_T = TrainConfig
_ES = EarlyStoppingConfig

RECIPE_TEMPLATE = f"""\
# modelyard recipe. Train with:  modelyard train recipe.yaml
# Any key can be overridden on the command line, e.g.  train.lr=3e-5 train.epochs=2
# Unknown keys are errors, so a typo never passes silently.

run:
  name: my-first-run        # the run is written to output_dir/name
  output_dir: runs          # relative to this file
  seed: 42                  # splits, shuffling, initialisation and dropout

data:
  path: data.csv            # one labelled file (csv, tsv, jsonl or parquet), split below
  # train: train.csv        # ...or your own splits: train (+ dev, test) instead of path
  text_column: text
  label_column: label
  # text_pair_column: text2 # second text, for sentence-pair tasks
  # labels: [billing, technical, shipping, account]   # fixes the label set and order
  split:
    dev: 0.1                # for early stopping
    test: 0.15              # for the final report
  drop_duplicates: true     # exact duplicate training rows are dropped (and counted)

model:
  backbone: minilm-l6       # bundled all-MiniLM-L6-v2, or a local Hugging Face model folder
  max_length: 64            # tokens; longer texts are truncated and counted

train:
  # How long to train. auto: evaluate on the dev split as training goes; once the dev metric
  # has not improved for `patience` evaluations (a plateau), the learning rate cools down to
  # zero and training stops. The final weights are kept unless an earlier checkpoint beat
  # them on dev by more than the dev split's noise (one standard error). A number (e.g. 4)
  # trains exactly that many epochs instead, keeping the best checkpoint on dev.
  epochs: {_T.model_fields["epochs"].default}
{_line(_T, "max_epochs", "the ceiling of epochs auto")}
{_line(_T, "fallback_epochs", "epochs auto with too few dev rows (early_stopping.min_dev_rows)")}
{_line(_T, "cooldown", "the final decay lasts this fraction of the steps trained so far")}
{_line(_T, "eval_every", f"steps between dev evaluations; auto: ~every {EVAL_ROWS:,} rows, 1-{EVALS_PER_EPOCH} an epoch")}
  # max_minutes: 30         # a time budget: cool down and stop within it (for a laptop)
  # max_steps: 2000         # a step budget
  batch_size: 16
  grad_accum: 1             # micro-batches per optimizer step
  lr: 8.0e-5
  weight_decay: 0.01
  warmup_ratio: 0.06        # linear warmup (epochs auto: as long as a fallback_epochs run's)
  max_grad_norm: 1.0        # gradient clipping
  precision: auto           # auto: bf16 where the hardware has it, else fp32
  device: auto              # auto, cpu, cuda
  group_by_length: true     # less padding, faster on the CPU
  checkpoint_every: 200     # steps; `modelyard train recipe.yaml --resume` continues from the last one
  early_stopping:
{_line(_ES, "metric", "accuracy, macro_f1 or loss: decides the plateau and the best checkpoint")}
{_line(_ES, "patience", "evaluations without improvement that make a plateau; auto: an epoch's, 2+")}
{_line(_ES, "min_dev_rows", "fewer dev rows: epochs auto trains fallback_epochs (the report says so)")}

evaluate:
  ece_bins: 15              # calibration error bins
  speed: true               # latency at batch 1 and throughput at batch 32
"""
