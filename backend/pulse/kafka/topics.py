"""Topic layout, created idempotently at start by every role that needs it."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from pulse.settings import Settings

log = logging.getLogger(__name__)


async def ensure_topics(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(name, settings.kafka_partitions, 1)
            for name in (settings.topic_raw, settings.topic_replay, settings.topic_dlq)
            if name not in existing
        ]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                log.info("topics were created concurrently by another role")
    finally:
        await admin.close()
