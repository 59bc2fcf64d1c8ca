"""Sandbox simulators of the external systems: stateful, faithful to their contracts, with faults.

They power the demo, the tests and the benchmarks over real HTTP on loopback; every client can be
pointed at a real tenant instead by configuration alone.
"""
