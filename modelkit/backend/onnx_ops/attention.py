"""ONNX Attention (opset 23+), RotaryEmbedding and LinearAttention. Attention: scaled dot-product attention over (batch, heads, seq, size)
or (batch, seq, hidden) inputs, with boolean/additive masks, causal and sliding-window
masks, a KV cache (past/present), grouped-query heads, softcap and the qk_matmul_output
modes. Differentiable in Q, K, V, an additive mask and the past cache."""

from __future__ import annotations

import numpy as np

from ...errors import ShapeError
from . import onnx_op
from ...onnx_spec import text
from ._util import const, like, np_dtype, op, values


def _heads(x, n_heads, what):
    """(batch, seq, hidden) -> (batch, heads, seq, hidden / heads)."""
    b, s, hidden = x.shape
    if not n_heads or hidden % int(n_heads):
        raise ShapeError(f"Attention: {what} hidden size {hidden} is not a multiple of "
                         f"{what}_num_heads={n_heads}")
    return op("transpose", op("reshape", x, shape=(b, s, int(n_heads), hidden // int(n_heads))),
              axes=(0, 2, 1, 3))


def _structural_bias(q_len, kv_len, attrs, offset, dtype):
    """The additive causal / sliding-window bias (0 or -inf) for a query block whose first
    query sits `offset` keys in (a scalar, or one per batch entry)."""
    offset = np.asarray(offset).reshape(-1, 1, 1, 1) if np.ndim(offset) else int(offset)
    diff = np.arange(q_len)[:, None] + offset - np.arange(kv_len)[None, :]
    allowed = np.ones(np.shape(diff), bool)
    if int(attrs.get("is_causal", 0)):
        allowed &= diff >= 0
    left, right = int(attrs.get("left_window_size", -1)), int(attrs.get("right_window_size", -1))
    if left >= 0:
        allowed &= diff <= left
    if right >= 0:
        allowed &= -diff <= right
    return np.where(allowed, 0.0, -np.inf).astype(dtype)


@onnx_op("Attention")
def attention(inputs, attrs, ctx):
    q, k, v = inputs[:3]
    mask, past_k, past_v, nonpad = (list(inputs[3:7]) + [None] * 4)[:4]
    three_d = q.ndim == 3
    if three_d:
        q = _heads(q, attrs.get("q_num_heads"), "q")
        k = _heads(k, attrs.get("kv_num_heads"), "kv")
        v = _heads(v, attrs.get("kv_num_heads"), "kv")
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ShapeError(f"Attention takes 3-D or 4-D Q/K/V, not {q.shape}, {k.shape}, "
                         f"{v.shape}")
    if (past_k is None) != (past_v is None):
        raise ShapeError("Attention: past_key and past_value come together")
    if past_k is not None:
        k = op("concatenate", past_k, k, axis=2)
        v = op("concatenate", past_v, v, axis=2)
    present_k, present_v = k, v
    batch, q_heads, q_len, head = q.shape
    kv_len = k.shape[2]

    scale = attrs.get("scale")
    scale = 1.0 / np.sqrt(head) if scale is None else float(scale)
    root = like(q, np.sqrt(scale))

    # the additive bias: the mask (boolean -> 0/-inf; a short one padded with -inf), the
    # causal/window structure, and the padding of each batch entry's keys
    bias = None
    if mask is not None:
        if mask.dtype == bool:
            mask = const(np.where(values(mask), 0.0, -np.inf).astype(q.dtype))
        short = kv_len - mask.shape[-1]
        if short > 0:
            mask = op("pad", mask, pad_width=((0, 0),) * (mask.ndim - 1) + ((0, short),),
                      constant=-np.inf)
        bias = mask
    if nonpad is not None:
        lens = np.asarray(values(nonpad)).reshape(-1)
        offset = lens - q_len
    else:
        lens, offset = None, (past_k.shape[2] if past_k is not None else 0)
    structure = _structural_bias(q_len, kv_len, attrs, offset, q.dtype)
    if lens is not None:
        keep = np.arange(kv_len)[None, :] < lens[:, None]
        structure = structure + np.where(keep, 0.0, -np.inf).astype(q.dtype).reshape(
            batch, 1, 1, kv_len)
    if np.any(structure != 0):
        bias = const(structure) if bias is None else op("add", bias, const(structure))
    bias_value = np.zeros((q_len, kv_len), q.dtype) if bias is None else \
        np.asarray(values(bias))

    if k.shape[1] != q_heads:                      # grouped-query attention
        if q_heads % k.shape[1] or k.shape[1] != v.shape[1]:
            raise ShapeError(f"Attention: {q_heads} query heads cannot share "
                             f"{k.shape[1]} key / {v.shape[1]} value heads")
        reps = q_heads // k.shape[1]
        k = op("repeat", k, repeats=reps, axis=1)
        v = op("repeat", v, repeats=reps, axis=1)

    qk = op("matmul", op("multiply", q, root),
            op("transpose", op("multiply", k, root), axes=(0, 1, 3, 2)))
    softcap = attrs.get("softcap")
    if softcap is not None and float(softcap) > 0:
        c = float(softcap)
        qk = op("multiply", op("tanh", op("multiply", qk, like(qk, 1.0 / c))), like(qk, c))
    scores = qk if bias is None else op("add", qk, bias)
    mode = int(attrs.get("qk_matmul_output_mode", 0))
    exposed = scores if mode == 2 else qk

    precision = attrs.get("softmax_precision")
    logits = scores if precision is None else op("cast", scores,
                                                 dtype=np_dtype(int(precision)))
    dead = np.isneginf(np.max(bias_value, axis=-1, keepdims=True))   # rows with no key
    if dead.any():
        dead = np.broadcast_to(dead, logits.shape)
        logits = op("where", dead, like(logits, 0.0), logits)
    probs = op("softmax", logits, axis=-1)
    if dead.any():
        probs = op("where", dead, like(probs, 0.0), probs)
    if probs.dtype != q.dtype:
        probs = op("cast", probs, dtype=q.dtype)
    if mode == 3:
        exposed = probs
    y = op("matmul", probs, v)
    if three_d:
        y = op("transpose", y, axes=(0, 2, 1, 3))
        y = op("reshape", y, shape=(batch, q_len, -1))
    return [y, present_k, present_v, exposed][:max(ctx.num_outputs, 1)]


@onnx_op("RotaryEmbedding")
def rotary_embedding(inputs, attrs, ctx):
    """Rotate pairs of the first rotary_embedding_dim features of each head by the cached
    angles (cos/sin, picked by position_ids when given): halves or interleaved pairs.
    X is (batch, heads, seq, head) or (batch, seq, heads * head) with num_heads."""
    x, cos, sin = inputs[:3]
    pos = inputs[3] if len(inputs) > 3 else None
    four_d = x.ndim == 4
    if four_d:
        x4 = op("transpose", x, axes=(0, 2, 1, 3))          # (batch, seq, heads, head)
    elif x.ndim == 3:
        heads = int(attrs.get("num_heads", 0))
        if not heads or x.shape[2] % heads:
            raise ShapeError(f"RotaryEmbedding: a 3-D input of width {x.shape[2]} needs "
                             "num_heads dividing it")
        x4 = op("reshape", x, shape=(x.shape[0], x.shape[1], heads, x.shape[2] // heads))
    else:
        raise ShapeError(f"RotaryEmbedding takes a 3-D or 4-D input, not {tuple(x.shape)}")
    head = x4.shape[3]
    rot = int(attrs.get("rotary_embedding_dim", 0)) or head
    half = rot // 2
    if pos is not None:
        ids = np.asarray(values(pos)).astype(np.int64)
        cos, sin = op("take", cos, ids, axis=0), op("take", sin, ids, axis=0)
    if cos.shape[-1] != half or sin.shape[-1] != half:
        raise ShapeError(f"RotaryEmbedding: caches of width {cos.shape[-1]} / {sin.shape[-1]}, "
                         f"expected rotary_embedding_dim / 2 = {half}")
    cos = op("reshape", cos, shape=tuple(cos.shape[:2]) + (1, half))
    sin = op("reshape", sin, shape=tuple(sin.shape[:2]) + (1, half))
    interleaved = int(attrs.get("interleaved", 0))
    if interleaved:
        x1 = op("getitem", x4, index=(Ellipsis, slice(0, rot, 2)))
        x2 = op("getitem", x4, index=(Ellipsis, slice(1, rot, 2)))
    else:
        x1 = op("getitem", x4, index=(Ellipsis, slice(0, half)))
        x2 = op("getitem", x4, index=(Ellipsis, slice(half, rot)))
    real = op("subtract", op("multiply", cos, x1), op("multiply", sin, x2))
    imag = op("add", op("multiply", sin, x1), op("multiply", cos, x2))
    if interleaved:
        rotated = op("reshape", op("stack", real, imag, axis=-1),
                     shape=tuple(x4.shape[:3]) + (rot,))
    else:
        rotated = op("concatenate", real, imag, axis=-1)
    if rot < head:
        rotated = op("concatenate", rotated,
                     op("getitem", x4, index=(Ellipsis, slice(rot, None))), axis=-1)
    if four_d:
        return op("transpose", rotated, axes=(0, 2, 1, 3))
    return op("reshape", rotated, shape=tuple(x.shape))


def _heads_of(x, heads, what):
    """(B, T, H * D) -> (B, H, T, D)."""
    b, t, width = x.shape
    if width % heads:
        raise ShapeError(f"LinearAttention: {what} width {width} is not a multiple of "
                         f"{heads} heads")
    return op("transpose", op("reshape", x, shape=(b, t, heads, width // heads)),
              axes=(0, 2, 1, 3))


@onnx_op("LinearAttention")
def linear_attention(inputs, attrs, ctx):
    """Recurrent linear attention over (B, T, H * D) inputs with a (B, H_kv, d_k, d_v) state:
    per step the state decays by exp(decay) ('gated'), corrects the value by beta times what
    the state already retrieves for the key ('delta'), adds key x value, and the query reads
    it (scaled); query heads share kv heads in groups (float16 inputs compute in float32);
    outputs (B, T, H_q * d_v) and the final state."""
    q, k, v = inputs[:3]
    past, decay, beta = (list(inputs[3:6]) + [None] * 3)[:3]
    rule = text(attrs.get("update_rule"), "gated_delta")
    if rule not in ("linear", "gated", "delta", "gated_delta"):
        raise ShapeError(f"LinearAttention update_rule {rule!r}")
    gating, delta = rule in ("gated", "gated_delta"), rule in ("delta", "gated_delta")
    if gating != (decay is not None) or delta != (beta is not None):
        raise ShapeError(f"LinearAttention update_rule {rule!r} takes decay "
                         f"{'and' if gating else 'but not'} beta {'' if delta else 'not'}"
                         " as its inputs say")
    hq, hkv = int(attrs["q_num_heads"]), int(attrs["kv_num_heads"])
    if hq % hkv:
        raise ShapeError(f"LinearAttention: {hq} query heads cannot share {hkv} kv heads")

    work = np.float32 if q.dtype == np.float16 else q.dtype       # float16 computes in float32

    def f32(t):
        return op("cast", t, dtype=work) if t is not None and t.dtype != work else t
    out_dtype = q.dtype
    q4, k4, v4 = (_heads_of(f32(t), n, w) for t, n, w in ((q, hq, "query"), (k, hkv, "key"),
                                                           (v, hkv, "value")))
    b, _, steps, dk = q4.shape
    dv = v4.shape[3]
    if gating:
        decay = f32(decay)
        decay = _heads_of(decay, hkv, "decay") if decay.shape[-1] != hkv else \
            op("transpose", op("reshape", decay, shape=(b, steps, hkv, 1)), axes=(0, 2, 1, 3))
    if delta:
        width = beta.shape[-1]
        beta = op("transpose", op("reshape", f32(beta), shape=(b, steps, width, 1)),
                  axes=(0, 2, 1, 3))
    state = f32(past) if past is not None else const(np.zeros((b, hkv, dk, dv), work))
    scale = attrs.get("scale")
    scale = 1.0 / np.sqrt(dk) if scale is None or float(scale) == 0.0 else float(scale)
    group = hq // hkv
    outs = []
    for i in range(steps):
        at = (slice(None), slice(None), i)
        q_t, k_t, v_t = (op("getitem", t, index=at) for t in (q4, k4, v4))
        if gating:
            g = op("exp", op("getitem", decay, index=at))
            state = op("multiply", state, op("reshape", g, shape=tuple(g.shape) + (1,)))
        if delta:
            got = op("einsum", state, k_t, equation="bhdm,bhd->bhm")
            v_t = op("multiply", op("getitem", beta, index=at), op("subtract", v_t, got))
        state = op("add", state, op("multiply", op("reshape", k_t, shape=(b, hkv, dk, 1)),
                                    op("reshape", v_t, shape=(b, hkv, 1, dv))))
        read = op("repeat", state, repeats=group, axis=1) if group > 1 else state
        outs.append(op("multiply", op("einsum", q_t, read, equation="bhd,bhdm->bhm"),
                       const(np.asarray(scale, work))))
    y = op("reshape", op("transpose", op("stack", *outs, axis=2), axes=(0, 2, 1, 3)),
           shape=(b, steps, hq * dv))
    if y.dtype != out_dtype:
        y = op("cast", y, dtype=out_dtype)
    state_dtype = past.dtype if past is not None else out_dtype
    if state.dtype != state_dtype:
        state = op("cast", state, dtype=state_dtype)
    return [y, state][:max(ctx.num_outputs, 1)]
