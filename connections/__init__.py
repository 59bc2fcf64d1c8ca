"""Connections to external systems: encrypted credentials, OAuth tokens, the HTTP core, providers."""
