"""Safety-filter math against hand-computed values, and the filter's enable / e-stop state."""
import numpy as np
import pytest

from robolearn.deploy.safety import (SafetyFilter, SafetyLimits, UnsafeCommandError, check_vector, clamp_joints,
                                     clamp_workspace, is_stale, rate_limit)


def test_check_vector_rejects_shape_and_nan():
    assert check_vector([1, 2], 2).dtype == np.float64
    with pytest.raises(UnsafeCommandError, match=r"expected shape \(3,\), got \(2,\)"):
        check_vector([1, 2], 3)
    with pytest.raises(UnsafeCommandError, match=r"non-finite value\(s\) at index \[1\]"):
        check_vector([0.0, np.nan, 1.0], 3)
    with pytest.raises(UnsafeCommandError, match="index \\[0\\]"):
        check_vector([np.inf], 1)
    with pytest.raises(UnsafeCommandError, match="not numeric"):
        check_vector(["a", "b"], 2)


def test_clamp_joints_hand_values():
    out = clamp_joints(np.array([-3.0, 0.5, 2.0]), np.array([-1.0, -1.0, -1.0]), np.array([1.0, 1.0, 1.5]))
    np.testing.assert_array_equal(out, [-1.0, 0.5, 1.5])
    out = clamp_joints(np.array([-3.0, 0.95]), np.array([-1.0, -1.0]), np.array([1.0, 1.0]), margin=0.1)
    np.testing.assert_allclose(out, [-0.9, 0.9])


def test_clamp_workspace_hand_values():
    out = clamp_workspace(np.array([0.1, 0.0, 0.9]), np.array([0.25, -0.3, 0.0]), np.array([0.75, 0.3, 0.45]))
    np.testing.assert_allclose(out, [0.25, 0.0, 0.45])


def test_rate_limit_hand_values():
    last = np.array([0.0, 1.0, -1.0])
    out = rate_limit(np.array([0.5, 1.005, -2.0]), last, 0.01)
    np.testing.assert_allclose(out, [0.01, 1.005, -1.01])
    out = rate_limit(np.array([1.0, 1.0, 1.0]), last, np.array([0.1, 0.2, 0.3]))
    np.testing.assert_allclose(out, [0.1, 1.0, -0.7])


def test_is_stale_threshold():
    assert is_stale(1.0, None, 0.01)
    assert not is_stale(1.029, 1.0, 0.01)  # under 3 periods: fresh
    assert is_stale(1.0301, 1.0, 0.01)


def _filt():
    return SafetyFilter(SafetyLimits(lower=[-1, -1], upper=[1, 1], max_step=0.1))


def test_filter_starts_disabled_and_estop_latches():
    f = _filt()
    assert not f.active
    f.set_enabled(True)
    assert f.active
    f.set_estop(True)
    assert not f.active and f.counters.estops == 1
    f.set_enabled(True)  # refused while e-stopped
    assert not f.active
    f.set_estop(False)
    assert not f.active  # clearing e-stop does not re-enable
    f.set_enabled(True)
    assert f.active


def test_filter_clamps_then_rate_limits_from_measured_then_last():
    f = _filt()
    f.set_enabled(True)
    q, g = f.filter([5.0, -0.05], q_measured=[0.95, 0.0], gripper=3.0)
    # clamp to 1.0, then at most 0.1 from the measured 0.95 -> 1.0; second joint -0.05 within reach
    np.testing.assert_allclose(q, [1.0, -0.05])
    assert g == 1.0
    q, g = f.filter([-1.0, -1.0], q_measured=[0.0, 0.0], gripper=-1.0)
    np.testing.assert_allclose(q, [0.9, -0.15])  # from the last command, not the measurement
    assert g == pytest.approx(0.8)  # default gripper step 0.2
    assert f.counters.clamped_limits == 1 and f.counters.rate_limited == 1


def test_filter_rejects_nan_with_hold_at_measured():
    f = _filt()
    f.set_enabled(True)
    q, _ = f.filter([np.nan, 0.0], q_measured=[0.3, -0.2])
    np.testing.assert_allclose(q, [0.3, -0.2])
    assert f.counters.rejected == 1 and "non-finite" in f.last_error
    q, _ = f.filter([0.0, 0.0, 0.0], q_measured=[0.3, -0.2])
    np.testing.assert_allclose(q, [0.3, -0.2])
    assert f.counters.rejected == 2 and "shape" in f.last_error


def test_limits_validation():
    with pytest.raises(ValueError, match="lower \\+ margin"):
        SafetyLimits(lower=[0.0], upper=[0.1], max_step=0.1, margin=0.1)
    with pytest.raises(ValueError, match="max_step"):
        SafetyLimits(lower=[0.0], upper=[1.0], max_step=0.0)
