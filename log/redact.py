"""Keeping credentials out of everything the loggers write.

Arguments are masked by key (arguments.SECRET_KEYS via `public_args`) and, in case a token
was pasted into some other value, every occurrence of a known secret string is replaced too.
"""
from __future__ import annotations

from arguments import public_args

MASK = '***'


class Redactor:
    """Replaces every occurrence of the given secret strings by '***'."""

    def __init__(self, secrets: list[str]) -> None:
        for secret in secrets:
            if not isinstance(secret, str):
                raise TypeError(f'secrets must be str, got {type(secret).__name__}')
        # longest first, so a secret containing another is masked whole
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    @property
    def active(self) -> bool:
        """True when there is at least one secret to mask."""
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
        for key, value in public_args(args).items():
            text = str(value)
            redacted = self.text(text)
            masked[key] = redacted if redacted != text else value
        return masked
