"""Synthetic field recordings (vocalprint.audio.mix): labels follow the calls, SNRs as asked, seeded."""
from __future__ import annotations

import numpy as np
import pytest

from vocalprint.audio import mix

SR = 16000  # the functions take any rate; a lower one keeps the tests fast


def _tone(seconds: float, hz: float = 2000.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _burst_clip() -> np.ndarray:
    """3 s: 1 s silence, 1 s tone (the only active part), 1 s silence."""
    x = np.zeros(3 * SR, np.float32)
    x[SR:2 * SR] = _tone(1.0)
    return x


def test_activity_mask_finds_the_call():
    x = _burst_clip()
    x += np.random.default_rng(0).normal(0, 1e-4, x.size).astype(np.float32)
    m = mix.activity_mask(x, SR)
    assert m.shape == (300,)
    assert m[105:195].all()
    assert not m[:90].any() and not m[210:].any()
    assert not mix.activity_mask(np.zeros(SR, np.float32), SR).any()


def test_coloured_noise_unit_rms_and_slope():
    rng = np.random.default_rng(1)
    white = mix.coloured_noise(SR * 4, beta=0.0, rng=rng)
    brown = mix.coloured_noise(SR * 4, beta=2.0, rng=rng)
    for x in (white, brown):
        assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3)
    hp = lambda x: mix.power(mix.highpass(x, SR, 2000.0))  # noqa: E731
    assert hp(brown) < 0.05 * hp(white)


def test_labels_only_when_the_active_call_overlaps_the_window():
    clips = [_burst_clip(), _tone(2.0, 3000.0)]
    labels = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    audio, y, events, _ = mix.mix_windows(clips, labels, [], n=300, sr=SR, seed=3, window_s=2.0,
                                          min_overlap_s=0.3, max_calls=2, p_empty=0.2,
                                          return_events=True)
    assert audio.shape == (300, 2 * SR) and y.shape == (300, 3)
    assert not y[:, 2].any()
    w = 2 * SR
    seen_unlabelled_overlap = False
    for e in events:
        clip = clips[e["clip"]]
        # active part of clip 0 is samples [SR, 2*SR); clip 1 is active throughout
        act = (SR, 2 * SR) if e["clip"] == 0 else (0, clip.size)
        a, b = max(0, e["offset"] + act[0]), min(w, e["offset"] + act[1])
        inside = max(0, b - a) / SR
        assert inside == pytest.approx(e["overlap_s"], abs=0.02)
        assert e["labelled"] == (e["overlap_s"] >= 0.3 - 1e-9)
        if e["labelled"]:
            assert y[e["row"], e["clip"]] == 1
        elif e["offset"] < w and e["offset"] + clip.size > 0:
            seen_unlabelled_overlap = True  # the silent part overlapped: no label for it
    assert seen_unlabelled_overlap
    for i in range(len(y)):
        for c in (0, 1):
            got = any(e["labelled"] for e in events if e["row"] == i and e["clip"] == c)
            assert bool(y[i, c]) == got
    n_calls = np.bincount([e["row"] for e in events], minlength=300)
    assert (n_calls == 0).mean() == pytest.approx(0.2, abs=0.08)
    assert (y.sum(1) == 0).any() and (y.sum(1) > 0).any()


def test_short_calls_need_half_their_active_time():
    x = np.zeros(2 * SR, np.float32)
    x[SR:SR + int(0.2 * SR)] = _tone(0.2)  # 0.2 s of activity < min_overlap_s
    _, y, events, _ = mix.mix_windows([x], np.ones((1, 1), np.float32), [], n=200, sr=SR, seed=0,
                                      window_s=2.0, min_overlap_s=0.3, max_calls=1, p_empty=0.0,
                                      return_events=True)
    for e in events:
        assert e["labelled"] == (e["overlap_s"] >= 0.1 - 1e-9)
    assert any(e["labelled"] for e in events) and not all(e["labelled"] for e in events)


@pytest.mark.parametrize("lo,hi", [(-10.0, -10.0), (0.0, 0.0), (15.0, 15.0), (-10.0, 15.0)])
def test_snr_as_requested(lo, hi):
    clip = _tone(1.5, 2500.0)  # steady tone: every part of it is as loud as the whole
    bg = np.random.default_rng(5).normal(0, 0.01, 10 * SR).astype(np.float32)
    audio, _, events, bgs = mix.mix_windows([clip], np.ones((1, 1), np.float32), [bg], n=20, sr=SR,
                                            seed=11, snr_db=(lo, hi), window_s=2.0, max_calls=1,
                                            p_empty=0.0, p_noise=0.5, return_events=True)
    assert len(events) == 20
    for e in events:
        i = e["row"]
        assert lo - 1e-6 <= e["snr_db"] <= hi + 1e-6
        call = audio[i] - bgs[i]
        a, b = max(0, e["offset"]), min(2 * SR, e["offset"] + clip.size)
        # leave out the 20-ms fades and filter start-up at the call's ends
        a2, b2 = a + int(0.05 * SR), b - int(0.05 * SR)
        p_call = mix.power(mix.highpass(call, SR, 500.0)[a2:b2])
        p_bg = mix.power(mix.highpass(bgs[i], SR, 500.0))
        assert 10 * np.log10(p_call / p_bg) == pytest.approx(e["snr_db"], abs=0.5)


def test_background_level_and_peak_limit():
    clip = _tone(1.0, amp=0.9)
    audio, _ = mix.mix_windows([clip], np.ones((1, 1), np.float32), [], n=30, sr=SR, seed=2,
                               window_s=1.0, snr_db=(30.0, 30.0), bg_dbfs=(-20.0, -20.0))
    assert np.abs(audio).max() <= 0.98 + 1e-6
    quiet, _ = mix.mix_windows([clip], np.ones((1, 1), np.float32), [], n=30, sr=SR, seed=2,
                               window_s=1.0, p_empty=1.0, bg_dbfs=(-40.0, -40.0))
    rms = np.sqrt((quiet.astype(np.float64) ** 2).mean(axis=1))
    assert 20 * np.log10(rms) == pytest.approx(np.full(30, -40.0), abs=0.01)


def test_deterministic_by_seed():
    clips = [_burst_clip(), _tone(0.7)]
    labels = np.eye(2, dtype=np.float32)
    bg = [np.random.default_rng(0).normal(0, 0.01, 3 * SR).astype(np.float32)]
    a1, y1 = mix.mix_windows(clips, labels, bg, n=12, sr=SR, seed=7, window_s=1.0)
    a2, y2 = mix.mix_windows(clips, labels, bg, n=12, sr=SR, seed=7, window_s=1.0)
    a3, _ = mix.mix_windows(clips, labels, bg, n=12, sr=SR, seed=8, window_s=1.0)
    assert np.array_equal(a1, a2) and np.array_equal(y1, y2)
    assert not np.array_equal(a1, a3)


def test_frame_targets_follow_active_frames():
    clips = [_burst_clip()]
    audio, y, events, _ = mix.mix_windows(clips, np.ones((1, 1), np.float32), [], n=40, sr=SR, seed=4,
                                          window_s=2.0, max_calls=1, p_empty=0.0, return_events=True)
    ft = mix.frame_targets(events, clips, np.ones((1, 1), np.float32), n=40, sr=SR, window_s=2.0, hop=256)
    assert ft.shape == (40, 1 + 2 * SR // 256, 1)
    for e in events:
        on = np.flatnonzero(ft[e["row"], :, 0]) * 256
        if e["labelled"]:
            assert len(on) and on.min() >= e["offset"] + SR - 256 and on.max() < e["offset"] + 2 * SR + 256
        else:
            assert not len(on)
    assert (ft.max(axis=1)[:, 0] == y[:, 0]).all()


def test_quiet_segments_pick_the_quiet_part():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.001, 20 * SR).astype(np.float32)
    x[:10 * SR] += _tone(10.0, 3000.0)  # the first half is loud
    segs = mix.quiet_segments(x, SR, seg_s=2.0, hop_s=1.0, keep=0.3)
    assert len(segs) == round(0.3 * 19)
    assert all(s.size == 2 * SR for s in segs)
    assert all(np.abs(s).max() < 0.01 for s in segs)


def test_bad_inputs():
    with pytest.raises(ValueError):
        mix.mix_windows([], np.zeros((0, 2)), [], n=1, sr=SR)
    with pytest.raises(ValueError):
        mix.mix_windows([_tone(1.0)], np.zeros((2, 2)), [], n=1, sr=SR)


def test_pick_clips_bounds_the_batch_and_balances_species():
    rng = np.random.default_rng(0)
    primary = np.array(["common"] * 990 + ["rare"] * 10)
    pool = np.arange(1000)
    assert np.array_equal(mix.pick_clips(pool[:50], primary, 64, rng), pool[:50])  # small pool: all of it
    rows = mix.pick_clips(pool, primary, 64, rng)
    assert len(rows) == 64 == len(set(rows.tolist())) and np.all(np.diff(rows) > 0)
    assert set(rows) <= set(pool)
    rare = (primary[rows] == "rare").sum()
    assert rare >= 8  # drawn species first: about half the draws are the rare species (not 64 * 1 %)
