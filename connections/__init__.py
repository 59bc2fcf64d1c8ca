"""Connections to external systems: encrypted credentials, OAuth tokens, HTTP core, providers."""
