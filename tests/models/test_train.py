from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from hotpose.models import create_lifter
from hotpose.models.data import Clip
from hotpose.models.train import TrainConfig, WindowSampler, lifter_loss, train
from tests.models.test_data import _walker

TINY = {"dim": 16, "depth": 2, "num_heads": 2, "frames": 27, "token_num": 9, "layer_index": 1}


def test_a_few_steps_lower_the_loss() -> None:
    torch.manual_seed(0)
    model = create_lifter("hot_mixste", device="cpu", **TINY).train()
    sampler = WindowSampler([Clip("w", "s", _walker(200), 30.0)], 27, seed=0)
    x, y = sampler.batch(4)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = lifter_loss(model(x), y)[0].item()
    for _ in range(30):
        loss, _ = lifter_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert lifter_loss(model(x), y)[0].item() < 0.5 * first


def _mocap_file(path: Path) -> Path:
    """Three walking clips of CMU subjects 5, 8 and 9 (60, 70, 80 frames) in the shared file's format."""
    arrays = {f"c{i}": _walker(60 + 10 * i) for i in range(3)}
    np.savez(
        path,
        **arrays,
        clip_names=np.array(list(arrays)),
        clip_desc=np.array(["walk (CMU subj. 5)", "walk (CMU subj. 8)", "walk (CMU subj. 9)"]),
    )
    return path


def test_train_writes_a_checkpoint_that_rebuilds_itself(tmp_path: Path) -> None:
    data = _mocap_file(tmp_path / "m.npz")
    out = tmp_path / "ckpt.pt"
    metrics = train(TrainConfig(data=data, out=out, overrides=TINY, steps=3, batch=2, val_every=100, warmup=1))
    assert set(metrics) == {"gt2d", "noisy2d", "frames_evaluated"} and metrics["frames_evaluated"] == 4 * 60
    model = create_lifter("hot_mixste", weights=out, device="cpu")
    assert model.config.dim == 16 and model.config.frames == 27
    header = torch.load(out, weights_only=True)
    assert header["meta"]["val_subjects"] == ["cmu005"] and len(header["meta"]["data_sha256"]) == 64


def test_train_draws_its_cameras_from_the_configured_ranges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hotpose.models.train

    class SeenError(Exception):
        pass

    seen: list[object] = []

    def stop(clips, frames, cfg, aug):  # type: ignore[no-untyped-def]
        seen.append(aug)
        raise SeenError  # no need to train: the windows' augmentation is what is checked

    monkeypatch.setattr(hotpose.models.train, "window_batches", stop)
    cfg = TrainConfig(data=_mocap_file(tmp_path / "m.npz"), out=tmp_path / "o.pt", overrides=TINY, steps=1,
                      focal=(550.0, 700.0), distance=(2.0, 2.5), aim_p=0.3)  # fmt: skip
    with pytest.raises(SeenError):
        train(cfg)
    (aug,) = seen
    assert (aug.focal, aug.distance, aug.aim_p) == ((550.0, 700.0), (2.0, 2.5), 0.3)  # type: ignore[attr-defined]


def test_warm_start_copies_a_mixste_into_a_hot_mixste(tmp_path: Path) -> None:
    from hotpose.models import create_lifter, save_checkpoint
    from hotpose.models.checkpoint import CheckpointError
    from hotpose.models.train import warm_start

    size = {"dim": 16, "depth": 2, "num_heads": 2, "frames": 27}
    mix = create_lifter("mixste", **size)
    save_checkpoint(tmp_path / "mix.pt", "mixste", mix.config.to_dict(), mix.state_dict())
    hot = create_lifter("hot_mixste", token_num=9, layer_index=1, **size)
    fresh = warm_start(hot, tmp_path / "mix.pt")
    assert fresh and all(k.startswith(("pos_embed_token", "x_token", "cross_attention.")) for k in fresh)
    for k, v in mix.state_dict().items():
        assert torch.equal(hot.state_dict()[k], v)
    other = create_lifter("hot_mixste", token_num=9, layer_index=1, **{**size, "dim": 32})
    with pytest.raises(CheckpointError, match="shape mismatch"):
        warm_start(other, tmp_path / "mix.pt")


def test_rig_balance_shares_skeleton_families_by_a_power_of_their_frames() -> None:
    from hotpose.models.train import clip_weights

    clips = [
        Clip("a1", "s1", _walker(300), 30.0, "big"),
        Clip("a2", "s2", _walker(100), 30.0, "big"),
        Clip("b1", "s3", _walker(100), 30.0, "small"),
    ]
    plain = clip_weights(clips, 1.0)
    assert np.allclose(plain, [0.6, 0.2, 0.2])
    half = clip_weights(clips, 0.5)
    big, small = 400**0.5, 100**0.5
    assert np.isclose(half[2], small / (big + small))
    assert np.isclose(half[0] / half[1], 3.0)  # within a family, by length
    assert np.allclose(clip_weights(clips, 0.0)[[0, 1]].sum(), 0.5)
    sampler = WindowSampler(clips, 27, seed=0, rig_balance=0.0)
    picks = sampler.rng.choice(3, size=4000, p=sampler.p)
    assert abs((picks == 2).mean() - 0.5) < 0.03


def test_time_codes_break_the_recovery_saddle() -> None:
    from hotpose.models.train import init_time_codes

    torch.manual_seed(0)
    model = create_lifter("hot_mixste", device="cpu", **TINY)
    x = torch.randn(2, 27, 17, 2) * 0.3
    with torch.no_grad():
        flat = model(x)
    # zero queries: every recovered frame of a window is the same
    assert torch.allclose(flat[:, :1].expand_as(flat), flat, atol=1e-6)
    assert set(init_time_codes(model)) == {"Temporal_pos_embed", "x_token", "pos_embed_token"}
    with torch.no_grad():
        coded = model(x)
    assert (coded[:, 1:] - coded[:, :-1]).abs().mean() > 1e-3
    # near frames get nearer codes than far ones; trained (non-zero) tensors are left alone
    q = model.x_token[0]
    assert torch.dist(q[10], q[11]) < torch.dist(q[10], q[20])
    assert init_time_codes(model) == []


def test_recovery_guide_teaches_the_recovery_attention_to_look_near_its_frame() -> None:
    from hotpose.models.train import RecoveryGuide, init_time_codes

    torch.manual_seed(0)
    model = create_lifter("hot_mixste", device="cpu", **TINY).train()
    init_time_codes(model)
    guide = RecoveryGuide(model)
    with pytest.raises(RuntimeError, match="before a forward"):
        guide.loss()
    sampler = WindowSampler([Clip("w", "s", _walker(200), 30.0)], 27, seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x, _ = sampler.batch(2)
    model(x)
    first = guide.loss().item()
    assert abs(first - np.log(TINY["token_num"])) < 0.2  # about uniform at the start
    for _ in range(40):
        model(x)
        loss = guide.loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert guide.loss().item() < 0.8 * first


@pytest.mark.parametrize("name", ["hot_mixste", "mixste"])
def test_widen_doubles_the_width_and_keeps_the_output(name: str) -> None:
    from hotpose.models.train import widen

    torch.manual_seed(0)
    size = {"dim": 16, "depth": 2, "num_heads": 2, "frames": 27, "drop_path_rate": 0.0}
    small = create_lifter(name, **size, **({"token_num": 9, "layer_index": 1} if name == "hot_mixste" else {}))
    with torch.no_grad():
        for p in small.parameters():  # every tensor non-trivial, the zero-initialised tokens included
            p.normal_(0.0, 0.3)
    wide = widen(small).eval()
    assert (wide.config.dim, wide.config.num_heads, wide.config.mlp_hidden_dim) == (32, 4, 64)
    x = torch.randn(2, 27, 17, 2) * 0.5
    with torch.no_grad():
        expected, got = small(x), wide(x)
    assert expected.abs().mean() > 0.1
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    # the two halves of a split Linear differ, so the copies learn different things
    fc1 = wide.STEblocks[0].mlp.fc1.weight  # [64, 32]
    assert not torch.allclose(fc1[:, :16], fc1[:, 16:])
    torch.testing.assert_close(fc1[:, :16] + fc1[:, 16:], small.STEblocks[0].mlp.fc1.weight.repeat(2, 1))


def test_widen_refuses_a_per_frame_model() -> None:
    from hotpose.models.train import widen

    with pytest.raises(ValueError, match="MLPLifter"):
        widen(create_lifter("mlp"))


def test_train_can_widen_the_model_it_starts_from(tmp_path: Path) -> None:
    data = _mocap_file(tmp_path / "m.npz")
    start = tmp_path / "small.pt"
    train(TrainConfig(data=data, out=start, overrides=TINY, steps=1, batch=2, val_every=100, warmup=1))
    wide = tmp_path / "wide.pt"
    train(TrainConfig(data=data, out=wide, init=start, widen=True, steps=1, batch=2, val_every=100, warmup=1))
    assert create_lifter("hot_mixste", weights=wide).config.dim == 32
    with pytest.raises(ValueError, match="init"):
        train(TrainConfig(data=data, out=wide, overrides=TINY, widen=True, steps=1, batch=2))


def test_weight_average_follows_the_weights_with_its_decay() -> None:
    from hotpose.models.train import WeightAverage

    model = create_lifter("hot_mixste", device="cpu", **TINY)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    average = WeightAverage(model, decay=0.5)
    expected = 0.0
    for n in range(1, 13):  # the weights step through 1, 2, ..., 12
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(n))
        average.update(model)
        d = min(0.5, n / (9 + n))  # the ramp 0.1, 0.18, ... reaches the decay at the 9th update
        expected = d * expected + (1 - d) * n
    assert 10.5 < expected < 11.5  # lags the last weights (12) by about one step
    for name, p in average.model().named_parameters():
        assert torch.allclose(p, torch.full_like(p, expected), atol=1e-5), name
    assert all(p.eq(12.0).all() for p in model.parameters())  # the trained model is untouched
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(model, decay=1.0)


def test_train_with_an_average_saves_it_and_the_last_weights(tmp_path: Path) -> None:
    from hotpose.models.checkpoint import read_weights
    from hotpose.models.train import raw_path

    data = _mocap_file(tmp_path / "m.npz")
    out = tmp_path / "avg.pt"
    train(TrainConfig(data=data, out=out, overrides=TINY, steps=4, batch=2, val_every=100, warmup=1, lr=1e-2, ema=0.9))
    averaged, header = read_weights(out)
    last, _ = read_weights(raw_path(out))
    assert raw_path(out).name == "avg_raw.pt"
    assert set(header["meta"]["val_metrics_raw"]) == {"gt2d", "noisy2d", "frames_evaluated"}
    differ = [k for k in averaged if averaged[k].is_floating_point() and not torch.equal(averaged[k], last[k])]
    assert differ  # the average lags the last step's weights


def test_window_batches_keep_the_seed_stream_or_draw_in_workers() -> None:
    from hotpose.models.data import Augment
    from hotpose.models.train import window_batches

    clips = [Clip(f"w{i}", "s", _walker(100 + 20 * i), 30.0) for i in range(3)]
    cfg = TrainConfig(data=Path("unused"), out=Path("unused"), batch=3, seed=4)
    own = WindowSampler(clips, 27, seed=4, aug=Augment(), rig_balance=cfg.rig_balance)
    stream = window_batches(clips, 27, cfg, Augment())
    for _ in range(2):  # in-process: the same windows as the sampler every earlier run used
        (x, y), (x0, y0) = next(stream), own.batch(3)
        assert torch.equal(x, x0) and torch.equal(y, y0)
    workers = window_batches(clips, 27, replace(cfg, workers=2), Augment())
    first, second = next(workers), next(workers)  # one batch from each worker
    assert first[0].shape == (3, 27, 17, 2) and first[1].shape == (3, 27, 17, 3)
    assert not torch.equal(first[0], second[0])  # the workers draw from different seeds


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))],
)
def test_train_runs_with_autocast_on_the_chosen_device(tmp_path: Path, device: str) -> None:
    data = _mocap_file(tmp_path / "m.npz")
    out = tmp_path / "amp.pt"
    cfg = TrainConfig(data=data, out=out, overrides=TINY, steps=2, batch=2, val_every=100, warmup=1)
    metrics = train(replace(cfg, device=device, amp=True, workers=1, ema=0.9))
    assert metrics["noisy2d"]["mpjpe_mm"] > 0
    model = create_lifter("hot_mixste", weights=out)
    assert next(model.parameters()).dtype == torch.float32  # float16 on disk, float32 when loaded
