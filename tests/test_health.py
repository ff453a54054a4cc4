"""Health verdicts: each rule fires on a run written by the Monitor to show its failure, stays quiet on
healthy runs, and the reports carry every verdict."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cldiag import Monitor, read_run
from cldiag.health import (
    LEVELS,
    RULE_BY_NAME,
    RULES,
    Report,
    Verdict,
    evaluate,
    format_report,
    not_checked,
    report_dict,
    rules_table,
    worst_level,
)
from cldiag.health import thresholds as T
from cldiag.store import RunStore

B, D, C, STEPS = 64, 32, 8, 40
CADENCE = {"pairwise_every": 2, "spectrum_every": 4, "curves_every": 0, "snapshot_every": 0}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Tiny matrices: thread start-up dominates, and on a shared 2-core box extra threads only contend.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=1)


class Clusters:
    """Samples around C well-spread unit centers; each sample has its own offset, so its two views
    (small extra noise) are closer to each other than to any other sample."""

    def __init__(self, seed: int, d: int = D, spread: float = 0.7):
        self.g = torch.Generator().manual_seed(seed)
        self.d = d
        self.spread = spread
        self.centers = _unit(torch.randn(C, d, generator=self.g))

    def noise(self, n: int, scale: float) -> torch.Tensor:
        return scale * torch.randn(n, self.d, generator=self.g) / math.sqrt(self.d)

    def batch(self, view_noise: float, n: int = B):
        y = torch.randint(0, C, (n,), generator=self.g)
        z = self.centers[y] + self.noise(n, self.spread)
        return z + self.noise(n, view_noise), z + self.noise(n, view_noise), y


def _healthy_steps(mon: Monitor, seed: int, steps: int = STEPS, tau: float = 0.2, labels: bool = True):
    data = Clusters(seed)
    for step in range(steps):
        # View noise falls over training: positives align, the pos/neg overlap shrinks.
        a, b, y = data.batch(0.3 * (1.0 - 0.85 * step / (steps - 1)))
        mon.log(step, a, b, labels=y if labels else None, temperature=tau, loss=1.0 / (1 + step))


def _by_rule(verdicts: list[Verdict]) -> dict[str, Verdict]:
    rules = [v.rule for v in verdicts]
    assert len(rules) == len(set(rules)), f"one verdict per rule, got {rules}"
    return {v.rule: v for v in verdicts}


def _tail_median(run, metric: str) -> float:
    """Independent reading of a metric's recent window: median of the last 20 % (at least 3) points."""
    s = run.scalars([metric]).sort_values("step")["value"].to_numpy()
    w = min(len(s), max(3, math.ceil(0.2 * len(s))))
    return float(np.median(s[-w:]))


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    path = tmp_path_factory.mktemp("h") / "healthy"
    with Monitor(path, config={"tau": 0.2}, **CADENCE) as mon:
        _healthy_steps(mon, seed=0)
    return read_run(path)


@pytest.fixture(scope="module")
def healthy_verdicts(healthy):
    return evaluate(healthy)


# ---------------------------------------------------------------------------------------------------------
# healthy runs stay quiet
def test_healthy_run_is_all_ok(healthy, healthy_verdicts):
    by_rule = _by_rule(healthy_verdicts)
    assert {v.level for v in healthy_verdicts} == {"ok"}, format_report(healthy, healthy_verdicts)
    assert worst_level(healthy_verdicts) == "ok"
    expected = {
        "nonfinite",
        "liveness",
        "complete_collapse",
        "dimensional_collapse",
        "score_separation",
        "temperature",
        "tolerance",
        "alignment_uniformity",
        "storage",
    }
    # false_negatives applies once the Monitor logs false_neg_penalty_share itself (the lab logs it today).
    logged = "false_neg_penalty_share" in set(healthy.scalars()["metric"])
    expected |= {"false_negatives"} if logged else set()
    assert set(by_rule) == expected
    unchecked = ["modality_gap"] + ([] if logged else ["false_negatives"])
    assert [r["rule"] for r in not_checked(healthy_verdicts)] == unchecked


def test_healthy_evidence_matches_the_logged_values(healthy, healthy_verdicts):
    by_rule = _by_rule(healthy_verdicts)
    rank = by_rule["dimensional_collapse"].evidence
    assert rank["metric"] == "effective_rank"
    assert rank["value"] == pytest.approx(_tail_median(healthy, "effective_rank"), rel=1e-3)
    assert rank["cap"] == min(B, D)
    assert rank["fraction_of_cap"] == pytest.approx(rank["value"] / min(B, D), rel=1e-3)
    std = by_rule["complete_collapse"].evidence
    assert std["value"] == pytest.approx(_tail_median(healthy, "std_l2"), rel=1e-3)
    assert std["ratio_to_isotropic"] == pytest.approx(std["value"] * math.sqrt(D), rel=1e-3)
    ent = by_rule["temperature"].evidence
    assert ent["value"] == pytest.approx(_tail_median(healthy, "neg_entropy"), rel=1e-3)
    assert ent["tau"] == pytest.approx(0.2)
    last = int(healthy.scalars(["neg_entropy"])["step"].max())
    assert ent["step"] == last


def test_healthy_two_modality_run_has_an_ok_gap(tmp_path):
    path = tmp_path / "clip"
    data = Clusters(1)
    with Monitor(path, modalities=("image", "text"), **CADENCE) as mon:
        for step in range(STEPS):
            a, b, y = data.batch(0.2)
            mon.log(step, a, b, labels=y, temperature=0.1, loss=1.0)
    verdicts = evaluate(read_run(path))
    by_rule = _by_rule(verdicts)
    assert worst_level(verdicts) != "alarm", format_report(read_run(path), verdicts)
    tol = by_rule["tolerance"]
    assert tol.level == "ok"
    assert tol.evidence["baseline_metric"] == "cone/image"  # cross-modal cosines carry the gap
    df = (
        read_run(path)
        .scalars(["tolerance", "cone/image"])
        .pivot(index="step", columns="metric", values="value")
    )
    margin = (df["tolerance"] - df["cone/image"]).dropna().to_numpy()  # tolerance only on pairwise steps
    assert len(margin) == STEPS // 2
    assert tol.evidence["margin"] == pytest.approx(float(np.median(margin[-4:])), rel=1e-3)
    gap = by_rule["modality_gap"]
    assert gap.level == "ok"
    assert gap.evidence["value"] < 0.3
    assert set(gap.evidence) >= {"cone/image", "cone/text"}
    # per-modality ranks are judged too
    assert by_rule["dimensional_collapse"].level == "ok"


# ---------------------------------------------------------------------------------------------------------
# each rule fires on a run built to show its failure
def test_complete_collapse_fires_on_identical_rows(tmp_path):
    path = tmp_path / "collapse"
    data = Clusters(2)
    point = torch.randn(1, D)
    with Monitor(path, **CADENCE) as mon:
        for step in range(STEPS):
            if step < 0.4 * STEPS:
                a, b, y = data.batch(0.2)
            else:  # the encoder has collapsed: every row is the same vector
                a = b = point.expand(B, D).clone()
            mon.log(step, a, b, labels=y, temperature=0.2, loss=1.0)
    run = read_run(path)
    by_rule = _by_rule(evaluate(run))
    v = by_rule["complete_collapse"]
    assert v.level == "alarm"
    assert v.evidence["value"] == pytest.approx(0.0, abs=1e-6)
    assert "uniformity" in " ".join(v.evidence["also"])
    assert by_rule["dimensional_collapse"].level == "alarm"
    assert by_rule["score_separation"].level == "alarm"
    assert "Chen & He" in v.source and "Wang & Isola" in v.source


def test_dimensional_collapse_fires_on_two_of_64_dims(tmp_path):
    path = tmp_path / "dimcollapse"
    d = 64
    g = torch.Generator().manual_seed(3)
    with Monitor(path, **CADENCE) as mon:
        for step in range(STEPS):
            z = torch.zeros(B, d)
            z[:, :2] = torch.randn(B, 2, generator=g)
            a = z.clone()
            b = z.clone()
            a[:, :2] += 0.05 * torch.randn(B, 2, generator=g)
            b[:, :2] += 0.05 * torch.randn(B, 2, generator=g)
            mon.log(step, a, b, temperature=0.2, loss=1.0)
    run = read_run(path)
    by_rule = _by_rule(evaluate(run))
    v = by_rule["dimensional_collapse"]
    assert v.level == "alarm"
    assert v.evidence["metric"] == "effective_rank"
    assert v.evidence["value"] == pytest.approx(_tail_median(run, "effective_rank"), rel=1e-3)
    assert v.evidence["value"] < 2.1
    assert v.evidence["cap"] == d
    # the spectrum: of the B − 1 = 63 directions a batch can span, 61 carry nothing
    floor = [a for a in v.evidence["also"] if "float floor" in a]
    assert floor and floor[0].startswith("61 of 63 directions")
    # spread over 2 of 64 axes is not a *complete* collapse: std_l2·√d = √(2/64) ≈ 0.18
    cc = by_rule["complete_collapse"]
    assert cc.level == "ok"
    assert cc.evidence["ratio_to_isotropic"] == pytest.approx(math.sqrt(2 / d), rel=0.1)


def test_dimensional_collapse_warns_when_rank_falls(tmp_path):
    path = tmp_path / "rankfall"
    g = torch.Generator().manual_seed(4)
    with Monitor(path, **CADENCE) as mon:
        # Ends on a spectrum step (36): with a final spectrum at close (step 39) the 11 rank points are
        # windowed from the end and the first one, the peak, falls out of every window (fall 48 %).
        for step in range(STEPS - 3):
            scale = torch.ones(D)
            scale[8:] = 10 ** (-3 * step / (STEPS - 1))  # 24 of 32 directions shrink, none to the floor
            z = torch.randn(B, D, generator=g) * scale
            mon.log(step, z + 0.01 * torch.randn(B, D, generator=g), z, temperature=0.2, loss=1.0)
    run = read_run(path)
    v = _by_rule(evaluate(run))["dimensional_collapse"]
    assert v.level == "warn", v
    assert "fell by" in v.reason
    assert "also" not in v.evidence  # shrunk to 1e-3, not to the float floor
    ranks = run.scalars(["effective_rank"])["value"].to_numpy()
    assert v.evidence["peak"] >= 2 * v.evidence["value"]
    assert v.evidence["fraction_of_cap"] >= 0.25  # the fall alone triggers it, not the level
    assert v.evidence["peak"] <= ranks.max()


def test_score_separation_fires_on_unrelated_views(tmp_path):
    path = tmp_path / "nosep"
    g = torch.Generator().manual_seed(5)
    with Monitor(path, **CADENCE) as mon:
        for step in range(STEPS):
            a, b = torch.randn(B, D, generator=g), torch.randn(B, D, generator=g)
            mon.log(step, a, b, temperature=0.2, loss=1.0)
    run = read_run(path)
    by_rule = _by_rule(evaluate(run))
    v = by_rule["score_separation"]
    assert v.level == "alarm"
    found = [v.reason, *v.evidence["also"]]
    assert len(found) == 2
    assert any("at chance level" in f for f in found)
    assert any("scores overlap by" in f for f in found)
    overlap = _tail_median(run, "pos_neg_overlap")
    assert overlap > 0.7
    assert f"{overlap:.0%}" in " ".join(found)


def test_score_separation_is_at_most_warn_on_a_short_run(tmp_path):
    path = tmp_path / "nosep-short"
    g = torch.Generator().manual_seed(5)
    with Monitor(path, **CADENCE) as mon:
        for step in range(8):  # 4 pairwise points: the recent window is the first one
            mon.log(step, torch.randn(B, D, generator=g), torch.randn(B, D, generator=g))
    assert _by_rule(evaluate(read_run(path)))["score_separation"].level == "warn"


def test_nonfinite_fires_on_nan_rows_and_nan_loss(tmp_path):
    path = tmp_path / "nan"
    data = Clusters(6)
    with Monitor(path, **CADENCE) as mon:
        for step in range(STEPS):
            a, b, y = data.batch(0.2)
            late = step >= STEPS - 10
            if late:
                a[:8] = float("nan")
            mon.log(step, a, b, labels=y, temperature=0.2, loss=float("nan") if late else 1.0)
    run = read_run(path)
    v = _by_rule(evaluate(run))["nonfinite"]
    assert v.level == "alarm"
    assert v.evidence["value"] == pytest.approx(8 / B)
    assert v.evidence["step"] == STEPS - 1
    assert v.evidence["first_step"] == STEPS - 10
    assert v.evidence["steps_affected"] == 10
    assert any("loss was NaN/Inf at 10 logged steps, first at step 30" in a for a in v.evidence["also"])


def test_nonfinite_loss_alone_is_detected(tmp_path):
    path = tmp_path / "nanloss"
    data = Clusters(7)
    with Monitor(path, **CADENCE) as mon:
        for step in range(STEPS):
            a, b, y = data.batch(0.2)
            mon.log(step, a, b, labels=y, loss=torch.tensor(float("inf")) if step >= 30 else 1.0)
    v = _by_rule(evaluate(read_run(path)))["nonfinite"]
    assert v.level == "alarm"
    assert v.evidence == {
        "metric": "nonfinite/loss",
        "step": STEPS - 1,
        "value": 1.0,
        "first_step": 30,
        "steps_affected": STEPS - 30,
    }


def test_nonfinite_recovered_run_warns_and_sparse_loss_is_fine(tmp_path):
    path = tmp_path / "recovered"
    data = Clusters(8)
    with Monitor(path, **CADENCE) as mon:
        for step in range(STEPS):
            a, b, y = data.batch(0.2)
            if step in (3, 4):
                b[0] = float("inf")
            # loss logged only every 10 steps: its last value at step 30 is not a NaN loss
            mon.log(step, a, b, labels=y, loss=1.0 if step % 10 == 0 else None)
    v = _by_rule(evaluate(read_run(path)))["nonfinite"]
    assert v.level == "warn"
    assert v.evidence["steps_affected"] == 2
    assert v.evidence["first_step"] == 3
    assert "also" not in v.evidence


def test_temperature_fires_on_tiny_and_huge_tau(tmp_path):
    levels = {}
    for tau in (0.005, 5.0):
        path = tmp_path / f"tau{tau}"
        with Monitor(path, config={"tau": tau}, **{**CADENCE, "curves_every": 20}) as mon:
            _healthy_steps(mon, seed=9, tau=tau)
        run = read_run(path)
        v = _by_rule(evaluate(run))["temperature"]
        levels[tau] = v
        assert v.evidence["tau"] == pytest.approx(tau)
        assert v.evidence["value"] == pytest.approx(_tail_median(run, "neg_entropy"), rel=1e-3)
        # the action names the τ range of the latest curve whose entropy lies inside [0.2, 0.98]
        curve = run.temperature()
        curve = curve[(curve.curve == "entropy") & (curve.step == curve.step.max())]
        inside = curve[(curve.value >= 0.2) & (curve.value <= 0.98)]
        assert v.evidence["tau_band"] == pytest.approx([inside.tau.min(), inside.tau.max()], rel=1e-3)
        assert f"{inside.tau.min():.3g}" in v.action
    assert levels[0.005].level == "warn" and "too low" in levels[0.005].reason
    assert levels[0.005].evidence["value"] < 0.2
    assert levels[5.0].level == "warn" and "too high" in levels[5.0].reason
    assert levels[5.0].evidence["value"] > 0.98


def test_tolerance_warns_when_labels_do_not_group(tmp_path):
    path = tmp_path / "tol"
    data = Clusters(10)
    g = torch.Generator().manual_seed(11)
    with Monitor(path, **CADENCE) as mon:
        for step in range(STEPS):
            a, b, _ = data.batch(0.2)
            mon.log(step, a, b, labels=torch.randint(0, C, (B,), generator=g), temperature=0.2)
    run = read_run(path)
    v = _by_rule(evaluate(run))["tolerance"]
    assert v.level == "warn"
    tol, neg = run.scalars(["tolerance"]), run.scalars(["neg_sim"])
    margin = tol["value"].to_numpy() - neg["value"].to_numpy()
    assert v.evidence["margin"] == pytest.approx(float(np.median(margin[-4:])), rel=1e-3, abs=1e-6)
    assert v.evidence["margin"] < 0.05


def test_tolerance_warns_when_classes_drift_apart(tmp_path):
    path = tmp_path / "toldrift"
    g = torch.Generator().manual_seed(12)
    centers = _unit(torch.randn(C, D, generator=g))
    with Monitor(path, **CADENCE) as mon:
        for step in range(STEPS):
            y = torch.randint(0, C, (B,), generator=g)
            spread = 0.3 + 2.0 * step / (STEPS - 1)  # classes dissolve into the noise
            z = centers[y] + spread * torch.randn(B, D, generator=g) / math.sqrt(D)
            mon.log(step, z + 0.01 * torch.randn(B, D, generator=g), z, labels=y, temperature=0.2)
    v = _by_rule(evaluate(read_run(path)))["tolerance"]
    assert v.level == "warn"
    assert v.evidence["best_margin"] - v.evidence["margin"] >= 0.2


def test_modality_gap_fires_on_shifted_modalities(tmp_path):
    path = tmp_path / "gap"
    data = Clusters(13)
    shift = torch.zeros(D)
    shift[0] = 3.0
    with Monitor(path, modalities=("image", "text"), **CADENCE) as mon:
        for step in range(STEPS):
            a, b, y = data.batch(0.2)
            mon.log(step, a + shift, b - shift, labels=y, temperature=0.1)
    run = read_run(path)
    v = _by_rule(evaluate(run))["modality_gap"]
    assert v.level == "warn"
    assert v.evidence["value"] == pytest.approx(_tail_median(run, "modality_gap"), rel=1e-3)
    assert v.evidence["value"] >= 0.8
    assert "Liang" in v.source
    # both towers are pushed into narrow cones around ±e1
    assert any("cone/image" in a for a in v.evidence["also"])


def test_modality_gap_warns_when_growing(tmp_path):
    path = tmp_path / "gapgrow"
    data = Clusters(14)
    with Monitor(path, modalities=("image", "text"), **CADENCE) as mon:
        for step in range(STEPS):
            a, b, y = data.batch(0.2)
            shift = torch.zeros(D)
            shift[0] = 0.6 * step / (STEPS - 1)
            mon.log(step, a + shift, b - shift, labels=y, temperature=0.1)
    v = _by_rule(evaluate(read_run(path)))["modality_gap"]
    assert v.level == "warn"
    growth = [a for a in [v.reason, *v.evidence.get("also", [])] if "grew" in a]
    assert growth, v


def test_alignment_worsening_while_uniformity_improves(tmp_path):
    path = tmp_path / "trade"
    g = torch.Generator().manual_seed(15)
    axis = torch.zeros(D)
    axis[0] = 1.0
    with Monitor(path, **CADENCE) as mon:
        for step in range(STEPS):
            t = step / (STEPS - 1)
            # embeddings spread out of a narrow cone (uniformity improves) while views drift apart
            z = _unit((3.0 * (1 - t) + 0.2) * axis + torch.randn(B, D, generator=g) / math.sqrt(D))
            noise = (0.05 + 1.2 * t) * torch.randn(B, D, generator=g) / math.sqrt(D)
            mon.log(step, z + noise, z, temperature=0.2, loss=1.0)
    run = read_run(path)
    v = _by_rule(evaluate(run))["alignment_uniformity"]
    assert v.level == "alarm", v
    assert "uniformity improved" in v.reason
    assert v.evidence["value"] == pytest.approx(_tail_median(run, "alignment"), rel=1e-3)
    assert v.evidence["value"] - v.evidence["best"] >= 0.5
    assert v.evidence["uniformity"] < v.evidence["uniformity_then"] - 0.05


# ---------------------------------------------------------------------------------------------------------
# liveness and storage
def _set_heartbeat(path, seconds_ago: float, status: str = "running") -> None:
    store = RunStore(path)
    meta = store.read_meta()
    when = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds_ago)
    meta.update(status=status, heartbeat=when.isoformat(timespec="seconds"))
    store.write_meta(meta)


@pytest.fixture
def small_run(tmp_path):
    path = tmp_path / "small"
    with Monitor(path, **CADENCE) as mon:
        _healthy_steps(mon, seed=16, steps=12)
    return path


@pytest.mark.parametrize(("seconds_ago", "level"), [(10, "ok"), (600, "warn"), (7200, "alarm")])
def test_stale_running_run(small_run, seconds_ago, level):
    _set_heartbeat(small_run, seconds_ago)
    run = read_run(small_run)
    assert run.is_stale() == (level != "ok")
    v = _by_rule(evaluate(run))["liveness"]
    assert v.level == level
    assert v.evidence["value"] == pytest.approx(seconds_ago, abs=5)
    if level != "ok":
        assert "died" in v.reason


def test_live_process_that_writes_nothing_warns(small_run):
    _set_heartbeat(small_run, 5)
    old = time.time() - 3600
    for root, _, files in os.walk(small_run):
        for name in files:
            if name.endswith(".parquet"):
                os.utime(os.path.join(root, name), (old, old))
    v = _by_rule(evaluate(read_run(small_run)))["liveness"]
    assert v.level == "warn"
    assert "written no data" in v.reason
    assert v.evidence["last_write_age_s"] == pytest.approx(3600, abs=5)


def test_now_argument_drives_liveness(small_run):
    _set_heartbeat(small_run, 0)
    run = read_run(small_run)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=3)
    assert _by_rule(evaluate(run))["liveness"].level == "ok"
    assert _by_rule(evaluate(run, now=later))["liveness"].level == "alarm"
    naive = later.replace(tzinfo=None)  # naive means UTC
    assert _by_rule(evaluate(run, now=naive))["liveness"].level == "alarm"


def test_failed_run_alarms(tmp_path):
    path = tmp_path / "failed"
    with pytest.raises(RuntimeError), Monitor(path, **CADENCE) as mon:
        _healthy_steps(mon, seed=17, steps=6)
        raise RuntimeError("boom")
    v = _by_rule(evaluate(read_run(path)))["liveness"]
    assert v.level == "alarm"
    assert "failed" in v.reason


def test_unreadable_part_warns(small_run):
    (small_run / "scalars" / "part-999999999-junk.parquet").write_bytes(b"not parquet")
    run = read_run(small_run)
    v = _by_rule(evaluate(run))["storage"]
    assert v.level == "warn"
    assert v.evidence["value"] == 1
    assert "part-999999999-junk" in v.evidence["problems"][0]


# ---------------------------------------------------------------------------------------------------------
# rules that cannot apply are omitted, consistently
def test_rules_that_cannot_apply_are_omitted(tmp_path):
    path = tmp_path / "bare"
    data = Clusters(18)
    with Monitor(path, **CADENCE) as mon:
        for step in range(STEPS):
            a, b, _ = data.batch(0.2)
            mon.log(step, a, b)  # no labels, no temperature, one modality
    verdicts = evaluate(read_run(path))
    rules = {v.rule for v in verdicts}
    assert rules.isdisjoint({"tolerance", "temperature", "modality_gap", "false_negatives"})
    missing = {r["rule"]: r["needs"] for r in not_checked(verdicts)}
    assert set(missing) == {"tolerance", "temperature", "modality_gap", "false_negatives"}
    assert "labels" in missing["tolerance"]
    assert rules | set(missing) == {r.name for r in RULES}


def test_empty_run_only_checks_liveness_and_storage(tmp_path):
    path = tmp_path / "empty"
    Monitor(path).close()
    verdicts = evaluate(read_run(path))
    assert [v.rule for v in verdicts] == ["liveness", "storage"]
    assert worst_level(verdicts) == "ok"
    text = format_report(read_run(path), verdicts)
    assert "none logged yet" in text


# ---------------------------------------------------------------------------------------------------------
# API and reports
def test_verdict_validation_and_dict():
    v = Verdict(
        "x", "warn", "r", {"metric": "m", "step": np.int64(3), "value": np.float32(0.5)}, 0.1, "s", "a"
    )
    d = v.to_dict()
    assert d == {
        "rule": "x",
        "level": "warn",
        "reason": "r",
        "evidence": {"metric": "m", "step": 3, "value": 0.5},
        "threshold": 0.1,
        "source": "s",
        "action": "a",
    }
    assert type(d["evidence"]["step"]) is int
    assert (
        Verdict("x", "ok", "r", {"value": float("nan")}, "t", "s", "a").to_dict()["evidence"]["value"] is None
    )
    with pytest.raises(ValueError, match="level must be one of"):
        Verdict("x", "bad", "r", {}, "t", "s", "a")  # type: ignore[arg-type]
    assert hash(v) == hash(Verdict("x", "warn", "r", {}, 0.1, "s", "a"))


def test_worst_level():
    def mk(level):
        return Verdict("x", level, "r", {}, "t", "s", "a")

    assert worst_level([]) == "ok"
    assert worst_level([mk("ok"), mk("warn")]) == "warn"
    assert worst_level([mk("warn"), mk("alarm"), mk("ok")]) == "alarm"
    assert LEVELS == ("ok", "warn", "alarm")


def test_evaluate_rejects_bad_input(healthy):
    with pytest.raises(TypeError, match="cldiag Run"):
        evaluate("runs/x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="datetime"):
        evaluate(healthy, now=123.0)  # type: ignore[arg-type]


def test_report_dict_json_round_trip(healthy, healthy_verdicts):
    report = report_dict(healthy, healthy_verdicts)
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report
    assert report["name"] == healthy.name and report["path"] == healthy.path
    assert report["status"] == "finished" and report["level"] == "ok"
    assert report["steps"] == {"first": 0, "last": STEPS - 1, "logged": STEPS}
    figures = report["key_figures"]
    scalars = healthy.scalars()
    for metric in ("alignment", "uniformity", "effective_rank", "loss"):
        last = scalars[scalars.metric == metric].sort_values("step")["value"].iloc[-1]
        assert figures[metric] == pytest.approx(last, rel=1e-5)
    assert figures["modality_gap"] is None
    assert [v["rule"] for v in report["verdicts"]] == [v.rule for v in healthy_verdicts]
    unchecked = [{"rule": "modality_gap", "needs": "modality_gap (two-modality runs)"}]
    if "false_neg_penalty_share" not in set(healthy.scalars()["metric"]):  # until the Monitor logs it
        unchecked.append({"rule": "false_negatives", "needs": RULE_BY_NAME["false_negatives"].needs})
    assert report["not_checked"] == unchecked


def test_format_report_lists_every_rule(healthy, healthy_verdicts):
    text = format_report(healthy, healthy_verdicts)
    for v in healthy_verdicts:
        assert v.rule in text
        assert v.reason.split()[0] in text
    assert "modality_gap" in text and "not checked" in text
    assert text.splitlines()[-1] == "overall: OK"
    assert all(len(line) <= 100 for line in text.splitlines()[1:])  # line 0 holds the path


def test_format_report_puts_alarms_first_with_action_and_source(tmp_path):
    path = tmp_path / "nosep2"
    g = torch.Generator().manual_seed(19)
    with Monitor(path, **CADENCE) as mon:
        for step in range(STEPS):
            mon.log(step, torch.randn(B, D, generator=g), torch.randn(B, D, generator=g), temperature=0.2)
    run = read_run(path)
    verdicts = evaluate(run)
    text = format_report(run, verdicts)
    table = text.splitlines()[
        text.splitlines().index(next(s for s in text.splitlines() if s.startswith("LEVEL"))) + 1
    ]
    assert table.startswith("ALARM")
    assert "action:" in text and "source:" in text
    assert text.splitlines()[-1] == "overall: ALARM"
    report = report_dict(run, verdicts)
    assert report["level"] == "alarm"
    assert json.loads(json.dumps(report, allow_nan=False)) == report


def test_every_rule_documents_threshold_and_source():
    for rule in RULES:
        doc = rule.check.__doc__ or ""
        assert "Source:" in doc, rule.name
        assert rule.threshold and rule.source and rule.needs
        # the text is built from the constants the check compares against, each written once
        for cond in (*rule.alarm, *rule.warn):
            for value in cond.values:
                assert cond.fmt(value) in rule.threshold, (rule.name, cond.text)
    assert RULE_BY_NAME["score_separation"].threshold.startswith(
        f"alarm: overlap ≥ {T.OVERLAP_ALARM:g} or retrieval ≤ {T.RETRIEVAL_CHANCE_FACTOR:g}/B"
    )
    assert f"penalty entropy < {T.ENTROPY_LOW:g}" in RULE_BY_NAME["temperature"].threshold


ROOT = Path(__file__).resolve().parents[1]


def test_docs_table_matches_the_rules():
    docs = (ROOT / "docs" / "health.md").read_text(encoding="utf-8")
    for rule in RULES:
        row = f"| `{rule.name}` | {rule.title} | {rule.needs} | {rule.threshold} | {rule.source} |"
        assert row in docs, rule.name
    assert "\n".join(rules_table()) in docs


def test_readme_health_table_matches_the_rules():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Health verdicts") :]
    section = section[: section.index("\n## ", 1)]
    rows = rules_table(("rule", "threshold", "cite"))
    assert "\n".join(rows) in section
    for rule in RULES:
        assert f"| `{rule.name}` | {rule.threshold} | {rule.cite} |" in section, rule.name
    assert sum(line.startswith("| `") for line in section.splitlines()) == len(RULES)


def test_odd_hand_written_run_does_not_break_evaluate(tmp_path):
    """One point per metric, zeros everywhere, no dim in meta, tiny batch, a foreign status."""
    import pyarrow as pa

    from cldiag import __version__, schema

    store = RunStore(tmp_path / "odd")
    store.makedirs()
    meta = schema.new_meta(
        name="odd",
        config=None,
        modalities=("image", "text"),
        two_modality=True,
        dim=None,
        cldiag_version=__version__,
        torch_version="none",
    )
    meta["status"] = "paused"
    store.write_meta(meta)
    names = [getattr(schema, n) for n in dir(schema) if n.startswith("M_")]
    names += ["cone/image", "uniformity/text", "effective_rank/image"]
    values = [2.0 if n == schema.M_BATCH else 0.0 for n in names]
    store.write_part(
        "scalars",
        pa.table({"step": [5] * len(names), "metric": names, "value": values}, schema=schema.SCALARS),
        1,
    )
    spectra = {"step": [5] * 4, "modality": ["image"] * 4, "index": [0, 1, 2, 3], "eigenvalue": [0.0] * 4}
    store.write_part("spectra", pa.table(spectra, schema=schema.SPECTRA), 2)
    curve = {"step": [5], "tau": [0.1], "curve": ["entropy"], "value": [0.0]}
    store.write_part("temperature", pa.table(curve, schema=schema.TEMPERATURE), 3)
    run = read_run(tmp_path / "odd")
    verdicts = evaluate(run)
    by_rule = _by_rule(verdicts)
    assert set(by_rule) == {r.name for r in RULES}
    assert by_rule["liveness"].level == "warn" and "paused" in by_rule["liveness"].reason
    assert by_rule["complete_collapse"].level == "alarm"  # std 0 with d from the spectrum (4), uniformity 0
    # B = 2: retrieval at chance says nothing, but a zero overlap is still read
    assert not any("chance" in r for v in verdicts for r in [v.reason, *v.evidence.get("also", [])])
    report = report_dict(run, verdicts)
    assert json.loads(json.dumps(report, allow_nan=False)) == report
    assert "overall: ALARM" in format_report(run, verdicts)


SAMPLE_RUNS = Path(__file__).resolve().parents[1] / "sample_runs"


def test_bundled_sample_runs_get_the_verdicts_they_were_made_for():
    healthy = evaluate(read_run(SAMPLE_RUNS / "simclr-digits-tau0.2"))
    assert worst_level(healthy) == "ok", [(v.rule, v.level, v.reason) for v in healthy if v.level != "ok"]
    collapsed = _by_rule(evaluate(read_run(SAMPLE_RUNS / "collapse-no-negatives")))
    assert collapsed["complete_collapse"].level == "alarm"
    assert collapsed["dimensional_collapse"].level == "alarm"
    gap = _by_rule(evaluate(read_run(SAMPLE_RUNS / "clip-pairs-tau0.01")))
    assert gap["modality_gap"].level == "warn"


# ---------------------------------------------------------------------------------------------------------
# hostile numbers written into a part file, not through the Monitor
def _hostile_run(tmp_path: Path) -> Path:
    import pyarrow as pa

    from cldiag import schema

    path = tmp_path / "hostile"
    data = Clusters(20)
    with Monitor(path, **CADENCE) as mon:
        for step in range(12):
            a, b, y = data.batch(0.2)
            mon.log(step, a, b, labels=y, temperature=0.2, loss=2.0)
    rows = {
        "step": [-5, 2**62, 6, 7],
        "metric": ["uniformity", "loss", "alignment", "effective_rank"],
        "value": [float("nan"), 99.0, float("inf"), float("nan")],
    }
    RunStore(path).write_part("scalars", pa.table(rows, schema=schema.SCALARS), 10**6)
    return path


def test_nonfinite_values_written_into_a_part_alarm(tmp_path):
    run = read_run(_hostile_run(tmp_path))
    v = _by_rule(evaluate(run))["nonfinite"]
    assert v.level == "alarm", v.reason
    assert v.evidence["value"] == 2 and v.evidence["step"] == 6
    assert v.evidence["where"] == {"scalars": ["alignment", "effective_rank"]}


def test_implausible_steps_are_flagged_not_shown_as_a_range(tmp_path):
    run = read_run(_hostile_run(tmp_path))
    verdicts = evaluate(run)
    storage = _by_rule(verdicts)["storage"]
    assert storage.level == "warn", storage.reason
    assert storage.evidence["examples"] == [-5, 2**62]
    report = report_dict(run, verdicts)
    assert report["steps"] == {"first": 0, "last": 11, "logged": 12}
    assert report["implausible_steps"] == 2
    assert report["key_figures"]["loss"] == 2.0  # not the 99 written at step 2^62
    text = format_report(run, verdicts)
    assert "steps 0–11 (12 logged)" in text
    assert "steps -5" not in text and "–4611686018427387904" not in text


# ---------------------------------------------------------------------------------------------------------
# what the report's numbers are, and the report in Jupyter
def _flat(text: str) -> str:
    return " ".join(text.split())


def test_report_labels_last_values_and_window_medians(healthy, healthy_verdicts):
    align = healthy.scalars(["alignment"]).sort_values("step")
    last = float(align["value"].iloc[-1])
    ev = _by_rule(healthy_verdicts)["alignment_uniformity"].evidence
    assert f"{last:.3g}" != f"{ev['value']:.3g}"  # the same metric, two different numbers
    text = _flat(format_report(healthy, healthy_verdicts))
    assert f"key figures (last logged value, at step {STEPS - 1} unless noted):" in text
    assert f"alignment {last:.3g}," in text
    first, stop = ev["window"]
    assert f"alignment = {ev['value']:.3g} (median of steps {first}–{stop};" in text
    assert "median over the rule's window" in text
    report = report_dict(healthy, healthy_verdicts)
    assert "last logged value" in report["key_figures_note"] and "median" in report["key_figures_note"]
    assert report["key_figure_steps"]["alignment"] == int(align["step"].iloc[-1])


def test_report_object_matches_the_functions(healthy, healthy_verdicts):
    report = Report.from_run(healthy)
    assert report.to_dict() == report_dict(healthy, healthy_verdicts)
    assert report.to_text() == format_report(healthy, healthy_verdicts)
    assert report.level == "ok"
    with pytest.raises(TypeError, match="cldiag Run"):
        Report.from_run("runs/x")  # type: ignore[arg-type]


def test_report_repr_html_escapes_everything(tmp_path):
    import dataclasses
    import html

    path = tmp_path / "html"
    with Monitor(path, name='<img src=x onerror="alert(1)">', **CADENCE) as mon:
        _healthy_steps(mon, seed=21, steps=12)
    report = Report.from_run(read_run(path))
    page = report._repr_html_()
    assert "<img" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert "<table>" in page and page.count("<tr>") == 1 + len(RULES)  # header + verdicts + not checked
    for v in report.verdicts:
        assert html.escape(v.reason) in page and f"<code>{v.rule}</code>" in page
    evil = Verdict(
        "x<script>",
        "alarm",
        "<script>alert(1)</script>",
        {"metric": "<b>m</b>", "value": 1.0},
        "t<",
        "s&",
        "a>",
    )
    page = dataclasses.replace(report, verdicts=(evil,))._repr_html_()
    assert "<script>" not in page and "<b>m" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;b&gt;m&lt;/b&gt;" in page
    assert "a&gt;" in page and "s&amp;" in page and "ALARM" in page
