"""circml.spice.measures: each measure against closed forms, on synthetic arrays and on real
ngspice runs (RC low-pass, resistor thermal noise, a VCCS amplifier, an RC step, a divider)."""
import math

import numpy as np
import pytest

from circml.spice import Simulator
from circml.spice import measures as M

K_B = 1.380649e-23
T_NGSPICE = 300.15  # ngspice's default TEMP = 27 C


def one_pole(f, a0, fp):
    return a0 / (1 + 1j * f / fp)


def two_pole(f, a0, p1, p2):
    return a0 / ((1 + 1j * f / p1) * (1 + 1j * f / p2))


def two_pole_ugb(a0, p1, p2):
    """|A0 / ((1 + j f/p1)(1 + j f/p2))| = 1, solved exactly: a quadratic in u = f**2."""
    a, b, c = 1 / (p1 * p2) ** 2, 1 / p1 ** 2 + 1 / p2 ** 2, 1 - a0 ** 2
    u = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    return math.sqrt(u)


F = np.logspace(-2, 10, 12 * 100 + 1)   # 100 points per decade


# ---------------------------------------------------------------------------------------
# Frequency response on synthetic arrays
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("a0,fp", [(1000.0, 1e3), (31.6, 2.5e5), (1e5, 10.0)])
def test_single_pole_gain_bandwidth_ugb(a0, fp):
    h = one_pole(F, a0, fp)
    assert M.dc_gain_db(F, h) == pytest.approx(20 * math.log10(a0), abs=1e-5)   # f[0] <= fp / 1000
    assert M.bandwidth_3db(F, h) == pytest.approx(fp, rel=1e-4)
    # exact unity crossing fp * sqrt(A0^2 - 1), ~ A0 * fp for A0 >> 1
    assert M.unity_gain_bandwidth(F, h) == pytest.approx(fp * math.sqrt(a0 ** 2 - 1), rel=1e-4)
    assert M.unity_gain_bandwidth(F, h) == pytest.approx(a0 * fp, rel=1e-3)
    # magnitudes alone are enough for these three
    assert M.bandwidth_3db(F, np.abs(h)) == M.bandwidth_3db(F, h)
    assert M.dc_gain_db(F, np.abs(h)) == M.dc_gain_db(F, h)


def test_bandwidth_custom_drop_and_sparse_grid():
    h = one_pole(F, 100.0, 1e4)
    # |h| 6.0206 dB down (half the magnitude): f = fp * sqrt(3)
    assert M.bandwidth_3db(F, h, drop_db=20 * math.log10(2)) == pytest.approx(1e4 * math.sqrt(3), rel=1e-4)
    # 20 points per decade, as ngspice sweeps usually are: still well inside 1 %
    f = np.logspace(0, 9, 181)
    assert M.bandwidth_3db(f, one_pole(f, 100.0, 3.3e4)) == pytest.approx(3.3e4, rel=2e-3)
    with pytest.raises(ValueError, match="drop_db"):
        M.bandwidth_3db(F, h, drop_db=0)


def test_phase_margin_one_pole_is_about_90():
    for a0 in (10.0, 1e3, 1e5):
        pm = M.phase_margin(F, one_pole(F, a0, 1e3))
        assert pm == pytest.approx(180 - math.degrees(math.atan(math.sqrt(a0 ** 2 - 1))), abs=0.01)
        assert 90 <= pm < 96


@pytest.mark.parametrize("p2_over_ugb", [0.3, 1.0, 2.2, 10.0])
def test_phase_margin_two_poles_closed_form(p2_over_ugb):
    a0, p1 = 1e4, 100.0
    p2 = p2_over_ugb * a0 * p1
    h = two_pole(F, a0, p1, p2)
    fu = two_pole_ugb(a0, p1, p2)
    assert M.unity_gain_bandwidth(F, h) == pytest.approx(fu, rel=1e-4)
    expected = 180 - math.degrees(math.atan(fu / p1) + math.atan(fu / p2))
    assert M.phase_margin(F, h) == pytest.approx(expected, abs=0.02)
    # no -180 degree crossing with two poles: the gain margin is unbounded -> nan
    assert math.isnan(M.gain_margin(F, h))


def test_phase_margin_inverting_convention():
    h = two_pole(F, 1e4, 100.0, 1e6)
    pm = M.phase_margin(F, h)
    # an inverting amplifier: same margin, detected from the sign of h at low frequency or forced
    assert M.phase_margin(F, -h) == pytest.approx(pm, abs=1e-9)
    assert M.phase_margin(F, -h, inverting=True) == pytest.approx(pm, abs=1e-9)
    # treated as non-inverting, -h starts at 180 degrees: the margin is off by 180
    assert M.phase_margin(F, -h, inverting=False) == pytest.approx(pm + 180, abs=1e-6)
    # the branch np.angle picks at the first point does not matter
    h_neg_branch = -h * np.exp(-1e-12j)
    assert M.phase_margin(F, h_neg_branch) == pytest.approx(pm, abs=1e-6)


def test_gain_margin_three_poles_closed_form():
    # three equal poles: -180 degrees where each gives -60, f = sqrt(3) p, |1 + j sqrt(3)| = 2
    p = 1e4
    for a0 in (2.0, 5.0, 20.0):
        h = a0 / (1 + 1j * F / p) ** 3
        assert M.gain_margin(F, h) == pytest.approx(-20 * math.log10(a0 / 8), abs=1e-3)
        assert M.gain_margin(F, -h) == pytest.approx(-20 * math.log10(a0 / 8), abs=1e-3)


def test_frequency_measures_return_nan_without_a_crossing():
    flat = np.full(F.shape, 10.0 + 0j)
    assert math.isnan(M.bandwidth_3db(F, flat))
    assert math.isnan(M.unity_gain_bandwidth(F, flat))
    assert math.isnan(M.phase_margin(F, flat))
    assert math.isnan(M.gain_margin(F, flat))
    small = one_pole(F, 0.5, 1e3)            # never above unity gain
    assert math.isnan(M.unity_gain_bandwidth(F, small))
    assert math.isnan(M.phase_margin(F, small))
    assert M.dc_gain_db(F, small) == pytest.approx(-6.0206, abs=1e-4)


def test_frequency_measures_accept_ngspice_complex_axis():
    f = F.astype(complex)                   # ngspice's AC "frequency" vector is complex
    h = one_pole(F, 1e3, 1e3)
    assert M.bandwidth_3db(f, h) == M.bandwidth_3db(F, h)
    assert M.phase_margin(f, h) == M.phase_margin(F, h)
    with pytest.raises(ValueError, match="freq must be real"):
        M.bandwidth_3db(F + 1j, h)


def test_frequency_measures_reject_bad_input():
    h = one_pole(F, 1e3, 1e3)
    with pytest.raises(ValueError, match="same length"):
        M.dc_gain_db(F, h[:-1])
    with pytest.raises(ValueError, match="same length"):
        M.bandwidth_3db(F[:-3], h)
    with pytest.raises(ValueError, match="increasing"):
        M.unity_gain_bandwidth(F[::-1], h)
    with pytest.raises(ValueError, match="positive"):
        M.bandwidth_3db(np.linspace(0, 1e6, F.size), h)
    with pytest.raises(ValueError, match="1-D"):
        M.dc_gain_db(F[None, :], h[None, :])
    with pytest.raises(ValueError, match="at least 2"):
        M.dc_gain_db(F[:1], h[:1])
    with pytest.raises(ValueError, match="complex"):
        M.phase_margin(F, np.abs(h))
    with pytest.raises(ValueError, match="complex"):
        M.gain_margin(F, np.abs(h))


# ---------------------------------------------------------------------------------------
# Power and noise on synthetic arrays
# ---------------------------------------------------------------------------------------
def test_supply_power():
    assert M.supply_power(-0.6e-3, 1.8) == pytest.approx(1.08e-3)
    assert M.supply_power(0.6e-3, 1.8) == pytest.approx(1.08e-3)          # sign convention irrelevant
    assert isinstance(M.supply_power(np.float64(-1e-3), 1.0), float)
    i = np.array([-1e-3, -2e-3, 0.0])
    np.testing.assert_allclose(M.supply_power(i, 1.2), [1.2e-3, 2.4e-3, 0.0])
    np.testing.assert_allclose(M.supply_power(i, np.array([1.0, 2.0, 3.0])), [1e-3, 4e-3, 0.0])
    with pytest.raises(ValueError, match="same length"):
        M.supply_power(i, np.ones(4))
    with pytest.raises(ValueError, match="current"):
        M.supply_power("1m", 1.0)


def test_integrated_white_noise_is_density_times_sqrt_bandwidth():
    s = 7e-9                                           # V/sqrt(Hz)
    f = np.logspace(0, 8, 801)
    d = np.full(f.size, s)
    assert M.integrated_noise(f, d) == pytest.approx(s * math.sqrt(f[-1] - f[0]), rel=1e-12)
    # a band whose edges fall between samples
    assert M.integrated_noise(f, d, 123.4, 5.678e6) == pytest.approx(s * math.sqrt(5.678e6 - 123.4), rel=1e-12)
    # a power density linear in f is integrated exactly by the trapezoid rule, edges included
    d_lin = np.sqrt(1e-16 + 1e-24 * f)
    lo, hi = 3.3e3, 4.4e7
    exact = 1e-16 * (hi - lo) + 0.5e-24 * (hi ** 2 - lo ** 2)
    assert M.integrated_noise(f, d_lin, lo, hi) == pytest.approx(math.sqrt(exact), rel=1e-9)


def test_integrated_flicker_noise_on_a_log_grid():
    f = np.logspace(0, 6, 6 * 200 + 1)
    k = 1e-12                                           # V^2: density^2 = k / f
    got = M.integrated_noise(f, np.sqrt(k / f), 10.0, 1e5)
    assert got == pytest.approx(math.sqrt(k * math.log(1e4)), rel=1e-3)


def test_integrated_noise_of_a_one_pole_spectrum_is_sqrt_kt_over_c():
    r, c = 10e3, 1e-12
    fc = 1 / (2 * math.pi * r * c)
    f = np.logspace(0, math.log10(fc) + 6, 2000)
    d = np.sqrt(4 * K_B * T_NGSPICE * r / (1 + (f / fc) ** 2))
    assert M.integrated_noise(f, d) == pytest.approx(math.sqrt(K_B * T_NGSPICE / c), rel=2e-3)


def test_noise_input_checks():
    f = np.logspace(0, 3, 31)
    d = np.full(f.size, 1e-9)
    with pytest.raises(ValueError, match="outside"):
        M.integrated_noise(f, d, 0.5, 100)
    with pytest.raises(ValueError, match="outside"):
        M.integrated_noise(f, d, 10, 2e3)
    with pytest.raises(ValueError, match="below"):
        M.integrated_noise(f, d, 100, 10)
    with pytest.raises(ValueError, match="same length"):
        M.integrated_noise(f, d[1:])
    with pytest.raises(ValueError, match="non-negative"):
        M.integrated_noise(f, -d)
    with pytest.raises(ValueError, match="within the sweep"):
        M.spot_noise(f, d, 5e3)


def test_spot_noise_follows_power_laws():
    f = np.logspace(0, 6, 7)                  # one point per decade
    d = 3e-8 / np.sqrt(f)                      # flicker: density ~ f^-1/2
    assert M.spot_noise(f, d, 1e3) == pytest.approx(3e-8 / math.sqrt(1e3), rel=1e-12)
    assert M.spot_noise(f, d, 4.2e2) == pytest.approx(3e-8 / math.sqrt(4.2e2), rel=1e-9)
    np.testing.assert_allclose(M.spot_noise(f, d, [2.0, 5e5]), 3e-8 / np.sqrt([2.0, 5e5]), rtol=1e-9)
    # a zero sample: linear interpolation on that segment
    z = np.array([0.0, 2.0, 2.0])
    assert M.spot_noise([1.0, 2.0, 3.0], z, 1.5) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------
# Waveforms on synthetic arrays
# ---------------------------------------------------------------------------------------
def test_crossing_times_of_a_sine():
    fr = 1e6
    t = np.linspace(0, 3e-6, 30001)
    v = np.sin(2 * np.pi * fr * t - 0.3)
    t0 = 0.3 / (2 * np.pi * fr)                 # rising zero crossings at t0 + k / fr
    np.testing.assert_allclose(M.crossing_times(t, v, 0.0, "rise"), t0 + np.arange(3) / fr, atol=1e-13)
    np.testing.assert_allclose(M.crossing_times(t, v, 0.0, "fall"), t0 + (np.arange(3) + 0.5) / fr, atol=1e-13)
    both = M.crossing_times(t, v, 0.0)
    assert both.size == 6 and np.all(np.diff(both) > 0)
    assert M.crossing_times(t, v, 2.0).size == 0
    with pytest.raises(ValueError, match="direction"):
        M.crossing_times(t, v, 0.0, "up")
    with pytest.raises(ValueError, match="same length"):
        M.crossing_times(t, v[1:], 0.0)
    with pytest.raises(ValueError, match="non-decreasing"):
        M.crossing_times(t[::-1], v, 0.0)


def test_crossing_of_a_linear_segment_is_exact():
    assert M.crossing_times([0.0, 1.0, 2.0], [0.0, 0.0, 4.0], 1.0, "rise")[0] == pytest.approx(1.25)
    # a sample exactly at the level counts once
    np.testing.assert_allclose(M.crossing_times([0, 1, 2], [0.0, 0.5, 1.0], 0.5, "rise"), [1.0])


def _rc_step(tau=1e-6, t0=1e-6, n=200001, vdd=1.0):
    t = np.linspace(0, 12 * tau, n)
    vin = vdd * np.clip((t - t0) / 1e-12, 0, 1)                        # 1 ps edge at t0
    vout = vdd * np.where(t > t0, 1 - np.exp(-(t - t0) / tau), 0.0)
    return t, vin, vout


def test_delay_of_a_first_order_step_is_rc_ln2():
    tau = 1e-6
    t, vin, vout = _rc_step(tau)
    expected = tau * math.log(2)
    assert M.rise_delay(t, vin, vout, 1.0) == pytest.approx(expected, rel=1e-4)
    assert M.delay(t, vin, vout, 1.0, edge="rise") == pytest.approx(expected, rel=1e-4)
    assert M.edge_delay(t, vin, vout, 1.0, "rise", "rise") == pytest.approx(expected, rel=1e-4)
    # 20 % threshold: tau * ln(1/0.8)
    assert M.rise_delay(t, vin, vout, 1.0, frac=0.2) == pytest.approx(tau * math.log(1 / 0.8), rel=1e-3)
    # rails other than 0 .. vdd
    assert M.rise_delay(t, vin + 0.5, vout + 0.5, 1.5, vss=0.5) == pytest.approx(expected, rel=1e-4)
    # the same path falling
    assert M.fall_delay(t, 1 - vin, 1 - vout, 1.0) == pytest.approx(expected, rel=1e-4)
    assert M.delay(t, 1 - vin, 1 - vout, 1.0, edge="fall") == pytest.approx(expected, rel=1e-4)


def test_delay_of_an_inverting_path_pairs_opposite_edges():
    tau = 2e-6
    t, vin, vout = _rc_step(tau)
    expected = tau * math.log(2)
    inv_out = 1 - vout                       # output falls after the input rises
    assert M.fall_delay(t, vin, inv_out, 1.0, in_edge="rise") == pytest.approx(expected, rel=1e-4)
    assert M.delay(t, vin, inv_out, 1.0, edge="fall", inverting=True) == pytest.approx(expected, rel=1e-4)
    # output rises after the input falls: the inverter's rise delay
    assert M.rise_delay(t, 1 - vin, vout, 1.0, in_edge="fall") == pytest.approx(expected, rel=1e-4)
    assert M.delay(t, 1 - vin, vout, 1.0, edge="rise", inverting=True) == pytest.approx(expected, rel=1e-4)
    # the wrong pairing finds no such edge
    assert math.isnan(M.delay(t, vin, inv_out, 1.0, edge="fall", inverting=False))


def test_delay_returns_nan_without_edges_and_rejects_bad_arguments():
    t, vin, vout = _rc_step()
    assert math.isnan(M.rise_delay(t, vin, 0.2 * vout, 1.0))          # output never reaches 50 %
    assert math.isnan(M.rise_delay(t, 0.2 * vin, vout, 1.0))          # input never reaches 50 %
    assert math.isnan(M.rise_delay(t, vin, vout, 1.0, after=2e-6))    # no input edge after 2 us
    with pytest.raises(ValueError, match="in_edge"):
        M.rise_delay(t, vin, vout, 1.0, in_edge="up")
    with pytest.raises(ValueError, match="edge"):
        M.delay(t, vin, vout, 1.0, edge="both")
    with pytest.raises(ValueError, match="frac"):
        M.delay(t, vin, vout, 1.0, frac=1.5)
    with pytest.raises(ValueError, match="vdd"):
        M.delay(t, vin, vout, 0.0)
    with pytest.raises(ValueError, match="same length"):
        M.delay(t, vin, vout[1:], 1.0)


def test_delay_picks_the_edge_after_the_input_edge():
    t = np.linspace(0, 10, 10001)
    vin = ((t % 4) >= 2).astype(float)            # rises at 2 and 6
    vout = (((t - 0.5) % 4) >= 2).astype(float)   # the same, 0.5 later
    assert M.rise_delay(t, vin, vout, 1.0) == pytest.approx(0.5, abs=2e-3)
    assert M.rise_delay(t, vin, vout, 1.0, after=3.0) == pytest.approx(0.5, abs=2e-3)
    assert M.fall_delay(t, vin, vout, 1.0) == pytest.approx(0.5, abs=2e-3)


def test_rise_fall_time_and_slew_of_ramps_and_exponentials():
    t = np.linspace(0, 1e-6, 100001)
    sr = 2.5e6                                              # V/s
    ramp = np.clip(sr * (t - 1e-7), 0.0, 1.0)
    assert M.slew_rate(t, ramp) == pytest.approx(sr, rel=1e-6)
    assert M.rise_time(t, ramp) == pytest.approx(0.8 / sr, rel=1e-6)
    assert M.rise_time(t, ramp, lo=0.2, hi=0.8) == pytest.approx(0.6 / sr, rel=1e-6)
    down = 1.0 - ramp
    assert M.slew_rate(t, down, edge="fall") == pytest.approx(sr, rel=1e-6)     # a magnitude
    assert M.fall_time(t, down) == pytest.approx(0.8 / sr, rel=1e-6)
    assert math.isnan(M.fall_time(t, ramp))
    assert math.isnan(M.slew_rate(t, ramp, edge="fall"))

    tau = 5e-8
    rc = np.where(t > 1e-7, 1 - np.exp(-(t - 1e-7) / tau), 0.0)
    assert M.rise_time(t, rc, v_low=0, v_high=1) == pytest.approx(tau * math.log(9), rel=1e-4)
    assert M.slew_rate(t, rc, v_low=0, v_high=1) == pytest.approx(0.8 / (tau * math.log(9)), rel=1e-4)
    assert M.fall_time(t, 1 - rc, v_low=0, v_high=1) == pytest.approx(tau * math.log(9), rel=1e-4)
    # levels default to the waveform's own min and max
    assert M.rise_time(t, 2 * rc + 0.3) == pytest.approx(M.rise_time(t, rc), rel=1e-3)
    with pytest.raises(ValueError, match="lo"):
        M.rise_time(t, rc, lo=0.9, hi=0.1)
    with pytest.raises(ValueError, match="swing"):
        M.slew_rate(t, np.zeros_like(t))
    with pytest.raises(ValueError, match="edge"):
        M.slew_rate(t, rc, edge="up")


def test_input_offset():
    vin = np.linspace(-10e-3, 10e-3, 2001)
    vos, a, vcm = 1.37e-3, 200.0, 0.6
    vout = np.clip(vcm + a * (vin - vos), 0.0, 1.2)
    assert M.input_offset(vin, vout, vcm) == pytest.approx(vos, abs=1e-12)
    # inverting transfer, decreasing sweep
    assert M.input_offset(vin, np.clip(vcm - a * (vin - vos), 0, 1.2), vcm) == pytest.approx(vos, abs=1e-12)
    assert M.input_offset(vin[::-1], vout[::-1], vcm) == pytest.approx(vos, abs=1e-12)
    # a sample exactly on the target
    assert M.input_offset([0.0, 1.0, 2.0], [0.0, 0.5, 1.0], 0.5) == 1.0
    assert math.isnan(M.input_offset(vin, vout, 5.0))
    with pytest.raises(ValueError, match="monotonic"):
        M.input_offset(np.r_[vin, vin], np.r_[vout, vout], vcm)
    with pytest.raises(ValueError, match="same length"):
        M.input_offset(vin, vout[:-1], vcm)


# ---------------------------------------------------------------------------------------
# Real ngspice runs
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim():
    with Simulator() as s:
        yield s


def test_ngspice_rc_lowpass_bandwidth_and_phase(sim):
    r, c = 1e3, 1e-9
    fc = 1 / (2 * math.pi * r * c)
    net = f"* rc low-pass\nV1 in 0 DC 0 AC 1\nR1 in out {r}\nC1 out 0 {c}\n.end"
    res = sim.run(net, ["ac dec 20 1 1g"])
    f, h = res.ac["frequency"], res.ac["out"]
    assert np.iscomplexobj(h)
    assert M.bandwidth_3db(f, h) == pytest.approx(fc, rel=0.01)
    assert M.dc_gain_db(f, h) == pytest.approx(0.0, abs=1e-6)
    # the phase at fc, from an AC point exactly there and from the sweep
    at_fc = sim.run(net, [f"ac lin 1 {fc} {fc}"]).ac["out"]
    assert np.degrees(np.angle(at_fc[0])) == pytest.approx(-45.0, abs=0.01)
    phase = np.degrees(np.unwrap(np.angle(h)))
    assert np.interp(math.log10(fc), np.log10(f.real), phase) == pytest.approx(-45.0, abs=0.2)


def test_ngspice_resistor_thermal_noise_integrates_to_sqrt_kt_over_c(sim):
    r, c = 1e3, 1e-9
    res = sim.run(f"* rc noise\nV1 in 0 DC 0 AC 1\nR1 in out {r}\nC1 out 0 {c}\n.end",
                  ["noise v(out) V1 dec 50 1 1g"])
    f, d = res.noise["frequency"], res.noise["onoise_spectrum"]
    ktc = math.sqrt(K_B * T_NGSPICE / c)
    assert M.integrated_noise(f, d) == pytest.approx(ktc, rel=0.02)
    assert M.integrated_noise(f, d) == pytest.approx(res.noise_total["onoise_total"], rel=0.01)
    # below the corner the spectrum is the resistor's 4kTR
    assert M.spot_noise(f, d, 100.0) == pytest.approx(math.sqrt(4 * K_B * T_NGSPICE * r), rel=1e-3)


def test_ngspice_vccs_amplifier_gain_pole_ugb_phase_margin(sim):
    gm, r, c = 1e-3, 100e3, 1e-12
    res = sim.run(f"* vccs amplifier\nVin in 0 DC 0 AC 1\nG1 0 out in 0 {gm}\nR1 out 0 {r}\nC1 out 0 {c}\n.end",
                  ["ac dec 50 1 10g"])
    f, h = res.ac["frequency"], res.ac["out"]
    a0, fp = gm * r, 1 / (2 * math.pi * r * c)
    assert M.dc_gain_db(f, h) == pytest.approx(20 * math.log10(a0), abs=1e-3)
    assert M.bandwidth_3db(f, h) == pytest.approx(fp, rel=0.01)
    assert M.unity_gain_bandwidth(f, h) == pytest.approx(a0 * fp, rel=0.01)
    assert M.phase_margin(f, h) == pytest.approx(180 - math.degrees(math.atan(math.sqrt(a0 ** 2 - 1))), abs=0.1)


def test_ngspice_two_stage_vccs_phase_margin_closed_form(sim):
    gm1, r1, c1, gm2, r2, c2 = 1e-4, 1e6, 1e-12, 1e-3, 1e4, 0.5e-12
    # the second stage inverts (current drawn out of node out): inverting=None detects it
    res = sim.run(f"* two stages\nVin in 0 DC 0 AC 1\nG1 0 x in 0 {gm1}\nR1 x 0 {r1}\nC1 x 0 {c1}\n"
                  f"G2 out 0 x 0 {gm2}\nR2 out 0 {r2}\nC2 out 0 {c2}\n.end", ["ac dec 100 1 100g"])
    f, h = res.ac["frequency"], res.ac["out"]
    assert h[0].real < 0
    a0, p1, p2 = gm1 * r1 * gm2 * r2, 1 / (2 * math.pi * r1 * c1), 1 / (2 * math.pi * r2 * c2)
    fu = two_pole_ugb(a0, p1, p2)
    assert M.unity_gain_bandwidth(f, h) == pytest.approx(fu, rel=0.005)
    pm = 180 - math.degrees(math.atan(fu / p1) + math.atan(fu / p2))
    assert M.phase_margin(f, h) == pytest.approx(pm, abs=0.2)


def test_ngspice_rc_step_delay_and_rise_time(sim):
    r, c = 1e3, 1e-9
    tau = r * c
    res = sim.run(f"* rc step\nV1 in 0 PULSE(0 1 1u 1p 1p 1 2)\nR1 in out {r}\nC1 out 0 {c}\n.end",
                  ["tran 1n 10u 0 2n"])
    t, vin, vout = res.tran["time"], res.tran["in"], res.tran["out"]
    assert M.rise_delay(t, vin, vout, 1.0) == pytest.approx(tau * math.log(2), rel=0.01)
    assert M.delay(t, vin, vout, 1.0, edge="rise") == pytest.approx(tau * math.log(2), rel=0.01)
    assert M.rise_time(t, vout, v_low=0.0, v_high=1.0) == pytest.approx(tau * math.log(9), rel=0.01)
    assert M.crossing_times(t, vin, 0.5, "rise")[0] == pytest.approx(1e-6, abs=1e-12)


def test_ngspice_divider_supply_power(sim):
    vdd, r1, r2 = 1.8, 1e3, 2e3
    op = sim.run(f"* divider\nVdd vdd 0 DC {vdd}\nR1 vdd mid {r1}\nR2 mid 0 {r2}\n.end", ["op"]).op
    assert op["mid"] == pytest.approx(vdd * r2 / (r1 + r2))
    assert M.supply_power(op["vdd#branch"], op["vdd"]) == pytest.approx(vdd ** 2 / (r1 + r2), rel=1e-9)


@pytest.mark.parametrize("case", ["two-pole", "inverting", "no-crossing", "magnitudes", "three-pole", "random"])
def test_amplifier_metrics_equal_the_measures_one_by_one(case):
    f = np.logspace(0, 10, 241)
    s = 1j * f
    h = {"two-pole": 1e3 / ((1 + s / 1e3) * (1 + s / 1e6)),
         "inverting": -3e3 / ((1 + s / 2e2) * (1 + s / 5e6) * (1 + s / 4e8)),
         "no-crossing": 0.5 / (1 + s / 1e3),
         "magnitudes": np.abs(1e3 / ((1 + s / 1e3) * (1 + s / 1e6))),
         "three-pole": 1e4 / (1 + s / 1e2) ** 3,
         "random": np.cumprod(np.exp(np.random.default_rng(1).normal(-0.02, 0.05, 241)
                                     + 1j * np.random.default_rng(2).normal(-0.02, 0.05, 241))) * 30}[case]
    got = M.amplifier_metrics(f, h)

    def one(fn):
        try:
            return fn(f, h)
        except ValueError:   # phase of magnitudes: undefined
            return math.nan
    want = {"gain_db": one(M.dc_gain_db), "bw": one(M.bandwidth_3db),
            "ugbw": one(M.unity_gain_bandwidth), "pm": one(M.phase_margin)}
    assert set(got) == set(want)
    for k in want:
        assert got[k] == want[k] or (math.isnan(got[k]) and math.isnan(want[k])), (k, got[k], want[k])
    assert case != "no-crossing" or (math.isnan(got["ugbw"]) and math.isnan(got["pm"]))
    assert case != "magnitudes" or (math.isnan(got["pm"]) and got["ugbw"] > 0)
    assert case in ("no-crossing", "magnitudes") or math.isfinite(got["pm"])


def test_batch_measures_equal_row_by_row():
    f = np.logspace(0, 10, 241)
    s = 1j * f
    rng = np.random.default_rng(5)
    H = np.stack([1e3 / ((1 + s / 1e3) * (1 + s / 1e6)), -3e3 / ((1 + s / 2e2) * (1 + s / 5e6) * (1 + s / 4e8)),
                  0.5 / (1 + s / 1e3), 1e4 / (1 + s / 1e2) ** 3]
                 + [a0 / ((1 + s / p1) * (1 + s / p2)) for a0, p1, p2 in
                    zip(10 ** rng.uniform(0, 5, 12), 10 ** rng.uniform(1, 5, 12), 10 ** rng.uniform(5, 9, 12))])
    got = M.amplifier_metrics_batch(f, H)
    for h, g in zip(H, got):
        want = M.amplifier_metrics(f, h)
        assert all(g[k] == want[k] or (math.isnan(g[k]) and math.isnan(want[k])) for k in want), (g, want)
    mags = M.amplifier_metrics_batch(f, np.abs(H))                     # magnitudes: no phase margin
    assert all(math.isnan(m["pm"]) for m in mags) and mags[0]["ugbw"] == got[0]["ugbw"]
    assert M.amplifier_metrics_batch(f, H[:0]) == []
    with pytest.raises(ValueError, match="H must be"):
        M.amplifier_metrics_batch(f, H[:, :-1])

    fn = np.logspace(0, 6, 121)
    D = np.abs(rng.normal(1e-8, 3e-9, (9, 121)))
    D[3, 7] = -1e-9                                                    # invalid row: NaN, others unaffected
    got = M.integrated_noise_batch(fn, D, 3.3, 2e5)
    for r, d in enumerate(D):
        if r == 3:
            assert math.isnan(got[r])
        else:
            assert got[r] == M.integrated_noise(fn, d, 3.3, 2e5)
