"""Split a labelled dataset into client shards: IID, Dirichlet label skew, or by a column.

Every scheme is seeded, and the shards are disjoint and together cover every row.
"""

from __future__ import annotations

import numpy as np

from modelyard.errors import RecipeError

PARTITION_HELP = "iid, dirichlet:ALPHA (e.g. dirichlet:0.5) or column:NAME"


def parse_partition(spec: str) -> tuple[str, float | str | None]:
    """Return (scheme, argument) of a partition spec.

    Raises RecipeError for anything but iid, dirichlet:ALPHA>0 or column:NAME.
    """
    name, _, arg = spec.partition(":")
    if name == "iid" and not arg:
        return "iid", None
    if name == "dirichlet":
        try:
            alpha = float(arg)
        except ValueError:
            alpha = -1.0
        if alpha > 0:
            return "dirichlet", alpha
    if name == "column" and arg:
        return "column", arg
    raise RecipeError(f"partition {spec!r} is not understood; expected {PARTITION_HELP}")


def iid_partition(n_rows: int, n_clients: int, seed: int) -> list[np.ndarray]:
    """Return `n_clients` disjoint index arrays of near-equal size covering range(n_rows)."""
    _check_clients(n_rows, n_clients)
    order = np.random.default_rng(seed).permutation(n_rows)
    return [np.sort(part) for part in np.array_split(order, n_clients)]


def dirichlet_partition(
    labels: list[int], n_clients: int, alpha: float, seed: int, min_rows: int = 2
) -> list[np.ndarray]:
    """Return client index arrays whose label mix follows Dirichlet(alpha) per class.

    Smaller alpha, stronger skew. Redraws (seeded) until every client has `min_rows`
    rows; raises RecipeError when that never happens in 100 draws.
    """
    y = np.asarray(labels)
    _check_clients(len(y), n_clients)
    rng = np.random.default_rng(seed)
    for _ in range(100):
        parts: list[list[int]] = [[] for _ in range(n_clients)]
        for cls in np.unique(y):
            rows = rng.permutation(np.flatnonzero(y == cls))
            shares = rng.dirichlet(np.full(n_clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(rows)).astype(int)
            for client, chunk in enumerate(np.split(rows, cuts)):
                parts[client].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_rows:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise RecipeError(
        f"dirichlet:{alpha} left a client with fewer than {min_rows} rows in 100 draws; "
        "use fewer clients, a larger alpha, or more data"
    )


def column_partition(values: list[str], n_clients: int) -> list[np.ndarray]:
    """Return one index array per distinct value of a column (e.g. hospital, region).

    Raises RecipeError when the column has a different number of values than clients.
    """
    distinct = sorted(set(values))
    if len(distinct) != n_clients:
        raise RecipeError(
            f"the partition column has {len(distinct)} distinct values but --clients is "
            f"{n_clients}; set --clients {len(distinct)}"
        )
    arr = np.asarray(values, dtype=object)
    return [np.flatnonzero(arr == value) for value in distinct]


def _check_clients(n_rows: int, n_clients: int) -> None:
    if n_clients < 1 or n_clients > n_rows:
        raise RecipeError(
            f"cannot split {n_rows} training rows over {n_clients} clients; "
            "use between 1 and the number of rows"
        )
