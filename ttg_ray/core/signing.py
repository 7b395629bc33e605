"""HMAC-SHA256 signatures on queue messages: workers run only work a driver holding the
shared key sent, and drivers accept only results such workers sent. Pure: no I/O.

A signed message is one header line followed by the body, byte for byte:
``ttg-sig:v1:<key id>:<64 hex digits>\\n<body>``. The HMAC covers the purpose ("task" or
"result") and the exact body bytes (the canonical compact JSON that messages.py writes),
so a task signature never passes as a result's and nothing is re-serialised to check one.
Several keys may be known at once (rotation): the first one signs, all of them verify.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ttg_ray.config import SigningConfig
from ttg_ray.errors import BadMessage, UsageError

PREFIX = b"ttg-sig:v1:"
PURPOSES = ("task", "result")
MIN_KEY_CHARS = 16
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_HEADER = re.compile(rb"ttg-sig:v1:([A-Za-z0-9_.-]{1,64}):([0-9a-f]{64})")
_MAX_HEADER_BYTES = len(PREFIX) + 64 + 1 + 64 + 1


class SignatureError(BadMessage):
    """A message whose signature is missing, malformed, wrong or made with an unknown
    key. It is dead-lettered (tasks) or dropped (results), never acted on."""


@dataclass(frozen=True)
class Keyring:
    """The signing keys of one process: key id -> secret; ``active`` signs."""

    keys: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    active: str | None = None

    @classmethod
    def parse(cls, text: str, source: str = "TTG_SIGNING_KEY") -> Keyring:
        """Keys separated by commas or whitespace, each ``id:secret`` or a bare secret
        (its id is then a fingerprint). The first key signs. An empty text: no signing."""
        keys: dict[str, bytes] = {}
        for entry in re.split(r"[\s,]+", text.strip()):
            if entry:
                key_id, secret = _split(entry, source)
                keys.setdefault(key_id, secret)
        return cls(keys=keys, active=next(iter(keys), None))

    @property
    def enabled(self) -> bool:
        return self.active is not None

    def describe(self) -> str:
        """'on, key <id>' or 'off', for the log; never the secret."""
        return f"on, key {self.active}" if self.enabled else "off"

    def seal(self, body: bytes, purpose: str) -> bytes:
        """``body`` with its signature header; unchanged when signing is off."""
        if self.active is None:
            return body
        mac = _mac(self.keys[self.active], purpose, body)
        return PREFIX + f"{self.active}:{mac}\n".encode() + body

    def open(self, data: bytes | str, purpose: str) -> bytes:
        """The body of a signed message, checked; SignatureError says what is wrong.
        With signing off, unsigned bodies pass and signed ones are refused (a key
        missing on this side is a deployment mistake worth saying so)."""
        data = data.encode() if isinstance(data, str) else data
        if not data.startswith(PREFIX):
            if self.enabled:
                raise SignatureError(
                    f"{purpose} message is not signed; only messages signed with the shared "
                    "key (TTG_SIGNING_KEY / TTG_SIGNING_KEY_FILE) are accepted"
                )
            return data
        key_id, mac, body = _parse(data, purpose)
        if not self.enabled:
            raise SignatureError(
                f"{purpose} message is signed (key id {key_id!r}) but this process has no "
                "signing key; give it the same TTG_SIGNING_KEY / TTG_SIGNING_KEY_FILE"
            )
        if key_id not in self.keys:
            raise SignatureError(
                f"{purpose} message is signed with an unknown key id {key_id!r} "
                f"(known: {', '.join(sorted(self.keys))})"
            )
        if not hmac.compare_digest(mac, _mac(self.keys[key_id], purpose, body)):
            raise SignatureError(
                f"{purpose} message has a wrong signature for key id {key_id!r}: it was "
                "altered, or signed with another secret under that id"
            )
        return body


def keyring_from(config: SigningConfig) -> Keyring:
    """The keyring that ``config`` (see ttg_ray.config.SigningConfig) describes."""
    return Keyring.parse(config.text, config.source)


def key_id_of(secret: bytes) -> str:
    """A bare key's id: a short fingerprint, the same on every host that has the key."""
    return "k" + hashlib.sha256(b"ttg-key-id\n" + secret).hexdigest()[:8]


def _split(entry: str, source: str) -> tuple[str, bytes]:
    key_id, sep, secret = entry.partition(":")
    if not sep:
        key_id, secret = "", entry
    elif not _KEY_ID.fullmatch(key_id):
        raise UsageError(
            f"a key id in {source} is not 1-64 letters, digits, '_', '.' or '-'; "
            "write keys as id:secret or as a bare secret"
        )
    if len(secret) < MIN_KEY_CHARS:
        # Never echo the key: errors reach logs.
        raise UsageError(
            f"a signing key in {source} is shorter than {MIN_KEY_CHARS} characters; "
            "make one with `openssl rand -hex 32`"
        )
    raw = secret.encode()
    return key_id or key_id_of(raw), raw


def _parse(data: bytes, purpose: str) -> tuple[str, str, bytes]:
    end = data.find(b"\n", 0, _MAX_HEADER_BYTES)
    match = _HEADER.fullmatch(data[:end]) if end > 0 else None
    if match is None:
        raise SignatureError(f"{purpose} message has a malformed signature header")
    return match[1].decode(), match[2].decode(), data[end + 1 :]


def _mac(secret: bytes, purpose: str, body: bytes) -> str:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown message purpose {purpose!r}")
    return hmac.new(secret, purpose.encode() + b"\n" + body, hashlib.sha256).hexdigest()
