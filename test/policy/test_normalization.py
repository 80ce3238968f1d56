"""Normaliser: min/max and z-score round trips, clamping, degenerate dimensions, validation."""

import json

import numpy as np
import pytest

from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.policy.normalization import Normalizer


def entry(low, high, mean, std):
    low, high = np.asarray(low, float), np.asarray(high, float)
    return {
        "global_min": low.tolist(),
        "global_max": high.tolist(),
        "global_mean": np.asarray(mean, float).tolist(),
        "global_std": np.asarray(std, float).tolist(),
        "global_q01": (low + 0.01 * (high - low)).tolist(),
        "global_q99": (high - 0.01 * (high - low)).tolist(),
    }


def random_stats(state_dim, action_dim, seed=0):
    rng = np.random.default_rng(seed)

    def one(dim):
        low = rng.uniform(-3, 0, dim)
        high = low + rng.uniform(0.5, 4, dim)
        return {"default": entry(low, high, (low + high) / 2, rng.uniform(0.1, 1, dim))}

    return {"state": one(state_dim), "action": one(action_dim)}


def within(stats_entry, shape, seed=1):
    low, high = np.array(stats_entry["global_min"]), np.array(stats_entry["global_max"])
    return np.random.default_rng(seed).uniform(low, high, shape + low.shape)


def test_min_max_maps_the_range_to_minus_one_one():
    stats = {
        "state": {"default": entry([0, -2], [10, 2], [5, 0], [1, 1])},
        "action": {"default": entry([-1, 0, 4], [1, 0.5, 8], [0, 0, 0], [1, 1, 1])},
    }
    norm = Normalizer.from_stats(stats, "min_max")
    np.testing.assert_allclose(
        norm.normalize_state([[0, -2], [10, 2], [5, 0], [7.5, 1]]),
        [[-1, -1], [1, 1], [0, 0], [0.5, 0.5]],
        atol=1e-6,
    )
    np.testing.assert_allclose(norm.denormalize_action([-1, 1, 0]), [-1, 0.5, 6])


@pytest.mark.parametrize("mode", ["min_max", "z_score"])
def test_round_trip_over_batched_shapes(mode):
    stats = random_stats(8, 7)
    norm = Normalizer.from_stats(stats, mode)
    actions = within(stats["action"]["default"], (2, 32))
    normalised = norm.normalize_action(actions)
    assert normalised.shape == (2, 32, 7) and normalised.dtype == np.float32
    restored = norm.denormalize_action(normalised)
    assert restored.dtype == np.float64
    np.testing.assert_allclose(restored, actions, atol=1e-5)
    states = within(stats["state"]["default"], (5,))
    assert norm.normalize_state(states).shape == (5, 8)


def test_z_score_uses_mean_and_std_with_epsilon():
    stats = {
        "state": {"default": entry([-9, -9], [9, 9], [1, -2], [2, 0.5])},
        "action": {"default": entry([-9], [9], [3], [4])},
    }
    norm = Normalizer.from_stats(stats, "z_score")
    np.testing.assert_allclose(norm.normalize_state([1, -2]), [0, 0], atol=1e-7)
    np.testing.assert_allclose(norm.normalize_state([3, -1.5]), [2 / (2 + 1e-8), 0.5 / (0.5 + 1e-8)])
    np.testing.assert_allclose(norm.denormalize_action([1.0]), [3 + 4 + 1e-8])


@pytest.mark.parametrize("mode", ["min_max", "z_score"])
def test_normalised_values_are_clamped(mode):
    stats = {
        "state": {"default": entry([0], [1], [0.5], [0.1])},
        "action": {"default": entry([0], [1], [0.5], [0.1])},
    }
    norm = Normalizer.from_stats(stats, mode, clamp=5.0)
    np.testing.assert_array_equal(norm.normalize_state([[1e6], [-1e6]]), [[5.0], [-5.0]])
    narrow = Normalizer.from_stats(stats, mode, clamp=2.0)
    np.testing.assert_array_equal(narrow.normalize_action([[1e6], [-1e6]]), [[2.0], [-2.0]])


def test_min_max_degenerate_dimension_keeps_its_offset_from_min():
    """The authors' rule for a range below 1e-4: forward x - min (then clamped), inverse y + min."""
    stats = {
        "state": {"default": entry([0, 0.25], [1, 0.25 + 5e-5], [0, 0], [1, 1])},
        "action": {"default": entry([0, 0.25], [1, 0.25 + 5e-5], [0, 0], [1, 1])},
    }
    norm = Normalizer.from_stats(stats, "min_max")
    np.testing.assert_allclose(
        norm.normalize_state([[0.5, 0.25], [0.5, 0.75], [0.5, 99.0]]), [[0, 0], [0, 0.5], [0, 5.0]], atol=1e-7
    )
    restored = norm.denormalize_action([[0.0, 0.0], [1.0, 3.0]])
    np.testing.assert_allclose(restored[:, 1], [0.25, 3.25])
    np.testing.assert_allclose(norm.denormalize_action(norm.normalize_action([0.5, 0.3]))[1], 0.3)


def test_z_score_zero_std_stays_finite():
    stats = {
        "state": {"default": entry([0], [1], [0.3], [0.0])},
        "action": {"default": entry([0], [1], [0.3], [0.0])},
    }
    norm = Normalizer.from_stats(stats, "z_score")
    assert norm.normalize_state([0.3])[0] == 0.0
    assert norm.normalize_state([0.4])[0] == 5.0
    np.testing.assert_allclose(norm.denormalize_action([2.0]), [0.3], atol=1e-7)


def test_only_the_keys_of_the_mode_are_required():
    stats = random_stats(3, 2)
    for section in ("state", "action"):
        del stats[section]["default"]["global_mean"]
    Normalizer.from_stats(stats, "min_max")
    with pytest.raises(ValueError, match=r"state\.default: missing 'global_mean'"):
        Normalizer.from_stats(stats, "z_score")


def _broken(mutate):
    stats = random_stats(4, 3)
    mutate(stats)
    return stats


@pytest.mark.parametrize(
    "mutate, kwargs, message",
    [
        (lambda s: s.pop("action"), {}, "missing section 'action'"),
        (lambda s: s["state"].pop("default"), {}, "missing state.default"),
        (
            lambda s: s["action"]["default"].update(global_max=[1, 2]),
            {},
            "global_min has 3 entries but global_max 2",
        ),
        (lambda s: s["state"]["default"]["global_min"].__setitem__(1, float("nan")), {}, "non-finite"),
        (lambda s: s["state"]["default"].update(global_min=[9, 9, 9, 9]), {}, "global_max below global_min"),
        (lambda s: s["action"]["default"].update(global_min="abc"), {}, "not a list of numbers"),
        (lambda s: None, {"state_dim": 8}, "state.default: stats have 4 dimensions, the embodiment 8"),
        (lambda s: None, {"action_dim": 7}, "action.default: stats have 3 dimensions, the embodiment 7"),
    ],
)
def test_bad_stats_are_rejected(mutate, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Normalizer.from_stats(_broken(mutate), "min_max", **kwargs)


def test_negative_std_mode_and_clamp_are_validated():
    stats = random_stats(2, 2)
    stats["state"]["default"]["global_std"] = [1.0, -0.1]
    with pytest.raises(ValueError, match="negative global_std"):
        Normalizer.from_stats(stats, "z_score")
    with pytest.raises(ValueError, match="mode 'quantile'"):
        Normalizer.from_stats(random_stats(2, 2), "quantile")
    with pytest.raises(ValueError, match="clamp"):
        Normalizer.from_stats(random_stats(2, 2), "min_max", clamp=0.0)


def test_inputs_are_checked():
    norm = Normalizer.from_stats(random_stats(4, 3), "min_max")
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\]"):
        norm.normalize_state(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"\[\.\.\., 3\]"):
        norm.denormalize_action(np.float64(1.0))
    with pytest.raises(ValueError, match=r"state: non-finite values in dimension\(s\) \[2\]"):
        norm.normalize_state([[0, 0, np.inf, 0]])


def test_stats_file_and_embodiment_binding(tmp_path):
    spec = load_embodiment("libero_franka")
    path = tmp_path / "dataset_stats.json"
    path.write_text(json.dumps(random_stats(spec.state_dim, spec.action_dim)))
    norm = Normalizer.for_embodiment(path, spec)
    assert (norm.mode, norm.clamp, norm.state_dim, norm.action_dim) == ("min_max", 5.0, 8, 7)
    assert Normalizer.from_stats_file(path, "z_score").mode == "z_score"
    with pytest.raises(ValueError, match="the embodiment 14"):
        Normalizer.for_embodiment(path, load_embodiment("robotwin_aloha"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON"):
        Normalizer.from_stats_file(bad, "min_max")
