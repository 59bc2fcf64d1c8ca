"""Clients for the external systems, each speaking only its own API, on one shared HTTP core."""
