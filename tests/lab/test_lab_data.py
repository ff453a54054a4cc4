"""Lab data sets, encoders and the kNN probe, checked against hand-made inputs and NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cldiag.lab.data import (
    CAPTION_ATTRIBUTES,
    ClutteredDigitsViews,
    DigitsViews,
    GaussianToy,
    HiddenPrototypes,
    PairedDigitsCaptions,
    augment_digits,
    digit_captions,
    load_digits_split,
)
from cldiag.lab.models import MLP, Encoder, LinearMap, SmallCNN, build_backbone, reset_parameters
from cldiag.lab.probe import knn_accuracy


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- digits -----------------------------------------------------------------------------------------------


def test_split_sizes_and_range():
    x_train, y_train, x_test, y_test = load_digits_split()
    assert x_train.shape == (1400, 1, 8, 8) and x_test.shape == (397, 1, 8, 8)
    assert y_train.shape == (1400,) and y_test.shape == (397,)
    assert float(x_train.min()) == 0.0 and float(x_train.max()) == 1.0
    assert set(y_test.tolist()) == set(range(10))
    # The split is a fixed partition: no image is in both halves.
    train_rows = {tuple(r) for r in x_train.flatten(1).numpy().round(4)}
    overlap = sum(tuple(r) in train_rows for r in x_test.flatten(1).numpy().round(4))
    assert overlap < 5  # the digits set has a few exact duplicate images, never the same sample twice


def test_augment_strength_zero_is_identity_and_one_changes_images():
    x = load_digits_split()[0][:32]
    assert torch.equal(augment_digits(x, 0.0, gen()), x)
    out = augment_digits(x, 1.0, gen())
    assert out.shape == x.shape
    assert float((out - x).abs().mean()) > 0.1


def test_augment_shift_moves_a_pixel_by_at_most_one():
    x = torch.zeros(500, 1, 8, 8)
    x[:, 0, 4, 4] = 10.0  # far above the noise, so its position is unambiguous unless erased
    out = augment_digits(x, 1.0, gen(1))
    flat = out.flatten(1)
    visible = flat.max(dim=1).values > 5
    assert int(visible.sum()) > 100  # a 4×4 erase covers the centre often at strength 1
    idx = flat.argmax(dim=1)[visible]
    offsets = set(zip((idx // 8 - 4).tolist(), (idx % 8 - 4).tolist(), strict=True))
    assert offsets == {(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)}


def test_augment_noise_std_scales_with_strength():
    x = torch.full((4000, 1, 8, 8), 0.5)
    for s in (0.2, 0.6):
        out = augment_digits(x, s, gen())
        kept = (out != 0).flatten()  # erased pixels are exactly 0
        # Shifts bring in zero padding at the borders; the centre 6×6 is never padding.
        centre = out[:, :, 1:7, 1:7].flatten()
        centre = centre[centre != 0]
        assert kept.any()
        assert float(centre.std()) == pytest.approx(0.3 * s, rel=0.05)


def test_augment_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 8\).*\(3, 64\)"):
        augment_digits(torch.zeros(3, 64), 0.5, gen())
    with pytest.raises(ValueError, match=r"\[0, 1\].*1.5"):
        augment_digits(torch.zeros(3, 1, 8, 8), 1.5, gen())


def test_digit_views_are_seeded():
    a, b = DigitsViews(0.5, seed=3).sample(16), DigitsViews(0.5, seed=3).sample(16)
    assert torch.equal(a.a, b.a) and torch.equal(a.labels, b.labels)
    c = DigitsViews(0.5, seed=4).sample(16)
    assert not torch.equal(a.a, c.a)
    assert not torch.equal(a.a, a.b)  # two different views


def test_captions_encode_digit_and_attributes():
    labels = torch.arange(10)
    captions = digit_captions(labels, 0.0, gen())
    assert captions.shape == (10, 16)
    assert torch.equal(captions[:, :10], torch.eye(10))
    for k, (_, members) in enumerate(CAPTION_ATTRIBUTES):
        assert captions[:, 10 + k].tolist() == [float(d in members) for d in range(10)]
    # Spot-check the meaning: 7 is odd, > 4, prime.
    assert captions[7, 10:13].tolist() == [0.0, 1.0, 1.0]
    noisy = digit_captions(torch.zeros(20000, dtype=torch.long), 0.3, gen())
    assert float(
        (noisy - digit_captions(torch.zeros(1, dtype=torch.long), 0.0, gen())).std()
    ) == pytest.approx(0.3, rel=0.02)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        digit_captions(torch.tensor([10]), 0.3, gen())


def test_pairs_batch_matches_labels():
    data = PairedDigitsCaptions(0.5, seed=0, caption_noise=0.0)
    batch = data.sample(64)
    assert batch.a.shape == (64, 1, 8, 8) and batch.b.shape == (64, 16)
    assert torch.equal(batch.b[:, :10].argmax(dim=1), batch.labels)
    c_train, c_test = data.eval_captions()
    assert c_train.shape == (1400, 16) and c_test.shape == (397, 16)


def test_toy_noise_per_dimension_group():
    toy = GaussianToy(noise_high=1.5, seed=0, noise_low=0.5)
    batch = toy.sample(20000)
    diff = (batch.a - batch.b).std(dim=0)  # difference of two views: std * sqrt(2)
    np.testing.assert_allclose(diff[:8].numpy(), 0.5 * np.sqrt(2), rtol=0.03)
    np.testing.assert_allclose(diff[8:].numpy(), 1.5 * np.sqrt(2), rtol=0.03)
    assert batch.labels is None
    assert toy.probe.shape == (512, 16)
    with pytest.raises(ValueError, match="noise"):
        GaussianToy(noise_high=-1.0)


def test_raw_knn_is_poor_where_the_class_hides_under_nuisance():
    digits = DigitsViews()
    x_train, y_train, x_test, y_test = digits.eval_sets()
    plain = knn_accuracy(x_train.flatten(1), y_train, x_test.flatten(1), y_test)
    assert plain > 0.95  # why the lab needs harder data: raw pixels already classify digits

    cluttered = ClutteredDigitsViews(clutter_std=0.75)
    x_train, y_train, x_test, y_test = cluttered.eval_sets()
    assert x_train.shape == (1400, 128)
    assert knn_accuracy(x_train, y_train, x_test, y_test) < 0.6

    protos = HiddenPrototypes()
    x_train, y_train, x_test, y_test = protos.eval_sets()
    assert x_train.shape == (2000, 64)
    assert knn_accuracy(x_train, y_train, x_test, y_test) < 0.2
    # The signal dims alone carry the class: the nuisance is what hides it.
    assert knn_accuracy(x_train[:, :8], y_train, x_test[:, :8], y_test) > 0.85
    batch = protos.sample(16)
    assert torch.allclose(batch.a[:, :8], batch.b[:, :8], atol=1.0)  # signal shared up to small noise
    assert float((batch.a[:, 8:] - batch.b[:, 8:]).std()) > 1.2  # nuisance redrawn per view


# --- models -----------------------------------------------------------------------------------------------


def test_backbones_shapes_and_errors():
    x = torch.randn(5, 1, 8, 8)
    assert build_backbone("mlp", (1, 8, 8), 32)(x).shape == (5, 32)
    assert build_backbone("cnn", (1, 8, 8), 32)(x).shape == (5, 32)
    assert build_backbone("linear", (16,), 16)(torch.randn(5, 16)).shape == (5, 16)
    with pytest.raises(ValueError, match="8×8"):
        build_backbone("cnn", (64,), 32)
    with pytest.raises(ValueError, match="square"):
        build_backbone("linear", (16,), 8)
    with pytest.raises(ValueError, match="unknown encoder"):
        build_backbone("resnet", (16,), 8)
    with pytest.raises(ValueError, match=r"\(B, C, 8, 8\)"):
        SmallCNN(8)(torch.randn(2, 1, 4, 4))
    assert sum(p.numel() for p in LinearMap(16).parameters()) == 256  # no bias


def test_projector_changes_forward_not_represent():
    enc = Encoder(MLP(16, 8, hidden=32), 8, projector_dim=4)
    x = torch.randn(3, 16)
    assert enc(x).shape == (3, 4)
    assert enc.represent(x).shape == (3, 8)
    assert Encoder(MLP(16, 8), 8)(x).shape == (3, 8)


def test_reset_parameters_is_deterministic_and_matches_default_scale():
    a, b = MLP(64, 32), MLP(64, 32)
    reset_parameters(a, gen(7))
    reset_parameters(b, gen(7))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    first = a.net[1].weight.detach()
    # Kaiming-uniform with a = sqrt(5): bound = 1/sqrt(fan_in).
    assert float(first.abs().max()) <= 1 / np.sqrt(64) + 1e-6
    assert float(first.abs().max()) > 0.9 / np.sqrt(64)


# --- kNN probe -------------------------------------------------------------------------------------------


def numpy_knn(bank, yb, q, yq, k):
    b = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    qq = q / np.linalg.norm(q, axis=1, keepdims=True)
    correct = 0
    for i in range(len(qq)):
        order = np.argsort(-(b @ qq[i]), kind="stable")[:k]
        votes = {}
        for rank, j in enumerate(order):
            votes.setdefault(yb[j], []).append(rank)
        # Majority; ties to the class whose neighbours rank nearer (smaller summed rank).
        best = max(votes.items(), key=lambda kv: (len(kv[1]), -sum(kv[1])))[0]
        correct += best == yq[i]
    return correct / len(qq)


@pytest.mark.parametrize("k", [1, 5])
def test_knn_matches_numpy(k):
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(200, 6))
    yb = rng.integers(0, 4, size=200)
    q = rng.normal(size=(50, 6))
    yq = rng.integers(0, 4, size=50)
    ours = knn_accuracy(torch.tensor(bank), torch.tensor(yb), torch.tensor(q), torch.tensor(yq), k)
    assert ours == pytest.approx(numpy_knn(bank, yb, q, yq, k))


def test_knn_perfect_and_tie_break():
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = torch.tensor([0, 0, 1, 1])
    assert knn_accuracy(bank, labels, bank, labels, k=1) == 1.0
    q = torch.tensor([[1.0, 0.5]])  # nearest two are (0.9, 0.1) and (1, 0): both class 0
    assert knn_accuracy(bank, labels, q, torch.tensor([0]), k=2) == 1.0
    # A 1–1 tie between classes goes to the nearest neighbour's class.
    bank2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert (
        knn_accuracy(bank2, torch.tensor([0, 1]), torch.tensor([[1.0, 0.2]]), torch.tensor([0]), k=2) == 1.0
    )
    assert (
        knn_accuracy(bank2, torch.tensor([0, 1]), torch.tensor([[0.2, 1.0]]), torch.tensor([1]), k=2) == 1.0
    )


def test_knn_rejects_bad_shapes():
    with pytest.raises(ValueError, match="share d"):
        knn_accuracy(torch.randn(5, 3), torch.zeros(5, dtype=torch.long), torch.randn(2, 4), torch.zeros(2))
    with pytest.raises(ValueError, match="labels"):
        knn_accuracy(torch.randn(5, 3), torch.zeros(4, dtype=torch.long), torch.randn(2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="k must"):
        knn_accuracy(
            torch.randn(5, 3), torch.zeros(5, dtype=torch.long), torch.randn(2, 3), torch.zeros(2), k=6
        )
