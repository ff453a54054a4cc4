"""A Lab run writes each issue-15 diagnostic once per step: the Monitor's pairwise step logs ranks,
ordering and false negatives, the Lab only what the Monitor cannot (Symile, per-pair gaps)."""

from __future__ import annotations

from dataclasses import replace

from cldiag import read_run, schema
from cldiag.lab.trainer import LabConfig, train

ISO = LabConfig(
    data="imbalanced-prototypes",
    loss="isogclr",
    temperature=0.1,
    batch_size=32,
    hidden_dim=32,
    steps=26,
    eval_every=25,
    snapshot_every=0,
)


def _no_rejected_rows(recwarn) -> None:
    # The Monitor refuses a second row for a (step, metric) with a warning rather than writing it twice.
    rejected = [str(w.message) for w in recwarn if "comes after step" in str(w.message)]
    assert not rejected, rejected


def test_lab_run_has_no_duplicate_rows_and_monitor_logged_literature(tmp_path, recwarn):
    result = train(ISO, str(tmp_path / "iso"))
    assert result.status == "finished"
    _no_rejected_rows(recwarn)
    df = read_run(result.run_dir).scalars()
    assert not df.duplicated(["step", "metric"]).any()
    for name in (
        schema.M_MRR,
        schema.M_RECALL_AT_10,
        schema.M_ORDERING_VIOLATIONS,
        schema.M_FALSE_NEG_SHARE,
        schema.M_FALSE_NEG_PENALTY_SHARE,
    ):
        assert sorted(df[df.metric == name]["step"]) == [0, 25], name


def test_three_modality_lab_run_has_no_duplicate_rows(tmp_path, recwarn):
    config = replace(ISO, data="xor-triples", loss="symile", temperature=0.05, embed_dim=16)
    result = train(config, str(tmp_path / "xor"))
    _no_rejected_rows(recwarn)
    df = read_run(result.run_dir).scalars()
    assert not df.duplicated(["step", "metric"]).any()
    assert {schema.M_MRR, schema.M_MIP_POS, schema.pair_metric(schema.M_PAIR_GAP, "a", "c")} <= set(df.metric)
