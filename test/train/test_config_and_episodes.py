"""Config checking, bad-episode handling and the alignment convention on a synthetic episode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from train_fixtures import HORIZON, TASK, base_config, chunks_from_steps, make_episode

from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.train.config import TrainConfigError, config_from_dict, load_config
from lightwam_ros.train.episodes import EpisodeError, load_episodes
from lightwam_ros.train.loop import Trainer


def test_unknown_config_key_fails_naming_it(workspace, tmp_path):
    config = base_config(workspace)
    config["optim"]["lrr"] = 1e-3
    with pytest.raises(TrainConfigError, match=r"optim\.lrr"):
        config_from_dict(config)
    path = tmp_path / "c.yaml"
    path.write_text("optim: {lr: 1.0e-3}\n")
    assert load_config(path, ["optim.steps=7"]).optim.steps == 7
    with pytest.raises(TrainConfigError, match=r"run\.seeed"):
        load_config(path, ["run.seeed=3"])
    with pytest.raises(TrainConfigError, match="unknown section"):
        load_config(path, ["trainer.steps=3"])


def test_executed_steps_beyond_supervised_steps_are_refused(workspace):
    # test_arm executes 8 steps: supervising only 4 would train a policy on half of what it runs.
    config = config_from_dict(base_config(workspace, objective={"supervised_steps": 4}))
    with pytest.raises(TrainConfigError, match="executes 8"):
        Trainer(config)


def _write(path: Path, **changes) -> Path:
    make_episode(path, seed=5)
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as reader:
        arrays = {k: reader.get_tensor(k) for k in reader.keys()}
        meta = reader.metadata()
    meta.update(changes.pop("meta", {}))
    arrays.update(changes)
    save_file(arrays, str(path), metadata=meta)
    return path


def test_bad_episodes_are_skipped_with_their_reason(workspace, tmp_path):
    spec = load_embodiment(workspace["embodiment"])
    folder = tmp_path / "bad"
    folder.mkdir()
    good = make_episode(folder / "episode_0000.safetensors", seed=1)
    state = np.zeros((24, 3), np.float32)
    state[3, 1] = np.nan
    _write(folder / "episode_0001.safetensors", state=state)
    _write(folder / "episode_0002.safetensors", state=np.zeros((24, 5), np.float32))
    _write(folder / "episode_0003.safetensors", meta={"embodiment": "aloha_sim"})
    empty = {
        "images.front": np.zeros((0, 24, 24, 3), np.uint8),
        "state": np.zeros((0, 3), np.float32),
        "action_chunks": np.zeros((0, HORIZON, 3), np.float32),
        "action_mask": np.zeros((0, HORIZON), bool),
    }
    _write(folder / "episode_0004.safetensors", **empty)
    episodes, skipped = load_episodes([folder], spec, [TASK])
    assert [e.path for e in episodes] == [good]
    reasons = {s.path.name: s.reason for s in skipped}
    assert "non-finite state at steps [3]" in reasons["episode_0001.safetensors"]
    assert "wrong dimensions" in reasons["episode_0002.safetensors"]
    assert "aloha_sim" in reasons["episode_0003.safetensors"]
    assert reasons["episode_0004.safetensors"] == "no frames"
    with pytest.raises(EpisodeError, match=r"episode_0001.*non-finite"):
        load_episodes([folder], spec, [TASK], strict=True)


def test_alignment_convention_on_a_synthetic_episode(workspace, tmp_path):
    """Sample t: canvas of frame t, state at t, actions of steps t..t+H-1, clip t, t+4, ...."""
    frames = 20
    path = tmp_path / "episode_0000.safetensors"
    make_episode(path, seed=0, frames=frames)
    images = np.zeros((frames, 24, 24, 3), np.uint8)
    images[:] = (np.arange(frames) * 12)[:, None, None, None]  # frame t is grey level 12 t
    state = np.stack([np.arange(frames)] * 3, axis=1).astype(np.float32)  # state at t is t
    actions = 100.0 + state  # step t commands 100 + t
    chunks, mask = chunks_from_steps(actions, HORIZON)
    _write(
        path,
        **{
            "images.front": images,
            "state": state,
            "action_chunks": chunks.astype(np.float32),
            "action_mask": mask,
        },
    )
    config = config_from_dict(base_config(workspace, data={"episodes": [str(path)]}))
    trainer = Trainer(config)
    samples = trainer.train_set
    assert len(samples) == frames  # every step starts a sample
    # Clip of 5 frames every 4 steps: t, t+4, ..., t+16, clamped to the last frame (19); latent
    # frames {0} and {1..4}, the second masked as soon as one of its frames is past the end.
    for t, indices, real_latents in (
        (3, [3, 7, 11, 15, 19], [True, True]),
        (5, [5, 9, 13, 17, 19], [True, False]),
    ):
        batch = samples.batch([t])
        grey = (batch.clips[0, 0, :, 0, 0].numpy() + 1) * 127.5
        np.testing.assert_allclose(grey, 12 * np.array(indices), atol=0.01)
        assert batch.frame_mask[0].tolist() == real_latents
    t = 9
    batch = samples.batch([t])
    norm = trainer.normalizer
    np.testing.assert_allclose(norm._state.denormalize(batch.proprio.numpy())[0], [t] * 3, atol=1e-4)
    expected = 100.0 + np.arange(t, t + HORIZON)
    real = ~batch.pad[0].numpy()
    assert real.tolist() == [t + i < frames for i in range(HORIZON)]
    got = norm.denormalize_action(batch.actions.numpy())[0]
    np.testing.assert_allclose(got[real, 0], expected[real], atol=1e-4)


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_shipped_configs_parse(name):
    path = Path(__file__).resolve().parents[2] / "config" / "train" / f"{name}.yaml"
    assert load_config(path).model.preset == name
