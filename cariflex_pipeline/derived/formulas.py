"""The derived series, one function each (docs/derived.md gives the same formulas in words and symbols).

Conventions: `slots` are the starts of consecutive slots of `dt_h` hours (tz-aware); powers are in kW at the
grid side of a device, charge > 0 and discharge < 0, one value per slot (a slot the store knows nothing about is
passed as 0 kW: idle); energies are in kWh. A session's `energy_needed_kwh` is at the EV's battery, as the
scheduler has it: the grid delivers `energy_needed_kwh / efficiency`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np


@dataclass(frozen=True)
class PlugIn:
    """One EV at one charge point or V2G charger, as the derived series need it."""

    device: str  # charge point id or V2G charger name: the key of its power array
    arrival: datetime
    departure: datetime
    energy_needed_kwh: float  # at the battery, still needed at arrival
    max_power_kw: float  # what the EV can draw here: the lower of its own and the charger's limit
    efficiency: float  # battery energy per kWh from the grid
    soc_at_arrival_kwh: float | None = None  # known for V2G sessions that state their SoC
    battery_capacity_kwh: float | None = None

    def connected(self, slots: Sequence[datetime]) -> np.ndarray:
        """True in the slots whose start lies in [arrival, departure)."""
        return np.array([self.arrival <= start < self.departure for start in slots], dtype=bool)

    def grid_energy_kwh(self) -> float:
        return self.energy_needed_kwh / self.efficiency


def active_sessions(plug_ins: Sequence[PlugIn], slots: Sequence[datetime]) -> np.ndarray:
    """N_t: the EVs connected at the start of each slot."""
    counts = np.zeros(len(slots))
    for plug_in in plug_ins:
        counts += plug_in.connected(slots)
    return counts


def ev_flexibility_potential(plug_ins: Sequence[PlugIn], power_kw: Mapping[str, np.ndarray],
                             slots: Sequence[datetime], dt_h: float) -> np.ndarray:
    """F^EV_t = Σ_connected max(0, P_s · h_s,t − R_s,t): grid energy each connected EV could still take beyond
    what it needs before it leaves (h_s,t hours from the slot start to departure; R_s,t the grid energy still
    needed, after what its charger drew in the earlier slots of its stay). Sessions at devices without a power
    array (V2G chargers, whose EVs count in their state of charge) are left out."""
    potential = np.zeros(len(slots))
    for plug_in in plug_ins:
        if plug_in.device not in power_kw:
            continue
        connected = plug_in.connected(slots)
        drawn = np.clip(power_kw[plug_in.device], 0.0, None) * dt_h * connected
        left = np.clip(plug_in.grid_energy_kwh() - (np.cumsum(drawn) - drawn), 0.0, None)
        hours = np.array([(plug_in.departure - start).total_seconds() / 3600 for start in slots])
        potential += np.where(connected, np.clip(plug_in.max_power_kw * hours - left, 0.0, None), 0.0)
    return potential


def uncontrolled_charging(plug_ins: Sequence[PlugIn], slots: Sequence[datetime], dt_h: float) -> np.ndarray:
    """B_t: the EVs' power without a plan: each charges at full power from its first slot until it has its grid
    energy (the last slot at the power that completes it)."""
    power = np.zeros(len(slots))
    for plug_in in plug_ins:
        left = plug_in.grid_energy_kwh()
        for slot in np.flatnonzero(plug_in.connected(slots)):
            kw = min(plug_in.max_power_kw, left / dt_h)
            power[slot] += kw
            left -= kw * dt_h
    return power


def grid_impact(device_power_kw: Sequence[np.ndarray], pv_kw: np.ndarray) -> np.ndarray:
    """G_t = Σ_devices p_d,t − PV_t: the site's exchange with the grid (import > 0) from charge points,
    batteries and V2G chargers, net of PV."""
    return np.sum(device_power_kw, axis=0) - pv_kw if len(device_power_kw) else -pv_kw


def flexibility_impact(device_power_kw: Sequence[np.ndarray], uncontrolled_kw: np.ndarray) -> np.ndarray:
    """ΔG_t = G_t − G^0_t = Σ_devices p_d,t − B_t: what the flexibility changes at the grid connection, against
    the same day with uncontrolled EV charging and idle storage (PV cancels out). Negative: less import."""
    return np.sum(device_power_kw, axis=0) - uncontrolled_kw if len(device_power_kw) else -uncontrolled_kw


def end_of_slot_soc(start_kwh: float, power_kw: np.ndarray, dt_h: float, charge_efficiency: float,
                    discharge_efficiency: float) -> np.ndarray:
    """S_t = S_{t−1} + dt · (η_c · max(p_t, 0) − max(−p_t, 0) / η_d), from S_{−1} = start_kwh: the stored
    energy at the end of each slot. Not clipped to the capacity: a value outside it means the power series and
    the starting point disagree, which the series should show rather than hide."""
    charge = np.clip(power_kw, 0.0, None)
    discharge = np.clip(-power_kw, 0.0, None)
    return start_kwh + np.cumsum(dt_h * (charge_efficiency * charge - discharge / discharge_efficiency))


def v2g_soc(plug_ins: Sequence[PlugIn], power_kw: np.ndarray, slots: Sequence[datetime], dt_h: float) -> np.ndarray:
    """The end-of-slot SoC (kWh) of the EV at one V2G charger: from its SoC at arrival, through `end_of_slot_soc`
    with the session's efficiency both ways; NaN in slots with no EV, or an EV that did not state its SoC."""
    soc = np.full(len(slots), np.nan)
    for plug_in in plug_ins:
        if plug_in.soc_at_arrival_kwh is None:
            continue
        connected = plug_in.connected(slots)
        stay = np.where(connected, power_kw, 0.0)
        curve = end_of_slot_soc(plug_in.soc_at_arrival_kwh, stay, dt_h, plug_in.efficiency, plug_in.efficiency)
        soc = np.where(connected, curve, soc)
    return soc


def total_flexibility(ev_potential_kwh: np.ndarray, storage_soc_kwh: Sequence[np.ndarray],
                      storage_max_kwh: Sequence[np.ndarray | float]) -> np.ndarray:
    """F_t = F^EV_t + Σ_storage (S^max − S_t): the energy the site's flexible devices could still take up, EVs
    beyond their needs and batteries and V2G EVs up to their maximum state of charge. A storage device without a
    known SoC in a slot (NaN: no V2G EV) adds nothing."""
    total = np.array(ev_potential_kwh, dtype=float)
    for soc, soc_max in zip(storage_soc_kwh, storage_max_kwh, strict=True):
        total += np.nan_to_num(np.clip(soc_max - soc, 0.0, None), nan=0.0)
    return total
