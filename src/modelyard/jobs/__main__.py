"""`python -m modelyard.jobs ...`: the jobs commands alone, without loading the other stages."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.text import Text

from modelyard.errors import ModelyardError
from modelyard.jobs.cli import jobs_app


def main() -> None:
    """Run the jobs CLI; a user error prints one line and exits 2."""
    try:
        jobs_app(prog_name="modelyard jobs")
    except ModelyardError as exc:
        Console(stderr=True).print(
            Text.assemble(("error: ", "bold red"), str(exc)), highlight=False, soft_wrap=True
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
