"""Tests for connections.providers.infor_m3."""
