"""Pulse's Redpanda Connect plugins: events that do not come from the browser tracker.

They run as Redpanda Connect RPC processor plugins (collectors/plugins/*.yaml) and reuse the
collector's admission (site lookup, validation, bot screening, visitor ids, country) and the
project's event schema, so an event from a server or an access log is the same event as a beacon.
"""
