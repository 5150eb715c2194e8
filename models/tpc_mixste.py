"""TPC-MixSTE: MixSTE with HoT's Token Pruning Cluster only, a seq2frame video 3D pose lifter.

Li et al., "Hourglass Tokenizer for Efficient Transformer-Based 3D Human Pose Estimation", CVPR 2024
(the seq2frame pipeline of its Table 6), on MixSTE (Zhang et al., CVPR 2022). After `layer_index`
blocks the Token Pruning Cluster keeps `token_num` frames: the window's centre frame (T - 1) // 2
always, plus the `token_num - 1` DPC-kNN cluster centres among the other frames, in time order. The
remaining blocks run on those; there is no recovery, so the output holds the kept frames' poses
and the centre frame's pose is the prediction (`predict_centre`).

Input  [B, T, J, 2]: 2D keypoints in the official screen normalisation
         (`hotpose.models.keypoints.normalize_screen`), T == config.frames.
Output [B, t, J, 3]: root-relative 3D joints of the t == config.token_num kept frames, camera frame.

The official code adds random noise to break density ties; here ties break by frame index
(`hotpose.models.token_pruning`), so inference is deterministic.

State-dict keys, shapes and order equal the official `model/mixste/tpc_mixste.py`, which are
MixSTE's (pruning adds no parameters), so official checkpoints load with `strict=True`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

from torch import Tensor

from hotpose.models.hot import MixSTETrunk, mixste_head
from hotpose.models.kind import SEQ2FRAME, LifterKind
from hotpose.models.token_pruning import TokenPruningCluster, check_pruning, gather_frames, kept_frame


@dataclass(frozen=True)
class TPCMixSTEConfig:
    """Defaults are the official run (`main_mixste_tpc.py --frames 243 --token_num 61 --layer_index 7`)."""

    dim: int = 512
    depth: int = 8
    num_heads: int = 8
    mlp_hidden_dim: int = 0  # 0 means 2 * dim, as in the paper
    frames: int = 243
    joints: int = 17
    token_num: int = 61  # frames kept by the Token Pruning Cluster, the centre frame included
    layer_index: int = 7  # the pruning happens before this block
    knn_k: int = 2  # neighbours for the DPC-kNN local density
    drop_path_rate: float = 0.1

    def __post_init__(self) -> None:
        if self.mlp_hidden_dim <= 0:
            object.__setattr__(self, "mlp_hidden_dim", 2 * self.dim)
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        check_pruning(self.token_num, self.frames, self.layer_index, range(1, self.depth))

    @property
    def centre(self) -> int:
        """The frame whose pose is the prediction, always kept."""
        return SEQ2FRAME.centre(self.frames)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class TPCMixSTE(MixSTETrunk):
    """MixSTE whose frames are pruned to `token_num` (the centre frame kept) before block `layer_index`."""

    KIND: ClassVar[LifterKind] = SEQ2FRAME

    def __init__(self, config: TPCMixSTEConfig) -> None:
        cfg = config
        super().__init__(cfg)
        self.config = config
        self.token_pruning = TokenPruningCluster(cfg.token_num, cfg.knn_k, keep=cfg.centre)
        self.head = mixste_head(cfg.dim)

    def forward_with_index(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """[B, T, J, 2] -> (poses of the kept frames [B, t, J, 3], their frame indices [B, t] in time order)."""
        cfg = self.config
        self.check_input(x)
        x = self.embed(x)  # [B, T, J, C]
        index = None
        for i in range(cfg.depth):
            if i == cfg.layer_index:
                index = self.token_pruning(x)  # [B, t]
                x = gather_frames(x, index)  # [B, t, J, C]
            x = self.mix_block(i, x)  # [B, t, J, C]
        assert index is not None  # layer_index < depth (TPCMixSTEConfig)
        out: Tensor = self.head(x)  # [B, t, J, 3]
        return out, index

    def forward(self, x: Tensor) -> Tensor:
        """[B, T, J, 2] -> [B, t, J, 3], the official output: the poses of the kept frames."""
        return self.forward_with_index(x)[0]

    def predict_centre(self, x: Tensor) -> Tensor:
        """[B, T, J, 2] -> [B, J, 3]: the pose of the window's centre frame, the model's prediction."""
        out, index = self.forward_with_index(x)
        return kept_frame(out, index, self.config.centre)


__all__ = ["TPCMixSTE", "TPCMixSTEConfig"]
