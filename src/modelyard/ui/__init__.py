"""The web dashboard: runs, comparisons, compression, explanations, labelling and a playground.

`create_ui_app(UiSettings(...))` returns the app; `modelyard ui` serves it and
`modelyard serve --ui` mounts it under `/ui` of the HTTP service. It needs the `ui` extra.
"""

from __future__ import annotations

from modelyard.ui.app import create_ui_app
from modelyard.ui.settings import UiSettings

__all__ = ["UiSettings", "create_ui_app"]
