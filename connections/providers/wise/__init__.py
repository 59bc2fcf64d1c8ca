"""Wise (Platform API): profiles, recipients, quotes and transfers; RSA-signed webhooks."""

from connections.providers.wise.client import WiseProvider

__all__ = ["WiseProvider"]
