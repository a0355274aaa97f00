"""Keeping credentials out of everything the loggers and trackers write.

The application says which argument keys hold credentials (`secret_keys`): their values are masked by key in the
logged arguments and in `key=value` items of the command line. Every occurrence of a known secret string (a token
given to a tracker, or read from the environment) is replaced too, in case it was pasted into some other value.
Trackers record the process's command line (wandb keeps `sys.argv` in its run metadata), so `masked_command_line`
hides the secrets in `sys.argv` while a tracker starts.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Iterable, Iterator

MASK = '***'


class Redactor:
    """Replaces the values of secret argument keys and every occurrence of the given secret strings by '***'."""

    def __init__(self, secrets: Iterable[str], secret_keys: Iterable[str] = ()) -> None:
        secrets, secret_keys = list(secrets), list(secret_keys)
        for kind, values in (('secrets', secrets), ('secret_keys', secret_keys)):
            for value in values:
                if not isinstance(value, str):
                    raise TypeError(f'{kind} must be str, got {type(value).__name__}')
        # longest first, so a secret containing another is masked whole
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._keys = frozenset(secret_keys)

    @property
    def active(self) -> bool:
        """True when there is at least one secret string to mask."""
        return bool(self._secrets)

    def text(self, text: str) -> str:
        """`text` with every secret masked."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def data(self, data: bytes) -> bytes:
        """`data` (e.g. a source file's bytes) with every UTF-8 encoded secret masked."""
        for secret in self._secrets:
            data = data.replace(secret.encode('utf-8'), MASK.encode('utf-8'))
        return data

    def arguments(self, args: dict) -> dict:
        """The arguments with secret keys masked and secrets masked inside every other value.

        Values that would change are turned into their masked text; the rest keep their type.
        """
        masked = {}
        for key, value in args.items():
            if key in self._keys and value:
                masked[key] = MASK
                continue
            text = str(value)
            redacted = self.text(text)
            masked[key] = redacted if redacted != text else value
        return masked

    def command_line(self, argv: list[str]) -> list[str]:
        """`argv` with `key=value` items of secret keys masked (`wandb_token=***`) and every secret masked."""
        masked = []
        for item in argv:
            key, equals, value = item.partition('=')
            masked.append(f'{key}={MASK}' if equals and key.strip() in self._keys and value else self.text(item))
        return masked


@contextlib.contextmanager
def masked_command_line(redactor: Redactor) -> Iterator[None]:
    """Within the block `sys.argv` holds no secret (see `Redactor.command_line`); it is restored afterwards."""
    original = list(sys.argv)
    sys.argv[:] = redactor.command_line(original)
    try:
        yield
    finally:
        sys.argv[:] = original
