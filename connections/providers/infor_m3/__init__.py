"""Infor CloudSuite (M3) through the ION API gateway: client, ``.ionapi`` credentials, settings."""

from connections.providers.infor_m3.client import InforM3, MIError, MIResult

__all__ = ["InforM3", "MIError", "MIResult"]
