"""Commands for signed and encrypted artifacts, attached to the `registry` and `keys` groups.

`modelyard keys gen-signing|gen-encryption` and `modelyard registry sign|verify|encrypt|decrypt`.
No command prints key material: only paths and key ids.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
KeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        help="AES-256 key file (default: $MODELYARD_ENCRYPTION_KEY_FILE, then $MODELYARD_ENCRYPTION_KEY).",
    ),
]
OverwriteOption = Annotated[bool, typer.Option(help="Replace existing key files.")]


def _print(payload: dict[str, object], as_json: bool, text: str) -> None:
    if as_json:
        console.print_json(json.dumps(payload))
    else:
        console.print(text, highlight=False)


def gen_signing(
    private_key: Annotated[
        Path, typer.Argument(help="Private key file to write (e.g. signing.key).")
    ],
    overwrite: OverwriteOption = False,
    as_json: JsonOption = False,
) -> None:
    """Create an Ed25519 signing key (mode 0600) and its public half (<name>.pub)."""
    from modelyard.registry.signing import generate_signing_key

    private, public, key_id = generate_signing_key(private_key, overwrite)
    _print(
        {"private_key": str(private), "public_key": str(public), "key_id": key_id},
        as_json,
        f"signing key {key_id}: private {private} (keep it secret), public {public} "
        "(give it to whoever loads your models)",
    )


def gen_encryption(
    key_file: Annotated[Path, typer.Argument(help="Key file to write (32 random bytes, base64).")],
    overwrite: OverwriteOption = False,
    as_json: JsonOption = False,
) -> None:
    """Create an AES-256 key file (mode 0600) for `modelyard registry encrypt`."""
    from modelyard.registry.crypto import generate_key_file

    key = generate_key_file(key_file, overwrite)
    _print(
        {"key_file": str(key_file), "key_id": key.key_id},
        as_json,
        f"encryption key {key.key_id} written to {key_file} (keep it secret; without it the "
        "encrypted models cannot be read)",
    )


def sign(
    run: Annotated[Path, typer.Argument(help="Artifact directory to sign.")],
    key: Annotated[Path, typer.Option("--key", help="Ed25519 private key file.")],
    as_json: JsonOption = False,
) -> None:
    """Verify an artifact and sign its manifest (the signature is stored in manifest.json)."""
    from modelyard.registry.signing import sign_artifact

    record = sign_artifact(run, key)
    _print({"path": str(run), **record}, as_json, f"signed {run} with key {record['key_id']}")


def verify(
    run: Annotated[Path, typer.Argument(help="Artifact directory to verify.")],
    trusted_key: Annotated[
        list[Path] | None,
        typer.Option(
            "--trusted-key",
            help="Trusted .pub file or folder of them (repeatable; default: $MODELYARD_TRUSTED_KEYS).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check every file's hash and a valid signature by a trusted key; exit 2 if either fails."""
    from modelyard.registry.signing import SignatureError, trusted_keys_from_env, verify_artifact

    keys = trusted_key or trusted_keys_from_env()
    if not keys:
        raise SignatureError(
            "give --trusted-key FILE (or set MODELYARD_TRUSTED_KEYS) to verify against"
        )
    result = verify_artifact(run, keys)
    _print(
        result,
        as_json,
        f"{run}: {result['files']} files match the manifest, signed by trusted key {result['key_id']}",
    )


def encrypt(
    run: Annotated[Path, typer.Argument(help="Artifact directory to encrypt.")],
    output: Annotated[
        Path | None, typer.Option(help="Where to write (default: RUN-encrypted).")
    ] = None,
    key_file: KeyFileOption = None,
) -> None:
    """Write an AES-256-GCM encrypted copy of an artifact; `load` and `serve` decrypt it in memory."""
    from modelyard.registry.crypto import encrypt_artifact, read_key

    key = read_key(key_file)
    out = encrypt_artifact(run, output, key)
    console.print(f"encrypted {run} to {out} with key {key.key_id}", highlight=False)


def decrypt(
    run: Annotated[Path, typer.Argument(help="Encrypted artifact directory.")],
    output: Annotated[
        Path | None, typer.Option(help="Where to write (default: RUN-decrypted).")
    ] = None,
    key_file: KeyFileOption = None,
) -> None:
    """Write the decrypted original of an encrypted artifact (its manifest and signatures too)."""
    from modelyard.registry.crypto import decrypt_artifact, read_key

    out = decrypt_artifact(run, output, read_key(key_file))
    console.print(f"decrypted {run} to {out}", highlight=False)


def register() -> None:
    """Add the commands to the `keys` and `registry` groups (which the main app attaches)."""
    from modelyard.cli.registry import registry_app
    from modelyard.cli.serve import keys_app

    keys_app.command("gen-signing")(gen_signing)
    keys_app.command("gen-encryption")(gen_encryption)
    for name, command in (
        ("sign", sign),
        ("verify", verify),
        ("encrypt", encrypt),
        ("decrypt", decrypt),
    ):
        registry_app.command(name)(command)
