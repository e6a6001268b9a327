"""SimPy engine: platform model (warm pools, cold starts, concurrency), network and storage,
cost ledger, and the simulated interpreter of worker effects."""

from sim.costs import CostLedger
from sim.network import Network
from sim.platform import BusyInterval, Container, ContainerPools, Platform
from sim.sharing import ProcessorSharing

__all__ = [
    "Container",
    "ContainerPools",
    "CostLedger",
    "BusyInterval",
    "Network",
    "Platform",
    "ProcessorSharing",
]
