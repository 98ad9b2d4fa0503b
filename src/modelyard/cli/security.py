"""Commands for signed and encrypted artifacts: `modelyard signing-keys create`,
`modelyard encryption-keys create` and `modelyard registry sign|verify|encrypt|decrypt`.

`modelyard keys gen-signing|gen-encryption` (the API-key group) still work, deprecated.
No command prints key material: only paths and key ids.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)
signing_keys_app = typer.Typer(
    rich_markup_mode=None,
    help="Ed25519 signing keys: sign artifacts (`registry sign`) so loaders can trust them.",
    no_args_is_help=True,
)
encryption_keys_app = typer.Typer(
    rich_markup_mode=None,
    help="AES-256 keys: encrypt artifacts at rest (`registry encrypt`); serve decrypts in memory.",
    no_args_is_help=True,
)
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
    from modelyard.api import create_signing_key

    made = create_signing_key(private_key, overwrite)
    _print(
        dict(made),
        as_json,
        f"signing key {made['key_id']}: private {made['private_key']} (keep it secret), "
        f"public {made['public_key']} (give it to whoever loads your models)",
    )


def gen_encryption(
    key_file: Annotated[Path, typer.Argument(help="Key file to write (32 random bytes, base64).")],
    overwrite: OverwriteOption = False,
    as_json: JsonOption = False,
) -> None:
    """Create an AES-256 key file (mode 0600) for `modelyard registry encrypt`."""
    from modelyard.api import create_encryption_key

    made = create_encryption_key(key_file, overwrite)
    _print(
        dict(made),
        as_json,
        f"encryption key {made['key_id']} written to {key_file} (keep it secret; without it "
        "the encrypted models cannot be read)",
    )


def sign(
    run: Annotated[Path, typer.Argument(help="Artifact directory to sign.")],
    key: Annotated[Path, typer.Option("--key", help="Ed25519 private key file.")],
    as_json: JsonOption = False,
) -> None:
    """Verify an artifact and sign its manifest (the signature is stored in manifest.json)."""
    from modelyard.api import sign as sign_run

    record = sign_run(run, key)
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
    from modelyard.api import verify as verify_run

    result = verify_run(run, trusted_key)
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
    from modelyard.api import encrypt as encrypt_run

    out, key_id = encrypt_run(run, output, key_file)
    # soft wrap: a path broken over two lines cannot be copied
    console.print(f"encrypted {run} to {out} with key {key_id}", highlight=False, soft_wrap=True)


def decrypt(
    run: Annotated[Path, typer.Argument(help="Encrypted artifact directory.")],
    output: Annotated[
        Path | None, typer.Option(help="Where to write (default: RUN-decrypted).")
    ] = None,
    key_file: KeyFileOption = None,
) -> None:
    """Write the decrypted original of an encrypted artifact (its manifest and signatures too)."""
    from modelyard.api import decrypt as decrypt_run

    out = decrypt_run(run, output, key_file)
    console.print(f"decrypted {run} to {out}", highlight=False, soft_wrap=True)


def deprecated_alias(command: Callable[..., None], old: str, new: str) -> Callable[..., None]:
    """Return `command` under an old spelling: it runs as before after a note on stderr."""

    @functools.wraps(command)
    def alias(*args: Any, **kwargs: Any) -> None:
        err_console.print(
            f"note: `{old}` is deprecated; use `{new}`", highlight=False, soft_wrap=True
        )
        command(*args, **kwargs)

    alias.__doc__ = f"Deprecated: use `{new}`."
    return alias


def register(app: typer.Typer) -> None:
    """Add the key groups to `app`, the old `keys gen-*` spellings, and the registry commands."""
    from modelyard.cli.registry import registry_app
    from modelyard.cli.serve import keys_app

    signing_keys_app.command("create")(gen_signing)
    encryption_keys_app.command("create")(gen_encryption)
    app.add_typer(signing_keys_app, name="signing-keys")
    app.add_typer(encryption_keys_app, name="encryption-keys")
    keys_app.command("gen-signing")(
        deprecated_alias(gen_signing, "modelyard keys gen-signing", "modelyard signing-keys create")
    )
    keys_app.command("gen-encryption")(
        deprecated_alias(
            gen_encryption, "modelyard keys gen-encryption", "modelyard encryption-keys create"
        )
    )
    for name, command in (
        ("sign", sign),
        ("verify", verify),
        ("encrypt", encrypt),
        ("decrypt", decrypt),
    ):
        registry_app.command(name)(command)
