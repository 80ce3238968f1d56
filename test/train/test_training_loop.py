"""The trainer on generated episodes with the tiny preset: it learns, it resumes exactly, and
its export runs in the PolicyRunner with the trainer's own predictions."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import yaml
from train_fixtures import TASK, base_config, make_episode

from lightwam_ros.model.checkpoint import load_checkpoint
from lightwam_ros.model.config import PRESETS
from lightwam_ros.policy.canvas import build_canvas
from lightwam_ros.policy.runner import PolicyOutputError, PolicyRunner
from lightwam_ros.train.cli import main
from lightwam_ros.train.config import TrainConfigError, config_from_dict
from lightwam_ros.train.loop import Trainer
from lightwam_ros.train.objective import sample_generators
from lightwam_ros.train.progress import tensorboard_available
from lightwam_ros.train.run_state import checkpoint_dirs


def _set_loss(trainer: Trainer) -> float:
    """Action loss over the whole training set (no noise involved)."""
    batch = trainer.train_set.batch(range(len(trainer.train_set)), "first")
    trainer.model.eval()
    with torch.no_grad():
        return trainer.objective(batch, None, []).action.item()


def test_loss_falls_tenfold_on_a_memorisation_set(workspace, tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    make_episode(folder / "episode_0000.safetensors", seed=0, frames=8)
    config = config_from_dict(
        base_config(
            workspace,
            data={"episodes": [str(folder)]},
            model={"trainable": "lora"},
            objective={"video_weight": 0.0},
            optim={"steps": 80, "lr": 3e-3, "batch_size": 8, "warmup_steps": 0, "min_lr_ratio": 1.0},
        )
    )
    trainer = Trainer(config)
    before = _set_loss(trainer)
    for _ in range(config.optim.steps):
        trainer.train_step()
    after = _set_loss(trainer)
    assert after < before / 10, (before, after)


def _logged_losses(run_dir) -> dict[int, tuple[float, float, float]]:
    with open(run_dir / "train_log.csv", newline="") as handle:
        return {
            int(r["step"]): (float(r["loss"]), float(r["action_loss"]), float(r["video_loss"]))
            for r in csv.DictReader(handle)
        }


def test_resume_from_a_mid_run_checkpoint_repeats_the_uninterrupted_run(workspace, tmp_path):
    def config(out):
        return config_from_dict(
            base_config(
                workspace,
                model={"trainable": "lora"},
                optim={"steps": 4, "ema_decay": 0.9},
                run={"out_dir": str(out), "checkpoint_every": 2, "keep_last": 1},
            )
        )

    Trainer(config(tmp_path / "straight")).run()
    straight = _logged_losses(tmp_path / "straight")

    interrupted = Trainer(config(tmp_path / "resumed"))
    interrupted.train_step(), interrupted.train_step()
    interrupted.save()
    del interrupted
    resumed = Trainer(config(tmp_path / "resumed"))
    assert resumed.step == 2
    resumed.run()
    again = _logged_losses(tmp_path / "resumed")
    assert sorted(again) == [3, 4] and straight[1] != straight[2]
    for step in (3, 4):
        np.testing.assert_allclose(again[step], straight[step], rtol=0, atol=1e-6)
    assert [d.name for d in checkpoint_dirs(tmp_path / "resumed")] == ["step_0000004"]
    exported = [
        load_checkpoint(tmp_path / run / "export" / "model.safetensors").model.state_dict()
        for run in ("straight", "resumed")
    ]
    for key, value in exported[0].items():
        torch.testing.assert_close(exported[1][key], value, rtol=0, atol=1e-6)


def test_bfloat16_export_stores_the_fp32_weights_rounded_in_half_the_bytes(workspace, tmp_path):
    trainer = Trainer(config_from_dict(base_config(workspace, optim={"steps": 1})))
    trainer.train_step()
    full = trainer.export(tmp_path / "fp32")
    trainer.cfg = config_from_dict(base_config(workspace, run={"export_dtype": "bfloat16"}))
    half = trainer.export(tmp_path / "bf16")
    assert half.stat().st_size < 0.6 * full.stat().st_size
    weights = load_checkpoint(full).model.state_dict()
    for key, value in load_checkpoint(half).model.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value.float(), weights[key].bfloat16().float(), rtol=0, atol=0)


def test_export_runs_in_the_policy_runner_with_the_trainers_predictions(workspace):
    config = config_from_dict(
        base_config(
            workspace,
            data={"val_episodes": [str(workspace["held_out"])]},
            model={"trainable": "full"},
            objective={"video_weight": 0.0},
            optim={"steps": 2},
            run={"tensorboard": True},
        )
    )
    trainer = Trainer(config)
    exported = trainer.run()
    assert (exported.parent / "dataset_stats.json").is_file()
    provenance = json.loads((exported.parent / "training.json").read_text())
    assert provenance["steps"] == 2 and provenance["config"]["optim"]["steps"] == 2
    assert [e["file"] for e in provenance["episodes"]] == [e.path.name for e in trainer.train_set.episodes]
    run = workspace["root"] / "run"
    with open(run / "train_log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["step"] for r in rows] == ["1", "2"] and float(rows[-1]["val_action_mae"]) > 0
    assert (run / "loss.png").is_file() and (run / "validation_step0000002.png").is_file()
    if tensorboard_available():
        assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    runner = PolicyRunner.from_files(
        exported,
        exported.parent / "instructions.safetensors",
        embodiment=workspace["embodiment"],
        device="cpu",
        warmup=0,
    )
    episode = trainer.train_set.episodes[0]
    rng = np.random.default_rng(0)
    for _ in range(3):
        image = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
        state = episode.state[rng.integers(episode.num_frames)]
        try:
            output = runner.predict({"front": image}, state, TASK)
        except PolicyOutputError as error:  # validation may refuse a barely trained chunk
            output = error.output
        expected = trainer.predict(build_canvas({"front": image}, runner.spec), state, TASK)
        np.testing.assert_allclose(output.normalized, expected, rtol=0, atol=1e-5)


def test_cli_trains_and_exports(workspace, tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text(
        yaml.safe_dump(base_config(workspace, model={"trainable": "lora"}, objective={"video_weight": 0.0}))
    )
    assert main(["--config", str(config), "optim.steps=1", "run.threads=1"]) == 0
    assert (workspace["root"] / "run" / "export" / "model.safetensors").is_file()
    assert main(["--config", str(config), "optim.stepz=1"]) == 2
    assert "optim.stepz" in capsys.readouterr().err


def test_a_frozen_random_encoder_is_standardised_on_its_data(workspace):
    config = config_from_dict(
        base_config(
            workspace, model={"trainable": "lora", "latent_norm": "data"}, objective={"video_weight": 0.0}
        )
    )
    trainer = Trainer(config)
    batch = trainer.train_set.batch(range(0, len(trainer.train_set), 3), "first")
    with torch.no_grad():
        latents = trainer.model.vae.encode(batch.clips).transpose(0, 1).reshape(16, -1)
    assert latents.mean(dim=1).abs().max() < 0.3 and (latents.std(dim=1) - 1).abs().max() < 0.3
    assert trainer.model.cfg.vae.latents_std != PRESETS["tiny"].vae.latents_std


def test_a_training_encoder_gets_the_action_gradient_from_frame_zero_alone(workspace):
    """With the encoder training, the clip is encoded without a graph and frame 0 again with
    one: the same losses as one encoding of the clip, and a gradient for the encoder."""
    trainer = Trainer(config_from_dict(base_config(workspace, run={"precision": "fp32"})))
    batch = trainer.train_set.batch([0, 5, 30])
    generators = sample_generators(0, 0, [0, 1, 2])
    split = trainer.objective(batch, None, generators)
    split.total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.model.vae.parameters())
    whole = trainer.objective(
        batch, trainer.model.vae.encode(batch.clips), sample_generators(0, 0, [0, 1, 2])
    )
    assert split.action.item() == pytest.approx(whole.action.item(), rel=1e-5)
    assert split.video.item() == pytest.approx(whole.video.item(), rel=1e-5)


@pytest.mark.parametrize(
    "precision,native,expected",
    [
        ("auto", True, torch.bfloat16),
        ("bf16", True, torch.bfloat16),
        ("fp32", True, None),
        ("auto", False, None),
    ],
)
def test_video_targets_run_in_bfloat16_only_on_a_cpu_that_has_it(
    workspace, monkeypatch, precision, native, expected
):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native)
    trainer = Trainer(config_from_dict(base_config(workspace, run={"precision": precision})))
    assert trainer.objective.target_dtype == expected


def test_bfloat16_video_targets_leave_the_action_loss_and_barely_move_the_video_loss(workspace):
    trainer = Trainer(config_from_dict(base_config(workspace, run={"precision": "fp32"})))
    batch = trainer.train_set.batch([0, 5, 30, 41])
    exact = trainer.objective(batch, None, sample_generators(0, 0, [0, 1, 2, 3]))
    trainer.objective.target_dtype = torch.bfloat16
    fast = trainer.objective(batch, None, sample_generators(0, 0, [0, 1, 2, 3]))
    assert fast.action.item() == exact.action.item()  # frame 0's encoding keeps float32
    assert fast.video.item() != exact.video.item()  # the targets did run in bfloat16
    assert fast.video.item() == pytest.approx(exact.video.item(), rel=2e-3)


def test_a_model_trained_with_absolute_positions_keeps_them_in_its_export(workspace):
    config = config_from_dict(base_config(workspace, model={"absolute_positions": True}, optim={"steps": 1}))
    trainer = Trainer(config)
    assert trainer.model.cfg.dit.absolute_positions  # the video loss (on here) runs with them too
    loaded = load_checkpoint(trainer.run()).model
    assert loaded.cfg.dit.absolute_positions
    trained = trainer.model.eval()
    latents = torch.randn(1, 16, 1, 4, 4)
    instruction = torch.randn(1, loaded.cfg.dit.text_len, loaded.cfg.dit.text_dim)
    proprio = torch.randn(1, loaded.cfg.proprio_dim)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.infer_action_from_latents(latents, instruction, proprio),
            trained.infer_action_from_latents(latents, instruction, proprio),
        )


def test_absolute_positions_are_refused_for_a_model_started_from_a_checkpoint(workspace):
    with pytest.raises(TrainConfigError, match="absolute_positions"):
        config_from_dict(
            base_config(workspace, model={"init": "package.safetensors", "absolute_positions": True})
        )
