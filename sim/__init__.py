"""SimPy engine: platform model (warm pools, cold starts, concurrency), network and storage,
cost ledger, and the simulated interpreter of worker effects."""

from sim.costs import CostLedger
from sim.engine import DriverError, SimDriver, run_simulation
from sim.estimates import PlatformEstimates
from sim.network import Network
from sim.platform import Platform
from sim.pools import BusyInterval, Container, ContainerPools
from sim.sharing import ProcessorSharing
from sim.simulate import SimResult, simulate

__all__ = [
    "DriverError",
    "PlatformEstimates",
    "SimDriver",
    "SimResult",
    "run_simulation",
    "simulate",
    "Container",
    "ContainerPools",
    "CostLedger",
    "BusyInterval",
    "Network",
    "Platform",
    "ProcessorSharing",
]
