"""Integrations between connections: flows, the runner, schedules, webhooks and their tasks."""
