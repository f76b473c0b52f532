"""Personal fields encrypted at rest, with a key that is not in the database.

The key comes from `CONCORD_DATA_KEY` (a Fernet key) or, in the embedded default, from a
file created once under the var directory with owner-only permissions. Rows hold only the
ciphertext; a copy of the database alone reveals no identity.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet


def _var_dir() -> Path:
    return Path(os.environ.get("CONCORD_VAR_DIR", "var"))


@lru_cache(maxsize=1)
def _fernet() -> Fernet:
    return Fernet(_data_key())


def _data_key() -> bytes:
    key = os.environ.get("CONCORD_DATA_KEY")
    if not key:
        path = _var_dir() / "data.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another service process made it first
                pass
            else:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(Fernet.generate_key())
        key = path.read_text().strip()
    return key.encode() if isinstance(key, str) else key


@lru_cache(maxsize=1)
def _index_key() -> bytes:
    """The key of blind indexes: `CONCORD_INDEX_KEY`, or derived from the data key (so it
    is never in the database either)."""
    given = os.environ.get("CONCORD_INDEX_KEY")
    if given:
        return given.encode()
    return hmac.new(_data_key(), b"concord blind index v1", hashlib.sha256).digest()


def blind_index(value: str) -> str:
    """A keyed digest (HMAC-SHA256, hex) of a normalised personal value, to find equal
    values without storing them: the same value gives the same digest, and without the key
    (not in the database) no digest can be tested against a guess."""
    return hmac.new(_index_key(), value.encode(), hashlib.sha256).hexdigest()


def seal(record: dict[str, Any]) -> str:
    """Encrypt a JSON-able record for storage."""
    return _fernet().encrypt(json.dumps(record, separators=(",", ":")).encode()).decode()


def unseal(token: str) -> dict[str, Any]:
    return json.loads(_fernet().decrypt(token.encode()))
