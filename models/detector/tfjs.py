"""A TensorFlow.js graph model (`model.json` + weight shards) run as a PyTorch module.

TFJS graph models are frozen TensorFlow graphs: a list of nodes (op, inputs,
attributes) and a weights manifest whose entries are concatenated in the
binary shards, float weights often stored as float16. This executor reads both,
dequantises at load, folds every node whose inputs are all constants (shape
arithmetic, empty `SparseToDense`), and runs the rest in topological order.

Tensors keep TensorFlow's logical layout (the graph's own `Transpose` nodes
move between NCHW and NHWC; in torch they are views, so a convolution input
that is a transposed NCHW tensor is already channels-last memory). `Conv2D`
and `MaxPool` take NHWC as TensorFlow does. A `Conv2D` followed by an `Add`
of a constant vector becomes one convolution with a bias.

Batch: converted graphs fix the batch at 1 in their `Reshape` targets; a
leading 1 in a target shape is read as the batch, so a batch of B images runs
as one call. Unsupported ops or attributes raise `TFJSGraphError` naming the
node, so a new model fails at load, not with wrong numbers.
"""

from __future__ import annotations

import base64
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

log = logging.getLogger(__name__)

_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANT = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}


class TFJSGraphError(ValueError):
    """A graph this executor cannot run exactly (unsupported op or attribute, bad weights file)."""


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    inputs: tuple[str, ...]  # "node" or "node:k" (k-th output); control inputs dropped
    attr: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        """An attribute as a Python value (int, float, bool, str, list)."""
        if key not in self.attr:
            return default
        v = self.attr[key]
        if "list" in v:
            lst = v["list"]
            if "i" in lst:
                return [int(i) for i in lst["i"]]
            if "f" in lst:
                return [float(f) for f in lst["f"]]
            return []
        if "i" in v:
            return int(v["i"])
        if "f" in v:
            return float(v["f"])
        if "b" in v:
            return bool(v["b"])
        if "s" in v:
            return base64.b64decode(v["s"]).decode()
        if "type" in v:
            return v["type"]
        return default


def load_weights(model_json: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a TFJS graph model: its JSON and the named constant arrays (float16 dequantised to float32)."""
    try:
        spec = json.loads(model_json.read_text())
    except (OSError, ValueError) as exc:
        raise TFJSGraphError(f"{model_json} is not a readable TFJS model.json: {exc}") from exc
    if spec.get("format") != "graph-model":
        raise TFJSGraphError(f"{model_json}: format {spec.get('format')!r}, expected 'graph-model'")
    arrays: dict[str, np.ndarray] = {}
    for group in spec["weightsManifest"]:
        blob = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            shape = [int(d) for d in w["shape"]]
            n = math.prod(shape)
            q = w.get("quantization")
            stored = np.dtype(_QUANT[q["dtype"]] if q is not None else _DTYPES[w["dtype"]])
            if offset + n * stored.itemsize > len(blob):
                raise TFJSGraphError(
                    f"{model_json}: {w['name']} needs bytes {offset}-{offset + n * stored.itemsize} "
                    f"but {group['paths']} hold {len(blob)} (a truncated or mismatched weights file)"
                )
            dt: np.dtype[Any]
            if q is None:
                dt = np.dtype(_DTYPES[w["dtype"]])
                arr = np.frombuffer(blob, dt, n, offset).astype(dt)
            else:
                qt = np.dtype(_QUANT[q["dtype"]])
                raw = np.frombuffer(blob, qt, n, offset)
                dt = qt
                if q["dtype"] == "float16":
                    arr = raw.astype(np.float32)
                else:  # affine: min + scale * q
                    arr = (raw.astype(np.float32) * float(q["scale"]) + float(q["min"])).astype(_DTYPES[w["dtype"]])
            offset += n * dt.itemsize
            arrays[w["name"]] = arr.reshape(shape)
        if offset != len(blob):
            raise TFJSGraphError(f"{model_json}: the manifest covers {offset} bytes of {len(blob)} in {group['paths']}")
    return spec, arrays


def _pads_same(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (the extra pixel goes after)."""
    eff = (k - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def _pad_nhwc(x: Tensor, pads: Sequence[tuple[int, int]], value: float = 0.0) -> Tensor:
    """pads per dimension of x, outermost first -> F.pad (which lists innermost first)."""
    flat: list[int] = []
    for lo, hi in reversed(pads):
        flat += [lo, hi]
    if not any(flat):
        return x
    return F.pad(x, flat, value=value)


class TFJSGraphModule(nn.Module):
    """`forward(x)` with the graph's single input -> its outputs, in `self.output_names` order.

    Outputs are ordered by the signature's output names, sorted naturally (`Identity`, `Identity_1`, ...).
    """

    def __init__(self, model_json: Path) -> None:
        super().__init__()
        spec, arrays = load_weights(Path(model_json))
        nodes = [self._node(n) for n in spec["modelTopology"]["node"]]
        by_name = {n.name: n for n in nodes}
        inputs = [n.name for n in nodes if n.op == "Placeholder"]
        if len(inputs) != 1:
            raise TFJSGraphError(f"{model_json}: {len(inputs)} inputs; this executor runs single-input graphs")
        self.input_name = inputs[0]
        sig_out = list(spec.get("signature", {}).get("outputs", {}))
        names = [o.split(":")[0] for o in sig_out] or [n.name for n in nodes if n.op == "Identity"]
        self.output_names = sorted(names, key=lambda s: (len(s), s))
        self.op_counts: dict[str, int] = {}
        for n in nodes:
            self.op_counts[n.op] = self.op_counts.get(n.op, 0) + 1

        consts: dict[str, Any] = {}
        for n in nodes:
            if n.op == "Const":
                if n.name not in arrays:
                    raise TFJSGraphError(f"{model_json}: constant {n.name} has no entry in the weights manifest")
                consts[n.name] = torch.from_numpy(np.ascontiguousarray(arrays[n.name]))
        order = self._topological(nodes, by_name)
        uses: dict[str, int] = {}
        for n in order:
            for i in n.inputs:
                uses[i.split(":")[0]] = uses.get(i.split(":")[0], 0) + 1

        # constant folding: nodes whose inputs are all known before the input arrives
        program: list[Node] = []
        for n in order:
            if n.op in ("Const", "Placeholder"):
                continue
            if all(self._base(i) in consts for i in n.inputs):
                vals = self._run(n, [self._lookup(consts, i) for i in n.inputs])
                consts[n.name] = vals
            else:
                program.append(n)

        # Conv2D + Add(constant [O]) -> one convolution with a bias
        self._bias_of: dict[str, str] = {}
        skip: set[str] = set()
        consumers: dict[str, list[Node]] = {}
        for n in program:
            for i in n.inputs:
                consumers.setdefault(self._base(i), []).append(n)
        for n in program:
            if n.op != "Conv2D":
                continue
            after = consumers.get(n.name, [])
            if len(after) == 1 and after[0].op in ("Add", "AddV2") and uses.get(n.name) == 1:
                add = after[0]
                other = [i for i in add.inputs if self._base(i) != n.name]
                if len(other) == 1 and self._base(other[0]) in consts:
                    b = self._lookup(consts, other[0])
                    if isinstance(b, Tensor) and b.ndim == 1:
                        self._bias_of[add.name] = n.name
                        skip.add(add.name)
        self.program = [n for n in program if n.name not in skip]
        self.alias = dict(self._bias_of)  # the fused Add's output is the convolution's

        # the constants the program reads, as buffers; convolution filters HWIO -> OIHW
        self._const_keys: dict[str, str] = {}
        needed = {self._base(i) for n in self.program for i in (n.inputs[:1] if n.op == "Conv2D" else n.inputs)}
        needed -= {self.input_name}
        needed -= {n.name for n in self.program} | set(self.alias)
        self._static: dict[str, Any] = {}
        for k, name in enumerate(sorted(needed)):
            v = consts[name]
            if isinstance(v, Tensor) and v.is_floating_point():
                key = f"c{k}"
                self.register_buffer(key, v.float(), persistent=False)
                self._const_keys[name] = key
            else:
                self._static[name] = v
        self.conv_weights = nn.ParameterDict()  # not trained: requires_grad off
        self._conv_bias: dict[str, str] = {}
        for n in self.program:
            if n.op == "Conv2D":
                f = consts.get(self._base(n.inputs[1]))
                if not isinstance(f, Tensor) or f.ndim != 4:
                    raise TFJSGraphError(f"node {n.name}: Conv2D with a non-constant filter is not supported")
                w = f.float().permute(3, 2, 0, 1).contiguous()  # [H, W, I, O] -> [O, I, H, W]
                self.conv_weights[n.name.replace("/", "__")] = nn.Parameter(w, requires_grad=False)
        for add_name, conv in self._bias_of.items():
            add_node = next(node for node in program if node.name == add_name)
            bias_ref = next(ref for ref in add_node.inputs if self._base(ref) != conv)
            key = f"b_{conv}".replace("/", "__")
            self.register_buffer(key, self._lookup(consts, bias_ref).float(), persistent=False)
            self._conv_bias[conv] = key
        for n in self.program:
            if n.op not in _OPS:
                raise TFJSGraphError(f"node {n.name}: op {n.op} is not supported by the TFJS executor")
        missing = [o for o in self.output_names if o not in by_name]
        if missing:
            raise TFJSGraphError(f"{model_json}: outputs {missing} are not nodes of the graph")

    # --- loading helpers ---------------------------------------------------------------

    @staticmethod
    def _node(raw: dict[str, Any]) -> Node:
        inputs = tuple(i for i in raw.get("input", []) if not i.startswith("^"))
        return Node(raw["name"], raw["op"], inputs, raw.get("attr", {}))

    @staticmethod
    def _base(ref: str) -> str:
        return ref.split(":")[0]

    @staticmethod
    def _lookup(env: dict[str, Any], ref: str) -> Any:
        base, _, k = ref.partition(":")
        v = env[base]
        if isinstance(v, list):
            return v[int(k) if k else 0]
        return v

    def _topological(self, nodes: list[Node], by_name: dict[str, Node]) -> list[Node]:
        order: list[Node] = []
        state: dict[str, int] = {}
        for root in nodes:
            stack = [(root.name, False)]
            while stack:
                name, done = stack.pop()
                if done:
                    state[name] = 2
                    order.append(by_name[name])
                    continue
                if state.get(name):
                    continue
                state[name] = 1
                stack.append((name, True))
                for i in by_name[name].inputs:
                    b = self._base(i)
                    if b not in by_name:
                        raise TFJSGraphError(f"node {name} reads {b}, which is not in the graph")
                    if not state.get(b):
                        stack.append((b, False))
        return order

    # --- running -------------------------------------------------------------------------

    def _run(self, n: Node, args: list[Any]) -> Any:
        return _OPS[n.op](self, n, args)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        env: dict[str, Any] = {self.input_name: x}
        for n in self.program:
            args = []
            for ref in n.inputs[:1] if n.op == "Conv2D" else n.inputs:  # the filter is a parameter
                base = self._base(ref)
                base = self.alias.get(base, base)
                if base in env:
                    args.append(self._lookup(env, base + ref[len(self._base(ref)) :]))
                elif base in self._const_keys:
                    args.append(getattr(self, self._const_keys[base]))
                else:
                    args.append(self._lookup(self._static, ref))
            env[n.name] = self._run(n, args)
        return tuple(env[self.alias.get(o, o)] for o in self.output_names)

    def conv(self, n: Node, x: Tensor) -> Tensor:
        if n.get("data_format", "NHWC") != "NHWC":
            raise TFJSGraphError(f"node {n.name}: Conv2D data_format {n.get('data_format')} is not supported")
        w = self.conv_weights[n.name.replace("/", "__")]
        bias = getattr(self, self._conv_bias[n.name]) if n.name in self._conv_bias else None
        sh, sw = n.get("strides")[1:3]
        dh, dw = (n.get("dilations") or [1, 1, 1, 1])[1:3]
        padding = n.get("padding")
        x = x.permute(0, 3, 1, 2)  # [B, H, W, C] -> [B, C, H, W] (a view)
        if padding == "SAME":
            ph = _pads_same(x.shape[2], w.shape[2], sh, dh)
            pw = _pads_same(x.shape[3], w.shape[3], sw, dw)
            x = F.pad(x, [pw[0], pw[1], ph[0], ph[1]])
        elif padding == "EXPLICIT":
            e = n.get("explicit_paddings")
            x = F.pad(x, [e[4], e[5], e[2], e[3]])
        elif padding != "VALID":
            raise TFJSGraphError(f"node {n.name}: Conv2D padding {padding} is not supported")
        y = F.conv2d(x, w, bias, stride=(sh, sw), dilation=(dh, dw))
        return y.permute(0, 2, 3, 1)  # back to NHWC (a view)


def _shape_list(v: Any) -> list[int]:
    return [int(i) for i in (v.tolist() if isinstance(v, Tensor) else v)]


def _reshape(m: TFJSGraphModule, n: Node, a: list[Any]) -> Tensor:
    x: Tensor = a[0]
    shape = _shape_list(a[1])
    if shape and shape[0] == 1 and x.shape[0] != 1:  # the graph's batch of 1 is the runtime batch
        shape[0] = x.shape[0]
    return x.reshape(shape)


def _pad(m: TFJSGraphModule, n: Node, a: list[Any]) -> Tensor:
    pads = [(int(lo), int(hi)) for lo, hi in a[1].tolist()]  # [D, 2] before/after per dimension
    value = float(a[2]) if len(a) > 2 else 0.0
    return _pad_nhwc(a[0], pads, value)


def _maxpool(m: TFJSGraphModule, n: Node, a: list[Any]) -> Tensor:
    if n.get("data_format", "NHWC") != "NHWC":
        raise TFJSGraphError(f"node {n.name}: MaxPool data_format {n.get('data_format')} is not supported")
    kh, kw = n.get("ksize")[1:3]
    sh, sw = n.get("strides")[1:3]
    x = a[0].permute(0, 3, 1, 2)
    if n.get("padding") == "SAME":
        ph, pw = _pads_same(x.shape[2], kh, sh, 1), _pads_same(x.shape[3], kw, sw, 1)
        x = F.pad(x, [pw[0], pw[1], ph[0], ph[1]], value=-math.inf)
    elif n.get("padding") != "VALID":
        raise TFJSGraphError(f"node {n.name}: MaxPool padding {n.get('padding')} is not supported")
    return F.max_pool2d(x, (kh, kw), (sh, sw)).permute(0, 2, 3, 1)


def _resize_bilinear(m: TFJSGraphModule, n: Node, a: list[Any]) -> Tensor:
    size = _shape_list(a[1])
    if n.get("align_corners", False):
        align = True
    elif n.get("half_pixel_centers", False):
        align = False
    else:  # TF's legacy mapping (no half-pixel offset) has no F.interpolate equivalent
        raise TFJSGraphError(f"node {n.name}: ResizeBilinear without half_pixel_centers or align_corners")
    x = a[0].permute(0, 3, 1, 2)
    y = F.interpolate(x, size=size, mode="bilinear", align_corners=align)
    return y.permute(0, 2, 3, 1)


def _split_v(m: TFJSGraphModule, n: Node, a: list[Any]) -> list[Tensor]:
    x, sizes, axis = a[0], _shape_list(a[1]), int(a[2])
    if -1 in sizes:
        sizes[sizes.index(-1)] = x.shape[axis] - (sum(sizes) + 1)
    return list(torch.split(x, sizes, dim=axis))


def _sparse_to_dense(m: TFJSGraphModule, n: Node, a: list[Any]) -> Tensor:
    idx, shape, values, default = a
    out = torch.full(_shape_list(shape), default.item() if isinstance(default, Tensor) else default, dtype=values.dtype)
    if idx.numel():
        idx = idx.reshape(idx.shape[0], -1).long()
        out[tuple(idx.T)] = values if values.ndim else values.expand(idx.shape[0])
    return out


def _cast(m: TFJSGraphModule, n: Node, a: list[Any]) -> Tensor:
    to = n.get("DstT")
    dtypes = {"DT_FLOAT": torch.float32, "DT_INT32": torch.int32, "DT_INT64": torch.int64, "DT_BOOL": torch.bool}
    if to not in dtypes:
        raise TFJSGraphError(f"node {n.name}: Cast to {to} is not supported")
    x: Tensor = a[0]
    return x.to(dtypes[to])


def _concat(m: TFJSGraphModule, n: Node, a: list[Any]) -> Tensor:
    return torch.cat(a[:-1], dim=int(a[-1]))


_OPS: dict[str, Callable[[TFJSGraphModule, Node, list[Any]], Any]] = {
    "Identity": lambda m, n, a: a[0],
    "Transpose": lambda m, n, a: a[0].permute(_shape_list(a[1])),
    "Reshape": _reshape,
    "Pad": _pad,
    "PadV2": _pad,
    "Conv2D": lambda m, n, a: m.conv(n, a[0]),
    "Add": lambda m, n, a: a[0] + a[1],
    "AddV2": lambda m, n, a: a[0] + a[1],
    "Sub": lambda m, n, a: a[0] - a[1],
    "Mul": lambda m, n, a: a[0] * a[1],
    "LeakyRelu": lambda m, n, a: F.leaky_relu(a[0], n.get("alpha", 0.2)),
    "Relu": lambda m, n, a: F.relu(a[0]),
    "Sigmoid": lambda m, n, a: torch.sigmoid(a[0]),
    "MaxPool": _maxpool,
    "ConcatV2": _concat,
    "ResizeBilinear": _resize_bilinear,
    "SplitV": _split_v,
    "SparseToDense": _sparse_to_dense,
    "Cast": _cast,
}
SUPPORTED_OPS: frozenset[str] = frozenset(_OPS) | {"Const", "Placeholder"}
