"""Stampli: approved invoices, payments, vendors and GL accounts exported as CSV to SFTP."""

from connections.providers.stampli.client import StampliSftp

__all__ = ["StampliSftp"]
