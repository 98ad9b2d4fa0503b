"""Artifacts: manifests of SHA-256 hashes, saving and verified loading of runs."""

from modelyard.registry.manifest import MANIFEST, verify_manifest, write_manifest
from modelyard.registry.run import LoadedRun, load_run

__all__ = ["MANIFEST", "LoadedRun", "load_run", "verify_manifest", "write_manifest"]
