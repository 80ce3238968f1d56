"""StateFusionActionExpert: structure, parameter count, and behaviour against a from-spec reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lightwam_ros.model.config import ExpertConfig, make_config
from lightwam_ros.model.expert import StateFusionActionExpert

TINY = make_config("tiny", action_dim=7, proprio_dim=8)
DIM, ACTION_DIM, HORIZON = TINY.dit.dim, TINY.action_dim, 6


def tiny_expert(horizon: int = HORIZON, seed: int = 0, num_taps: int = 3) -> StateFusionActionExpert:
    """Tiny expert with every parameter perturbed, so zero-initialised logits and biases matter."""
    torch.manual_seed(seed)
    expert = StateFusionActionExpert(
        TINY.expert, dim=DIM, action_dim=ACTION_DIM, horizon=horizon, num_taps=num_taps
    ).eval()
    with torch.no_grad():
        for p in expert.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return expert


def tapped_states(batch: int = 2, tokens: int = 5, seed: int = 1, num_taps: int = 3) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, tokens, DIM, generator=g) for _ in range(num_taps)]


# ----------------------------------------------------------------------------- structure
def test_released_size_parameter_count_on_meta():
    with torch.device("meta"):
        expert = StateFusionActionExpert(ExpertConfig(), dim=1536, action_dim=7, horizon=32)
    count = sum(p.numel() for p in expert.parameters())
    assert abs(count - 351.0e6) <= 0.05e6, count


def test_state_dict_keys_follow_released_families():
    with torch.device("meta"):
        expert = StateFusionActionExpert(ExpertConfig(), dim=1536, action_dim=7, horizon=32)
    keys = set(expert.state_dict())
    expected_modules = (
        [
            f"layer_poolers.{i}.adapted.{name}"
            for i in range(3)
            for name in ("token_norm", "attn.out_proj", "output_norm")
        ]
        + [f"layer_compressors.{i}.{name}" for i in range(3) for name in ("norm", "fc1", "fc2")]
        + [
            "fused_norm",
            "fused_proj",
            "trunk.0.norm",
            "trunk.0.fc1",
            "trunk.0.fc2",
            "step_pos_proj.0",
            "step_pos_proj.1",
            "step_pos_proj.3",
            "output_norm",
            "output.0",
            "output.2",
        ]
    )
    for module in expected_modules:
        assert {f"{module}.weight", f"{module}.bias"} <= keys, module
    for i in range(3):
        pooler = f"layer_poolers.{i}.adapted"
        assert {
            f"{pooler}.query_tokens",
            f"{pooler}.query_merge_logits",
            f"{pooler}.attn.in_proj_weight",
            f"{pooler}.attn.in_proj_bias",
        } <= keys
    # The cached step table is derived, not a weight: strict loading of a released section must pass.
    assert not any("step_embedding" in k for k in keys)
    assert expert.state_dict()["output.2.weight"].shape == (7, 6144)
    assert expert.state_dict()["fused_proj.weight"].shape == (6144, 3 * 4608)


def test_fresh_pooler_init():
    torch.manual_seed(0)
    big = StateFusionActionExpert(
        ExpertConfig(num_queries=16, num_heads=8, compress_dim=8, fused_dim=8, step_embed_dim=8),
        dim=1536,
        action_dim=2,
        horizon=2,
        num_taps=1,
    )
    pooler = big.layer_poolers[0]["adapted"]
    assert pooler.query_tokens.shape == (16, 1536)
    assert pooler.query_tokens.std().item() == pytest.approx(0.02, rel=0.05)
    assert abs(pooler.query_tokens.mean().item()) < 0.002
    assert torch.equal(pooler.query_merge_logits, torch.zeros(16))
    # Zero logits merge the 16 per-query vectors with equal weight.
    assert torch.allclose(pooler.merge_weights(), torch.full((16,), 1 / 16))


def test_zero_logits_merge_is_the_mean_of_the_query_outputs():
    expert = tiny_expert()
    pooler = expert.layer_poolers[1]["adapted"]
    with torch.no_grad():
        pooler.query_merge_logits.zero_()
    tokens = tapped_states(batch=3)[0]
    kv = pooler.token_norm(tokens)
    per_query, _ = pooler.attn(pooler.query_tokens.expand(3, -1, -1), kv, kv)
    assert torch.allclose(pooler(tokens), pooler.output_norm(per_query.mean(dim=1)), atol=1e-6)


def test_step_embedding_table_is_cos_sin_base_10000():
    expert = tiny_expert(horizon=5)
    dim = TINY.expert.step_embed_dim
    table = expert.step_embedding
    assert table.shape == (5, dim)
    half = dim // 2
    for step in range(5):
        for i in (0, 1, half - 1):
            angle = step / 10000 ** (i / half)
            assert table[step, i].item() == pytest.approx(math.cos(angle), abs=1e-6)
            assert table[step, half + i].item() == pytest.approx(math.sin(angle), abs=1e-6)


# ------------------------------------------------------------------------------- behaviour
def reference_forward(expert: StateFusionActionExpert, tapped: list[torch.Tensor]) -> torch.Tensor:
    """The spec written out with functional ops on the expert's weights (no module forward calls)."""
    sd = expert.state_dict()
    cfg = TINY.expert
    heads, head_dim = cfg.num_heads, DIM // cfg.num_heads

    def ln(x, name):
        return F.layer_norm(x, x.shape[-1:], sd[f"{name}.weight"], sd[f"{name}.bias"])

    def lin(x, name):
        return x @ sd[f"{name}.weight"].T + sd[f"{name}.bias"]

    compressed = []
    for i, tokens in enumerate(tapped):
        p = f"layer_poolers.{i}.adapted"
        kv = ln(tokens, f"{p}.token_norm")
        w_q, w_k, w_v = sd[f"{p}.attn.in_proj_weight"].chunk(3)
        b_q, b_k, b_v = sd[f"{p}.attn.in_proj_bias"].chunk(3)
        q = (sd[f"{p}.query_tokens"] @ w_q.T + b_q).view(-1, heads, head_dim).transpose(0, 1)  # [h, Q, d]
        k = (kv @ w_k.T + b_k).view(kv.shape[0], -1, heads, head_dim).transpose(1, 2)  # [B, h, L, d]
        v = (kv @ w_v.T + b_v).view(kv.shape[0], -1, heads, head_dim).transpose(1, 2)
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_dim), dim=-1)
        per_query = (attn @ v).transpose(1, 2).reshape(kv.shape[0], -1, DIM)  # [B, Q, D]
        per_query = lin(per_query, f"{p}.attn.out_proj")
        merged = (torch.softmax(sd[f"{p}.query_merge_logits"], 0)[None, :, None] * per_query).sum(1)
        pooled = ln(merged, f"{p}.output_norm")
        c = f"layer_compressors.{i}"
        hidden = F.gelu(lin(ln(pooled, f"{c}.norm"), f"{c}.fc1"), approximate="tanh")
        compressed.append(lin(hidden, f"{c}.fc2"))
    fused = lin(ln(torch.cat(compressed, -1), "fused_norm"), "fused_proj")
    fused = fused + lin(
        F.gelu(lin(ln(fused, "trunk.0.norm"), "trunk.0.fc1"), approximate="tanh"), "trunk.0.fc2"
    )
    half = cfg.step_embed_dim // 2
    steps = torch.arange(expert.horizon, dtype=torch.float64)[:, None]
    angles = steps * 10000.0 ** (-torch.arange(half, dtype=torch.float64) / half)
    table = torch.cat((angles.cos(), angles.sin()), -1).float()
    step_feat = lin(
        F.gelu(lin(ln(table, "step_pos_proj.0"), "step_pos_proj.1"), approximate="tanh"), "step_pos_proj.3"
    )
    x = ln(fused[:, None, :] + step_feat[None], "output_norm")
    return lin(F.gelu(lin(x, "output.0"), approximate="tanh"), "output.2")


def test_forward_matches_functional_reference():
    expert = tiny_expert()
    tapped = tapped_states(batch=2, tokens=7)
    with torch.no_grad():
        out = expert(tapped)
        ref = reference_forward(expert, tapped)
    assert out.shape == (2, HORIZON, ACTION_DIM)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-4), (out - ref).abs().max()


def test_steps_decode_independently():
    short, long = tiny_expert(horizon=3), tiny_expert(horizon=HORIZON)
    long.load_state_dict(short.state_dict())  # horizon only changes the (non-persistent) step table
    tapped = tapped_states()
    with torch.no_grad():
        out_short, out_long = short(tapped), long(tapped)
    # Step h's action depends on nothing but the fused state and h itself.
    assert torch.allclose(out_short, out_long[:, :3], atol=1e-6)
    # ... and the step index does change it: no two steps decode to the same row.
    rows = out_long[0]
    distances = torch.cdist(rows, rows) + torch.eye(HORIZON) * 1e9
    assert distances.min() > 1e-3


def test_batch_rows_are_independent():
    expert = tiny_expert()
    tapped = tapped_states(batch=3)
    with torch.no_grad():
        together = expert(tapped)
        alone = expert([x[1:2] for x in tapped])
        perturbed = [x.clone() for x in tapped]
        for x in perturbed:
            x[0] = torch.randn_like(x[0])  # not a constant shift: LayerNorm would erase that
        changed = expert(perturbed)
    assert torch.allclose(together[1:2], alone, atol=1e-5)
    assert torch.allclose(changed[1:], together[1:], atol=1e-6)
    assert not torch.allclose(changed[0], together[0], atol=1e-3)


def test_pooling_ignores_token_order_and_accepts_any_length():
    expert = tiny_expert()
    tapped = tapped_states(tokens=9)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = expert(tapped)
        permuted = expert([x[:, perm] for x in tapped])
        # Different token counts per tap (e.g. a different canvas) still decode.
        ragged = expert([tapped[0], tapped[1][:, :4], tapped[2][:, :1]])
    assert torch.allclose(out, permuted, atol=1e-5)
    assert ragged.shape == out.shape


def test_every_parameter_receives_gradient():
    expert = tiny_expert().train()
    expert(tapped_states()).pow(2).sum().backward()
    dead = [name for name, p in expert.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead


def test_bfloat16_expert_accepts_float32_states():
    expert = tiny_expert().to(torch.bfloat16)
    out = expert(tapped_states())
    assert out.dtype == torch.bfloat16 and out.shape == (2, HORIZON, ACTION_DIM)
    assert torch.isfinite(out.float()).all()


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda t: t[:2], "list of 3"),
        (lambda t: t + t[:1], "list of 3"),
        (lambda t: torch.stack(t), "list of 3"),
        (lambda t: [t[0], t[1], t[2][..., :-1]], r"tapped\[2\] must be"),
        (lambda t: [t[0][0], t[1], t[2]], r"tapped\[0\] must be"),
        (lambda t: [t[0], t[1][:, :0], t[2]], r"tapped\[1\] must be"),
        (lambda t: [t[0], t[1][:1], t[2]], "batch size"),
    ],
)
def test_bad_tapped_inputs_raise(bad, match):
    expert = tiny_expert()
    with pytest.raises(ValueError, match=match):
        expert(bad(tapped_states()))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dim": 30}, "divisible"),
        ({"horizon": 0}, "horizon"),
        ({"action_dim": -1}, "action_dim"),
        ({"num_taps": 0}, "num_taps"),
    ],
)
def test_bad_construction_raises(kwargs, match):
    args = {"dim": DIM, "action_dim": ACTION_DIM, "horizon": HORIZON, "num_taps": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        StateFusionActionExpert(
            ExpertConfig(num_queries=2, num_heads=4, compress_dim=8, fused_dim=8, step_embed_dim=8), **args
        )
