"""Attention layers (Keras semantics and weight layout): MultiHeadAttention, Attention
(dot-product, Luong) and AdditiveAttention (Bahdanau).

MultiHeadAttention, as tf.keras 2.x and Keras 3 compute it: query/key/value projections
(EinsumDense kernels `(dim, num_heads, key_dim)`, biases `(num_heads, key_dim)`), scaled dot
products `softmax(q k^T / sqrt(key_dim))` over the attention axes with masked positions at
-1e9, dropout on the attention weights in training, and the output projection (kernel
`(num_heads, value_dim, *output_shape)`). Weights in Keras's order: query, key, value,
attention_output, each kernel then bias.

`attention_axes` (Keras's einsum equations): attention over those step axes only, the
others acting as batch axes; the softmax is joint over them and the scores are (B,
*other axes, N, *query attention axes, *key attention axes); masks broadcast as Keras's.

Calls: `mha(query, value, key=None, attention_mask=None, use_causal_mask=False,
return_attention_scores=False)`; the graph keeps the tensors as the list
`[query, value(, key(, attention_mask))]` and the two flags as call keyword arguments.
"""

import numpy as np

from ..backend import functions as F
from ..backend.tensor import as_array
from ..engine.base_layer import Layer
from ..attention_axes import AxesLayout, attention_axes_of
from ..errors import ConfigError, ShapeError, UnsupportedError
from ._attention import attention_weights, causal_mask, combine_masks
from ._kernel_bias import kernel_bias_config, set_kernel_bias
from .serialization import register_layer

__all__ = ["MultiHeadAttention", "Attention", "AdditiveAttention"]

_PROJECTIONS = ("query", "key", "value")


def _positive_int(value, what, where):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{where}: {what} must be a positive int, got {value!r}")
    return int(value)


@register_layer
class MultiHeadAttention(Layer):
    """Multi-head attention (Vaswani et al.) with Keras's configuration and weights.

    `MultiHeadAttention(num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True,
    output_shape=None, attention_axes=None, kernel_initializer="glorot_uniform", ...)`.
    """

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True,
                 output_shape=None, attention_axes=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, query_shape=None,
                 key_shape=None, value_shape=None, softmax_robust_masking=False,
                 use_gate=False, sliding_window=None, seed=None, flash_attention=None,
                 **kwargs):
        super().__init__(**kwargs)
        where = f"MultiHeadAttention {self.name!r}"
        if use_gate or sliding_window is not None:
            raise UnsupportedError(f"{where}: Keras 3's use_gate and sliding_window are not "
                                   "supported", items=[self.name])
        self.num_heads = _positive_int(num_heads, "num_heads", where)
        self.key_dim = _positive_int(key_dim, "key_dim", where)
        self.value_dim = (self.key_dim if value_dim is None
                          else _positive_int(value_dim, "value_dim", where))
        self.dropout = float(dropout)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{where}: dropout must be in [0, 1), got {dropout!r}")
        self.use_bias = bool(use_bias)
        if isinstance(output_shape, (list, tuple)):
            dims = [_positive_int(d, "output_shape", where) for d in output_shape]
            output_shape = dims[0] if len(dims) == 1 else dims
        elif output_shape is not None:
            output_shape = _positive_int(output_shape, "output_shape", where)
        self._output_shape = output_shape
        if isinstance(attention_axes, (int, np.integer)):
            attention_axes = [int(attention_axes)]
        elif attention_axes is not None:
            attention_axes = [int(a) for a in attention_axes]
        self.attention_axes = attention_axes
        self.softmax_robust_masking = bool(softmax_robust_masking)
        self._build_shapes = {"query_shape": query_shape, "key_shape": key_shape,
                              "value_shape": value_shape}
        set_kernel_bias(self, kernel_initializer, bias_initializer, kernel_regularizer,
                        bias_regularizer, kernel_constraint, bias_constraint)
        self.supports_masking = True
        self._scores_out = False

    # -- calling ---------------------------------------------------------------------------

    def __call__(self, query, value=None, key=None, attention_mask=None,
                 use_causal_mask=False, return_attention_scores=False, training=None, **kw):
        if isinstance(query, (list, tuple)) and value is None:
            items = list(query)                       # the graph's list form
        else:
            if value is None:
                raise ConfigError(f"MultiHeadAttention {self.name!r} needs a value tensor")
            items = [query, value]
            if key is not None or attention_mask is not None:
                items.append(value if key is None else key)
            if attention_mask is not None:
                items.append(attention_mask)
        if not 2 <= len(items) <= 4:
            raise ConfigError(f"MultiHeadAttention {self.name!r} takes [query, value, key, "
                              f"attention_mask] (2 to 4 tensors), got {len(items)}")
        self._scores_out = bool(return_attention_scores)
        if use_causal_mask:
            kw["use_causal_mask"] = True
        if return_attention_scores:
            kw["return_attention_scores"] = True
        if training is not None:
            kw["training"] = training
        return super().__call__(items, **kw)

    def build(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        q, v = shapes[0], shapes[1]
        k = shapes[2] if len(shapes) > 2 else v
        where = f"MultiHeadAttention {self.name!r}"
        if len(q) < 3 or len(v) != len(q) or len(k) != len(q):
            raise ShapeError(f"{where}: query, value and key must have the same rank >= 3, "
                             f"got shapes {q}, {v}, {k}")
        rank = len(q)
        default = list(range(1, rank - 1))
        self._attn = attention_axes_of(self.attention_axes, rank, where)
        if self._attn is not None:
            for shape, what in ((v, "value"), (k, "key")):
                for a in default:
                    if a not in self._attn and None not in (q[a], shape[a]) and \
                            q[a] != shape[a]:
                        raise ShapeError(f"{where}: axis {a} is not an attention axis, so the "
                                         f"{what} must match the query there: got shapes "
                                         f"{q} and {shape}")
        if None in (q[-1], v[-1], k[-1]):
            raise ShapeError(f"{where}: the last axis of query, value and key must be known")
        self._rank = rank
        if self._attn is None:
            self.attention_axes = default
        self._build_shapes = {"query_shape": [None, *q[1:]], "key_shape": [None, *k[1:]],
                              "value_shape": [None, *v[1:]]}
        out = self._output_shape
        self._out_dims = (q[-1],) if out is None else tuple(out) if isinstance(out, list) \
            else (out,)
        n, kd, vd = self.num_heads, self.key_dim, self.value_dim
        for name, dim, head in (("query", q[-1], kd), ("key", k[-1], kd), ("value", v[-1], vd)):
            setattr(self, f"_{name}_kernel", self._weight(f"{name}/kernel", (dim, n, head),
                                                          "kernel", 1))
            setattr(self, f"_{name}_bias", self._weight(f"{name}/bias", (n, head), "bias", 0)
                    if self.use_bias else None)
        self._out_kernel = self._weight("attention_output/kernel", (n, vd) + self._out_dims,
                                        "kernel", 2)
        self._out_bias = self._weight("attention_output/bias", self._out_dims, "bias", 0) \
            if self.use_bias else None
        self.built = True

    def _weight(self, name, shape, role, in_axes):
        """A weight with the role's options; initialised as the 2-D matrix (first
        `in_axes` axes as rows) so fan-in/fan-out are Keras EinsumDense's."""
        init = getattr(self, f"{role}_initializer")
        if in_axes:
            rows = int(np.prod(shape[:in_axes]))

            def matrix_init(shape, dtype=None, _init=init):
                return np.reshape(_init((rows, int(np.prod(shape)) // rows), dtype=dtype), shape)
            init = matrix_init
        return self.add_weight(name, shape, initializer=init,
                               regularizer=getattr(self, f"{role}_regularizer"),
                               constraint=getattr(self, f"{role}_constraint"))

    def _project(self, x, kernel, bias, heads, head_dim):
        """(B, *steps, dim) -> (B, heads, steps, head_dim)."""
        b = x.shape[0]
        y = F.dense(x, F.reshape(kernel, (kernel.shape[0], heads * head_dim)),
                    None if bias is None else F.reshape(bias, (heads * head_dim,)))
        y = F.reshape(y, (b, -1, heads, head_dim))
        return F.transpose(y, (0, 2, 1, 3))

    def call(self, inputs, mask=None, training=None, use_causal_mask=False,
             return_attention_scores=False):
        if getattr(self, "_attn", None) is not None:
            return self._call_over_axes(inputs, mask, training, use_causal_mask,
                                        return_attention_scores)
        q_in, v_in = inputs[0], inputs[1]
        k_in = inputs[2] if len(inputs) > 2 else v_in
        b, steps_q, steps_v = q_in.shape[0], q_in.shape[1:-1], v_in.shape[1:-1]
        t, s = int(np.prod(steps_q)), int(np.prod(steps_v))
        n, kd, vd = self.num_heads, self.key_dim, self.value_dim
        q = self._project(q_in, self._query_kernel, self._query_bias, n, kd)
        k = self._project(k_in, self._key_kernel, self._key_bias, n, kd)
        v = self._project(v_in, self._value_kernel, self._value_bias, n, vd)
        q = F.multiply(q, np.asarray(1.0 / np.sqrt(kd), q.dtype))
        scores = F.matmul(q, F.transpose(k, (0, 1, 3, 2)))            # (B, N, T, S)
        weights = attention_weights(scores, self._mask(inputs, mask, b, t, s, use_causal_mask),
                                    self.dropout, training)
        out = F.transpose(F.matmul(weights, v), (0, 2, 1, 3))         # (B, T, N, vd)
        out = F.dense(F.reshape(out, (b, t, n * vd)),
                      F.reshape(self._out_kernel, (n * vd, -1)),
                      None if self._out_bias is None else F.reshape(self._out_bias, (-1,)))
        out = F.reshape(out, (b,) + tuple(steps_q) + self._out_dims)
        if return_attention_scores:
            return [out, F.reshape(weights, (b, n) + tuple(steps_q) + tuple(steps_v))]
        return out

    def _call_over_axes(self, inputs, masks, training, use_causal_mask, scores_out):
        """Attention over the axes `_attn` only (Keras's einsum equations): every other step
        axis is a batch axis, so the inputs are permuted to (B, *others, N, *attention,
        head) and flattened to the default (B', N, T, S) form, then permuted back; the
        softmax is joint over the attention axes; the scores are (B, *others, N,
        *query attention axes, *key attention axes) as Keras returns them."""
        q_in, v_in = inputs[0], inputs[1]
        k_in = inputs[2] if len(inputs) > 2 else v_in
        n, kd, vd = self.num_heads, self.key_dim, self.value_dim
        layout = AxesLayout(self._rank, self._attn)
        q = self._project_axes(q_in, self._query_kernel, self._query_bias, kd, layout)
        k = self._project_axes(k_in, self._key_kernel, self._key_bias, kd, layout)
        v = self._project_axes(v_in, self._value_kernel, self._value_bias, vd, layout)
        q = F.multiply(q, np.asarray(1.0 / np.sqrt(kd), q.dtype))
        scores = F.matmul(q, F.transpose(k, (0, 1, 3, 2)))            # (B', N, T, S)
        keras_shape = layout.scores_shape(q_in.shape, v_in.shape, n)
        mask = self._keras_mask(inputs, masks, use_causal_mask, keras_shape)
        if mask is not None:
            mask = np.reshape(mask, scores.shape)
        weights = attention_weights(scores, mask, self.dropout, training)
        out = F.reshape(F.matmul(weights, v), layout.permuted_dims(q_in.shape, n, vd))
        out = F.transpose(out, layout.inverse_perm)                  # (B, *steps, N, vd)
        b, steps_q = q_in.shape[0], tuple(q_in.shape[1:-1])
        out = F.dense(F.reshape(out, (b,) + steps_q + (n * vd,)),
                      F.reshape(self._out_kernel, (n * vd, -1)),
                      None if self._out_bias is None else F.reshape(self._out_bias, (-1,)))
        out = F.reshape(out, (b,) + steps_q + self._out_dims)
        if scores_out:
            return [out, F.reshape(weights, keras_shape)]
        return out

    def _project_axes(self, x, kernel, bias, head_dim, layout):
        """(B, *steps, dim) -> (B', heads, attention steps, head_dim) for `layout`."""
        n = self.num_heads
        y = F.dense(x, F.reshape(kernel, (kernel.shape[0], n * head_dim)),
                    None if bias is None else F.reshape(bias, (n * head_dim,)))
        y = F.transpose(F.reshape(y, tuple(x.shape[:-1]) + (n, head_dim)), layout.perm)
        return F.reshape(y, layout.flat_shape(x.shape, n, head_dim))

    def _keras_mask(self, inputs, masks, use_causal_mask, scores_shape):
        """The bool mask as Keras builds it (query mask [..., None] & value / key masks
        [..., None, :] & attention_mask & the causal (1, T, S) over axis 1), expanded before
        its last 2 x (attention axes) dims up to the scores' rank and broadcast to the
        (B, *others, N, *T, *S) scores; None when nothing is masked."""
        masks = list(masks) if isinstance(masks, (list, tuple)) else [masks, None, None]
        masks += [None] * (3 - len(masks))
        parts = []
        if masks[0] is not None:
            parts.append(np.asarray(as_array(masks[0]), bool)[..., None])
        for m in masks[1:3] if len(inputs) > 2 else masks[1:2]:
            if m is not None:
                parts.append(np.expand_dims(np.asarray(as_array(m), bool), -2))
        if len(inputs) > 3:
            parts.append(np.asarray(as_array(inputs[3])).astype(bool))
        if use_causal_mask:
            parts.append(causal_mask(inputs[0].shape[1], inputs[1].shape[1]))
        if not parts:
            return None
        where = f"MultiHeadAttention {self.name!r}"
        try:
            mask = np.broadcast_arrays(*parts)[0] if len(parts) == 1 else \
                np.logical_and.reduce(np.broadcast_arrays(*parts))
            while mask.ndim < len(scores_shape):
                mask = np.expand_dims(mask, AxesLayout(self._rank, self._attn).mask_axis)
            return np.broadcast_to(mask, scores_shape)
        except ValueError:
            raise ShapeError(f"{where}: the masks ({[p.shape for p in parts]}) do not "
                             f"broadcast to the attention scores {scores_shape}") from None

    def _mask(self, inputs, masks, b, t, s, use_causal_mask):
        """The (B or 1, 1, T, S) bool mask from the inputs' Keras masks, attention_mask
        and the causal rule; None when nothing is masked."""
        masks = list(masks) if isinstance(masks, (list, tuple)) else [masks, None, None]
        masks += [None] * (3 - len(masks))
        parts = []
        if masks[0] is not None:
            parts.append(np.reshape(as_array(masks[0]), (b, t, 1)))
        for m in masks[1:3] if len(inputs) > 2 else masks[1:2]:
            if m is not None:
                parts.append(np.reshape(as_array(m), (b, 1, s)))
        if len(inputs) > 3:
            parts.append(np.reshape(as_array(inputs[3]), (b, t, s)))
        if use_causal_mask:
            parts.append(causal_mask(t, s))
        mask = combine_masks(*parts)
        return None if mask is None else mask[:, None]

    def compute_output_shape(self, input_shape):
        q = tuple(input_shape[0])
        v = tuple(input_shape[1])
        out_dims = (q[-1],) if self._output_shape is None else (
            tuple(self._output_shape) if isinstance(self._output_shape, list)
            else (self._output_shape,))
        out = q[:-1] + out_dims
        if self._scores_out:
            attn = attention_axes_of(self.attention_axes, len(q), self.name)
            if attn is not None:
                return [out, AxesLayout(len(q), attn).scores_shape(q, v, self.num_heads)]
            return [out, (q[0], self.num_heads) + q[1:-1] + v[1:-1]]
        return out

    def compute_mask(self, inputs, mask=None):
        qm = mask[0] if isinstance(mask, (list, tuple)) else mask
        return [qm, None] if self._scores_out else qm

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_heads": self.num_heads, "key_dim": self.key_dim, "value_dim": self.value_dim,
            "dropout": self.dropout, "use_bias": self.use_bias,
            "output_shape": self._output_shape, "attention_axes": self.attention_axes,
            **kernel_bias_config(self),
            **self._build_shapes,          # tf-keras's from_config needs them
        })
        if self.softmax_robust_masking:
            config["softmax_robust_masking"] = True
        return config


class _DenseAttention(Layer):
    """What Attention and AdditiveAttention share (Keras's BaseDenseAttention): inputs
    `[query, value]` or `[query, value, key]`, scores from `_scores(q, k)`, the value
    mask and the causal rule on the scores, dropout on the weights, the query mask zeroing
    the output, and `return_attention_scores` adding the weights as a second output."""

    def __init__(self, dropout=0.0, causal=False, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.dropout = float(dropout)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{type(self).__name__} {self.name!r}: dropout must be in "
                              f"[0, 1), got {dropout!r}")
        self.causal = bool(causal)          # tf.keras <= 2.9: a causal mask on every call
        self.supports_masking = True
        self._scores_out = False

    def __call__(self, inputs, use_causal_mask=False, return_attention_scores=False, **kw):
        self._scores_out = bool(return_attention_scores)
        if use_causal_mask:
            kw["use_causal_mask"] = True
        if return_attention_scores:
            kw["return_attention_scores"] = True
        return super().__call__(inputs, **kw)

    def _shapes(self, input_shape):
        where = f"{type(self).__name__} {self.name!r}"
        if not isinstance(input_shape, (list, tuple)) or not input_shape or \
                not isinstance(input_shape[0], (list, tuple)) or len(input_shape) not in (2, 3):
            raise ShapeError(f"{where} takes a list [query, value] or [query, value, key]")
        shapes = [tuple(s) for s in input_shape]
        if any(len(s) != 3 for s in shapes):
            raise ShapeError(f"{where}: query, value and key must be (batch, steps, dim), got "
                             f"{shapes}")
        return shapes

    def build(self, input_shape):
        shapes = self._shapes(input_shape)
        self._build_scores(shapes[0][-1])
        self.built = True

    def _build_scores(self, dim):
        """Add the score weights (nothing by default)."""

    def call(self, inputs, mask=None, training=None, use_causal_mask=False,
             return_attention_scores=False):
        q, v = inputs[0], inputs[1]
        k = inputs[2] if len(inputs) > 2 else v
        masks = list(mask) if isinstance(mask, (list, tuple)) else [None, None]
        scores = self._scores(q, k)                                   # (B, Tq, Tv)
        keep = None if masks[1] is None else np.asarray(as_array(masks[1]), bool)[:, None]
        if use_causal_mask or self.causal:
            keep = combine_masks(keep, causal_mask(q.shape[1], k.shape[1]))
        weights = attention_weights(scores, keep, self.dropout, training, subtract=True)
        out = F.matmul(weights, v)
        if masks[0] is not None:
            out = F.multiply(out, np.asarray(as_array(masks[0]), out.dtype)[..., None])
        return [out, weights] if return_attention_scores else out

    def compute_output_shape(self, input_shape):
        shapes = self._shapes(input_shape)
        out = shapes[0][:-1] + shapes[1][-1:]
        return [out, shapes[0][:-1] + shapes[1][1:2]] if self._scores_out else out

    def compute_mask(self, inputs, mask=None):
        qm = mask[0] if isinstance(mask, (list, tuple)) else None
        return [qm, None] if self._scores_out else qm

    def get_config(self):
        config = super().get_config()
        config["dropout"] = self.dropout
        if self.causal:
            config["causal"] = True
        return config


@register_layer
class Attention(_DenseAttention):
    """Dot-product (Luong) attention: `Attention(use_scale=False, score_mode="dot",
    dropout=0.0)`; scores `q . k` (times the scalar weight `scale`), or with
    `score_mode="concat"` `concat_score_weight * sum(tanh(scale * (q + k)))`."""

    def __init__(self, use_scale=False, score_mode="dot", **kwargs):
        super().__init__(**kwargs)
        if score_mode not in ("dot", "concat"):
            raise ConfigError(f"Attention {self.name!r}: score_mode must be 'dot' or "
                              f"'concat', got {score_mode!r}")
        self.use_scale = bool(use_scale)
        self.score_mode = score_mode

    def _build_scores(self, dim):
        self.scale = self.add_weight("scale", (), initializer="ones") \
            if self.use_scale else None
        self.concat_score_weight = self.add_weight("concat_score_weight", (),
                                                   initializer="ones") \
            if self.score_mode == "concat" else None

    def _scores(self, q, k):
        if self.score_mode == "dot":
            scores = F.matmul(q, F.transpose(k, (0, 2, 1)))
            return scores if self.scale is None else F.multiply(scores, self.scale)
        total = F.add(F.expand_dims(q, 2), F.expand_dims(k, 1))       # (B, Tq, Tv, dim)
        if self.scale is not None:
            total = F.multiply(self.scale, total)
        return F.multiply(self.concat_score_weight, F.sum(F.tanh(total), axis=-1))

    def get_config(self):
        config = super().get_config()
        config.update({"use_scale": self.use_scale, "score_mode": self.score_mode})
        return config


@register_layer
class AdditiveAttention(_DenseAttention):
    """Additive (Bahdanau) attention: `AdditiveAttention(use_scale=True, dropout=0.0)`;
    scores `sum(scale * tanh(q + k))` with the per-feature weight `scale` (dim,)."""

    def __init__(self, use_scale=True, **kwargs):
        super().__init__(**kwargs)
        self.use_scale = bool(use_scale)

    def _build_scores(self, dim):
        self.scale = self.add_weight("scale", (dim,), initializer="glorot_uniform") \
            if self.use_scale else None

    def _scores(self, q, k):
        total = F.tanh(F.add(F.expand_dims(q, 2), F.expand_dims(k, 1)))
        if self.scale is not None:
            total = F.multiply(self.scale, total)
        return F.sum(total, axis=-1)

    def get_config(self):
        config = super().get_config()
        config["use_scale"] = self.use_scale
        return config
