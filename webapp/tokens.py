"""Unguessable submission tokens (webapp/forms.py) without a system call for each.

`secrets` and `uuid.uuid4` read `os.urandom` per token: a system call that releases the GIL, and
under load each release hands the GIL to another thread. Here each process draws one 32-byte key
from `os.urandom` (a forked worker draws its own) and tokens are keyed BLAKE2b digests of a
counter: BLAKE2b with a secret key is a pseudorandom function, so without the key the tokens
cannot be told from random bytes or predicted from each other, and the counter never repeats
within a process.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import uuid

KEY_BYTES = 32
COUNTER_BYTES = 8


class _TokenSource:
    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self.key = os.urandom(KEY_BYTES)
        self.counter = itertools.count()

    def token_bytes(self, size: int) -> bytes:
        # next() on itertools.count is atomic under the GIL: threads never share a value.
        block = next(self.counter).to_bytes(COUNTER_BYTES, "little")
        return hashlib.blake2b(block, key=self.key, digest_size=size).digest()


_source = _TokenSource()
# gunicorn forks its workers from a master that imported the app: each must draw its own key,
# or two workers would hand out the same tokens.
os.register_at_fork(after_in_child=_source.reseed)


def uuid4() -> uuid.UUID:
    """A version 4 UUID from unguessable bytes, like uuid.uuid4."""
    return uuid.UUID(bytes=_source.token_bytes(16), version=4)
