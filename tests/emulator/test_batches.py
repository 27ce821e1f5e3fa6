"""Batch timing in the emulator's settings and its admin endpoint."""

from __future__ import annotations

import httpx
import pytest

from llmesh.services.emulator import EmulatorSettings


def test_settings_carry_batch_timing() -> None:
    settings = EmulatorSettings.from_mapping({"batch_delay_s": 2, "batch_expiry_s": 60})
    assert (settings.batch_delay_s, settings.batch_expiry_s) == (2.0, 60.0)
    assert EmulatorSettings().batch_expiry_s == 86400.0
    with pytest.raises(ValueError, match="batch_delay_s"):
        EmulatorSettings.from_mapping({"batch_delay_s": -1})
    with pytest.raises(ValueError, match="batch_expiry_s"):
        EmulatorSettings.from_mapping({"batch_expiry_s": 0})
    with pytest.raises(ValueError, match="batch_delay_s must be a number"):
        EmulatorSettings.from_mapping({"batch_delay_s": "soon"})


@pytest.fixture
def settings() -> EmulatorSettings:
    return EmulatorSettings(host="127.0.0.1", port=0, batch_delay_s=5, batch_expiry_s=600)


async def test_admin_endpoint_shows_and_changes_the_timing(http: httpx.AsyncClient) -> None:
    assert (await http.get("/emulator/batches")).json() == {"delay_s": 5.0, "expiry_s": 600.0}
    changed = await http.post("/emulator/batches", json={"delay_s": 0.5})
    assert changed.json() == {"delay_s": 0.5, "expiry_s": 600.0}
    for bad in ({"expiry_s": 0}, {"delay_s": True}, {"other": 1}, {}):
        assert (await http.post("/emulator/batches", json=bad)).status_code == 400
    await http.post("/emulator/reset")
    assert (await http.get("/emulator/batches")).json() == {"delay_s": 5.0, "expiry_s": 600.0}
