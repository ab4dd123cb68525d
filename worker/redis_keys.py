"""The Redis keys of one namespace (``<prefix>:*``): listed and removed in batches.

Used by ``skucast reset`` and by the tests' and benchmarks' clean-up, on a plain (sync) client.
"""

from __future__ import annotations

from typing import Any

BATCH = 1000


def keys_under(client: Any, prefix: str) -> list[bytes]:
    """Every key ``<prefix>:...``; the prefix is matched literally (glob characters escaped), so a
    longer prefix such as ``<prefix>x:`` is another namespace."""
    literal = "".join("\\" + c if c in "*?[]\\" else c for c in prefix)
    return list(client.scan_iter(match=f"{literal}:*", count=BATCH))


def unlink_all(client: Any, keys: list[bytes]) -> int:
    """UNLINK the keys, a batch per command; returns how many existed."""
    return sum(int(client.unlink(*keys[i : i + BATCH])) for i in range(0, len(keys), BATCH))
