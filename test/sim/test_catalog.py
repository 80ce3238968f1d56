"""The simulator catalog takes camera sizes from the embodiment, the one source of them."""

from __future__ import annotations

from lightwam_ros.policy.embodiment import camera_sizes, load_embodiment
from lightwam_ros.sim.catalog import SIMULATORS, SimTask


def test_a_simulator_renders_at_its_embodiments_camera_size():
    for simulator, (embodiment, _) in SIMULATORS.items():
        task = SimTask.parse(simulator)
        sizes = set(camera_sizes(load_embodiment(embodiment)).values())
        assert sizes == {task.default_camera_size}
    assert SimTask.parse("aloha").default_camera_size == (240, 320)


def test_the_simulated_embodiments_tasks_are_its_simulators():
    """aloha_sim.yaml lists the simulated tasks' instructions (the tiny package's tasks)."""
    from lightwam_ros.sim.aloha import TASKS

    assert load_embodiment("aloha_sim").tasks == tuple(task.instruction for task in TASKS.values())
