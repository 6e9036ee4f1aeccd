"""The derived series' formulas on a day small enough to compute by hand: four 15-minute slots from 10:00.

Charge point CP001: EV A, 10:00-11:00, needs 4.5 kWh at the battery (efficiency 0.9: 5 kWh from the grid), up to
10 kW; planned 8, 8, 4, 0 kW. CP002: EV B, 10:30-12:00, 2.7 kWh (3 kWh from the grid), up to 4 kW; planned
0, 0, 4, 4 kW. A battery (efficiency 0.9 each way) starts at 5 kWh, charges 2 kW then discharges 1.8 kW. PV 3 kW.
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from cariflex_pipeline import derived

TZ = ZoneInfo("America/Martinique")
SLOTS = [datetime(2026, 11, 28, 10, tzinfo=TZ) + timedelta(minutes=15 * k) for k in range(4)]
DT_H = 0.25
EV_A = derived.PlugIn(device="CP001", arrival=SLOTS[0], departure=SLOTS[0] + timedelta(hours=1),
                      energy_needed_kwh=4.5, max_power_kw=10.0, efficiency=0.9)
EV_B = derived.PlugIn(device="CP002", arrival=SLOTS[2], departure=SLOTS[0] + timedelta(hours=2),
                      energy_needed_kwh=2.7, max_power_kw=4.0, efficiency=0.9)
POWER = {"CP001": np.array([8.0, 8.0, 4.0, 0.0]), "CP002": np.array([0.0, 0.0, 4.0, 4.0])}
BATTERY = np.array([2.0, -1.8, 0.0, 0.0])
PV = np.array([3.0, 3.0, 3.0, 3.0])


def test_active_sessions_count_the_evs_connected_at_each_slot_start() -> None:
    assert derived.active_sessions([EV_A, EV_B], SLOTS).tolist() == [1, 1, 2, 2]


def test_ev_flexibility_potential_is_the_energy_each_ev_could_take_beyond_its_need() -> None:
    # A: still needs 5, 3, 1, 0 kWh; could take 10 kW for 1, 0.75, 0.5, 0.25 h: 5, 4.5, 4, 2.5 kWh to spare.
    # B: needs 3 then 2 kWh; 4 kW for 1.5 then 1.25 h: 3 and 3 kWh to spare.
    potential = derived.ev_flexibility_potential([EV_A, EV_B], POWER, SLOTS, DT_H)
    assert potential == pytest.approx([5.0, 4.5, 7.0, 5.5])


def test_uncontrolled_charging_runs_each_ev_at_full_power_until_it_has_its_energy() -> None:
    # A: 10 kW for two slots (2.5 + 2.5 kWh); B: 4 kW for two slots (1 + 1 of its 3 kWh: it stays till 12:00).
    assert derived.uncontrolled_charging([EV_A, EV_B], SLOTS, DT_H) == pytest.approx([10.0, 10.0, 4.0, 4.0])


def test_grid_impact_is_the_devices_net_of_pv_and_unknown_charge_point_power_leaves_a_gap() -> None:
    devices = [POWER["CP001"], POWER["CP002"], BATTERY]
    assert derived.grid_impact(devices, PV) == pytest.approx([7.0, 3.2, 5.0, 1.0])
    unknown = np.array([8.0, np.nan, 4.0, 0.0])
    assert np.isnan(derived.grid_impact([unknown, POWER["CP002"], BATTERY], PV)).tolist() == [
        False, True, False, False]


def test_flexibility_impact_compares_the_plan_with_uncontrolled_charging() -> None:
    uncontrolled = derived.uncontrolled_charging([EV_A, EV_B], SLOTS, DT_H)
    impact = derived.flexibility_impact([POWER["CP001"], POWER["CP002"], BATTERY], uncontrolled)
    assert impact == pytest.approx([0.0, -3.8, 4.0, 0.0])


def test_battery_soc_at_the_end_of_each_slot_with_losses_both_ways() -> None:
    # 5 + 0.25·0.9·2 = 5.45; 5.45 − 0.25·1.8/0.9 = 4.95; idle after.
    assert derived.end_of_slot_soc(5.0, BATTERY, DT_H, 0.9, 0.9) == pytest.approx([5.45, 4.95, 4.95, 4.95])


def test_v2g_soc_follows_the_ev_from_its_arrival_and_is_empty_without_one() -> None:
    ev = derived.PlugIn(device="v2g_01", arrival=SLOTS[1], departure=SLOTS[0] + timedelta(hours=1),
                        energy_needed_kwh=0.0, max_power_kw=11.0, efficiency=0.9, soc_at_arrival_kwh=20.0,
                        battery_capacity_kwh=60.0)
    # The 5 kW before it arrives is not its; then 20 + 0.25·0.9·4 = 20.9; 20.9 − 0.25·4.5/0.9 = 19.65.
    soc = derived.v2g_soc([ev], np.array([5.0, 4.0, -4.5, 0.0]), SLOTS, DT_H)
    assert np.isnan(soc[0])
    assert soc[1:] == pytest.approx([20.9, 19.65, 19.65])
    silent = derived.PlugIn(device="v2g_01", arrival=SLOTS[0], departure=SLOTS[3], energy_needed_kwh=1.0,
                            max_power_kw=11.0, efficiency=0.9)
    assert np.isnan(derived.v2g_soc([silent], np.zeros(4), SLOTS, DT_H)).all()


def test_total_flexibility_adds_the_storage_room_to_the_evs_potential() -> None:
    potential = derived.ev_flexibility_potential([EV_A, EV_B], POWER, SLOTS, DT_H)
    battery = derived.end_of_slot_soc(5.0, BATTERY, DT_H, 0.9, 0.9)
    v2g = np.array([np.nan, 20.9, 19.65, 19.65])
    v2g_capacity = np.array([np.nan, 60.0, 60.0, 60.0])
    # EV 5, 4.5, 7, 5.5 + battery 12 − SoC: 6.55, 7.05, 7.05, 7.05 + V2G 60 − SoC: 0, 39.1, 40.35, 40.35.
    total = derived.total_flexibility(potential, [battery, v2g], [12.0, v2g_capacity])
    assert total == pytest.approx([11.55, 50.65, 54.4, 52.9])
