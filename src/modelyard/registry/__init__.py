"""Artifacts: manifests of SHA-256 hashes, a run's records, saving and verified loading of runs."""

from modelyard.registry.manifest import MANIFEST, verify_manifest, write_manifest
from modelyard.registry.records import read_labels, read_recipe
from modelyard.registry.run import LoadedRun, load_run

__all__ = [
    "MANIFEST",
    "LoadedRun",
    "load_run",
    "read_labels",
    "read_recipe",
    "verify_manifest",
    "write_manifest",
]
