"""Failed key checks stay cheap: unknown ids cost no hash, failed hashes are rationed."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from modelyard.serve import app as app_module
from modelyard.serve import auth
from modelyard.serve.limits import RateLimiter
from tests.serve.conftest import Keys


@pytest.fixture()
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = auth._hash

    def counting(secret: str, salt: bytes, params: dict[str, int]) -> bytes:
        calls.append(1)
        return real(secret, salt, params)

    monkeypatch.setattr(auth, "_hash", counting)
    return calls


async def _codes(app: FastAPI, keys: list[str], addresses: int) -> list[int]:
    async def one(i: int, key: str) -> int:
        transport = httpx.ASGITransport(app=app, client=(f"10.0.{i % addresses}.1", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answer = await client.get("/v1/models", headers={"X-API-Key": key})
            return answer.status_code

    return list(await asyncio.gather(*(one(i, key) for i, key in enumerate(keys))))


def test_keys_with_unknown_ids_cost_no_hash(
    make_app: Callable[..., FastAPI], hashes: list[int]
) -> None:
    keys = [f"myd_{i:012x}.wrongsecret" for i in range(64)]
    codes = asyncio.run(_codes(make_app(), keys, addresses=64))
    assert codes == [401] * 64 and hashes == []


def test_wrong_secrets_for_a_known_id_are_limited_per_id_whatever_the_address(
    make_app: Callable[..., FastAPI], keys: Keys, hashes: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a stopped clock: on a loaded machine the 64 requests took long enough for the bucket to
    # refill, so the count below depended on the machine's speed
    monkeypatch.setattr(
        app_module, "RateLimiter", functools.partial(RateLimiter, clock=lambda: 0.0)
    )
    key_id = auth.split_key(keys.predict)[0]  # type: ignore[index]
    flood = [f"myd_{key_id}.wrong{i}" for i in range(64)]
    codes = asyncio.run(_codes(make_app(), flood, addresses=64))
    assert codes.count(429) >= 40 and set(codes) == {401, 429}
    assert len(hashes) <= 21  # the burst of the key id's bucket, not one per address
