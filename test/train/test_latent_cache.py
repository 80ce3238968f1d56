"""The latent cache: built once, hit on the next run (no VAE), rebuilt when its key changes."""

from __future__ import annotations

import pytest
from train_fixtures import base_config

from lightwam_ros.train.config import TrainConfigError, config_from_dict
from lightwam_ros.train.loop import Trainer


def _config(ws, **data):
    return config_from_dict(
        base_config(
            ws,
            data={"cache_dir": str(ws["root"] / "cache"), **data},
            model={"trainable": "lora"},
            optim={"steps": 2},
        )
    )


def test_cache_is_built_once_and_then_serves_without_the_vae(workspace):
    first = Trainer(_config(workspace))
    report = first.cache_report
    assert report.built >= 1 and report.hits == 0 and first.vae_calls == report.vae_calls > 0
    loss_cached = first.train_step()["loss"]
    assert first.vae_calls == report.vae_calls  # the step read the cache

    second = Trainer(_config(workspace))
    assert (second.cache_report.hits, second.cache_report.built) == (report.built, 0)
    second.train_step()
    assert second.vae_calls == 0
    uncached = Trainer(
        config_from_dict(base_config(workspace, model={"trainable": "lora"}, optim={"steps": 2}))
    )
    assert uncached.train_step()["loss"] == pytest.approx(loss_cached, rel=1e-4)

    changed = Trainer(_config(workspace, frame_stride=2))
    assert changed.cache_report.built == report.built and changed.cache_report.hits == 0
    assert changed.cache_report.folder != report.folder


def test_cache_refuses_a_training_encoder(workspace):
    config = config_from_dict(
        base_config(workspace, data={"cache_dir": str(workspace["root"])}, model={"trainable": "full"})
    )
    with pytest.raises(TrainConfigError, match="frozen encoder"):
        Trainer(config)
