"""SimPy engine: platform model (warm pools, cold starts, concurrency), network and storage,
cost ledger, and the simulated interpreter of worker effects."""
