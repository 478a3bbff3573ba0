"""`pulse loadgen` with a progress bar and a summary line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from pulse.loadgen.runner import LoadResult, Resend, run_load
from pulse.loadgen.traffic import TrafficModel
from pulse.settings import Settings


def parse_sites(spec: str) -> list[tuple[str, str]]:
    sites = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, _, domain = item.partition("=")
        sites.append((key, domain or "example.com"))
    if not sites:
        raise SystemExit("--sites needs at least one site key")
    return sites


def loadgen(settings: Settings, args: argparse.Namespace) -> int:
    model = TrafficModel(parse_sites(args.sites), seed=args.seed)
    url = args.url or settings.collector_url
    return asyncio.run(_run(url, model, args))


async def _run(url: str, model: TrafficModel, args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    expected = args.total or (int(args.duration * args.rate) if args.duration else None)
    with Progress(
        TextColumn("[bold]loadgen"),
        BarColumn(),
        TextColumn("{task.completed} sent · {task.fields[ok]} accepted"),
        TimeElapsedColumn(),
        disable=args.quiet,
    ) as progress:
        task = progress.add_task("load", total=expected, ok=0)

        def on_progress(result: LoadResult) -> None:
            progress.update(task, completed=result.sent, ok=result.accepted)

        result = await run_load(
            url,
            model,
            rate=args.rate,
            duration_s=args.duration,
            total=args.total,
            stop=stop,
            on_progress=on_progress,
            resend=Resend(attempts=args.resend, delay_s=args.resend_delay),
        )
        progress.update(task, completed=result.sent, ok=result.accepted)
    rate = result.sent / result.elapsed_s if result.elapsed_s else 0.0
    print(
        f"sent {result.sent} · accepted {result.accepted} · resent {result.resent} · {rate:.0f}/s"
        f" · statuses {result.statuses}"
    )
    return 0 if result.accepted == result.sent else 1
