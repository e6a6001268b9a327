"""ResourceConfig: validation, the Lambda cpu rule, ordering."""

import pytest

from dag import ResourceConfig


def test_cpus_follow_lambda_rule():
    """Default cpus are memory / 1769, capped at 6."""
    assert ResourceConfig(1769).cpus == 1.0
    assert ResourceConfig(3538).cpus == 2.0
    assert ResourceConfig(10240).cpus == pytest.approx(5.788, abs=1e-3)
    assert ResourceConfig(128).cpus == pytest.approx(128 / 1769)


def test_explicit_cpus_kept():
    """An explicit cpus value overrides the rule."""
    assert ResourceConfig(1024, 2).cpus == 2.0


@pytest.mark.parametrize("memory", [0, 127, 10241, -5, 512.5, "1024", True])
def test_bad_memory_named(memory):
    """Out-of-range or non-numeric memory raises a ValueError quoting the value."""
    with pytest.raises(ValueError, match=repr(memory).replace(".", r"\.")):
        ResourceConfig(memory)


@pytest.mark.parametrize("cpus", [0, -1, float("nan"), float("inf")])
def test_bad_cpus_named(cpus):
    """Non-positive or non-finite cpus raise a ValueError naming cpus."""
    with pytest.raises(ValueError, match="cpus"):
        ResourceConfig(1024, cpus)


def test_ordered_and_hashable():
    """Configs sort by memory and serve as dict keys; equal configs are equal."""
    configs = [ResourceConfig(4096), ResourceConfig(512), ResourceConfig(2048)]
    assert [c.memory_mb for c in sorted(configs)] == [512, 2048, 4096]
    assert {ResourceConfig(512): 1}[ResourceConfig(512)] == 1
    assert ResourceConfig(1024, 1) != ResourceConfig(1024, 2)


def test_parse():
    """'2048' and '2048/1.5' parse; junk names itself."""
    assert ResourceConfig.parse("2048") == ResourceConfig(2048)
    assert ResourceConfig.parse("2048/1.5") == ResourceConfig(2048, 1.5)
    with pytest.raises(ValueError, match="'big'"):
        ResourceConfig.parse("big")
