"""Cin7 Core (API v2): suppliers, purchases with orders and invoices, the chart of accounts."""

from connections.providers.cin7.client import Cin7Core

__all__ = ["Cin7Core"]
