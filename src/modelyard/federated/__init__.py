"""Federated learning on Flower: clients train LoRA adapters on data that never leaves them.

`modelyard.federated.run.federate` runs a Flower simulation on one machine and saves an
ordinary adapter run; `partition` splits a dataset into client shards; `payload` turns
adapter weights into the arrays Flower sends and measures their bytes.
"""
