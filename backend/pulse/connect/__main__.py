"""`python -m pulse.connect ingest|export`: a Redpanda Connect RPC processor plugin process.

Redpanda Connect starts it (collectors/plugins/*.yaml) with REDPANDA_CONNECT_PLUGIN_ADDRESS set
and talks to it over gRPC; the PULSE_* / DATABASE_URL environment is read as by every role.
"""

from __future__ import annotations

import asyncio
import sys

from redpanda_connect import Value, processor_main
from redpanda_connect.core import ProcessorConstructor

from pulse.collector.ingest import Admission, edge_for
from pulse.collector.site_source import AccountsSiteSource
from pulse.collector.sites import SiteDirectory
from pulse.connect.processors import ExportProcessor, IngestProcessor, ingest_config
from pulse.oltp.accounts import Accounts
from pulse.oltp.db import create_engine
from pulse.settings import load_settings
from pulse.telemetry.metrics import process_metrics


def ingest(config: Value) -> IngestProcessor:
    checked = ingest_config(config)
    settings = load_settings()
    engine = create_engine(settings.effective_database_url)
    # Limits belong to the pipeline here (Redpanda Connect's rate_limit resources): a server
    # sends every visitor's events from one address.
    edge = edge_for(settings, engine, rate_limited=False)
    sites = SiteDirectory(AccountsSiteSource(Accounts(engine)), settings.site_cache_ttl_s)
    # Server events (format json) name their visitors; access-log lines carry no id to name.
    admission = Admission(settings, sites, edge, process_metrics(enabled=False), senders_name_visitors=True)
    return IngestProcessor(checked, admission, on_close=engine.dispose)


def export(_: Value) -> ExportProcessor:
    return ExportProcessor()


def main(argv: list[str]) -> int:
    components: dict[str, ProcessorConstructor] = {"ingest": ingest, "export": export}
    if len(argv) != 1 or argv[0] not in components:
        print(f"usage: python -m pulse.connect {'|'.join(components)}", file=sys.stderr)
        return 2
    asyncio.run(processor_main(components[argv[0]]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
