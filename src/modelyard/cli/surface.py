"""The map from every command to the public Python function it wraps.

A command is a thin, mechanical map of its function: its parameters carry the function's
parameter names and defaults (tests/cli/test_surface.py walks the whole command line and
checks it). Options that only change what is printed (`--json`) are the command's own.
A command that still differs says how in GAPS, which the same test keeps honest: a gap that
is closed fails the test until it is removed from the table.
"""

from __future__ import annotations

# options that choose how the result is printed, never what is computed
PRESENTATION = frozenset({"as_json"})

# command (as typed, groups joined by a space) -> dotted paths of the functions it calls
API_OF: dict[str, tuple[str, ...]] = {
    "init": ("modelyard.api.init_project",),
    "train": ("modelyard.api.train",),
    "evaluate": ("modelyard.api.evaluate",),
    "predict": ("modelyard.api.predict", "modelyard.api.predict_file", "modelyard.api.generate"),
    "quickstart": ("modelyard.api.quickstart",),
    "export": ("modelyard.api.export",),
    "explain": (
        "modelyard.api.explain",
        "modelyard.api.explain_file",
        "modelyard.api.evaluate_explanations",
    ),
    "compress": ("modelyard.api.compress",),
    "methods": ("modelyard.api.training_methods",),
    "merge": ("modelyard.api.merge",),
    "zeroshot": ("modelyard.api.zeroshot",),
    "federate simulate": ("modelyard.api.federate",),
    "federate server": ("modelyard.api.serve_federation",),
    "federate client": ("modelyard.api.join_federation",),
    "federate keys": ("modelyard.api.create_federation_keys",),
    "runs list": ("modelyard.api.list_runs",),
    "runs compare": ("modelyard.api.compare_runs",),
    "tune": ("modelyard.api.tune",),
    "keys create": ("modelyard.api.create_api_key",),
    "keys list": ("modelyard.api.list_api_keys",),
    "keys revoke": ("modelyard.api.revoke_api_key",),
    "keys gen-signing": ("modelyard.api.create_signing_key",),
    "keys gen-encryption": ("modelyard.api.create_encryption_key",),
    "signing-keys create": ("modelyard.api.create_signing_key",),
    "encryption-keys create": ("modelyard.api.create_encryption_key",),
    "registry push": ("modelyard.api.push",),
    "registry alias": ("modelyard.api.set_alias",),
    "registry list": ("modelyard.api.list_models",),
    "registry sign": ("modelyard.api.sign",),
    "registry verify": ("modelyard.api.verify",),
    "registry encrypt": ("modelyard.api.encrypt",),
    "registry decrypt": ("modelyard.api.decrypt",),
    "privacy audit": ("modelyard.api.audit_membership",),
    "data audit": ("modelyard.api.audit",),
    "data scan-pii": ("modelyard.api.scan_pii",),
    "data simulate-al": ("modelyard.api.simulate_al",),
    "label next": ("modelyard.api.label_next",),
    "label import": ("modelyard.api.label_import",),
    "jobs submit": ("modelyard.jobs.api.submit",),
    "jobs list": ("modelyard.jobs.api.list_jobs",),
    "jobs show": ("modelyard.jobs.api.show",),
    "jobs logs": ("modelyard.jobs.api.logs",),
    "jobs cancel": ("modelyard.jobs.api.cancel",),
    "jobs retry": ("modelyard.jobs.api.retry",),
    "jobs worker": ("modelyard.jobs.api.run_worker",),
}

# commands that start a server in the foreground: faces of their own, with no API function
# (the dashboard they mount sits above the API); their settings are `ServeSettings`/`UiSettings`
SERVERS: dict[str, str] = {
    "serve": "modelyard.serve.server.run_server(ServeSettings) after merging recipe and options",
    "ui": "modelyard.ui.server (the dashboard is a face above the API)",
}

_MODES = "one command, three modes (TEXT, --input FILE, --evaluate) over three functions"

# command -> {parameter: why it differs from the function}; kept true by the test
GAPS: dict[str, dict[str, str]] = {
    "predict": {
        "text": "one TEXT of the command is `texts` of modelyard.api.predict",
        "input": "--input is `source` of modelyard.api.predict_file",
        "output": "required by predict_file; the command checks it goes with --input",
        "top_k": "the terminal shows 5 labels by default, Python returns every label",
    },
    "explain": {
        "text": _MODES,
        "input": _MODES,
        "output": _MODES,
        "evaluate": _MODES,
        "data": _MODES,
    },
    "compress": {
        "run": "optional only for --list, which prints modelyard.api.compression_methods()",
        "list_methods": "--list prints modelyard.api.compression_methods() instead",
    },
    "jobs logs": {"follow": "--follow polls the log in the terminal until the job ends"},
}
