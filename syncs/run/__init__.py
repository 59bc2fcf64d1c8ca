"""The parts of a run, each small: what the runner (``syncs.runner``) puts together."""
