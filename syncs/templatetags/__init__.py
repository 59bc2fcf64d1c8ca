"""Template tags of the finance admin."""
