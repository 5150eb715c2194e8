"""Run a TensorFlow Lite flatbuffer as a PyTorch `nn.Module`.

Covers the float graphs of the BlazePose models: CONV_2D, DEPTHWISE_CONV_2D,
ADD, PAD, RESHAPE, CONCATENATION, RESIZE_BILINEAR, MAX_POOL_2D, LOGISTIC,
DEPTH_TO_SPACE. DEQUANTIZE (float16 weights) and DENSIFY (sparse weights) are
folded into constants at load. Any other op is a `TFLiteError` naming it.

Layout: 4D activations run as NCHW (PyTorch's native layout); the graph's
NHWC semantics are kept where they matter: RESHAPE flattens in NHWC element
order, CONCATENATION / PAD axes are remapped, DEPTH_TO_SPACE uses TensorFlow's
channel order (not `F.pixel_shuffle`'s), SAME padding is computed per op (it is
asymmetric for stride-2 convs on even inputs). Batch size is free.

`forward(x)` takes NCHW float input and returns the graph outputs in graph
order, 4D ones as NCHW.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

log = logging.getLogger(__name__)


class TFLiteError(RuntimeError):
    """A model file this executor cannot run (unsupported op, type or option)."""


# TensorType enum values (schema.fbs).
_FLOAT32, _FLOAT16, _INT32, _UINT8, _INT64, _INT8 = 0, 1, 2, 3, 4, 9
_NP_TYPES = {
    _FLOAT32: np.float32,
    _FLOAT16: np.float16,
    _INT32: np.int32,
    _UINT8: np.uint8,
    _INT64: np.int64,
    _INT8: np.int8,
}
# Fused activations (ActivationFunctionType).
# In place: every fused activation applies to a fresh op output.
_ACTIVATIONS: dict[int, Callable[[Tensor], Tensor] | None] = {
    0: None,
    1: torch.relu_,
    2: lambda x: x.clamp_(-1.0, 1.0),
    3: lambda x: x.clamp_(0.0, 6.0),
}
_PAD_SAME, _PAD_VALID = 0, 1

# A table read through the `tflite` package's generated flatbuffer classes (Operator, *Options,
# SparsityParameters, ...): that package carries no type annotations, so its objects are Any.
Table = Any


@dataclass
class _Op:
    name: str
    inputs: list[int]
    outputs: list[int]
    run: Callable[..., Tensor]


def _op_names() -> dict[int, str]:
    import tflite

    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}


def _same_pad(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _nhwc_axis(axis: int, ndim: int) -> int:
    """TensorFlow NHWC axis -> our NCHW axis for 4D tensors."""
    axis %= ndim
    return {0: 0, 1: 2, 2: 3, 3: 1}[axis] if ndim == 4 else axis


class TFLiteModule(nn.Module):
    """One TFLite subgraph as a module; constants are buffers, so `.to(device)` moves them."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        import tflite  # a small pure-Python flatbuffer reader, needed at load time only

        self.path = Path(path)
        buf = self.path.read_bytes()
        model = tflite.Model.GetRootAsModel(buf, 0)
        if model.SubgraphsLength() != 1:
            raise TFLiteError(f"{path}: {model.SubgraphsLength()} subgraphs, expected 1")
        graph = model.Subgraphs(0)
        names = _op_names()
        self._model, self._graph = model, graph
        self.input_ids = [int(i) for i in graph.InputsAsNumpy()]
        self.output_ids = [int(i) for i in graph.OutputsAsNumpy()]
        self.input_shapes = [self._shape(i) for i in self.input_ids]
        self.output_shapes = [self._shape(i) for i in self.output_ids]

        self._consts: dict[int, np.ndarray] = {}
        self._ops: list[_Op] = []
        self._buffer_names: dict[int, str] = {}
        self.op_counts: dict[str, int] = {}
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
            self.op_counts[name] = self.op_counts.get(name, 0) + 1
            ins = [int(t) for t in op.InputsAsNumpy()] if op.InputsLength() else []
            outs = [int(t) for t in op.OutputsAsNumpy()]
            if name in ("DEQUANTIZE", "DENSIFY"):
                src = self._const(ins[0])
                if src is None:
                    raise TFLiteError(f"{path}: {name} of a non-constant tensor is not supported")
                self._consts[outs[0]] = src.astype(np.float32)
                continue
            builder = getattr(self, f"_build_{name.lower()}", None)
            if builder is None:
                raise TFLiteError(f"{path}: unsupported TFLite op {name} (operator #{i})")
            self._ops.append(_Op(name, ins, outs, builder(op, ins, outs)))
        del self._model, self._graph
        self._steps: list[tuple[_Op, list[int], list[int]]] | None = None
        log.debug("loaded %s: %s", path, self.op_counts)

    # --- reading the flatbuffer -------------------------------------------------

    def _shape(self, t: int) -> tuple[int, ...]:
        tensor = self._graph.Tensors(t)
        return tuple(int(s) for s in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()

    def _const(self, t: int) -> np.ndarray | None:
        if t in self._consts:
            return self._consts[t]
        tensor = self._graph.Tensors(t)
        data = self._model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(data, int) or data.size == 0:
            return None
        ttype = tensor.Type()
        if ttype not in _NP_TYPES:
            raise TFLiteError(f"{self.path}: tensor {tensor.Name()!r} has unsupported type {ttype}")
        values = np.frombuffer(data.tobytes(), dtype=_NP_TYPES[ttype])
        shape = self._shape(t)
        if tensor.Sparsity() is not None:
            values = self._densify(tensor.Sparsity(), values, shape)
        arr = values.reshape(shape)
        self._consts[t] = arr
        return arr

    @staticmethod
    def _index_vector(table: Table, kind: int) -> np.ndarray:
        import tflite

        cls = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}.get(kind)
        if cls is None:
            raise TFLiteError(f"unsupported sparse index vector type {kind}")
        vec = cls()
        vec.Init(table.Bytes, table.Pos)
        return np.asarray(vec.ValuesAsNumpy(), dtype=np.int64)

    def _densify(self, sparsity: Table, values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """TFLite sparse tensor -> dense, for traversal order = identity and no block map.

        Leading dimensions DENSE, then one SPARSE_CSR dimension (the layout the
        BlazePose converter produced): segments[r]..segments[r+1] index the
        stored values and their positions in the last dimension for dense row r.
        """
        sp = sparsity
        order = list(sp.TraversalOrderAsNumpy())
        if order != list(range(len(shape))) or sp.BlockMapLength():
            raise TFLiteError(f"{self.path}: sparse tensor with traversal {order} or block map is not supported")
        dims = [sp.DimMetadata(d) for d in range(sp.DimMetadataLength())]
        formats = [d.Format() for d in dims]
        if formats[:-1] != [0] * (len(shape) - 1) or formats[-1] != 1:
            raise TFLiteError(f"{self.path}: sparse format {formats} is not supported (want DENSE..., SPARSE_CSR)")
        last = dims[-1]
        segments = self._index_vector(last.ArraySegments(), last.ArraySegmentsType())
        indices = self._index_vector(last.ArrayIndices(), last.ArrayIndicesType())
        rows = int(np.prod(shape[:-1]))
        if len(segments) != rows + 1 or len(indices) != len(values):
            raise TFLiteError(f"{self.path}: inconsistent sparse tensor metadata")
        dense = np.zeros((rows, shape[-1]), dtype=values.dtype)
        row_of = np.repeat(np.arange(rows), np.diff(segments))
        dense[row_of, indices] = values
        return dense.reshape(shape)

    def _options(self, op: Table, cls_name: str) -> Table:
        import tflite

        table = op.BuiltinOptions()
        opts = getattr(tflite, cls_name)()
        opts.Init(table.Bytes, table.Pos)
        return opts

    def _param(self, t: int, transform: Callable[[np.ndarray], np.ndarray] | None = None) -> Tensor:
        arr = self._const(t)
        if arr is None:
            raise TFLiteError(f"{self.path}: tensor {t} should be constant")
        arr = transform(arr) if transform else arr
        name = self._buffer_names.get(t)
        if name is None:
            name = f"c{t}"
            self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)))
            self._buffer_names[t] = name
        buffer: Tensor = getattr(self, name)
        return buffer

    # --- op builders: each returns a function of the op's activation inputs ---------

    def _conv_common(self, op: Table, ins: list[int], depthwise: bool) -> Callable[[Tensor], Tensor]:
        o = self._options(op, "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions")
        stride = (o.StrideH(), o.StrideW())
        dil = (o.DilationHFactor(), o.DilationWFactor())
        act = _ACTIVATIONS.get(o.FusedActivationFunction())
        if o.FusedActivationFunction() not in _ACTIVATIONS:
            raise TFLiteError(f"{self.path}: unsupported fused activation {o.FusedActivationFunction()}")
        if depthwise:
            weight = self._param(ins[1], lambda w: w.transpose(3, 0, 1, 2))  # [1,H,W,C] -> [C,1,H,W]
        else:
            weight = self._param(ins[1], lambda w: w.transpose(0, 3, 1, 2))  # [O,H,W,I] -> [O,I,H,W]
        bias = self._param(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
        in_shape = self._shape(ins[0])  # NHWC
        kh, kw = weight.shape[2], weight.shape[3]
        groups = in_shape[3] if depthwise else 1
        pad4: tuple[int, int, int, int] | None = None
        padding: tuple[int, int] = (0, 0)
        if o.Padding() == _PAD_SAME:
            ph = _same_pad(in_shape[1], kh, stride[0], dil[0])
            pw = _same_pad(in_shape[2], kw, stride[1], dil[1])
            if ph[0] == ph[1] and pw[0] == pw[1]:
                padding = (ph[0], pw[0])
            else:
                pad4 = (pw[0], pw[1], ph[0], ph[1])
        w_key = self._buffer_names[ins[1]]
        b_key = self._buffer_names.get(ins[2]) if bias is not None else None

        def run(x: Tensor) -> Tensor:
            if pad4 is not None:
                x = F.pad(x, pad4)
            y = F.conv2d(x, getattr(self, w_key), getattr(self, b_key) if b_key else None, stride, padding, dil, groups)
            return act(y) if act else y

        return run

    def _build_conv_2d(self, op: Table, ins: list[int], outs: list[int]) -> Callable[[Tensor], Tensor]:
        return self._conv_common(op, ins, depthwise=False)

    def _build_depthwise_conv_2d(self, op: Table, ins: list[int], outs: list[int]) -> Callable[[Tensor], Tensor]:
        return self._conv_common(op, ins, depthwise=True)

    def _build_add(self, op: Table, ins: list[int], outs: list[int]) -> Callable[..., Tensor]:
        o = self._options(op, "AddOptions")
        act = _ACTIVATIONS[o.FusedActivationFunction()]
        consts = [self._const(t) is not None for t in ins]
        if any(consts):
            raise TFLiteError(f"{self.path}: ADD with a constant operand is not supported")

        def run(a: Tensor, b: Tensor) -> Tensor:
            y = a + b
            return act(y) if act else y

        return run

    def _build_pad(self, op: Table, ins: list[int], outs: list[int]) -> Callable[[Tensor], Tensor]:
        pads = self._const(ins[1])
        if pads is None:
            raise TFLiteError(f"{self.path}: PAD with dynamic paddings is not supported")
        nd = len(self._shape(ins[0]))
        if nd == 4:
            (n0, n1), (h0, h1), (w0, w1), (c0, c1) = pads.tolist()
            if n0 or n1:
                raise TFLiteError(f"{self.path}: PAD on the batch axis is not supported")
            spec: tuple[int, ...] = (w0, w1, h0, h1, c0, c1)  # F.pad order for NCHW: last axis first
        else:
            spec = tuple(int(v) for pair in pads.tolist()[::-1] for v in pair)

        def run(x: Tensor) -> Tensor:
            return F.pad(x, spec)

        return run

    def _build_reshape(self, op: Table, ins: list[int], outs: list[int]) -> Callable[[Tensor], Tensor]:
        in_nd = len(self._shape(ins[0]))
        out_shape = self._shape(outs[0])

        def run(x: Tensor) -> Tensor:
            if in_nd == 4:
                x = x.permute(0, 2, 3, 1)  # to NHWC element order
            y = x.reshape((x.shape[0], *out_shape[1:]))
            return y.permute(0, 3, 1, 2) if len(out_shape) == 4 else y

        return run

    def _build_concatenation(self, op: Table, ins: list[int], outs: list[int]) -> Callable[..., Tensor]:
        o = self._options(op, "ConcatenationOptions")
        nd = len(self._shape(outs[0]))
        axis = _nhwc_axis(o.Axis(), nd)
        act = _ACTIVATIONS[o.FusedActivationFunction()]

        def run(*xs: Tensor) -> Tensor:
            y = torch.cat(xs, dim=axis)
            return act(y) if act else y

        return run

    def _build_resize_bilinear(self, op: Table, ins: list[int], outs: list[int]) -> Callable[[Tensor], Tensor]:
        o = self._options(op, "ResizeBilinearOptions")
        size = self._const(ins[1])
        if size is None:
            raise TFLiteError(f"{self.path}: RESIZE_BILINEAR with a dynamic size is not supported")
        hw = (int(size[0]), int(size[1]))
        if o.AlignCorners():
            align = True
        elif o.HalfPixelCenters():
            align = False
        else:
            raise TFLiteError(f"{self.path}: RESIZE_BILINEAR without half_pixel_centers or align_corners")

        def run(x: Tensor) -> Tensor:
            return F.interpolate(x, size=hw, mode="bilinear", align_corners=align)

        return run

    def _build_max_pool_2d(self, op: Table, ins: list[int], outs: list[int]) -> Callable[[Tensor], Tensor]:
        o = self._options(op, "Pool2DOptions")
        k = (o.FilterHeight(), o.FilterWidth())
        s = (o.StrideH(), o.StrideW())
        act = _ACTIVATIONS[o.FusedActivationFunction()]
        in_shape = self._shape(ins[0])
        pad4 = (0, 0, 0, 0)
        if o.Padding() == _PAD_SAME:
            ph = _same_pad(in_shape[1], k[0], s[0], 1)
            pw = _same_pad(in_shape[2], k[1], s[1], 1)
            pad4 = (pw[0], pw[1], ph[0], ph[1])

        def run(x: Tensor) -> Tensor:
            if any(pad4):
                x = F.pad(x, pad4, value=float("-inf"))
            y = F.max_pool2d(x, k, s)
            return act(y) if act else y

        return run

    def _build_logistic(self, op: Table, ins: list[int], outs: list[int]) -> Callable[[Tensor], Tensor]:
        return torch.sigmoid

    def _build_depth_to_space(self, op: Table, ins: list[int], outs: list[int]) -> Callable[[Tensor], Tensor]:
        o = self._options(op, "DepthToSpaceOptions")
        b = o.BlockSize()

        def run(x: Tensor) -> Tensor:
            # TF: out[n, h*b+i, w*b+j, c] = in[n, h, w, (i*b + j)*C + c]
            n, cin, h, w = x.shape
            c = cin // (b * b)
            y = x.view(n, b, b, c, h, w).permute(0, 3, 4, 1, 5, 2)  # [N, C, H, b_i, W, b_j]
            return y.reshape(n, c, h * b, w * b)

        return run

    # --- running -------------------------------------------------------------------

    def _plan(self) -> list[tuple[_Op, list[int], list[int]]]:
        """Per op: its activation inputs and the tensors no later op reads (freed after it)."""
        produced = {self.input_ids[0]} | {op.outputs[0] for op in self._ops}
        last_use: dict[int, int] = {}
        for k, op in enumerate(self._ops):
            for t in op.inputs:
                if t in produced:
                    last_use[t] = k
        keep = set(self.output_ids)
        plan = []
        for k, op in enumerate(self._ops):
            act_in = [t for t in op.inputs if t in produced]
            free = [t for t in act_in if last_use.get(t) == k and t not in keep]
            plan.append((op, act_in, free))
        return plan

    def forward(self, x: Tensor) -> list[Tensor]:
        """x: NCHW float [B, C, H, W] -> graph outputs (4D ones NCHW)."""
        if self._steps is None:
            self._steps = self._plan()
        values: dict[int, Tensor] = {self.input_ids[0]: x}
        for op, act_in, free in self._steps:
            values[op.outputs[0]] = op.run(*[values[t] for t in act_in])
            for t in free:
                del values[t]
        return [values[t] for t in self.output_ids]
