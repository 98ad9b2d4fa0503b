"""Text templates written by `modelyard init`."""

RECIPE_TEMPLATE = """\
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
  epochs: 4
  batch_size: 16
  grad_accum: 1             # micro-batches per optimizer step
  lr: 8.0e-5
  weight_decay: 0.01
  warmup_ratio: 0.06        # linear warmup, then linear decay
  max_grad_norm: 1.0        # gradient clipping
  precision: auto           # auto: bf16 where the hardware has it, else fp32
  device: auto              # auto, cpu, cuda
  group_by_length: true     # less padding, faster on the CPU
  checkpoint_every: 200     # steps; `modelyard train recipe.yaml --resume` continues from the last one
  early_stopping:
    metric: macro_f1        # accuracy, macro_f1 or loss
    patience: 2             # evaluations without improvement; null disables

evaluate:
  ece_bins: 15              # calibration error bins
  speed: true               # latency at batch 1 and throughput at batch 32
"""
