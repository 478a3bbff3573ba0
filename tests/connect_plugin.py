"""A Pulse Redpanda Connect plugin process, driven as Redpanda Connect drives it: over gRPC.

The plugin is started with its manifest's command (collectors/plugins/pulse_<component>.yaml),
with the two variables Redpanda Connect sets, and spoken to with the SDK's own protocol stubs
and converters.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import grpc
import yaml
from redpanda_connect import Message, Value
from redpanda_connect._convert import batch_to_proto, proto_to_batch, value_to_proto
from redpanda_connect._proto.redpanda.runtime.v1alpha1 import processor_pb2, processor_pb2_grpc

PLUGINS = Path(__file__).resolve().parents[1] / "collectors" / "plugins"


def manifest_command(component: str) -> list[str]:
    """The manifest's command, with this interpreter for `python` (the project's venv in the image)."""
    command: list[str] = yaml.safe_load((PLUGINS / f"pulse_{component}.yaml").read_text())["command"]
    return [sys.executable if part == "python" else part for part in command]


class PluginError(Exception):
    """An error the plugin answered a whole call with."""


class Plugin:
    def __init__(self, stub: processor_pb2_grpc.BatchProcessorServiceStub) -> None:
        self._stub = stub

    async def init(self, config: Value) -> None:
        response = await self._stub.Init(
            processor_pb2.BatchProcessorInitRequest(config=value_to_proto(config))
        )
        if response.error.message:
            raise PluginError(response.error.message)

    async def process(
        self, payloads: list[bytes | str], metadata: Mapping[str, Value] | None = None
    ) -> list[Message]:
        batch = [Message(payload=p, metadata=dict(metadata or {})) for p in payloads]
        response = await self._stub.ProcessBatch(
            processor_pb2.BatchProcessorProcessBatchRequest(batch=batch_to_proto(batch))
        )
        if response.error.message:
            raise PluginError(response.error.message)
        return [message for out in response.batches for message in proto_to_batch(out)]

    async def close(self) -> None:
        await self._stub.Close(processor_pb2.BatchProcessorCloseRequest())


@contextlib.asynccontextmanager
async def running_plugin(component: str, env: Mapping[str, str]) -> AsyncIterator[Plugin]:
    folder = Path(tempfile.mkdtemp(prefix="pulse-plugin-"))
    socket = folder / "plugin.sock"
    # Started once per test and waited for below without blocking the loop.
    process = subprocess.Popen(  # noqa: ASYNC220
        manifest_command(component),
        env={
            **os.environ,
            **env,
            "REDPANDA_CONNECT_PLUGIN_ADDRESS": f"unix:{socket}",
            "REDPANDA_CONNECT_PLUGIN_VERSION": "1",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not socket.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                output = (
                    process.stdout.read().decode() if process.stdout and process.poll() is not None else ""
                )
                raise RuntimeError(f"plugin did not start (exit {process.poll()}):\n{output}")
            await asyncio.sleep(0.05)
        async with grpc.aio.insecure_channel(f"unix:{socket}") as channel:
            yield Plugin(processor_pb2_grpc.BatchProcessorServiceStub(channel))
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        socket.unlink(missing_ok=True)
        folder.rmdir()  # noqa: ASYNC240 - an empty folder, once per test
