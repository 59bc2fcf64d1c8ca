"""Tests for connections.providers.stripe."""
