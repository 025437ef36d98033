"""Shared pytest fixtures.

The emulator serves the ACI gateway by default (as api.redpill.ai does); tests about the per-node
protocol say ``protocol="legacy"``.

- ``emulator``: one session-wide *legacy* :class:`~redpill_integrations.emulator.Emulator`
  (``protocol="legacy"``) shared by the tests of the per-node protocol.
- ``emu``: that session emulator with faults, scripts, stored signatures and counters cleared
  before the test; use it rather than ``emulator`` when a test sets faults or scripts.
- ``aci_emulator`` / ``aci_emu``: the same pair for a session-wide ACI emulator (the default
  protocol).
- ``emulator_factory``: ``emulator_factory(**kwargs)`` starts a fresh Emulator with special
  settings (``protocol="legacy", signing_algo="ed25519"``, ...), stopped after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from redpill_integrations.emulator import Emulator


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with Emulator(seed="session", protocol="legacy") as emu:
        yield emu


@pytest.fixture
def emu(emulator: Emulator) -> Emulator:
    emulator.reset()
    return emulator


@pytest.fixture(scope="session")
def aci_emulator() -> Iterator[Emulator]:
    with Emulator(seed="aci-session", protocol="aci") as emu:
        yield emu


@pytest.fixture
def aci_emu(aci_emulator: Emulator) -> Emulator:
    aci_emulator.reset()
    return aci_emulator


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., Emulator]]:
    started: list[Emulator] = []

    def start(**kwargs: Any) -> Emulator:
        emu = Emulator(**kwargs).start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()
