"""Kafka's default keyed partitioning, with the key's hash remembered.

The same murmur2 as the Java client and Redpanda Connect, so every producer puts one
visitor's events on one partition. aiokafka computes it in pure Python on every send,
which was a tenth of the collector's work on batches; a visitor's key repeats for as
long as the visitor browses, so the hash is kept.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence

from aiokafka.partitioner import murmur2


@functools.lru_cache(maxsize=131_072)
def _positive_hash(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


def keyed_partitioner(key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
    if key is None:
        return random.choice(list(available) or list(all_partitions))
    return all_partitions[_positive_hash(key) % len(all_partitions)]
