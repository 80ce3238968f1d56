"""Commanded action targets follow the alignment convention (known answers)."""

from __future__ import annotations

import numpy as np

from lightwam_ros.train.targets import Command, commanded_chunks

DT = 0.1


def test_a_scripts_commands_give_the_chunk_of_the_steps_ahead():
    # A script at step k (stamp k dt) commands 100 + k, due at the end of the step.
    commands = [Command(k * DT, np.array([(k + 1) * DT]), np.array([[100.0 + k, -k]])) for k in range(10)]
    stamps = np.arange(10) * DT
    chunks, mask = commanded_chunks(commands, stamps, DT, horizon=4, end=stamps[-1])
    for t in range(10):
        for i in range(4):
            assert mask[t, i] == (t + i <= 9)
            if mask[t, i]:
                np.testing.assert_allclose(chunks[t, i], [100 + t + i, -(t + i)], atol=1e-4)


def test_an_executor_trajectory_is_read_at_the_end_of_each_step():
    # One trajectory issued at 0.05 s: 0 at 0.1 s rising to 3 at 0.4 s; none before 0.05 s.
    trajectory = Command(0.05, np.array([0.1, 0.4]), np.array([[0.0], [3.0]]))
    chunks, mask = commanded_chunks([trajectory], np.array([0.0, 0.1]), DT, horizon=3, end=0.3)
    assert mask.tolist() == [[False, True, True], [True, True, True]]
    # The step starting at 0.1 s ends at 0.2 s: 1.0; at 0.3 s: 2.0; at 0.4 s: 3.0.
    np.testing.assert_allclose(chunks[0, 1:, 0], [1.0, 2.0], atol=1e-5)
    np.testing.assert_allclose(chunks[1, :, 0], [1.0, 2.0, 3.0], atol=1e-5)
