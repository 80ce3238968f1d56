"""Scripted cube-transfer demonstrations on ``AlohaSim``, in joint space.

gym-aloha ships no scripted policy, and ACT's (a mocap weld dragging each gripper) drops the cube
on MuJoCo 3.  So this script plans ACT's phases as gripper poses - the right arm grasps the cube,
lifts it to a meeting point mid-air, the left arm grasps it there, the right lets go - turns every
pose into joint positions with damped-least-squares IK on the simulator's own model, and moves
between them at constant joint speed with short ramps (as ACT's script moves at constant speed);
the position actuators track those joint targets as they would a policy's.

``python -m lightwam_ros.sim.aloha_scripted --episodes 20`` measures its success rate by the
simulator's own signal.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lightwam_ros.policy.kinematics import IKResult, Pose, damped_least_squares
from lightwam_ros.sim.aloha import ARMS, GRIPPER_BODIES, MJCF_JOINTS, AlohaSim
from lightwam_ros.sim.base import SimError, SimState

# The point the script steers, in the gripper link's frame: midway between the finger pads, a
# third of the way in from their tips (the pads span 0.064..0.154 m along the gripper's x axis).
GRASP_POINT = np.array([0.12, 0.0, 0.0])
# The cube changes hands here (world frame, m): between the two arm bases, high above the table.
MEET_POINT = np.array([0.0, 0.5, 0.25])
# The right gripper picks pitched down by this much (rad) from horizontal, reaching in from +x, as
# in ACT's script: it leaves the cube's -x half free for the left fingers.
PICK_PITCH = np.deg2rad(60.0)


def _frame(x_axis: tuple[float, ...], y_axis: tuple[float, ...]) -> np.ndarray:
    """Rotation whose columns are the gripper's axes in the world: x points from the palm to the
    finger tips, y is the direction the fingers slide."""
    x, y = np.asarray(x_axis, dtype=float), np.asarray(y_axis, dtype=float)
    return np.column_stack([x, y, np.cross(x, y)])


# Right gripper: from +x, pitched down, fingers closing along world y (on the cube's side faces).
PICK_ROTATION = _frame((-np.cos(PICK_PITCH), 0.0, -np.sin(PICK_PITCH)), (0.0, -1.0, 0.0))
# Left gripper: level from -x, fingers closing along world z (on the cube's top and bottom).
RECEIVE_ROTATION = _frame((1.0, 0.0, 0.0), (0.0, 0.0, 1.0))


class ArmIK:
    """Damped-least-squares IK of one arm's grasp point on a scratch copy of the model's data:
    solving never moves the simulator it plans for."""

    def __init__(
        self,
        sim: AlohaSim,
        arm: str,
        point: np.ndarray = GRASP_POINT,
        position_tolerance: float = 5e-4,
        rotation_tolerance: float = 5e-3,
        max_iterations: int = 200,
        damping: float = 1e-2,
        max_step: float = 0.2,
    ) -> None:
        import mujoco  # the simulator is built, so the package is there

        if arm not in ARMS:
            raise SimError(f"unknown ALOHA arm {arm!r}; choose one of {ARMS}")
        self._mujoco = mujoco
        self._model = sim.physics.model.ptr
        self._data = mujoco.MjData(self._model)
        self.slots, self.finger_slot = _arm_slots(sim, arm)
        joint_ids = [self._model.joint(MJCF_JOINTS[sim.joint_names[slot]]).id for slot in self.slots]
        self._qpos_index = self._model.jnt_qposadr[joint_ids]
        self._dof_index = self._model.jnt_dofadr[joint_ids]
        self.lower, self.upper = sim.joint_limits[self.slots].T
        names = [sim.joint_names[slot] for slot in self.slots]
        self._wrist = [
            names.index(f"{arm}_{joint}") for joint in ("forearm_roll", "wrist_angle", "wrist_rotate")
        ]
        self._body = self._model.body(GRIPPER_BODIES[arm]).id
        self._point = np.asarray(point, dtype=float)
        self._solver: dict[str, Any] = dict(
            max_iterations=max_iterations,
            position_tolerance=position_tolerance,
            rotation_tolerance=rotation_tolerance,
            damping=damping,
            max_step=max_step,
        )
        self._jacp = np.zeros((3, self._model.nv))
        self._jacr = np.zeros((3, self._model.nv))

    def forward(self, q: np.ndarray) -> Pose:
        """World pose of the grasp point (with the gripper link's rotation) at arm joints ``q``."""
        self._data.qpos[self._qpos_index] = q
        self._mujoco.mj_kinematics(self._model, self._data)
        rotation = self._data.xmat[self._body].reshape(3, 3)
        return Pose(self._data.xpos[self._body] + rotation @ self._point, rotation)

    def solve(self, target: Pose, q_seed: np.ndarray) -> IKResult:
        """Joint positions (within limits) that put the grasp point at ``target``, starting from
        ``q_seed``; ``converged`` says whether both tolerances were met."""
        result = damped_least_squares(
            self._pose_and_jacobian, target, q_seed, self.lower, self.upper, **self._solver
        )
        return dataclasses.replace(result, q=self._unrolled(result.q))

    def _pose_and_jacobian(self, q: np.ndarray) -> tuple[Pose, np.ndarray]:
        pose = self.forward(q)
        return pose, self._jacobian(pose.position)

    def _unrolled(self, q: np.ndarray) -> np.ndarray:
        """The wrist turns the gripper to any orientation in two exactly equivalent ways,
        (roll, angle, rotate) and (roll -+ pi, -angle, rotate -+ pi): keep the one with the
        forearm roll nearer zero (if within limits), so that similar poses get similar joints
        in every demonstration rather than a forearm turned half over in some."""
        roll, angle, rotate = q[self._wrist]
        if abs(roll) <= np.pi / 2:
            return q
        flipped = q.copy()
        flipped[self._wrist] = (roll - np.copysign(np.pi, roll), -angle, rotate - np.copysign(np.pi, rotate))
        inside = np.all((flipped >= self.lower) & (flipped <= self.upper))
        return flipped if inside else q

    def _jacobian(self, point: np.ndarray) -> np.ndarray:
        """6 x 6 world-frame Jacobian (linear; angular) of ``point`` on the gripper link, for the
        kinematics ``forward`` just computed."""
        self._mujoco.mj_comPos(self._model, self._data)
        self._mujoco.mj_jac(self._model, self._data, self._jacp, self._jacr, point, self._body)
        return np.vstack([self._jacp[:, self._dof_index], self._jacr[:, self._dof_index]])


@dataclass(frozen=True)
class Waypoint:
    """Where one arm's grasp point should be at ``time`` (s from the script's start), and how
    open its gripper (0 closed .. 1 open)."""

    time: float
    position: np.ndarray
    rotation: np.ndarray
    opening: float


def transfer_waypoints(cube: np.ndarray) -> dict[str, list[Waypoint]]:
    """ACT's transfer phases for a cube resting at ``cube`` (its centre, world frame), per arm;
    the start pose (t = 0) is wherever the arm is."""
    above = np.array([0.0, 0.0, 0.08])
    lifted = np.array([0.0, 0.0, 0.10])
    aside = np.array([0.10, 0.0, 0.0])

    def right(time: float, position: np.ndarray, opening: float) -> Waypoint:
        return Waypoint(time, position, PICK_ROTATION, opening)

    def left(time: float, position: np.ndarray, opening: float) -> Waypoint:
        return Waypoint(time, position, RECEIVE_ROTATION, opening)

    return {
        "right": [
            right(1.8, cube + above, 1.0),  # approach above the cube
            right(2.6, cube, 1.0),  # descend around it
            right(3.4, cube, 0.0),  # close
            right(4.0, cube + lifted, 0.0),  # lift straight up
            right(4.6, MEET_POINT + aside / 2, 0.0),  # carry towards the meeting point
            right(5.0, MEET_POINT, 0.0),  # hold it there
            right(5.8, MEET_POINT, 0.0),  # ... while the left closes
            right(6.4, MEET_POINT, 1.0),  # let go
            right(7.2, MEET_POINT + aside, 1.0),  # retreat
            right(8.0, MEET_POINT + aside, 1.0),
        ],
        "left": [
            left(2.0, MEET_POINT - aside, 1.0),  # wait beside the meeting point, open
            left(4.6, MEET_POINT - aside, 1.0),
            left(5.2, MEET_POINT, 1.0),  # reach around the cube
            left(5.8, MEET_POINT, 0.0),  # close
            left(6.4, MEET_POINT, 0.0),  # hold while the right lets go
            left(7.2, MEET_POINT - aside, 0.0),  # take the cube away
            left(8.0, MEET_POINT - aside, 0.0),
        ],
    }


# DART-style perturbation of the executed arm targets: where it is on (seconds from the start;
# the grasp (descend to close, 2.6-3.4 s) and the handover (4.6-6.4 s) need about 0.01 rad, so
# the noise fades out before them and back in after), how fast it fades, and how slowly it drifts.
PERTURBED_WINDOWS = ((0.0, 2.2), (6.8, math.inf))
PERTURBATION_FADE = 0.3  # s, linear fade at each window's ends
PERTURBATION_CORRELATION = 0.5  # s, time constant of the drifting (Ornstein-Uhlenbeck) noise


def perturbation_gain(times: np.ndarray) -> np.ndarray:
    """1 inside the perturbed windows, 0 outside, with linear fades ending at the window edges."""
    gain = np.zeros_like(times, dtype=float)
    for start, end in PERTURBED_WINDOWS:
        # The script starts perturbed: no fade-in at t = 0.
        rise = np.ones_like(gain) if start <= 0.0 else np.clip((times - start) / PERTURBATION_FADE, 0.0, 1.0)
        gain = np.maximum(gain, np.minimum(rise, np.clip((end - times) / PERTURBATION_FADE, 0, 1)))
    return gain


def drifting_noise(steps: int, joints: int, sigma: float, dt: float, rng: np.random.Generator) -> np.ndarray:
    """[steps, joints] Ornstein-Uhlenbeck noise with standard deviation ``sigma`` (rad) and
    correlation time ``PERTURBATION_CORRELATION``: a slow drift, as a real arm's tracking error."""
    decay = math.exp(-dt / PERTURBATION_CORRELATION)
    kick = sigma * math.sqrt(1.0 - decay * decay)
    noise = np.empty((steps, joints))
    value = rng.normal(0.0, sigma, joints)
    for step in range(steps):
        noise[step] = value
        value = decay * value + kick * rng.normal(size=joints)
    return noise


class TransferCubeScript:
    """Joint targets, one per control step, that hand the cube from the right arm to the left.

    ``start(state)`` after ``sim.reset(episode)`` plans the whole motion from the episode's cube
    pose; ``targets(state)`` then gives the clean targets for the next ``sim.step`` (the label a
    demonstration records) and ``executed(state)`` what to step with: the same, plus, with
    ``perturbation`` > 0, drifting noise of that size (rad) on the arm joints outside the grasp
    and the handover (DART: the recorded labels show how to recover from states off the clean
    path). The noise is seeded by the episode, so an episode's demonstration is reproducible.
    """

    def __init__(self, sim: AlohaSim, perturbation: float = 0.0) -> None:
        if not perturbation >= 0.0:
            raise SimError(f"perturbation must be >= 0 rad, got {perturbation}")
        self.perturbation = perturbation
        self._noise: np.ndarray | None = None
        if sim.task_name != "transfer_cube":
            raise SimError(f"the cube-transfer script needs the transfer_cube task, not {sim.task_name!r}")
        self._sim = sim
        self._ik = {arm: ArmIK(sim, arm) for arm in ARMS}
        model = sim.physics.model
        self._cube_half_size = float(model.geom_size[model.name2id("red_box", "geom")][2])
        # Closed is the finger's lower limit: the actuator squeezes whatever is in between.
        self._closed, self._open = sim.joint_limits[self._ik[ARMS[0]].finger_slot]
        self._plan: np.ndarray | None = None

    @property
    def duration(self) -> float:
        """Seconds from ``start`` until the script has nothing more to do."""
        return (len(self._checked_plan()) - 1) * self._sim.control_dt

    def start(self, state: SimState) -> None:
        """Plan from ``state`` (just after a reset) and the cube the episode placed.

        The cube is dropped from its sampled height at reset; the plan grasps it where it will
        rest, on the table below its sampled position.
        """
        cube = self._sim.box_pose[:3].copy()
        cube[2] = self._cube_half_size
        waypoints = transfer_waypoints(cube)
        dt = self._sim.control_dt
        end = max(points[-1].time for points in waypoints.values())
        sample_times = np.arange(round(end / dt) + 1) * dt
        plan = np.tile(state.positions, (len(sample_times), 1))
        for arm, points in waypoints.items():
            ik = self._ik[arm]
            columns = ik.slots + [ik.finger_slot]
            knots = np.empty((len(points) + 1, len(columns)))
            knots[0] = state.positions[columns]
            knots[1:, :-1] = self._solve(arm, points, knots[0, :-1])
            knots[1:, -1] = [(1.0 - p.opening) * self._closed + p.opening * self._open for p in points]
            times = np.array([0.0] + [point.time for point in points])
            plan[:, columns] = _ramped_moves(times, knots, sample_times)
        self._plan = plan
        self._noise = None
        if self.perturbation > 0.0:
            arm_slots = [slot for arm in ARMS for slot in self._ik[arm].slots]
            noise = np.zeros_like(plan)
            rng = np.random.default_rng([self._sim.episode, 0xDA27])
            noise[:, arm_slots] = (
                drifting_noise(len(plan), len(arm_slots), self.perturbation, dt, rng)
                * perturbation_gain(sample_times)[:, None]
            )
            self._noise = noise

    def executed(self, state: SimState) -> np.ndarray:
        """What to step with after ``state``: the clean target plus the perturbation, within the
        joint limits."""
        target = self.targets(state)
        if self._noise is None:
            return target
        step = min(round(state.time / self._sim.control_dt) + 1, len(self._noise) - 1)
        limits = self._sim.joint_limits
        return np.clip(target + self._noise[step], limits[:, 0], limits[:, 1])

    def targets(self, state: SimState) -> np.ndarray:
        """Joint targets (``sim.joint_names`` order) for the step that follows ``state``; the
        last pose once the script is over."""
        plan = self._checked_plan()
        step = round(state.time / self._sim.control_dt) + 1
        return plan[min(step, len(plan) - 1)].copy()

    def _solve(self, arm: str, points: list[Waypoint], q: np.ndarray) -> np.ndarray:
        """Arm joints for each waypoint, each solved from the previous one (the first from
        ``q``) so the arm moves between neighbouring configurations."""
        ik = self._ik[arm]
        solutions = []
        for point in points:
            result = ik.solve(Pose(point.position, point.rotation), q)
            if not result.converged:
                raise SimError(
                    f"{arm} arm cannot reach {np.round(point.position, 3).tolist()} at "
                    f"t={point.time} s (IK error {result.position_error:.4f} m, "
                    f"{result.rotation_error:.4f} rad)"
                )
            q = result.q
            solutions.append(q)
        return np.array(solutions)

    def _checked_plan(self) -> np.ndarray:
        if self._plan is None:
            raise SimError("call start(state) after sim.reset(episode) first")
        return self._plan


# Each move between waypoints speeds up and slows down over this long (s; at most a third of the
# move) and keeps a constant speed between.  Not minimum-jerk rest to rest: a move that starts that
# slowly covers under 0.2 % of its way in its first 0.1 s, so a policy trained on it sees the same
# image for the first chunks of every move and asks again for the same slow start (it stalled in
# closed loop, packages/aloha_sim/README.md).  Here the first 0.2 s of a 1.8 s move covers 7.6 %.
RAMP_SECONDS = 0.15


def _ramped_moves(times: np.ndarray, knots: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """``knots`` (one row per time) at the ``samples`` times: a constant-speed move between
    neighbours with ``RAMP_SECONDS`` ramps at both ends (holding the last knot after its time)."""
    segment = np.clip(np.searchsorted(times, samples, side="right") - 1, 0, len(times) - 2)
    duration = np.diff(times)[segment]
    tau = np.clip(samples - times[segment], 0.0, duration)
    ramp = np.minimum(RAMP_SECONDS, duration / 3.0)
    speed = 1.0 / (duration - ramp)  # of the move's fraction, per second
    progress = np.where(
        tau < ramp,
        0.5 * speed * tau**2 / ramp,
        np.where(
            tau <= duration - ramp,
            speed * (tau - ramp / 2.0),
            1.0 - 0.5 * speed * (duration - tau) ** 2 / ramp,
        ),
    )[:, None]
    return knots[segment] + progress * (knots[segment + 1] - knots[segment])


def run_episode(
    sim: AlohaSim,
    episode: int,
    stop_on_success: bool = True,
    on_step: Callable[[SimState, np.ndarray], None] | None = None,
    perturbation: float = 0.0,
) -> tuple[bool, int]:
    """Run the script on ``episode``: (whether the simulator signalled success, steps taken).

    Stops at the first success, as gym-aloha ends its episodes, unless ``stop_on_success`` is
    false (a demonstration then includes the right arm letting go and the retreat).
    ``on_step(state, targets)`` sees every observed state and the clean targets then commanded,
    e.g. to record a demonstration; ``perturbation`` (rad) perturbs what is executed.
    """
    script = TransferCubeScript(sim, perturbation)
    state = sim.reset(episode)
    script.start(state)
    steps = round(script.duration / sim.control_dt)
    succeeded = False
    for step in range(steps):
        if on_step is not None:
            on_step(state, script.targets(state))
        state = sim.step(script.executed(state))
        succeeded = succeeded or state.success
        if succeeded and stop_on_success:
            return True, step + 1
    return succeeded, steps


def _arm_slots(sim: AlohaSim, arm: str) -> tuple[list[int], int]:
    """(slots of the arm's revolute joints, slot of its finger) in ``sim.joint_names``."""
    import mujoco

    model = sim.physics.model.ptr
    slots = [i for i, name in enumerate(sim.joint_names) if name.startswith(f"{arm}_")]
    fingers = [
        i for i in slots if model.joint(MJCF_JOINTS[sim.joint_names[i]]).type == mujoco.mjtJoint.mjJNT_SLIDE
    ]
    if len(fingers) != 1 or len(slots) != 7:
        raise SimError(
            f"expected six {arm} arm joints and one finger, got {[sim.joint_names[i] for i in slots]}"
        )
    return [i for i in slots if i != fingers[0]], fingers[0]


def main(argv: list[str] | None = None) -> int:
    """Measure the script's success rate over consecutive episodes (physics only, no camera)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=20, help="how many episodes")
    parser.add_argument("--first", type=int, default=0, help="index of the first episode")
    parser.add_argument(
        "--perturbation",
        type=float,
        default=0.0,
        help="DART-style drifting noise on the executed arm targets (rad)",
    )
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.first < 0 or args.perturbation < 0:
        parser.error("--episodes must be >= 1, --first and --perturbation >= 0")
    sim = AlohaSim(task="transfer_cube")
    import mujoco  # after the simulator chose the GL backend

    successes = 0
    try:
        for episode in range(args.first, args.first + args.episodes):
            try:
                success, steps = run_episode(sim, episode, perturbation=args.perturbation)
            except SimError as error:  # no plan for this cube: the script failed it
                print(f"episode {episode:4d}: failure: {error}", flush=True)
                continue
            successes += success
            print(
                f"episode {episode:4d}: {'success' if success else 'failure'} after {steps} steps", flush=True
            )
    finally:
        sim.close()
    print(
        f"success rate: {successes}/{args.episodes} = {100.0 * successes / args.episodes:.1f} %"
        f" (MuJoCo {mujoco.__version__})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
