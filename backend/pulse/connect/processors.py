"""The two Redpanda Connect processors, as the plugin SDK's Processor protocol wants them.

`pulse_ingest`: foreign events (server-side JSON, access-log lines) → the collector's EventV1, with
`pulse_key` metadata to key the Kafka record like the collector does. A refused event keeps its
payload and gets the reason as its error, for the pipeline's `catch` to route.
`pulse_export`: EventV1 records of `events.raw` → archive lines (pulse.events.archive), with their
day, tenant and site as metadata, for the archive and webhook pipelines.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec
from redpanda_connect import BaseError, Message, MessageBatch, Value

from pulse.collector.ingest import Admission, Rejection
from pulse.connect.access_log import page_view
from pulse.connect.server_events import Admissible, InvalidEvent, parse_server_event
from pulse.events.archive import archived, day_of, encode_line
from pulse.events.message import decode, encode, partition_key

Format = Literal["server_events", "access_log"]


class IngestConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format: Format = "server_events"
    # access_log only: the site the log belongs to, and the scheme and host its paths are under.
    site: str = ""
    origin: str = ""
    max_age_s: int = 86_400

    def checked(self) -> IngestConfig:
        if self.format == "access_log":
            if not self.site:
                raise ValueError("format access_log needs `site`: the key of the site the log belongs to")
            if not self.origin.startswith(("http://", "https://")) or self.origin.count("/") != 2:
                raise ValueError("format access_log needs `origin` like https://shop.example (no path)")
        if self.max_age_s <= 0:
            raise ValueError("`max_age_s` must be positive")
        return self


def ingest_config(value: Value) -> IngestConfig:
    try:
        return msgspec.convert(value or {}, IngestConfig).checked()
    except (msgspec.ValidationError, ValueError) as exc:
        raise BaseError(f"pulse_ingest configuration: {exc}") from exc


class IngestProcessor:
    def __init__(
        self,
        config: IngestConfig,
        admission: Admission,
        on_close: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._admission = admission
        self._on_close = on_close
        self._clock = clock

    async def process(self, batch: MessageBatch) -> list[MessageBatch]:
        out: MessageBatch = []
        now_ms = int(self._clock() * 1000)
        for message in batch:
            try:
                admissible = self._parse(_payload(message), now_ms)
                if admissible is None:
                    continue
                events = await self._admission.admit(
                    [admissible.beacon], admissible.context, admissible.ts_ms
                )
            except InvalidEvent as exc:
                self._admission.drop("invalid", 1)
                out.append(_refused(message, str(exc)))
                continue
            except Rejection as exc:
                out.append(_refused(message, f"{exc.reason} ({exc.field})" if exc.field else exc.reason))
                continue
            for event in events:
                metadata = {
                    **message.metadata,
                    "pulse_key": partition_key(event).decode(),
                    "pulse_tenant": event.tenant_id,
                    "pulse_site": event.site_id,
                }
                out.append(Message(payload=encode(event), metadata=metadata))
        return [out] if out else []

    def _parse(self, payload: bytes, now_ms: int) -> Admissible | None:
        max_age_ms = self._config.max_age_s * 1000
        if self._config.format == "access_log":
            try:
                line = payload.decode()
            except UnicodeDecodeError:
                raise InvalidEvent("line is not UTF-8") from None
            return page_view(line, self._config.site, self._config.origin, now_ms, max_age_ms)
        return parse_server_event(payload, now_ms, max_age_ms)

    async def close(self) -> None:
        if self._on_close is not None:
            await self._on_close()


class ExportProcessor:
    async def process(self, batch: MessageBatch) -> list[MessageBatch]:
        out: MessageBatch = []
        for message in batch:
            try:
                event = decode(_payload(message))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                out.append(_refused(message, f"not a Pulse event: {exc}"))
                continue
            metadata = {
                **message.metadata,
                "pulse_date": day_of(event.ts_ms),
                "pulse_tenant": event.tenant_id,
                "pulse_site": event.site_id,
            }
            out.append(Message(payload=encode_line(archived(event)), metadata=metadata))
        return [out] if out else []

    async def close(self) -> None:
        return None


def _payload(message: Message) -> bytes:
    """Bytes as they came; a structured value (from a JSON-parsing input) as its JSON."""
    payload = message.payload
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    return msgspec.json.encode(payload)


def _refused(message: Message, reason: str) -> Message:
    return Message(
        payload=message.payload, metadata={**message.metadata, "pulse_error": reason}, error=BaseError(reason)
    )
