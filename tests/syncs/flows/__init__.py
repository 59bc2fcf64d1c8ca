"""Tests of what the flows declare."""
