"""The shared Token Pruning Cluster: the frame a seq2frame host must keep is always kept."""

from __future__ import annotations

import torch

from hotpose.models.token_pruning import select_frames, token_pruning_cluster


def test_keep_is_always_kept_and_order_is_time_order() -> None:
    x = torch.randn(3, 243, 17, 8)
    index = token_pruning_cluster(x, 61, 2, keep=121)
    assert index.shape == (3, 61)
    assert (index == 121).sum(dim=1).tolist() == [1, 1, 1]
    assert torch.equal(index, index.sort(dim=1).values)
    assert all(len(set(row.tolist())) == 61 for row in index)


def test_keep_excludes_the_frame_from_the_clustering() -> None:
    # the kept frame is added after the clustering: the other frames equal a clustering without it
    # competing, so a frame that would have won anyway is not chosen twice
    pooled = torch.zeros(1, 9, 2)
    pooled[0, 4] = 5.0  # an outlier at the centre: the best-scored frame of all
    index = select_frames(pooled + torch.arange(9.0)[None, :, None] * 0.01, 3, 2, keep=4)
    assert index.shape == (1, 3)
    assert 4 in index[0].tolist()
    assert len(set(index[0].tolist())) == 3


def test_selection_is_deterministic() -> None:
    x = torch.randn(2, 81, 17, 4).repeat_interleave(3, dim=1)  # many exact ties
    first = token_pruning_cluster(x, 61, 2, keep=121)
    for _ in range(3):
        assert torch.equal(token_pruning_cluster(x, 61, 2, keep=121), first)
