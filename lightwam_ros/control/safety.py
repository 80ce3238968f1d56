"""A safety filter that knows the robot, not the model.

The executor's safety filter is the only authority on joint limits, caps and clipping (the
policy checks only that a chunk means something: ``policy.chunk.Chunk`` refuses non-finite values
and bad shapes when it is built).  Two gates:
- ``validate_chunk`` refuses a whole chunk of joint targets before any of it is used: a column
  count other than the commanded joints', positions beyond the joint limits by more than
  ``limit_margin``, or step-to-step jumps above a bound.  One bad step means the model's output
  is not trustworthy, so the chunk goes as a whole; ``clip_to_limits`` brings values within the
  margin back inside the limits.
- ``filter`` shapes every control tick: the command stays inside the joint limits (braking early
  enough to stop at a limit), within the per-joint velocity and acceleration caps, and within a
  maximum distance of the measured state.  A ramp-in scales the velocity cap from 0 to 1 after
  activation.  The output is always finite.

Priorities when they conflict: position limits, then the acceleration cap, then the velocity
cap (a velocity above the cap, e.g. after the cap shrank, is brought down at the acceleration
cap rather than cut), then the target and the distance to the measured state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class JointSafetyLimits:
    """Per-joint limits; every array has one entry per commanded joint."""

    lower: np.ndarray
    upper: np.ndarray
    max_velocity: np.ndarray  # units/s
    max_acceleration: np.ndarray  # units/s^2
    max_deviation: np.ndarray  # largest |command - measured|
    max_jump: np.ndarray  # largest |a[i+1] - a[i]| between consecutive chunk steps
    limit_margin: np.ndarray  # chunk values up to this far outside [lower, upper] are clipped
    ramp_time: float = 1.0  # s for the velocity cap to grow from 0 to 1 after activation

    def __post_init__(self) -> None:
        lower = _vector("lower", self.lower, None)
        dim = lower.size
        arrays = {"lower": lower}
        for name in (
            "upper",
            "max_velocity",
            "max_acceleration",
            "max_deviation",
            "max_jump",
            "limit_margin",
        ):
            arrays[name] = _vector(name, getattr(self, name), dim)
        if np.any(arrays["upper"] <= lower):
            raise ValueError(f"limits need lower < upper per joint: {lower} vs {arrays['upper']}")
        for name in ("max_velocity", "max_acceleration", "max_deviation", "max_jump"):
            if np.any(arrays[name] <= 0.0):
                raise ValueError(f"{name} must be > 0 for every joint, got {arrays[name]}")
        if np.any(arrays["limit_margin"] < 0.0):
            raise ValueError(f"limit_margin must be >= 0, got {arrays['limit_margin']}")
        if not (math.isfinite(self.ramp_time) and self.ramp_time >= 0.0):
            raise ValueError(f"ramp_time must be finite and >= 0, got {self.ramp_time}")
        for name, value in arrays.items():
            value.flags.writeable = False
            object.__setattr__(self, name, value)

    @property
    def dim(self) -> int:
        return self.lower.size


def _vector(name: str, value, dim: int | None) -> np.ndarray:
    """Float copy of a per-joint vector; a scalar is broadcast when the size is known."""
    array = np.array(value, dtype=np.float64)
    if array.ndim == 0 and dim is not None:
        array = np.full(dim, float(array))
    if array.ndim != 1 or array.size == 0 or (dim is not None and array.size != dim):
        expected = f"({dim},)" if dim is not None else "(D,) with D >= 1"
        raise ValueError(f"{name} must have shape {expected}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {array}")
    return array


@dataclass(frozen=True)
class ChunkVerdict:
    ok: bool
    reason: str  # empty when ok


@dataclass(frozen=True, eq=False)
class SafeCommand:
    position: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray
    limited: bool  # the filter changed the requested motion


def _all_finite(values: np.ndarray) -> bool:
    """Fast test for small vectors: a finite sum settles it; otherwise check element-wise."""
    return math.isfinite(values.sum()) or bool(np.isfinite(values).all())


def _clamp(values: np.ndarray, lower, upper) -> np.ndarray:
    """In-place clip (np.clip is several times slower on small vectors)."""
    np.maximum(values, lower, out=values)
    return np.minimum(values, upper, out=values)


class SafetyFilter:
    """Model-independent gate on chunks and on every tick's command."""

    def __init__(self, limits: JointSafetyLimits) -> None:
        self.limits = limits
        self._ramp_elapsed = math.inf  # no ramp until start_ramp()
        self._two_acc = 2.0 * limits.max_acceleration

    # ---------------------------------------------------------------- whole-chunk validation

    def validate_chunk(self, positions: np.ndarray) -> ChunkVerdict:
        """Check all rows of an (H, D) joint-position chunk (finite: a ``Chunk``'s actions); the
        reason names the first fault."""
        positions = np.asarray(positions, dtype=np.float64)
        lim = self.limits
        if positions.ndim != 2 or positions.shape[1] != lim.dim or positions.shape[0] == 0:
            return ChunkVerdict(
                False,
                f"chunk shape {positions.shape}: the executor drives "
                f"{lim.dim} joints, expected (H, {lim.dim})",
            )
        outside = (positions < lim.lower - lim.limit_margin) | (positions > lim.upper + lim.limit_margin)
        if outside.any():
            step, joint = np.argwhere(outside)[0]
            return ChunkVerdict(
                False,
                f"step {step}, joint {joint}: {positions[step, joint]:.6g} outside "
                f"[{lim.lower[joint]:.6g}, {lim.upper[joint]:.6g}] by more than the margin "
                f"{lim.limit_margin[joint]:.6g}",
            )
        jumps = np.abs(np.diff(positions, axis=0)) > lim.max_jump
        if jumps.any():
            step, joint = np.argwhere(jumps)[0]
            size = abs(positions[step + 1, joint] - positions[step, joint])
            return ChunkVerdict(
                False,
                f"jump of {size:.6g} between steps {step} and {step + 1} at joint {joint} "
                f"(bound {lim.max_jump[joint]:.6g})",
            )
        return ChunkVerdict(True, "")

    def clip_to_limits(self, positions: np.ndarray) -> np.ndarray:
        """Chunk values inside the margin are brought back inside the joint limits."""
        return np.clip(positions, self.limits.lower, self.limits.upper)

    # ---------------------------------------------------------------- ramp-in

    def start_ramp(self) -> None:
        """Activation: the velocity cap restarts at 0 and grows linearly to 1 over ramp_time."""
        self._ramp_elapsed = 0.0

    @property
    def ramp_scale(self) -> float:
        if self.limits.ramp_time == 0.0:
            return 1.0
        return min(1.0, self._ramp_elapsed / self.limits.ramp_time)

    # ---------------------------------------------------------------- per-tick filter

    def filter(
        self,
        cmd_prev: np.ndarray,
        cmd_prev_vel: np.ndarray,
        target: np.ndarray,
        measured: np.ndarray | None,
        dt: float,
        target_velocity: np.ndarray | None = None,
    ) -> SafeCommand:
        """Next safe command after ``dt`` seconds, moving from the previous command toward target.

        ``target_velocity`` (the reference's own velocity, zero when omitted) is followed as a
        feed-forward; any remaining error is closed no faster than a stop at half the
        acceleration cap allows, so catching up after a limited stretch does not overshoot.
        Non-finite target or measured entries mean "hold this joint" / "no measurement for this
        joint"; a non-finite previous command or a bad dt is a caller error (ValueError).
        Advances the ramp-in clock by dt.
        """
        lim = self.limits
        if not (0.0 < dt < math.inf):
            raise ValueError(f"dt must be finite and > 0, got {dt}")
        cmd_prev = self._vector("previous command", cmd_prev, require_finite=True)
        cmd_prev_vel = self._vector("previous velocity", cmd_prev_vel, require_finite=True)
        target = np.array(self._vector("target", target))  # a copy: modified below
        if not _all_finite(target):
            np.copyto(target, cmd_prev, where=~np.isfinite(target))
        requested = target.copy()
        if target_velocity is None:
            feed_forward = np.zeros(lim.dim)
        else:
            feed_forward = self._vector("target velocity", target_velocity)
            if not _all_finite(feed_forward):
                feed_forward = np.where(np.isfinite(feed_forward), feed_forward, 0.0)

        if measured is not None:
            measured = self._vector("measured", measured)
            if _all_finite(measured):
                _clamp(target, measured - lim.max_deviation, measured + lim.max_deviation)
            else:
                known = np.isfinite(measured)
                _clamp(
                    target,
                    np.where(known, measured - lim.max_deviation, -np.inf),
                    np.where(known, measured + lim.max_deviation, np.inf),
                )
        _clamp(target, lim.lower, lim.upper)

        if self._ramp_elapsed < math.inf:
            self._ramp_elapsed += dt
        # Error left after following the target's own motion, closed at most as fast as a stop
        # at half the acceleration cap allows, sqrt(2 (a/2) e); small tracking errors pass as is.
        error = target - cmd_prev
        error -= feed_forward * dt
        catch_up = np.sqrt(lim.max_acceleration * np.abs(error))
        velocity = _clamp(error / dt, -catch_up, catch_up)
        velocity += feed_forward
        # Braking at the position limits: after this tick, decelerating at a_max must still stop
        # inside the limit.  In discrete steps the stopping distance from v is at most
        # v^2 / (2 a) + v dt, hence the bound v <= sqrt((a dt)^2 + 2 a d) - a dt.
        acc_step = lim.max_acceleration * dt
        acc_step_sq = acc_step * acc_step
        brake_up = np.sqrt(acc_step_sq + self._two_acc * np.maximum(lim.upper - cmd_prev, 0.0))
        brake_up -= acc_step
        brake_down = np.sqrt(acc_step_sq + self._two_acc * np.maximum(cmd_prev - lim.lower, 0.0))
        brake_down -= acc_step
        scale = self.ramp_scale
        vel_cap = lim.max_velocity if scale == 1.0 else lim.max_velocity * scale
        _clamp(velocity, -np.minimum(vel_cap, brake_down), np.minimum(vel_cap, brake_up))
        # The acceleration cap wins over the velocity window: a velocity above the (ramped) cap
        # comes down at a_max instead of being cut in one tick.
        _clamp(velocity, cmd_prev_vel - acc_step, cmd_prev_vel + acc_step)
        position = _clamp(cmd_prev + velocity * dt, lim.lower, lim.upper)
        velocity = (position - cmd_prev) / dt
        acceleration = (velocity - cmd_prev_vel) / dt
        limited = bool(np.abs(position - requested).max() > 1e-9)
        return SafeCommand(position, velocity, acceleration, limited)

    def _vector(self, name: str, value, require_finite: bool = False) -> np.ndarray:
        value = np.asarray(value, dtype=np.float64)
        if value.shape != (self.limits.dim,):
            raise ValueError(f"{name} must have shape ({self.limits.dim},), got {value.shape}")
        if require_finite and not _all_finite(value):
            raise ValueError(f"{name} must be finite, got {value}")
        return value
