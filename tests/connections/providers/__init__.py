"""Tests for connections.providers."""
