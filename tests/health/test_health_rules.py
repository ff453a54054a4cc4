"""Each health rule on hand-built DataFrames (no files): it fires on the side of its threshold the
registry says, and stays quiet on the other side. The thresholds come from cldiag.health.thresholds, so
these tests also check that the text a user reads is the number the code applies."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from cldiag import schema
from cldiag.health import RULE_BY_NAME, RULES, Condition, RunTables, Verdict, evaluate, evaluate_tables
from cldiag.health import thresholds as T
from cldiag.health.tables import Context, empty_table

N = 10  # points per metric: windows of 3, series long enough for trend checks
NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)


def scalars(series: dict[str, list[float] | float], steps: list[int] | None = None) -> pd.DataFrame:
    """Long scalars table: each metric logged at ``steps`` (default 0 … N−1); a float is a constant series."""
    rows = []
    for metric, values in series.items():
        values = [values] * N if isinstance(values, float | int) else list(values)
        at = steps if steps is not None else list(range(len(values)))
        rows += [(s, metric, float(v)) for s, v in zip(at, values, strict=True)]
    return pd.DataFrame(rows, columns=["step", "metric", "value"]).astype({"step": "int64"})


def tables(series: dict | None = None, *, meta: dict | None = None, **kwargs) -> RunTables:
    base_meta = {"status": "finished", "dim": 100, "modalities": ["view1", "view2"], "two_modality": False}
    return RunTables(
        scalars=scalars(series or {}) if not isinstance(series, pd.DataFrame) else series,
        meta={**base_meta, **(meta or {})},
        **kwargs,
    )


def verdict(rule: str, t: RunTables) -> Verdict | None:
    return RULE_BY_NAME[rule].apply(Context.load(t, NOW))


def level(rule: str, t: RunTables) -> str | None:
    v = verdict(rule, t)
    return None if v is None else v.level


# ---------------------------------------------------------------------------------------------------------
# complete collapse: std_l2·√d (d = 100, so std_l2 = ratio / 10) and uniformity
@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        (T.STD_RATIO_ALARM * 0.99, "alarm"),
        (T.STD_RATIO_ALARM * 1.01, "warn"),
        (T.STD_RATIO_WARN * 0.99, "warn"),
        (T.STD_RATIO_WARN * 1.01, "ok"),
    ],
)
def test_complete_collapse_std_thresholds(ratio, expected):
    v = verdict("complete_collapse", tables({schema.M_STD_L2: ratio / 10}))
    assert v.level == expected
    assert v.evidence["ratio_to_isotropic"] == pytest.approx(ratio, rel=1e-3)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (T.UNIFORMITY_ALARM + 0.01, "alarm"),
        (T.UNIFORMITY_ALARM - 0.01, "warn"),
        (T.UNIFORMITY_WARN + 0.01, "warn"),
        (T.UNIFORMITY_WARN - 0.01, "ok"),
    ],
)
def test_complete_collapse_uniformity_thresholds(value, expected):
    assert level("complete_collapse", tables({schema.M_UNIFORMITY: value})) == expected


def test_complete_collapse_reads_per_modality_uniformity():
    meta = {"two_modality": True, "modalities": ["image", "text"]}
    t = tables({schema.M_UNIFORMITY: -3.0, "uniformity/image": -3.0, "uniformity/text": -0.01}, meta=meta)
    v = verdict("complete_collapse", t)
    assert v.level == "alarm" and v.evidence["metric"] == "uniformity/text"


# ---------------------------------------------------------------------------------------------------------
# dimensional collapse: cap = min(batch rows, d) = min(1000, 100) = 100
@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        (T.RANK_FRACTION_ALARM * 0.99, "alarm"),
        (T.RANK_FRACTION_WARN * 0.99, "warn"),
        (T.RANK_FRACTION_WARN * 1.01, "ok"),
    ],
)
def test_dimensional_collapse_rank_fraction(fraction, expected):
    v = verdict("dimensional_collapse", tables({schema.M_RANK: 100 * fraction, schema.M_BATCH: 1000.0}))
    assert v.level == expected
    assert v.evidence["cap"] == 100
    assert v.evidence["fraction_of_cap"] == pytest.approx(fraction, rel=1e-3)


@pytest.mark.parametrize(
    ("drop", "expected"), [(T.RANK_DROP_WARN + 0.02, "warn"), (T.RANK_DROP_WARN - 0.02, "ok")]
)
def test_dimensional_collapse_rank_drop(drop, expected):
    ranks = [80.0] * 5 + [80.0 * (1 - drop)] * 5
    v = verdict("dimensional_collapse", tables({schema.M_RANK: ranks, schema.M_BATCH: 1000.0}))
    assert v.level == expected
    if expected == "warn":
        assert "fell by" in v.reason and v.evidence["peak"] == 80.0


def spectrum(eigenvalues: list[float], steps: range = range(3)) -> pd.DataFrame:
    rows = [(s, "view1", i, lam) for s in steps for i, lam in enumerate(eigenvalues)]
    df = pd.DataFrame(rows, columns=["step", "modality", "index", "eigenvalue"])
    return df.astype({"step": "int64", "index": "int32"})


@pytest.mark.parametrize(
    ("at_floor", "expected"),
    [
        (0, "ok"),
        (1, "warn"),
        (round(8 * T.FLOOR_SHARE_ALARM) - 1, "warn"),
        (round(8 * T.FLOOR_SHARE_ALARM), "alarm"),
    ],
)
def test_dimensional_collapse_float_floor(at_floor, expected):
    above = 2 * T.FLOOR_RELATIVE  # just above the floor relative to a top eigenvalue of 1
    lam = [1.0] + [above] * (7 - at_floor) + [T.FLOOR_RELATIVE * 0.5] * at_floor
    v = verdict("dimensional_collapse", tables(meta={"dim": 8}, spectra=spectrum(lam)))
    assert v.level == expected
    assert v.evidence["value"] == at_floor and v.evidence["directions"] == 8


# ---------------------------------------------------------------------------------------------------------
# score separation
@pytest.mark.parametrize(
    ("overlap", "expected"),
    [(T.OVERLAP_ALARM, "alarm"), (T.OVERLAP_ALARM - 0.01, "warn"), (T.OVERLAP_WARN, "warn")],
)
def test_score_separation_overlap_levels(overlap, expected):
    v = verdict("score_separation", tables({schema.M_OVERLAP: overlap}))
    assert v.level == expected and "overlap by" in v.reason


def test_score_separation_falling_overlap_is_ok_and_stall_warns():
    falling = list(np.linspace(0.9, 0.1, N))
    assert level("score_separation", tables({schema.M_OVERLAP: falling})) == "ok"
    stalled = [T.OVERLAP_STALL_MIN + 0.1] * N  # below warn, not falling
    v = verdict("score_separation", tables({schema.M_OVERLAP: stalled}))
    assert v.level == "warn" and "not falling" in v.reason


@pytest.mark.parametrize(
    ("batch", "retrieval", "expected"),
    [
        (64.0, T.RETRIEVAL_CHANCE_FACTOR / 64, "alarm"),
        (64.0, T.RETRIEVAL_CHANCE_FACTOR / 64 + 0.01, "ok"),
        (float(T.RETRIEVAL_MIN_BATCH), 0.0, "ok"),  # too few candidates to judge
        (float(T.RETRIEVAL_MIN_BATCH + 1), 0.0, "alarm"),
    ],
)
def test_score_separation_retrieval_at_chance(batch, retrieval, expected):
    v = verdict("score_separation", tables({schema.M_RETRIEVAL: retrieval, schema.M_BATCH: batch}))
    assert v.level == expected


def test_score_separation_of_n_modalities_judges_the_multilinear_scores():
    # Symile on an XOR-style set: the first pair is at chance by design, the triples are well separated.
    pair_at_chance = {schema.M_OVERLAP: 0.95, schema.M_RETRIEVAL: 0.0, schema.M_BATCH: 128.0}
    v = verdict("score_separation", tables({**pair_at_chance, schema.M_MIP_OVERLAP: 0.09}))
    assert v.level == "ok" and v.evidence["metric"] == schema.M_MIP_OVERLAP
    v = verdict("score_separation", tables({**pair_at_chance, schema.M_MIP_OVERLAP: T.OVERLAP_ALARM}))
    assert v.level == "alarm" and "matched from mismatched tuples" in v.reason
    assert level("score_separation", tables(pair_at_chance)) == "alarm"  # two modalities: the pair is judged


def test_score_separation_short_series_is_at_most_warn():
    t = tables(scalars({schema.M_OVERLAP: [0.9] * 4}))
    assert level("score_separation", t) == "warn"


# ---------------------------------------------------------------------------------------------------------
# temperature, tolerance, modality gap, alignment
@pytest.mark.parametrize(
    ("entropy", "expected", "words"),
    [
        (T.ENTROPY_LOW - 0.01, "warn", "too low"),
        (T.ENTROPY_LOW, "ok", "weighs hard"),
        (T.ENTROPY_HIGH, "ok", "weighs hard"),
        (T.ENTROPY_HIGH + 0.001, "warn", "too high"),
    ],
)
def test_temperature_band(entropy, expected, words):
    v = verdict("temperature", tables({schema.M_ENTROPY: entropy, schema.M_TEMPERATURE: 0.1}))
    assert v.level == expected and words in v.reason
    assert v.evidence["tau"] == 0.1
    if expected == "warn":
        assert f"[{T.ENTROPY_LOW}, {T.ENTROPY_HIGH}]" in v.action


def test_temperature_action_names_the_band_of_the_latest_curve():
    curve = pd.DataFrame(
        {"step": 9, "tau": [0.01, 0.1, 0.5, 1.0], "curve": "entropy", "value": [0.1, 0.4, 0.9, 0.99]}
    ).astype({"step": "int64"})
    v = verdict("temperature", tables({schema.M_ENTROPY: 0.1}, temperature=curve))
    assert v.evidence["tau_band"] == [0.1, 0.5]
    assert "τ in [0.1, 0.5]" in v.action


@pytest.mark.parametrize(("margin", "expected"), [(T.MARGIN_MIN - 0.01, "warn"), (T.MARGIN_MIN + 0.01, "ok")])
def test_tolerance_margin(margin, expected):
    v = verdict("tolerance", tables({schema.M_TOLERANCE: 0.3 + margin, schema.M_NEG_SIM: 0.3}))
    assert v.level == expected
    assert v.evidence["margin"] == pytest.approx(margin, abs=1e-9)


def test_tolerance_uses_the_cone_in_two_modality_runs():
    meta = {"two_modality": True, "modalities": ["image", "text"]}
    t = tables({schema.M_TOLERANCE: 0.5, schema.M_NEG_SIM: 0.0, "cone/image": 0.48}, meta=meta)
    v = verdict("tolerance", t)
    assert v.level == "warn" and v.evidence["baseline_metric"] == "cone/image"


def test_tolerance_margin_drop():
    tol = [0.8] * 5 + [0.8 - T.MARGIN_DROP_WARN - 0.05] * 5
    v = verdict("tolerance", tables({schema.M_TOLERANCE: tol, schema.M_NEG_SIM: 0.0}))
    assert v.level == "warn" and "drift apart" in v.reason


@pytest.mark.parametrize(
    ("gap", "cone", "expected"),
    [(T.GAP_WARN, 0.5, "warn"), (T.GAP_WARN - 0.01, 0.5, "ok"), (0.2, T.CONE_WARN, "warn")],
)
def test_modality_gap_levels(gap, cone, expected):
    meta = {"two_modality": True, "modalities": ["image", "text"]}
    v = verdict("modality_gap", tables({schema.M_GAP: gap, "cone/image": cone, "cone/text": 0.5}, meta=meta))
    assert v.level == expected


def test_modality_gap_growth():
    grow = [0.2] * 5 + [0.2 + T.GAP_GROWTH_WARN + 0.05] * 5
    assert 0.2 + T.GAP_GROWTH_WARN + 0.05 >= T.GAP_GROWTH_MIN
    v = verdict("modality_gap", tables({schema.M_GAP: grow}))
    assert v.level == "warn" and "grew" in v.reason


@pytest.mark.parametrize(
    ("rise", "expected"),
    [
        (T.ALIGN_RISE_ALARM + 0.01, "alarm"),
        (T.ALIGN_RISE_WARN + 0.01, "warn"),
        (T.ALIGN_RISE_WARN - 0.01, "ok"),
    ],
)
def test_alignment_rise(rise, expected):
    align = [0.2] * 5 + [0.2 + rise] * 5
    unif = [-2.0] * 5 + [-2.0 - T.UNIFORMITY_GAIN - 0.01] * 5
    v = verdict("alignment_uniformity", tables({schema.M_ALIGNMENT: align, schema.M_UNIFORMITY: unif}))
    assert v.level == expected
    if expected != "ok":
        assert "uniformity improved" in v.reason


# ---------------------------------------------------------------------------------------------------------
# liveness
def running(seconds_ago: float, last_write_ago: float | None = None) -> RunTables:
    beat = (NOW - dt.timedelta(seconds=seconds_ago)).isoformat()
    last = None if last_write_ago is None else NOW.timestamp() - last_write_ago
    return tables(meta={"status": "running", "heartbeat": beat}, last_write=last)


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (T.HEARTBEAT_WARN_S - 1, "ok"),
        (T.HEARTBEAT_WARN_S + 1, "warn"),
        (T.HEARTBEAT_ALARM_S - 1, "warn"),
        (T.HEARTBEAT_ALARM_S + 1, "alarm"),
    ],
)
def test_liveness_heartbeat_age(age, expected):
    v = verdict("liveness", running(age))
    assert v.level == expected
    assert v.evidence["value"] == pytest.approx(age)


@pytest.mark.parametrize(("quiet", "expected"), [(T.QUIET_WARN_S - 1, "ok"), (T.QUIET_WARN_S + 1, "warn")])
def test_liveness_quiet_writer(quiet, expected):
    assert level("liveness", running(5, last_write_ago=quiet)) == expected


def test_liveness_status():
    assert level("liveness", tables(meta={"status": "failed"})) == "alarm"
    v = verdict("liveness", tables(meta={"status": "paused"}))
    assert v.level == "warn" and v.action == "Check how the run was written."
    assert level("liveness", tables(meta={"status": "running"})) == "warn"  # no heartbeat


# ---------------------------------------------------------------------------------------------------------
# non-finite values anywhere, implausible steps, storage
def test_nonfinite_rows_in_the_recent_window_alarm_and_earlier_warn():
    late = [0.0] * (N - 1) + [0.25]
    v = verdict("nonfinite", tables({schema.M_NONFINITE: late}))
    assert v.level == "alarm" and v.evidence["value"] == 0.25
    early = [0.25] + [0.0] * (N - 1)
    assert level("nonfinite", tables({schema.M_NONFINITE: early})) == "warn"
    assert level("nonfinite", tables({schema.M_NONFINITE: 0.0})) == "ok"
    assert verdict("nonfinite", tables({schema.M_BATCH: 64.0})) is None  # nothing to judge


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nonfinite_value_in_scalars_alarms(bad):
    values = [1.0] * N
    values[4] = bad
    v = verdict("nonfinite", tables({schema.M_UNIFORMITY: values}))
    assert v.level == "alarm"
    assert v.evidence["value"] == 1 and v.evidence["step"] == 4
    assert v.evidence["where"] == {"scalars": ["uniformity"]}
    # the other rules read the finite points only
    assert verdict("complete_collapse", tables({schema.M_UNIFORMITY: values})).level == "alarm"


def test_nonfinite_values_in_spectra_temperature_and_histograms_alarm():
    lam = spectrum([1.0, float("nan"), 0.5])
    curve = pd.DataFrame({"step": [0], "tau": [0.1], "curve": ["entropy"], "value": [float("inf")]})
    hist = empty_table("histograms")
    hist = pd.DataFrame(
        {"step": [0], "kind": ["pos"], "bin_left": [float("nan")], "bin_right": [1.0], "count": [3]}
    ).astype(hist.dtypes.to_dict())
    for kwargs, table in (
        (dict(spectra=lam), "spectra"),
        (dict(temperature=curve.astype({"step": "int64"})), "temperature"),
        (dict(histograms=hist), "histograms"),
    ):
        v = verdict("nonfinite", tables(**kwargs))
        assert v is not None and v.level == "alarm", table
        assert list(v.evidence["tables"]) == [table]


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (-1, "warn"),
        (-5, "warn"),
        (0, "ok"),
        (T.MAX_PLAUSIBLE_STEP, "ok"),
        (T.MAX_PLAUSIBLE_STEP + 1, "warn"),
        (2**62, "warn"),
    ],
)
def test_storage_flags_implausible_steps(step, expected):
    df = scalars({schema.M_LOSS: [1.0] * 3}, steps=[1, 2, step])
    v = verdict("storage", tables(df))
    assert v.level == expected
    if expected == "warn":
        assert v.evidence["value"] == 1 and v.evidence["examples"] == [step]
        assert "2^53" in v.reason


def test_implausible_steps_are_left_out_of_the_windows():
    df = scalars({schema.M_UNIFORMITY: [-3.0] * 5 + [-0.01]}, steps=[0, 1, 2, 3, 4, -5])
    v = verdict("complete_collapse", tables(df))
    assert v.level == "ok" and v.evidence["window"] == [2, 4]


def test_storage_lists_skipped_parts():
    v = verdict("storage", tables(problems=("scalars/part-1.parquet: bad",)))
    assert v.level == "warn" and v.evidence["problems"] == ["scalars/part-1.parquet: bad"]


# ---------------------------------------------------------------------------------------------------------
# evaluate over tables, and the registry
def test_evaluate_accepts_tables_and_omits_rules_that_cannot_apply():
    verdicts = evaluate(tables({schema.M_UNIFORMITY: -3.0}), now=NOW)
    assert [v.rule for v in verdicts] == ["liveness", "complete_collapse", "storage"]
    assert verdicts == evaluate_tables(tables({schema.M_UNIFORMITY: -3.0}), now=NOW)
    with pytest.raises(TypeError, match="cldiag Run"):
        evaluate({"scalars": []})  # type: ignore[arg-type]


def test_every_level_a_rule_gives_has_an_action():
    for rule in RULES:
        assert set(rule.levels) <= set(rule.actions), rule.name
        assert rule.cite and rule.cite.split()[0] in rule.source, rule.name


def test_threshold_text_is_generated_from_the_constants():
    for rule in RULES:
        text = rule.threshold
        assert text == T.threshold_text(rule.alarm, rule.warn)
        for cond in (*rule.alarm, *rule.warn):
            for value in cond.values:
                assert cond.fmt(value) in text, (rule.name, cond.text)
    sep = RULE_BY_NAME["score_separation"].threshold
    assert sep.startswith(
        f"alarm: overlap ≥ {T.OVERLAP_ALARM:g} or retrieval ≤ {T.RETRIEVAL_CHANCE_FACTOR:g}/B"
    )
    assert "uniformity > −0.1" in RULE_BY_NAME["complete_collapse"].threshold
    assert "heartbeat > 30 min old" in RULE_BY_NAME["liveness"].threshold
    assert "fallen ≥ 50 % from its peak" in RULE_BY_NAME["dimensional_collapse"].threshold


def test_every_threshold_constant_is_shown_by_some_rule():
    shown = {v for rule in RULES for c in (*rule.alarm, *rule.warn) for v in c.values}
    constants = {
        name: getattr(T, name)
        for name in dir(T)
        if name.isupper() and name not in {"WINDOW_FRACTION", "MIN_WINDOW_POINTS"}
    }
    missing = [name for name, value in constants.items() if value not in shown]
    assert not missing


def test_condition_validation_and_formatting():
    with pytest.raises(ValueError, match="slots"):
        Condition("x ≥ {}")
    with pytest.raises(ValueError, match="at least one"):
        T.threshold_text((), ())
    with pytest.raises(ValueError, match="power of two"):
        T.power_of_two(6)
    assert T.number(-0.5) == "−0.5" and T.number(1e-10) == "1e−10"
    assert T.percent(0.25) == "25 %" and T.minutes(900) == "15 min" and T.power_of_two(2**53) == "2^53"
    assert T.either([Condition("a"), Condition("b"), Condition("c")]) == "a, b or c"


def test_odd_meta_values_do_not_break_the_rules():
    meta = {"modalities": 5, "dim": True, "two_modality": "yes", "status": None, "last_step": 2**62}
    verdicts = evaluate(tables({schema.M_UNIFORMITY: -3.0, schema.M_STD_L2: 0.1}, meta=meta), now=NOW)
    by_rule = {v.rule: v for v in verdicts}
    assert by_rule["liveness"].level == "warn"  # status "None" is unknown
    assert "std_l2" not in by_rule["complete_collapse"].reason  # dim True is not a dimension


# ---------------------------------------------------------------------------------------------------------
# false negatives: share of the negative penalty on same-label negatives
@pytest.mark.parametrize(
    ("share", "expected"),
    [(T.FALSE_NEG_PENALTY_WARN * 1.01, "warn"), (T.FALSE_NEG_PENALTY_WARN * 0.99, "ok")],
)
def test_false_negatives_threshold(share, expected):
    t = tables({schema.M_FALSE_NEG_PENALTY_SHARE: share, schema.M_FALSE_NEG_SHARE: 0.1})
    v = verdict("false_negatives", t)
    assert v.level == expected
    assert v.evidence["count_share"] == pytest.approx(0.1)
    assert v.evidence["concentration"] == pytest.approx(share / 0.1, rel=1e-3)
    assert f"{share:.0%} of the negative penalty" in v.reason and "10.0% of the negatives" in v.reason


def test_false_negatives_reads_the_recent_window_and_needs_the_metric():
    # One early spike far above the cut-off, a recent window below it: ok.
    spike = [0.95] + [0.2] * (N - 1)
    assert level("false_negatives", tables({schema.M_FALSE_NEG_PENALTY_SHARE: spike})) == "ok"
    # Rising into the cut-off over the recent window: warn, even without the count share.
    rising = [0.1] * (N - 3) + [0.85, 0.9, 0.95]
    v = verdict("false_negatives", tables({schema.M_FALSE_NEG_PENALTY_SHARE: rising}))
    assert v.level == "warn" and "count_share" not in v.evidence
    assert verdict("false_negatives", tables({schema.M_FALSE_NEG_SHARE: 0.5})) is None
    assert "80 %" in RULE_BY_NAME["false_negatives"].threshold


# ---------------------------------------------------------------------------------------------------------
# the shared window helpers the rules read trends with
def test_series_windows_and_their_evidence():
    # 10 points → windows of 3 counted back from the end: steps 1–3, 4–6, 7–9 (step 0 left over).
    ctx = Context.load(tables({schema.M_OVERLAP: [9, 5, 6, 7, 1, 2, 3, 8, 8, 8]}), NOW)
    overlap = ctx.get(schema.M_OVERLAP)
    assert [w.median for w in overlap.chunks()] == [6.0, 2.0, 8.0]
    low, high = overlap.lowest(), overlap.highest()
    assert (low.median, low.first_step, low.last_step) == (2.0, 4, 6)
    assert (high.median, high.first_step, high.last_step) == (8.0, 7, 9)
    assert low.steps_text == "steps 4–6"
    assert low.evidence_as("best") == {"best": 2.0, "best_window": [4, 6]}
    assert low.evidence_as("best_margin", "best_window") == {"best_margin": 2.0, "best_window": [4, 6]}
    assert ctx.recent(schema.M_OVERLAP) == 8.0 and ctx.recent(schema.M_GAP) is None


def test_trend_findings_name_their_reference_window():
    # Falling from 0.6 (so not stalled) to its best 0.05 at steps 4–6, then back up to 0.4: risen by 0.35.
    rose = [0.6] * 3 + [0.05] * 4 + [0.4] * 3
    v = verdict("score_separation", tables({schema.M_OVERLAP: rose}))
    assert v.level == "warn" and "(steps 4–6)" in v.reason
    assert v.evidence["best"] == 0.05 and v.evidence["best_window"] == [4, 6]
    grew = [0.4] * 3 + [0.3] * 4 + [0.6] * 3  # smallest window 0.3 at steps 4–6, recent 0.6: grown by 0.3
    meta = {"two_modality": True, "modalities": ["image", "text"]}
    v = verdict("modality_gap", tables({schema.M_GAP: grew}, meta=meta))
    assert v.level == "warn" and "grew from 0.30 (steps 4–6) to 0.60" in v.reason
    assert v.evidence["smallest"] == 0.3 and v.evidence["smallest_window"] == [4, 6]
