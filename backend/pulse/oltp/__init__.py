"""The OLTP store: tenants, users, memberships and sites, on SQLite or PostgreSQL."""
