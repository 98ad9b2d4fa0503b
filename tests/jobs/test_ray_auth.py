"""The Ray backend's safety checks, without a cluster: addresses, tokens, and the refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.jobs.errors import JobsError
from modelyard.jobs.ray_backend import (
    RayJobs,
    check_auth,
    find_token,
    is_local_address,
    normalize_address,
)


@pytest.fixture(autouse=True)
def no_ambient_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_addresses_get_a_scheme_and_loopback_is_recognised() -> None:
    assert normalize_address("127.0.0.1:8265/") == "http://127.0.0.1:8265"
    assert normalize_address("https://ray.example:443") == "https://ray.example:443"
    for local in ("http://127.0.0.1:8265", "localhost:8265", "http://[::1]:8265", "127.8.9.1:1"):
        assert is_local_address(local)
    for remote in ("http://10.0.0.5:8265", "ray.example:8265", "http://0.0.0.0:8265"):
        assert not is_local_address(remote)
    with pytest.raises(JobsError, match="looks like http://HOST:8265"):
        normalize_address("ray://head:10001")


def test_tokens_are_found_where_ray_looks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_token() is None
    default = tmp_path / "home" / ".ray" / "auth_token"
    default.parent.mkdir(parents=True)
    default.write_text("from-default\n")
    assert find_token() == "from-default"
    path_file = tmp_path / "path-token"
    path_file.write_text("from-path")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(path_file))
    assert find_token() == "from-path"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert find_token() == "from-env"
    given = tmp_path / "given"
    given.write_text("  from-option \n")
    assert find_token(given) == "from-option"


def test_bad_token_files_are_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(JobsError, match="is empty"):
        find_token(tmp_path / "empty")
    with pytest.raises(JobsError, match="cannot read the Ray token file"):
        find_token(tmp_path / "missing")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    with pytest.raises(JobsError, match=r"\$RAY_AUTH_TOKEN_PATH"):
        find_token()


def test_a_remote_cluster_without_a_token_is_refused_before_any_request() -> None:
    check_auth("http://127.0.0.1:8265", None, insecure=False)  # this machine: allowed
    check_auth("http://10.0.0.5:8265", "token", insecure=False)
    check_auth("http://10.0.0.5:8265", None, insecure=True)  # said explicitly
    with pytest.raises(JobsError, match="refusing to send jobs to http://10.0.0.5:8265"):
        check_auth("http://10.0.0.5:8265", None, insecure=False)
    # the client refuses in its constructor, before it contacts anything
    with pytest.raises(JobsError, match="RAY_AUTH_MODE=token"):
        RayJobs("10.0.0.5:8265")


def test_the_error_never_shows_the_token(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t-token-value")
    with pytest.raises(JobsError) as err:
        RayJobs("ray://nowhere", token_file=secret)
    assert "s3cr3t" not in str(err.value)
