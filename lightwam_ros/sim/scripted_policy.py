"""The transfer-cube script as a policy: the chunks it would predict, in the embodiment's actions.

``lightwam-vision-check`` compares a model's first chunk with the script's for the same scene, and
``lightwam-lockstep-eval --scripted`` runs the script's chunks through the executor in place of the
model. The script knows where the cube is and is never wrong, so what it loses there is what the
execution path costs (chunks at the policy's rate, the executor's boundary rule, latency), apart
from anything a model learned or failed to learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from lightwam_ros.policy.chunk import Chunk, embodiment_chunk
from lightwam_ros.policy.embodiment import EmbodimentSpec
from lightwam_ros.policy.state_builder import StateBuilder
from lightwam_ros.sim.aloha import AlohaSim
from lightwam_ros.sim.aloha_scripted import TransferCubeScript
from lightwam_ros.sim.base import SimError, SimState


class ScriptedPolicy:
    """``start(state)`` after each reset plans the episode; ``actions``/``chunk`` then read the
    plan at the chunk steps that follow an observation."""

    def __init__(self, sim: AlohaSim, spec: EmbodimentSpec) -> None:
        if spec.state.dim_names != spec.action.layout.dim_names:
            # The plan holds joint positions; the state builder turns them into the state layout,
            # which is the action layout only where the two coincide (absolute joint actions).
            raise SimError(f"{spec.name}: the scripted policy needs actions laid out as the state")
        self.sim, self.spec = sim, spec
        self.script = TransferCubeScript(sim)
        self.builder = StateBuilder(spec, chains={})
        self._columns = [sim.joint_names.index(name) for name in self.builder.joint_names]

    def start(self, state: SimState) -> None:
        self.script.start(state)

    def state_vector(self, state: SimState) -> np.ndarray:
        """The robot's state in the embodiment's layout, as the policy is given it."""
        return self.builder.build(state.positions[self._columns]).vector

    def actions(self, state: SimState, steps: Sequence[int]) -> np.ndarray:
        """The script's action at each chunk step in ``steps`` after the observation ``state``
        (step i is reached (i + 1) / policy rate later, as a model's chunk step)."""
        dt = 1.0 / self.spec.policy_rate_hz
        rows = []
        for step in steps:
            # ``targets`` gives the target for the simulator step after the state it is given.
            when = replace(state, time=state.time + (step + 1) * dt - self.sim.control_dt)
            rows.append(self.state_vector(replace(when, positions=self.script.targets(when))))
        return np.stack(rows)

    def chunk(self, state: SimState, stamp_ns: int) -> Chunk:
        """The whole chunk the script would predict from ``state``, stamped ``stamp_ns``."""
        actions = self.actions(state, range(self.spec.chunk.length))
        return embodiment_chunk(self.spec, actions, stamp_ns, model_id="scripted")
