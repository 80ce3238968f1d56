"""Which simulated tasks exist, named as ``SIMULATOR:TASK`` on command lines and in parameters
(``aloha:transfer_cube``, ``libero:libero_spatial/0``), and how to build one.  Naming a task and
reading its instruction are cheap; building it imports the simulator."""

from __future__ import annotations

from dataclasses import dataclass

from lightwam_ros.policy.embodiment import camera_sizes, load_embodiment
from lightwam_ros.sim.base import SimError, Simulator

# simulator -> (embodiment, default task); camera sizes are the embodiment's.
SIMULATORS = {"aloha": ("aloha_sim", "transfer_cube"), "libero": ("libero_franka", "libero_spatial/0")}


@dataclass(frozen=True)
class SimTask:
    simulator: str  # a key of SIMULATORS
    task: str  # aloha: a key of sim.aloha.TASKS; libero: "<suite>/<task index>"

    @classmethod
    def parse(cls, text: str) -> SimTask:
        """``SIMULATOR[:TASK]``; SimError with the choices when it names nothing known."""
        simulator, _, task = text.strip().partition(":")
        if simulator not in SIMULATORS:
            raise SimError(
                f"unknown simulator {simulator!r} in {text!r}; simulators: "
                f"{sorted(SIMULATORS)} (e.g. aloha:transfer_cube, "
                f"libero:libero_spatial/0)"
            )
        parsed = cls(simulator, task.strip() or SIMULATORS[simulator][1])
        if simulator == "aloha":
            from lightwam_ros.sim.aloha import TASKS

            if parsed.task not in TASKS:
                raise SimError(f"unknown ALOHA task {parsed.task!r}; tasks: {list(TASKS)}")
        if simulator == "libero":
            parsed.libero_task()
        return parsed

    def __str__(self) -> str:
        return f"{self.simulator}:{self.task}"

    @property
    def embodiment(self) -> str:
        return SIMULATORS[self.simulator][0]

    @property
    def default_camera_size(self) -> tuple[int, int]:
        """The embodiment's camera size (a simulator renders every camera at one size)."""
        sizes = set(camera_sizes(load_embodiment(self.embodiment)).values())
        if len(sizes) != 1:
            raise SimError(
                f"embodiment {self.embodiment} has cameras of sizes {sorted(sizes)}: "
                f"simulator {self.simulator} renders every camera at one size"
            )
        return sizes.pop()

    def libero_task(self) -> tuple[str, int]:
        """(suite, task index) of a LIBERO task name."""
        suite, _, index = self.task.partition("/")
        if not (suite and index.isdigit()):
            raise SimError(f"a LIBERO task is <suite>/<task index>, e.g. libero_spatial/0; got {self.task!r}")
        return suite, int(index)

    def instruction(self) -> str:
        """The task's language instruction, without building the simulator."""
        if self.simulator == "aloha":
            from lightwam_ros.sim.aloha import TASKS

            return TASKS[self.task].instruction
        from lightwam_ros.sim.libero import instruction_for

        return instruction_for(*self.libero_task())

    def build(self, camera_size: tuple[int, int] | None = None) -> Simulator:
        """The simulator of this task, its cameras at ``camera_size`` (default: the
        embodiment's)."""
        first, second = camera_size or self.default_camera_size
        size = (first, second)
        if self.simulator == "aloha":
            from lightwam_ros.sim.aloha import AlohaSim

            return AlohaSim(task=self.task, camera_size=size)
        from lightwam_ros.sim.libero import LiberoSim

        suite, index = self.libero_task()
        return LiberoSim(suite=suite, task_id=index, camera_size=size)
