"""The trust boundary: HMAC-SHA256 signatures on everything a real run unpickles.

Workers and the client unpickle what they read from Redis (task outputs, the run context,
claims, logs, failures) and from invocation payloads (the inline run context). Unpickling runs
code, so none of it is unpickled unless it carries a valid signature made with the key that the
client and the functions share (`docs/security.md` states the whole trust model):

- the key comes from ``FAASDAG_SIGNING_KEY`` in the environment (the deployer sets it in every
  function's environment), else from the key file ``FAASDAG_SIGNING_KEY_FILE`` (default
  ``~/.config/faasdag/signing.key``), which is made, readable by its owner only, the first time a
  process of this user needs a key: so a client and a `faasdag lambda-local` of the same user
  share one without set-up;
- a stored value is ``tag || body`` (the 32-byte HMAC of the body first); an invocation payload
  carries ``"signature"``, the hex HMAC of its canonical JSON (sorted keys, no spaces).

Whoever holds the key can make any worker or client run code: treat it as a password.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SIGNING_KEY_ENV = "FAASDAG_SIGNING_KEY"
SIGNING_KEY_FILE_ENV = "FAASDAG_SIGNING_KEY_FILE"
DEFAULT_KEY_FILE = Path("~/.config/faasdag/signing.key")
TAG_BYTES = hashlib.sha256().digest_size
PAYLOAD_SIGNATURE = "signature"
_MIN_KEY_CHARS = 16


class UntrustedData(ValueError):
    """Data that is unsigned or whose signature does not match the shared key; it was not
    unpickled. Names what was refused."""


def key_file() -> Path:
    """Where this user's signing key is kept when the environment gives none."""
    return Path(os.environ.get(SIGNING_KEY_FILE_ENV) or DEFAULT_KEY_FILE).expanduser()


@functools.cache
def signing_key() -> bytes:
    """The shared key: ``FAASDAG_SIGNING_KEY``, else the key file (made on first use).

    Raises
    ------
    ValueError
        If the key is shorter than 16 characters, or the key file cannot be read or made.
    """
    text = os.environ.get(SIGNING_KEY_ENV)
    where = SIGNING_KEY_ENV
    if not text:
        path = key_file()
        where = str(path)
        try:
            text = _read_or_make(path)
        except OSError as err:
            raise ValueError(
                f"no {SIGNING_KEY_ENV} in the environment and the key file {path} cannot be "
                f"read or made: {err.strerror or err}"
            ) from None
    text = text.strip()
    if len(text) < _MIN_KEY_CHARS:
        raise ValueError(f"the signing key from {where} is shorter than {_MIN_KEY_CHARS} chars")
    return text.encode()


def _read_or_make(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = secrets.token_hex(32)
    try:  # O_EXCL: of two processes making the key at once, both end up with the first's
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text()
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    return text


def new_key() -> str:
    """A fresh random key (64 hex chars), e.g. for a deployment's environment."""
    return secrets.token_hex(32)


def tag(body: bytes | memoryview, key: bytes | None = None) -> bytes:
    """The HMAC-SHA256 of `body` under `key` (default: `signing_key`)."""
    return hmac.new(key or signing_key(), body, hashlib.sha256).digest()


def sign(body: bytes, key: bytes | None = None) -> bytes:
    """``tag(body) || body``."""
    return tag(body, key) + body


def verify(blob: bytes | memoryview, what: str, key: bytes | None = None) -> memoryview:
    """The body of a signed blob, once its tag is checked.

    Raises
    ------
    UntrustedData
        If `blob` is too short or its tag does not match (names `what`).
    """
    view = memoryview(blob)
    if len(view) < TAG_BYTES or not hmac.compare_digest(
        bytes(view[:TAG_BYTES]), tag(view[TAG_BYTES:], key)
    ):
        raise UntrustedData(
            f"{what} is unsigned or not signed with this run's key (FAASDAG_SIGNING_KEY): "
            f"refused without unpickling it"
        )
    return view[TAG_BYTES:]


def _canonical(payload: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in payload.items() if k != PAYLOAD_SIGNATURE}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign_payload(payload: Mapping[str, Any], key: bytes | None = None) -> dict[str, Any]:
    """`payload` with its ``"signature"`` (hex HMAC of its canonical JSON)."""
    return {**payload, PAYLOAD_SIGNATURE: tag(_canonical(payload), key).hex()}


def verify_payload(payload: Mapping[str, Any], key: bytes | None = None) -> None:
    """Check an invocation payload's signature before anything in it is used.

    Raises
    ------
    UntrustedData
        If the signature is missing or does not match.
    """
    given = payload.get(PAYLOAD_SIGNATURE)
    expected = tag(_canonical(payload), key).hex()
    if not isinstance(given, str) or not hmac.compare_digest(given, expected):
        raise UntrustedData(
            "invocation payload is unsigned or not signed with this function's key "
            f"({SIGNING_KEY_ENV}): refused before reading it"
        )
