"""Data curation: label audit, active learning, labelling and simulation, over embeddings of
the backbone. It sits above training: its learners train and load models, which the data
foundation (`modelyard.data`) never does.

The Python API is `modelyard.curation.api` (`audit`, `label_next`, `label_import`,
`simulate_al`, `scan_pii`); query strategies are in `modelyard.curation.active.STRATEGIES`.
"""
