"""Canvas building: placement, rotation, crop, resize accuracy, scaling and input validation."""

import numpy as np
import pytest
import yaml

from lightwam_ros.policy.canvas import (
    build_canvas,
    canvas_to_model_input,
    center_crop_to_aspect,
    resize_bilinear,
)
from lightwam_ros.policy.embodiment import SHIPPED_DIR, load_embodiment, parse_embodiment

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]


def solid_images(spec, size=(240, 320)):
    return {cam.role: np.full(size + (3,), COLOURS[i], np.uint8) for i, cam in enumerate(spec.canvas.cameras)}


def libero_variant(**camera_overrides):
    """The LIBERO spec with the agentview camera's settings overridden."""
    data = yaml.safe_load((SHIPPED_DIR / "libero_franka.yaml").read_text())
    data["cameras"][0].update(camera_overrides)
    return parse_embodiment(data, source="libero_variant")


def torch_resize(image, height, width):
    """The authors' per-camera resize: uint8 -> float [0, 1] -> torchvision ``Resize`` (bilinear,
    antialias on), which calls ``interpolate(mode="bilinear", antialias=True)``; float64, [0, 255]."""
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].double() / 255.0
    y = torch.nn.functional.interpolate(
        x, size=(height, width), mode="bilinear", align_corners=False, antialias=True
    )
    return y[0].permute(1, 2, 0).numpy() * 255.0


def torch_canvas(images, spec):
    """The model input the authors' preprocessing gives: float resize per camera, no uint8 step."""
    canvas = np.zeros((spec.canvas_height, spec.canvas_width, 3))
    for cam in spec.canvas.cameras:
        image = np.rot90(images[cam.role], k=cam.rotation_deg // 90)
        canvas[cam.top : cam.top + cam.height, cam.left : cam.left + cam.width] = torch_resize(
            image, cam.height, cam.width
        )
    return canvas.transpose(2, 0, 1) / 127.5 - 1.0


def smooth_image(height, width, seed):
    """Low-frequency colour gradients and blobs, as a camera sees a scene."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    channels = [
        np.sin(rng.uniform(2, 9) * x + rng.uniform(0, 6)) * np.cos(rng.uniform(2, 9) * y) for _ in range(3)
    ]
    return np.clip(127.5 + 120 * np.stack(channels, -1), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", ["libero_franka", "robotwin_aloha"])
def test_each_camera_lands_in_its_cell(name):
    spec = load_embodiment(name)
    canvas = build_canvas(solid_images(spec), spec)
    assert canvas.shape == (spec.canvas_height, spec.canvas_width, 3)
    assert canvas.dtype == np.uint8
    covered = np.zeros(canvas.shape[:2], bool)
    for i, cam in enumerate(spec.canvas.cameras):
        cell = canvas[cam.top : cam.top + cam.height, cam.left : cam.left + cam.width]
        assert (cell == COLOURS[i]).all(), cam.role
        covered[cam.top : cam.top + cam.height, cam.left : cam.left + cam.width] = True
    assert covered.all()  # both shipped layouts tile the whole canvas


def test_libero_layout_agentview_left_wrist_right():
    spec = load_embodiment("libero_franka")
    images = {
        "agentview": np.full((256, 256, 3), 10, np.uint8),
        "wrist": np.full((128, 128, 3), 200, np.uint8),
    }
    canvas = build_canvas(images, spec)
    assert (canvas[:, :224] == 10).all() and (canvas[:, 224:] == 200).all()


def test_robotwin_layout_head_on_top_wrists_below():
    spec = load_embodiment("robotwin_aloha")
    images = {
        "head": np.full((240, 320, 3), 1, np.uint8),
        "left_wrist": np.full((240, 320, 3), 2, np.uint8),
        "right_wrist": np.full((240, 320, 3), 3, np.uint8),
    }
    canvas = build_canvas(images, spec)
    assert (canvas[:256] == 1).all()
    assert (canvas[256:, :160] == 2).all() and (canvas[256:, 160:] == 3).all()


def corner_marked(size=256, mark=32):
    image = np.zeros((size, size, 3), np.uint8)
    image[:mark, :mark] = (255, 0, 0)
    return image


def test_libero_rotation_moves_top_left_mark_to_bottom_right():
    spec = load_embodiment("libero_franka")
    canvas = build_canvas({"agentview": corner_marked(), "wrist": corner_marked()}, spec)
    mark = 28  # 32 px of 256 scaled to 224
    for left in (0, 224):
        cell = canvas[:, left : left + 224].astype(int)
        assert (cell[-mark + 1 :, -mark + 1 :] == (255, 0, 0)).all()
        assert (cell[: -mark - 1] == 0).all() and (cell[:, : -mark - 1] == 0).all()


def test_unrotated_camera_keeps_its_mark_in_place():
    spec = load_embodiment("robotwin_aloha")
    images = solid_images(spec)
    head = np.zeros((240, 320, 3), np.uint8)
    head[:30, :40] = 255  # 240 -> 256 rows: the mark grows to 32 rows
    images["head"] = head
    canvas = build_canvas(images, spec)
    assert (canvas[:31, :40] == 255).all()
    assert (canvas[33:256] == 0).all() and (canvas[:256, 41:] == 0).all()


def test_quarter_turn_is_counter_clockwise():
    spec = libero_variant(rotation_deg=90)
    images = {"agentview": corner_marked(size=224), "wrist": corner_marked(size=224)}
    cell = build_canvas(images, spec)[:, :224]
    assert (cell[-32:, :32] == (255, 0, 0)).all()  # top-left -> bottom-left
    assert (cell[:-32] == 0).all()


def test_center_crop_keeps_the_middle_at_the_cell_aspect():
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, :50] = 255  # outer quarters would only appear without the crop
    image[:, 150:] = 255
    cropped = center_crop_to_aspect(image, 224, 224)
    assert cropped.shape == (100, 100, 3) and (cropped == 0).all()
    tall = center_crop_to_aspect(np.zeros((300, 100, 3), np.uint8), 128, 160)
    assert tall.shape == (80, 100, 3)

    spec = libero_variant(center_crop=True)
    canvas = build_canvas({"agentview": image, "wrist": image}, spec)
    assert (canvas[:, :224] == 0).all()  # cropped camera: only the dark middle
    assert (canvas[:, 224:] == 255).any()  # uncropped camera keeps the bright sides


@pytest.mark.parametrize(
    "src, dst",
    [
        ((7, 9), (4, 5)),
        ((5, 6), (11, 13)),
        ((8, 8), (8, 3)),
        ((3, 17), (9, 4)),
        ((6, 6), (1, 1)),
        ((1, 1), (3, 2)),
        ((48, 64), (32, 40)),
        ((48, 64), (56, 80)),
        ((48, 64), (48, 20)),
        ((256, 256), (224, 224)),
        ((240, 320), (128, 160)),
    ],
)
def test_resize_matches_torch_antialiased_bilinear(src, dst):
    image = np.random.default_rng(sum(src + dst)).integers(0, 256, src + (3,), dtype=np.uint8)
    ours = resize_bilinear(image, *dst)
    assert ours.shape == dst + (3,) and ours.dtype == np.uint8
    # Correctly rounded up to float32 rounding of the intermediate values.
    assert np.abs(ours - torch_resize(image, *dst)).max() <= 0.5 + 2e-3


def test_shrinking_averages_every_source_pixel():
    """Antialiasing: 1-pixel stripes shrunk 3x stay near grey (the triangle filter spans 5 source
    columns); plain bilinear samples single columns there and alternates black and white."""
    stripes = np.zeros((96, 96, 3), np.uint8)
    stripes[:, 1::2] = 255
    shrunk = resize_bilinear(stripes, 32, 32).astype(int)
    assert np.abs(shrunk[:, 1:-1] - 128).max() <= 16


@pytest.mark.parametrize("name, source", [("libero_franka", (256, 256)), ("robotwin_aloha", (240, 320))])
@pytest.mark.parametrize("kind", ["smooth", "random"])
def test_canvas_matches_the_authors_antialiased_resize(name, source, kind):
    """Must-show parity on the model input: LIBERO 256->224 (rotated) and RoboTwin 240x320 ->
    256x320 head + 128x160 wrists, within uint8 rounding of the authors' float pipeline."""
    spec = load_embodiment(name)
    rng = np.random.default_rng(5)
    images = {
        cam.role: (
            smooth_image(*source, seed=i)
            if kind == "smooth"
            else rng.integers(0, 256, source + (3,), dtype=np.uint8)
        )
        for i, cam in enumerate(spec.canvas.cameras)
    }
    ours = canvas_to_model_input(build_canvas(images, spec)).astype(np.float64)
    diff = np.abs(ours - torch_canvas(images, spec)) * 127.5  # in units of 1/255 of [0, 1]
    assert diff.mean() <= 0.75 and diff.max() <= 2.0, (diff.mean(), diff.max())


def test_resize_same_size_is_a_copy():
    image = np.random.default_rng(1).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    assert np.array_equal(resize_bilinear(image, 5, 6), image)


def test_repeated_builds_are_identical():
    spec = load_embodiment("robotwin_aloha")
    rng = np.random.default_rng(7)
    images = {cam.role: rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for cam in spec.canvas.cameras}
    first = build_canvas(images, spec)
    assert np.array_equal(build_canvas(images, spec), first)  # reused buffers leak nothing


def test_model_input_scaling_and_layout():
    canvas = np.zeros((16, 32, 3), np.uint8)
    canvas[..., 0] = 255
    canvas[0, 0] = (0, 255, 51)
    x = canvas_to_model_input(canvas)
    assert x.shape == (3, 16, 32) and x.dtype == np.float32
    assert x[0, 1, 1] == 1.0 and x[1, 1, 1] == -1.0 and x[2, 1, 1] == -1.0
    assert x[0, 0, 0] == -1.0 and x[1, 0, 0] == 1.0
    assert x[2, 0, 0] == pytest.approx(51 / 127.5 - 1)
    assert x.min() >= -1.0 and x.max() <= 1.0


def test_missing_role_is_named():
    spec = load_embodiment("robotwin_aloha")
    images = solid_images(spec)
    del images["right_wrist"]
    with pytest.raises(ValueError, match="right_wrist"):
        build_canvas(images, spec)


def test_extra_roles_are_ignored():
    spec = load_embodiment("libero_franka")
    images = solid_images(spec)
    images["unused"] = np.zeros((1, 1), np.float64)
    assert build_canvas(images, spec).shape == (224, 448, 3)


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((8, 8, 3), np.float32), "dtype uint8, got float32"),
        (np.zeros((8, 8, 3), np.uint16), "dtype uint8, got uint16"),
        (np.full((8, 8, 3), np.nan, np.float32), "non-finite"),
        (np.zeros((8, 8), np.uint8), "HxWx3"),
        (np.zeros((8, 8, 4), np.uint8), "HxWx3"),
        (np.zeros((0, 8, 3), np.uint8), "empty"),
        ([[[0, 0, 0]]], "numpy array"),
    ],
)
def test_bad_images_are_rejected_with_the_role(image, message):
    spec = load_embodiment("libero_franka")
    images = solid_images(spec)
    images["wrist"] = image
    with pytest.raises(ValueError, match=message) as error:
        build_canvas(images, spec)
    assert "'wrist'" in str(error.value)


def test_model_input_rejects_bad_canvas():
    with pytest.raises(ValueError, match="uint8"):
        canvas_to_model_input(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="HxWx3"):
        canvas_to_model_input(np.zeros((3, 4, 4, 1), np.uint8))
