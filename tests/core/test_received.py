"""The O(N) received-attention methods against a full float64 softmax built in the test."""

from __future__ import annotations

import pytest
import torch

from lav.capture import received


def _full(q, k, scale):
    return torch.softmax(q.double() @ k.double().transpose(-1, -2) * scale, dim=-1).sum(dim=-2)


@pytest.mark.parametrize("method", ["auto", "chunked"])
@pytest.mark.parametrize(
    ("heads", "n_q", "n_k", "dim"), [(1, 1, 1, 8), (2, 257, 257, 72), (3, 100, 61, 16), (16, 640, 640, 80)]
)
def test_received_equals_full_softmax_column_sums(method, heads, n_q, n_k, dim):
    gen = torch.Generator().manual_seed(heads * n_q)
    q = torch.randn(heads, n_q, dim, generator=gen) * 2
    k = torch.randn(heads, n_k, dim, generator=gen) * 2
    scale = dim**-0.5
    got, used = received(q, k, scale, method=method)
    assert got.shape == (heads, n_k) and got.dtype == torch.float32
    ref = _full(q, k, scale)
    assert ((got.double() - ref).abs() / ref).max() < 1e-4
    if method == "chunked":
        assert used == "chunked"


def test_identical_keys_receive_equal_shares():
    q = torch.randn(2, 50, 16)
    k = torch.ones(2, 40, 16)
    got, _ = received(q, k, 0.25)
    torch.testing.assert_close(got, torch.full((2, 40), 50 / 40), atol=1e-5, rtol=0)


def test_one_dominant_key_receives_every_query():
    q = torch.ones(1, 30, 8)
    k = torch.zeros(1, 30, 8)
    k[0, 17] = 10.0
    got, _ = received(q, k, 1.0)
    assert got[0].argmax() == 17
    assert got[0, 17] == pytest.approx(30, rel=1e-5)


def test_bfloat16_inputs_are_reduced_in_float32():
    q = torch.randn(2, 64, 16).bfloat16()
    k = torch.randn(2, 64, 16).bfloat16()
    got, _ = received(q, k, 0.25)
    ref = _full(q.float(), k.float(), 0.25)
    assert got.dtype == torch.float32
    assert ((got.double() - ref).abs() / ref).max() < 1e-4


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown method"):
        received(torch.zeros(1, 2, 8), torch.zeros(1, 2, 8), 1.0, method="magic")


def _forward_lse(q, k, scale):
    return torch.logsumexp(q.double() @ k.double().transpose(-1, -2) * scale, dim=-1).float()


@pytest.mark.parametrize(("heads", "n_q", "n_k", "dim"), [(1, 1, 1, 8), (2, 257, 257, 72), (3, 100, 61, 16)])
def test_received_with_the_forwards_lse_equals_full_softmax_column_sums(heads, n_q, n_k, dim):
    gen = torch.Generator().manual_seed(n_q + dim)
    q = torch.randn(heads, n_q, dim, generator=gen) * 2
    k = torch.randn(heads, n_k, dim, generator=gen) * 2
    scale = dim**-0.5
    got, used = received(q, k, scale, lse=_forward_lse(q, k, scale))
    assert "forward's lse" in used
    ref = _full(q, k, scale)
    assert ((got.double() - ref).abs() / ref).max() < 1e-4


@pytest.mark.parametrize("group_bytes", [1, 2**40], ids=["one-head-groups", "all-heads"])
def test_head_groups_do_not_change_the_values(monkeypatch, group_bytes):
    from lav.capture import colsums

    gen = torch.Generator().manual_seed(5)
    q = torch.randn(5, 130, 72, generator=gen)
    k = torch.randn(5, 130, 72, generator=gen)
    monkeypatch.setattr(colsums, "HEAD_GROUP_BYTES", group_bytes)
    for lse in (None, _forward_lse(q, k, 0.2)):
        got, _ = received(q, k, 0.2, lse=lse)
        ref = _full(q, k, 0.2)
        assert ((got.double() - ref).abs() / ref).max() < 1e-4


def test_chunked_method_ignores_the_forwards_lse():
    q = torch.randn(2, 40, 16)
    k = torch.randn(2, 40, 16)
    got, used = received(q, k, 0.25, method="chunked", lse=torch.zeros(2, 40))
    assert used == "chunked"
    assert ((got.double() - _full(q, k, 0.25)).abs() / _full(q, k, 0.25)).max() < 1e-5


def _spy_passes(monkeypatch) -> list[str]:
    from lav.capture import colsums

    used: list[str] = []
    for name, fn in list(colsums._PASSES.items()):

        def spy(*args, _name=name, _fn=fn, **kwargs):
            used.append(_name)
            return _fn(*args, **kwargs)

        monkeypatch.setitem(colsums._PASSES, name, spy)
    return used


def test_the_weighted_pass_serves_ordinary_attention(monkeypatch):
    used = _spy_passes(monkeypatch)
    gen = torch.Generator().manual_seed(11)
    q = torch.randn(4, 300, 72, generator=gen) * 2
    k = torch.randn(4, 300, 72, generator=gen) * 2
    for lse in (None, _forward_lse(q, k, 72**-0.5)):
        got, _ = received(q, k, 72**-0.5, lse=lse)
        ref = _full(q, k, 72**-0.5)
        assert ((got.double() - ref).abs() / ref).max() < 1e-4
    assert used and set(used) == {"weighted"}


@pytest.mark.parametrize("group_bytes", [1, 2**40], ids=["one-head-groups", "all-heads"])
def test_a_log_sum_exp_spread_beyond_float32_weights_takes_the_folded_pass(monkeypatch, group_bytes):
    """A few queries far more peaked than the rest (their log-sum-exp ~150 above the others', so
    exp(min - lse) would underflow float32): still exact, by the folded pass for those heads only."""
    from lav.capture import colsums

    monkeypatch.setattr(colsums, "HEAD_GROUP_BYTES", group_bytes)
    used = _spy_passes(monkeypatch)
    gen = torch.Generator().manual_seed(12)
    q = torch.randn(3, 200, 16, generator=gen)
    k = torch.randn(3, 200, 16, generator=gen)
    q[1, ::7] *= 60  # head 1 only
    lse = _forward_lse(q, k, 0.25)
    assert (lse[1].max() - lse[1].min()) > colsums.WEIGHT_RANGE + 50
    assert (lse[0].max() - lse[0].min()) < colsums.WEIGHT_RANGE
    for rows in (None, lse):
        used.clear()
        got, _ = received(q, k, 0.25, lse=rows)
        ref = _full(q, k, 0.25)
        assert ((got.double() - ref).abs() / ref).max() < 1e-4
        assert "folded" in used
        if group_bytes == 1:
            assert used == ["weighted", "folded", "weighted"]


def test_nearly_flat_heads_are_recomputed_by_the_folded_pass(monkeypatch):
    """A head whose column sums vary by less than FLAT: a min-max normalised map magnifies the
    weighted pass's float32 error there, so the folded pass (log-sum-exp ~ log r_j) computes it."""
    from lav.capture import colsums

    used = _spy_passes(monkeypatch)
    gen = torch.Generator().manual_seed(13)
    q = torch.randn(2, 400, 16, generator=gen) * 0.3  # nearly uniform attention
    k = torch.randn(2, 400, 16, generator=gen) * 0.3
    ref = _full(q, k, 0.25)
    assert (((ref.amax(-1) - ref.amin(-1)) / ref.amax(-1)) < colsums.FLAT).all()
    got, _ = received(q, k, 0.25, lse=_forward_lse(q, k, 0.25))
    assert ((got.double() - ref).abs() / ref).max() < 1e-5
    assert used == ["weighted", "folded"]
