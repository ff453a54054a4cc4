"""The Lab stores what each held-out sample is as snapshot metadata (issue 16)."""

from __future__ import annotations

from cldiag import read_run
from cldiag.lab.data import CAPTION_ATTRIBUTES
from cldiag.lab.trainer import LabConfig, train


def test_paired_digits_snapshot_says_what_each_image_and_caption_is(tmp_path):
    config = LabConfig(
        data="pairs", loss="clip", batch_size=32, steps=5, hidden_dim=16, embed_dim=8, eval_every=5
    )
    run = read_run(train(config, str(tmp_path / "pairs")).run_dir)
    emb = run.embeddings(5)
    image, text = emb[emb.modality == "image"], emb[emb.modality == "text"]
    assert image.sample_id.tolist() == text.sample_id.tolist() and len(image) > 100
    for sid, label, meta in image[["sample_id", "label", "meta"]].itertuples(index=False):
        assert meta == f"digit {label}, held-out sample {sid}"
    for label, meta in text[["label", "meta"]].itertuples(index=False):
        words = [w for w, members in CAPTION_ATTRIBUTES if label in members]
        assert meta.startswith(f"caption of a {label}: ") and all(w in meta for w in words)
    worst = run.worst_pairs(5, 3, k=2)  # the Pairs view reads these texts
    assert (
        worst.anchor_meta.str.startswith("digit ").all() and worst.meta.str.startswith("caption of a ").all()
    )


def test_toy_snapshot_names_its_probe_rows(tmp_path):
    config = LabConfig(data="toy", loss="info_nce", batch_size=32, steps=5, eval_every=5)
    emb = read_run(train(config, str(tmp_path / "toy")).run_dir).embeddings(5)
    assert emb.meta.tolist() == [f"toy probe sample {i}" for i in emb.sample_id]
