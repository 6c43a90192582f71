"""Fused recurrent sequence ops: a whole SimpleRNN / GRU / LSTM sequence in ONE backend op.

Each op runs the full sequence in its forward function and backpropagates through time
inside its vector-Jacobian product, so the tape records one entry per sequence instead of
dozens per timestep:

* the input projection of all timesteps is one GEMM (`x @ kernel + bias`, time-major);
* each step does one GEMM with the recurrent kernel plus in-place elementwise updates on
  preallocated buffers; the gate activations are stored gate-major ((time, gate, batch,
  units), every gate block contiguous) and kept for the backward pass;
* the backward pass does one GEMM per step (two for GRU `reset_after=False`) and the weight
  and input gradients of all timesteps at the end as single GEMMs;
* the large per-call arrays come from a buffer pool that hands an array out again only
  once nothing refers to it (`clear_buffer_pool()` releases them).

Numerics are Keras 2's (tf.keras) cell equations, weights in Keras's layout:

    LSTM  kernel (in, 4u) gates i, f, c, o; recurrent_kernel (u, 4u); bias (4u,)
          i, f, o = ra(z_i), ra(z_f), ra(z_o); c' = f*c + i*a(z_c); h' = o*a(c')
    GRU   kernel (in, 3u) gates z, r, h; recurrent_kernel (u, 3u)
          reset_after=True:  bias (2, 3u) = [input bias, recurrent bias]
              hh = a(x_h + r * (h R_h + b_rh))
          reset_after=False: bias (3u,)
              hh = a(x_h + (r * h) R_h)
          h' = z*h + (1-z)*hh
    SimpleRNN  h' = a(x W + b + h R)

Masking (Keras 2 `K.rnn`): at a masked step the states are carried unchanged and the output
repeats the previous step's output (zeros before the first unmasked step), or is zero when
`zero_output_for_mask` (what Bidirectional forces). `go_backwards` processes the sequence
reversed and returns the outputs in processing order, as Keras does.

Dropout masks are inputs (made by the layer, as Keras makes them once per sequence):
`input_dropout` is None, (batch, in) (one mask for all gates: Keras `implementation=2`) or
(gates, batch, in) (one per gate: `implementation=1`); `recurrent_dropout` is None,
(batch, units) or (gates, batch, units). Gate order of per-gate masks is Keras's.

Activations are fixed per call and passed by name (`ACTIVATIONS` lists them).
"""

import numpy as np

from ..errors import ShapeError
from .buffers import BufferPool
from .tape import apply, defop
from .rnn_activations import ACTIVATIONS, get_activation  # noqa: F401  (ACTIVATIONS re-exported)

# the large per-call arrays come from one pool
_POOL = BufferPool()
_empty = _POOL.empty


def clear_buffer_pool():
    """Release the arrays the fused recurrent ops keep for reuse."""
    _POOL.clear()


# ---------------------------------------------------------------------------------------
# shared pieces


def _gemm(a, b, out=None):
    """Every matrix product of the fused ops goes through here (benchmarks profile it)."""
    return np.matmul(a, b, out=out)


def _to_time_major(x, go_backwards):
    """(batch, time, ...) -> contiguous (time, batch, ...) in processing order."""
    xt = np.swapaxes(x, 0, 1)
    if go_backwards:
        xt = xt[::-1]
    out = _empty(xt.shape, xt.dtype)
    np.copyto(out, xt)
    return out


def _from_time_major(xt, go_backwards):
    """Inverse of `_to_time_major` (a view)."""
    if go_backwards:
        xt = xt[::-1]
    return np.swapaxes(xt, 0, 1)


def _prepare_mask(mask, go_backwards, shape):
    """(batch, time) mask -> (time, batch, 1) bool "keep" and its negation, or (None, None)
    when nothing is masked."""
    if mask is None:
        return None, None
    m = np.asarray(mask).astype(bool, copy=False)
    if m.shape != tuple(shape):
        raise ShapeError(f"the mask must have shape (batch, time) = {tuple(shape)}, got "
                         f"{m.shape}")
    if m.all():
        return None, None
    keep = _to_time_major(m, go_backwards)[..., None]
    return keep, ~keep


def _gate_masks(drop, gates, per_gate_perm=None):
    """A dropout mask as given: None, (B, n) (shared by all gates) or (G, B, n) (one per
    gate, Keras gate order; reordered by `per_gate_perm`)."""
    if drop is None or drop.ndim == 2:
        return drop
    if drop.ndim != 3 or drop.shape[0] != gates:
        raise ShapeError(f"per-gate dropout masks must have shape ({gates}, batch, n), got "
                         f"{drop.shape}")
    return drop if per_gate_perm is None else drop[per_gate_perm]


def _project(x_tm, kernel, bias, drop, gates):
    """Input projection of all timesteps: (T, B, I) -> (T, B, G*u) in one GEMM (one per
    gate when each gate has its own dropout mask). Returns (projection, saved inputs)."""
    T, B, I = x_tm.shape
    width = kernel.shape[1]
    if drop is None or drop.ndim == 2:
        xm = x_tm if drop is None else x_tm * drop
        xp = _gemm(xm.reshape(T * B, I), kernel, out=_empty((T * B, width), x_tm.dtype))
    else:
        u = width // gates
        xm = x_tm[None] * drop[:, None]                                 # (G, T, B, I)
        kg = np.ascontiguousarray(kernel.reshape(I, gates, u).transpose(1, 0, 2))
        res = _gemm(xm.reshape(gates, T * B, I), kg)                    # (G, T*B, u)
        xp = np.ascontiguousarray(res.transpose(1, 0, 2)).reshape(T * B, width)
    if bias is not None:
        xp += bias
    return xp.reshape(T, B, width), xm


def _project_backward(dxp, xm, kernel, drop, gates, need_x, need_w, need_b):
    """Gradients of `_project` given d(projection) (T, B, G*u)."""
    T, B, width = dxp.shape
    I = kernel.shape[0]
    d2 = dxp.reshape(T * B, width)
    dx = dw = db = None
    if need_b:
        db = d2.sum(axis=0)
    if drop is None or drop.ndim == 2:
        if need_w:
            dw = _gemm(xm.reshape(T * B, I).T, d2)
        if need_x:
            dx = _gemm(d2, kernel.T, out=_empty((T * B, I), d2.dtype)).reshape(T, B, I)
            if drop is not None:
                dx *= drop
    else:
        u = width // gates
        dg = d2.reshape(T * B, gates, u).transpose(1, 0, 2)             # (G, T*B, u)
        if need_w:
            dwg = _gemm(xm.reshape(gates, T * B, I).transpose(0, 2, 1), dg)   # (G, I, u)
            dw = np.ascontiguousarray(dwg.transpose(1, 0, 2)).reshape(I, width)
        if need_x:
            kg = kernel.reshape(I, gates, u).transpose(1, 2, 0)         # (G, u, I)
            dxg = _gemm(dg, kg).reshape(gates, T, B, I)
            dxg *= drop[:, None]
            dx = dxg.sum(axis=0)
    return dx, dw, db


def _rec_forward(h, rd, R, Rg, out):
    """out (B, G*u) = [(h * rd_g) @ R_g]_g; returns the dropped h (G, B, U) or None."""
    if rd is None:
        _gemm(h, R, out=out)
        return None
    hd = h[None] * rd
    res = _gemm(hd, Rg)                                                 # (G, B, u)
    B = h.shape[0]
    out.reshape(B, rd.shape[0], -1)[...] = res.transpose(1, 0, 2)
    return hd


def _rec_backward(dz, rd, R, Rg):
    """d h given d(out) of `_rec_forward`."""
    if rd is None:
        return _gemm(dz, R.T)
    B = dz.shape[0]
    G = rd.shape[0]
    dzg = dz.reshape(B, G, -1).transpose(1, 0, 2)                       # (G, B, u)
    dhd = _gemm(dzg, Rg.transpose(0, 2, 1))                             # (G, B, U)
    dhd *= rd
    return dhd.sum(axis=0)


def _rec_weight_grad(hs, dz, rd):
    """d R for all timesteps: hs (T, B, U) (or (G, T, B, U) dropped), dz (T, B, G*u)."""
    T, B, width = dz.shape
    if rd is None:
        U = hs.shape[-1]
        return _gemm(hs.reshape(T * B, U).T, dz.reshape(T * B, width))
    G, U = hs.shape[0], hs.shape[-1]
    u = width // G
    dzg = dz.reshape(T * B, G, u).transpose(1, 0, 2)                    # (G, T*B, u)
    res = _gemm(hs.reshape(G, T * B, U).transpose(0, 2, 1), dzg)        # (G, U, u)
    return np.ascontiguousarray(res.transpose(1, 0, 2)).reshape(U, width)


def _split_rec(R, gates):
    U, width = R.shape
    return np.ascontiguousarray(R.reshape(U, gates, width // gates).transpose(1, 0, 2))


def _init_state(h0, B, U, dtype):
    if h0 is None:
        return np.zeros((B, U), dtype)
    return h0


def _check(name, x, kernel, recurrent_kernel, h0, extra_states=()):
    if x.ndim != 3:
        raise ShapeError(f"{name}: input must be (batch, time, features), got shape {x.shape}")
    B, _, I = x.shape
    if kernel.shape[0] != I:
        raise ShapeError(f"{name}: kernel expects {kernel.shape[0]} input features, got "
                         f"input of shape {x.shape}")
    U = recurrent_kernel.shape[0]
    for s in (h0,) + tuple(extra_states):
        if s is not None and s.shape != (B, U):
            raise ShapeError(f"{name}: initial state must have shape {(B, U)}, got {s.shape}")
    return B, I, U


def _mask_outputs(out_t, prev_out, drop_rows, zero_output):
    """Masked rows of this step's output repeat the previous output (or are zero)."""
    if zero_output:
        np.copyto(out_t, 0, where=drop_rows)
    else:
        np.copyto(out_t, prev_out, where=drop_rows)


def _seq_grads(gseq):
    """The output-sequence gradient, time-major (a view). Outputs are in processing order
    already, so go_backwards needs no flip here."""
    return np.swapaxes(gseq, 0, 1)


# ---------------------------------------------------------------------------------------
# LSTM

# Internally the gates are ordered i, f, o, c so the three recurrent-activation gates are
# one contiguous block; Keras's order is i, f, c, o. Swapping blocks 2 and 3 is its own
# inverse.
_LSTM_PERM_BLOCKS = (0, 1, 3, 2)


def _lstm_perm(u):
    return np.concatenate([np.arange(b * u, (b + 1) * u) for b in _LSTM_PERM_BLOCKS])


@defop("lstm_sequence", n_outputs=3)
def _lstm_sequence(x, kernel, recurrent_kernel, bias=None, h0=None, c0=None, mask=None,
                   input_dropout=None, recurrent_dropout=None, activation="tanh",
                   recurrent_activation="sigmoid", go_backwards=False,
                   zero_output_for_mask=False):
    """-> (outputs (B, T, u) in processing order, h_T (B, u), c_T (B, u))."""
    B, I, U = _check("lstm_sequence", x, kernel, recurrent_kernel, h0, (c0,))
    T = x.shape[1]
    dt = x.dtype
    act, ract = get_activation(activation), get_activation(recurrent_activation)
    perm = _lstm_perm(U)
    W = kernel[:, perm]
    R = np.ascontiguousarray(recurrent_kernel[:, perm])
    b = None if bias is None else bias[perm]
    idrop = _gate_masks(input_dropout, 4, list(_LSTM_PERM_BLOCKS))
    rdrop = _gate_masks(recurrent_dropout, 4, list(_LSTM_PERM_BLOCKS))
    if rdrop is not None and rdrop.ndim == 2:
        rdrop = np.broadcast_to(rdrop, (4,) + rdrop.shape)
    Rg = _split_rec(R, 4) if rdrop is not None else None
    keep, drop_rows = _prepare_mask(mask, go_backwards, x.shape[:2])

    x_tm = _to_time_major(x, go_backwards)
    P, xm = _project(x_tm, W, b, idrop, 4)          # (T, B, 4u), bias included
    Pg = P.reshape(T, B, 4, U)
    # gate activations, gate-major: Z[t, k] is gate k (i, f, o, c) of step t, contiguous
    Z = _empty((T, 4, B, U), dt)
    H = _empty((T + 1, B, U), dt)
    C = _empty((T + 1, B, U), dt)
    H[0] = _init_state(h0, B, U, dt)
    C[0] = _init_state(c0, B, U, dt)
    AC = _empty((T, B, U), dt)                      # a(c_t)
    OUT = H[1:] if keep is None else _empty((T, B, U), dt)
    HD = None if rdrop is None else _empty((4, T, B, U), dt)
    save_pre = act.needs_x or ract.needs_x
    PRE = _empty(Z.shape, Z.dtype) if save_pre else None
    rec = np.empty((B, 4 * U), dt)
    recg = rec.reshape(B, 4, U).transpose(1, 0, 2)
    tmp = np.empty((B, U), dt)
    for t in range(T):
        zt = Z[t]
        hd = _rec_forward(H[t], rdrop, R, Rg, rec)
        if hd is not None:
            HD[:, t] = hd
        np.add(Pg[t].transpose(1, 0, 2), recg, out=zt)
        if save_pre:
            PRE[t] = zt
        ract.fwd(zt[:3], zt[:3])
        act.fwd(zt[3], zt[3])
        i, f, o, g = zt
        c_new = C[t + 1]
        np.multiply(f, C[t], out=c_new)
        np.multiply(i, g, out=tmp)
        c_new += tmp
        act.fwd(c_new, AC[t])
        np.multiply(o, AC[t], out=H[t + 1])
        if keep is not None:
            OUT[t] = H[t + 1]
            _mask_outputs(OUT[t], OUT[t - 1] if t else 0, drop_rows[t], zero_output_for_mask)
            np.copyto(H[t + 1], H[t], where=drop_rows[t])
            np.copyto(C[t + 1], C[t], where=drop_rows[t])
    del P, Pg
    saved = dict(x_shape=x.shape, xm=xm, W=W, R=R, Rg=Rg, perm=perm, has_bias=bias is not None,
                 idrop=idrop, rdrop=rdrop, keep=keep, drop_rows=drop_rows, Z=Z, H=H, C=C, AC=AC,
                 HD=HD, PRE=PRE, act=act, ract=ract, go_backwards=go_backwards,
                 zero_output=zero_output_for_mask)
    return (np.swapaxes(OUT, 0, 1), H[T], C[T]), saved


def _lstm_backward_unmasked(Z, DZ, C, AC, PRE, dh, dc, gs, R, Rg, rdrop, act, ract, tmp,
                            work1):
    """BPTT of an unmasked LSTM sequence, in place on dh, dc and DZ (the hot loop: every
    array is preallocated, every update in place, every gate block contiguous)."""
    T, _, B, U = Z.shape
    RT = np.ascontiguousarray(R.T) if rdrop is None else None
    if not gs.any():
        gs = None                   # only the last output is used (return_sequences=False)
    dzg = np.empty((4, B, U), Z.dtype)                  # this step's gate gradients
    work3 = np.empty((3, B, U), Z.dtype)
    DZg = DZ.reshape(T, B, 4, U).transpose(0, 2, 1, 3)  # gate-major view of DZ
    for t in range(T - 1, -1, -1):
        zt = Z[t]
        i, f, o, g = zt
        if gs is not None:
            dh += gs[t]                                                 # d h'
        np.multiply(dh, AC[t], out=dzg[2])                              # d o
        np.multiply(dh, o, out=tmp)
        act.grad(tmp, AC[t], C[t + 1], work1)
        dc += tmp                                                       # d c'
        np.multiply(dc, g, out=dzg[0])                                  # d i
        np.multiply(dc, C[t], out=dzg[1])                               # d f
        np.multiply(dc, i, out=dzg[3])                                  # d g
        dc *= f                                                         # d c
        ract.grad(dzg[:3], zt[:3], None if PRE is None else PRE[t][:3], work3)
        act.grad(dzg[3], g, None if PRE is None else PRE[t][3], work1)
        np.copyto(DZg[t], dzg)
        if rdrop is None:
            _gemm(DZ[t], RT, out=dh)                                    # d h
        else:
            dh[...] = _rec_backward(DZ[t], rdrop, R, Rg)


def _lstm_backward_masked(Z, DZ, C, AC, PRE, dh, dc, gs, R, Rg, rdrop, act, ract, keep,
                          drop_rows, zero_output, tmp):
    """BPTT of a masked LSTM sequence: masked steps pass the state gradients through and
    (unless zero_output) hand the output gradient back to the previous output."""
    T, _, B, U = Z.shape
    carry = None if zero_output else np.zeros((B, U), Z.dtype)
    dh_new, dcn = np.empty_like(dh), np.empty_like(dc)
    dzg = np.empty((4, B, U), Z.dtype)
    DZg = DZ.reshape(T, B, 4, U).transpose(0, 2, 1, 3)
    for t in range(T - 1, -1, -1):
        zt = Z[t]
        i, f, o, g = zt
        np.add(gs[t], dh, out=dh_new)
        np.copyto(dcn, dc)
        m = keep[t]
        if carry is not None:
            dh_new += carry
            np.multiply(gs[t] + carry, drop_rows[t], out=carry)
        dh *= drop_rows[t]                          # carried part of h's gradient
        dc *= drop_rows[t]
        dh_new *= m
        dcn *= m
        # h' = o * a(c')
        np.multiply(dh_new, AC[t], out=dzg[2])                          # d o
        np.multiply(dh_new, o, out=tmp)
        act.grad(tmp, AC[t], C[t + 1])
        dcn += tmp
        # c' = f * c + i * g
        np.multiply(dcn, g, out=dzg[0])                                 # d i
        np.multiply(dcn, C[t], out=dzg[1])                              # d f
        np.multiply(dcn, i, out=dzg[3])                                 # d g
        np.multiply(dcn, f, out=tmp)
        dc += tmp
        ract.grad(dzg[:3], zt[:3], None if PRE is None else PRE[t][:3])
        act.grad(dzg[3], g, None if PRE is None else PRE[t][3])
        np.copyto(DZg[t], dzg)
        dh += _rec_backward(DZ[t], rdrop, R, Rg)


@_lstm_sequence.defvjp
def _lstm_sequence_vjp(grads, s, needs):
    gseq, ghT, gcT = grads
    Z, H, C, AC = s["Z"], s["H"], s["C"], s["AC"]
    T, B, U = AC.shape
    dt = Z.dtype
    act, ract = s["act"], s["ract"]
    keep, drop_rows, zero_output = s["keep"], s["drop_rows"], s["zero_output"]
    R, Rg, rdrop, PRE = s["R"], s["Rg"], s["rdrop"], s["PRE"]
    gs = _seq_grads(gseq)
    dh = np.array(ghT, dtype=dt)
    dc = np.array(gcT, dtype=dt)
    DZ = _empty((T, B, 4 * U), dt)                  # d(pre-activations), Keras layout
    tmp, work1 = np.empty((B, U), dt), np.empty((B, U), dt)
    if keep is None:
        _lstm_backward_unmasked(Z, DZ, C, AC, PRE, dh, dc, gs, R, Rg, rdrop, act, ract,
                                tmp, work1)
    else:
        _lstm_backward_masked(Z, DZ, C, AC, PRE, dh, dc, gs, R, Rg, rdrop, act, ract,
                              keep, drop_rows, zero_output, tmp)
    needs_x, needs_k, needs_r, needs_b, needs_h0, needs_c0 = needs[:6]
    perm = s["perm"]
    dx_tm, dW, db = _project_backward(DZ, s["xm"], s["W"], s["idrop"], 4, needs_x, needs_k,
                                      needs_b and s["has_bias"])
    dx = None if dx_tm is None else _from_time_major(dx_tm, s["go_backwards"])
    dR = None
    if needs_r:
        dR = _rec_weight_grad(H[:T] if rdrop is None else s["HD"], DZ, rdrop)[:, perm]
    if dW is not None:
        dW = dW[:, perm]
    if db is not None:
        db = db[perm]
    return (dx, dW, dR, db, dh if needs_h0 else None, dc if needs_c0 else None,
            None, None, None)


# ---------------------------------------------------------------------------------------
# GRU


@defop("gru_sequence", n_outputs=2)
def _gru_sequence(x, kernel, recurrent_kernel, bias=None, h0=None, mask=None,
                  input_dropout=None, recurrent_dropout=None, activation="tanh",
                  recurrent_activation="sigmoid", reset_after=True, go_backwards=False,
                  zero_output_for_mask=False):
    """-> (outputs (B, T, u) in processing order, h_T (B, u))."""
    B, I, U = _check("gru_sequence", x, kernel, recurrent_kernel, h0)
    T = x.shape[1]
    dt = x.dtype
    act, ract = get_activation(activation), get_activation(recurrent_activation)
    R = recurrent_kernel
    if bias is None:
        b_in = b_rec = None
    elif reset_after:
        if bias.shape != (2, 3 * U):
            raise ShapeError(f"gru_sequence: reset_after=True needs a bias of shape "
                             f"{(2, 3 * U)}, got {bias.shape}")
        b_in, b_rec = bias[0], bias[1]
    else:
        if bias.shape != (3 * U,):
            raise ShapeError(f"gru_sequence: reset_after=False needs a bias of shape "
                             f"{(3 * U,)}, got {bias.shape}")
        b_in, b_rec = bias, None
    idrop = _gate_masks(input_dropout, 3)
    rdrop = _gate_masks(recurrent_dropout, 3)
    if rdrop is not None and rdrop.ndim == 2:
        rdrop = np.broadcast_to(rdrop, (3,) + rdrop.shape)
    keep, drop_rows = _prepare_mask(mask, go_backwards, x.shape[:2])

    x_tm = _to_time_major(x, go_backwards)
    P, xm = _project(x_tm, kernel, b_in, idrop, 3)           # (T, B, 3u), input bias included
    Pg = P.reshape(T, B, 3, U).transpose(0, 2, 1, 3)         # gate-major view (T, 3, B, u)
    Z = _empty((T, 3, B, U), dt)                             # z, r, hh of each step
    H = _empty((T + 1, B, U), dt)
    H[0] = _init_state(h0, B, U, dt)
    OUT = H[1:] if keep is None else _empty((T, B, U), dt)
    save_pre = act.needs_x or ract.needs_x
    PRE = _empty(Z.shape, Z.dtype) if save_pre else None
    tmp = np.empty((B, U), dt)
    u2 = 2 * U
    if reset_after:
        Rfull = np.ascontiguousarray(R)
        Rg = _split_rec(R, 3) if rdrop is not None else None
        HD = None if rdrop is None else _empty((3, T, B, U), dt)
        RH = _empty((T, B, U), dt)                          # h R_h + b_rh
        rec = np.empty((B, 3 * U), dt)
        recg = rec.reshape(B, 3, U).transpose(1, 0, 2)
        for t in range(T):
            zt = Z[t]
            hd = _rec_forward(H[t], rdrop, Rfull, Rg, rec)
            if hd is not None:
                HD[:, t] = hd
            if b_rec is not None:
                rec += b_rec
            np.add(Pg[t, :2], recg[:2], out=zt[:2])
            if save_pre:
                PRE[t, :2] = zt[:2]
            ract.fwd(zt[:2], zt[:2])
            np.copyto(RH[t], recg[2])
            np.multiply(zt[1], RH[t], out=zt[2])
            zt[2] += Pg[t, 2]
            if save_pre:
                PRE[t, 2] = zt[2]
            act.fwd(zt[2], zt[2])
            _gru_update(zt, H, t, tmp)
            if keep is not None:
                _apply_mask_step(OUT, H, t, keep, drop_rows, zero_output_for_mask)
        extra = dict(Rfull=Rfull, Rg=Rg, HD=HD, RH=RH)
    else:
        Rzr = np.ascontiguousarray(R[:, :u2])
        Rh = np.ascontiguousarray(R[:, u2:])
        Rg = _split_rec(Rzr, 2) if rdrop is not None else None
        rd_zr = None if rdrop is None else rdrop[:2]
        rd_h = None if rdrop is None else rdrop[2]
        HD = None if rdrop is None else _empty((2, T, B, U), dt)
        Q = _empty((T, B, U), dt)                           # r * (h * rd_h)
        rec = np.empty((B, u2), dt)
        recg = rec.reshape(B, 2, U).transpose(1, 0, 2)
        for t in range(T):
            zt = Z[t]
            hd = _rec_forward(H[t], rd_zr, Rzr, Rg, rec)
            if hd is not None:
                HD[:, t] = hd
            np.add(Pg[t, :2], recg, out=zt[:2])
            if save_pre:
                PRE[t, :2] = zt[:2]
            ract.fwd(zt[:2], zt[:2])
            np.multiply(zt[1], H[t], out=Q[t])
            if rd_h is not None:
                Q[t] *= rd_h
            _gemm(Q[t], Rh, out=tmp)
            np.add(Pg[t, 2], tmp, out=zt[2])
            if save_pre:
                PRE[t, 2] = zt[2]
            act.fwd(zt[2], zt[2])
            _gru_update(zt, H, t, tmp)
            if keep is not None:
                _apply_mask_step(OUT, H, t, keep, drop_rows, zero_output_for_mask)
        extra = dict(Rzr=Rzr, Rh=Rh, Rg=Rg, HD=HD, Q=Q, rd_zr=rd_zr, rd_h=rd_h)
    del P, Pg
    saved = dict(xm=xm, kernel=kernel, bias_shape=None if bias is None else bias.shape,
                 idrop=idrop, rdrop=rdrop, keep=keep, drop_rows=drop_rows, Z=Z, H=H, PRE=PRE,
                 act=act, ract=ract, reset_after=reset_after, go_backwards=go_backwards,
                 zero_output=zero_output_for_mask, **extra)
    return (np.swapaxes(OUT, 0, 1), H[T]), saved


def _gru_update(zt, H, t, tmp):
    """h' = z * h + (1 - z) * hh = hh + z * (h - hh)."""
    z, hh = zt[0], zt[2]
    np.subtract(H[t], hh, out=tmp)
    tmp *= z
    np.add(hh, tmp, out=H[t + 1])


def _apply_mask_step(OUT, H, t, keep, drop_rows, zero_output):
    OUT[t] = H[t + 1]
    _mask_outputs(OUT[t], OUT[t - 1] if t else 0, drop_rows[t], zero_output)
    np.copyto(H[t + 1], H[t], where=drop_rows[t])


def _incoming_grad(gs, t, dh, carry, keep, drop_rows, out):
    """d(new h) of step t from the later steps (dh) and the output sequence (gs, or None
    when it has no gradient); with a mask, also updates dh / carry for the masked part."""
    if gs is None:
        np.copyto(out, dh)
    else:
        np.add(gs[t], dh, out=out)
    if keep is None:
        return out
    if carry is not None:
        out += carry
        if gs is None:
            carry *= drop_rows[t]
        else:
            np.multiply(gs[t] + carry, drop_rows[t], out=carry)
    dh *= drop_rows[t]
    out *= keep[t]
    return out


@_gru_sequence.defvjp
def _gru_sequence_vjp(grads, s, needs):
    gseq, ghT = grads
    Z, H, PRE = s["Z"], s["H"], s["PRE"]
    T, _, B, U = Z.shape
    width = 3 * U
    u2 = 2 * U
    dt = Z.dtype
    act, ract = s["act"], s["ract"]
    keep, drop_rows, zero_output = s["keep"], s["drop_rows"], s["zero_output"]
    reset_after, rdrop = s["reset_after"], s["rdrop"]
    gs = _seq_grads(gseq) if gseq.any() else None
    dh = np.array(ghT, dtype=dt)
    carry = np.zeros((B, U), dt) if keep is not None and not zero_output else None
    DZ = _empty((T, B, width), dt)          # d(pre-activations) = d(input projection)
    DZg = DZ.reshape(T, B, 3, U).transpose(0, 2, 1, 3)
    if reset_after:                         # d(h R + b_rec)
        DREC = _empty((T, B, width), dt)
        DRECg = DREC.reshape(T, B, 3, U).transpose(0, 2, 1, 3)
        Rfull, Rg, RH = s["Rfull"], s["Rg"], s["RH"]
    else:
        RhT = np.ascontiguousarray(s["Rh"].T)
        rd_h, rd_zr, Rzr, Rg = s["rd_h"], s["rd_zr"], s["Rzr"], s["Rg"]
    dzg = np.empty((3, B, U), dt)
    dh_new = np.empty((B, U), dt)
    tmp = np.empty((B, U), dt)
    for t in range(T - 1, -1, -1):
        zt = Z[t]
        z, r, hh = zt
        _incoming_grad(gs, t, dh, carry, keep, drop_rows, dh_new)
        if keep is None:
            dh.fill(0)
        # h' = hh + z * (h - hh)
        np.subtract(H[t], hh, out=dzg[0])
        dzg[0] *= dh_new                                                # d z
        np.multiply(dh_new, z, out=tmp)
        dh += tmp                                                       # direct path to h
        np.subtract(1, z, out=dzg[2])
        dzg[2] *= dh_new                                                # d hh
        act.grad(dzg[2], hh, None if PRE is None else PRE[t, 2])        # d pre_h
        if reset_after:
            np.multiply(dzg[2], RH[t], out=dzg[1])                      # d r
            np.multiply(dzg[2], r, out=DRECg[t, 2])                     # d (h R_h + b_rh)
            ract.grad(dzg[:2], zt[:2], None if PRE is None else PRE[t, :2])
            np.copyto(DZg[t], dzg)
            np.copyto(DRECg[t, :2], dzg[:2])
            dh += _rec_backward(DREC[t], rdrop, Rfull, Rg)
        else:
            dq = _gemm(dzg[2], RhT)                                     # d (r * h_d)
            hdh = H[t] if rd_h is None else H[t] * rd_h
            np.multiply(dq, hdh, out=dzg[1])                            # d r
            dq *= r
            if rd_h is not None:
                dq *= rd_h
            dh += dq
            ract.grad(dzg[:2], zt[:2], None if PRE is None else PRE[t, :2])
            np.copyto(DZg[t], dzg)
            dh += _rec_backward(DZ[t][:, :u2], rd_zr, Rzr, Rg)
    needs_x, needs_k, needs_r, needs_b, needs_h0 = needs[:5]
    has_bias = s["bias_shape"] is not None
    dx_tm, dW, db_in = _project_backward(DZ, s["xm"], s["kernel"], s["idrop"], 3, needs_x,
                                         needs_k, needs_b and has_bias)
    dx = None if dx_tm is None else _from_time_major(dx_tm, s["go_backwards"])
    dR = db = None
    if reset_after:
        if needs_r:
            dR = _rec_weight_grad(H[:T] if rdrop is None else s["HD"], DREC, rdrop)
        if db_in is not None:
            db = np.stack([db_in, DREC.reshape(-1, width).sum(axis=0)])
    else:
        if needs_r:
            dR = np.empty((U, width), dt)
            dR[:, :u2] = _rec_weight_grad(H[:T] if rdrop is None else s["HD"],
                                          DZ[:, :, :u2], rd_zr)
            dR[:, u2:] = _gemm(s["Q"].reshape(T * B, U).T, DZ[:, :, u2:].reshape(T * B, U))
        db = db_in
    return (dx, dW, dR, db, dh if needs_h0 else None, None, None, None)


# ---------------------------------------------------------------------------------------
# SimpleRNN


@defop("simple_rnn_sequence", n_outputs=2)
def _simple_rnn_sequence(x, kernel, recurrent_kernel, bias=None, h0=None, mask=None,
                         input_dropout=None, recurrent_dropout=None, activation="tanh",
                         go_backwards=False, zero_output_for_mask=False):
    """-> (outputs (B, T, u) in processing order, h_T (B, u))."""
    B, I, U = _check("simple_rnn_sequence", x, kernel, recurrent_kernel, h0)
    T = x.shape[1]
    dt = x.dtype
    act = get_activation(activation)
    R = np.ascontiguousarray(recurrent_kernel)
    idrop = input_dropout
    rdrop = recurrent_dropout
    if rdrop is not None and rdrop.ndim == 3:
        rdrop = rdrop[0]
    keep, drop_rows = _prepare_mask(mask, go_backwards, x.shape[:2])
    x_tm = _to_time_major(x, go_backwards)
    Z, xm = _project(x_tm, kernel, bias, idrop, 1)           # -> h_new in place
    H = _empty((T + 1, B, U), dt)
    H[0] = _init_state(h0, B, U, dt)
    OUT = H[1:] if keep is None else _empty((T, B, U), dt)
    HD = None if rdrop is None else _empty((T, B, U), dt)
    PRE = _empty(Z.shape, Z.dtype) if act.needs_x else None
    rec = np.empty((B, U), dt)
    for t in range(T):
        zt = Z[t]
        if rdrop is None:
            _gemm(H[t], R, out=rec)
        else:
            np.multiply(H[t], rdrop, out=HD[t])
            _gemm(HD[t], R, out=rec)
        zt += rec
        if PRE is not None:
            PRE[t] = zt
        act.fwd(zt, zt)
        H[t + 1] = zt
        if keep is not None:
            _apply_mask_step(OUT, H, t, keep, drop_rows, zero_output_for_mask)
    saved = dict(xm=xm, kernel=kernel, R=R, has_bias=bias is not None, idrop=idrop,
                 rdrop=rdrop, keep=keep, drop_rows=drop_rows, Z=Z, H=H, HD=HD, PRE=PRE,
                 act=act, go_backwards=go_backwards, zero_output=zero_output_for_mask)
    return (np.swapaxes(OUT, 0, 1), H[T]), saved


@_simple_rnn_sequence.defvjp
def _simple_rnn_sequence_vjp(grads, s, needs):
    gseq, ghT = grads
    Z, H, PRE, R, rdrop = s["Z"], s["H"], s["PRE"], s["R"], s["rdrop"]
    T, B, U = Z.shape
    dt = Z.dtype
    act, keep, drop_rows, zero_output = s["act"], s["keep"], s["drop_rows"], s["zero_output"]
    gs = _seq_grads(gseq)
    dh = np.array(ghT, dtype=dt)
    carry = np.zeros((B, U), dt) if keep is not None and not zero_output else None
    DZ = _empty(Z.shape, Z.dtype)
    RT = np.ascontiguousarray(R.T)
    for t in range(T - 1, -1, -1):
        dzt = DZ[t]
        np.add(gs[t], dh, out=dzt)
        if keep is not None:
            if carry is not None:
                dzt += carry
                np.multiply(gs[t] + carry, drop_rows[t], out=carry)
            dh *= drop_rows[t]
            dzt *= keep[t]
        act.grad(dzt, Z[t], None if PRE is None else PRE[t])
        back = _gemm(dzt, RT)
        if rdrop is not None:
            back *= rdrop
        if keep is not None:
            dh += back
        else:
            dh = back
    needs_x, needs_k, needs_r, needs_b, needs_h0 = needs[:5]
    dx_tm, dW, db = _project_backward(DZ, s["xm"], s["kernel"], s["idrop"], 1, needs_x,
                                      needs_k, needs_b and s["has_bias"])
    dx = None if dx_tm is None else _from_time_major(dx_tm, s["go_backwards"])
    dR = None
    if needs_r:
        hs = H[:T] if rdrop is None else s["HD"]
        dR = _gemm(hs.reshape(T * B, U).T, DZ.reshape(T * B, U))
    return (dx, dW, dR, db, dh if needs_h0 else None, None, None, None)


# ---------------------------------------------------------------------------------------
# K-style entry points (take Tensors or arrays, return Tensors)


def lstm_sequence(x, kernel, recurrent_kernel, bias=None, h0=None, c0=None, mask=None,
                  input_dropout=None, recurrent_dropout=None, activation="tanh",
                  recurrent_activation="sigmoid", go_backwards=False,
                  zero_output_for_mask=False):
    """A whole LSTM sequence: returns (outputs (B, T, u), h_T, c_T) as Tensors."""
    return apply(_lstm_sequence, x, kernel, recurrent_kernel, bias, h0, c0, mask,
                 input_dropout, recurrent_dropout, activation=activation,
                 recurrent_activation=recurrent_activation, go_backwards=bool(go_backwards),
                 zero_output_for_mask=bool(zero_output_for_mask))


def gru_sequence(x, kernel, recurrent_kernel, bias=None, h0=None, mask=None,
                 input_dropout=None, recurrent_dropout=None, activation="tanh",
                 recurrent_activation="sigmoid", reset_after=True, go_backwards=False,
                 zero_output_for_mask=False):
    """A whole GRU sequence: returns (outputs (B, T, u), h_T) as Tensors."""
    return apply(_gru_sequence, x, kernel, recurrent_kernel, bias, h0, mask, input_dropout,
                 recurrent_dropout, activation=activation,
                 recurrent_activation=recurrent_activation, reset_after=bool(reset_after),
                 go_backwards=bool(go_backwards), zero_output_for_mask=bool(zero_output_for_mask))


def simple_rnn_sequence(x, kernel, recurrent_kernel, bias=None, h0=None, mask=None,
                        input_dropout=None, recurrent_dropout=None, activation="tanh",
                        go_backwards=False, zero_output_for_mask=False):
    """A whole SimpleRNN sequence: returns (outputs (B, T, u), h_T) as Tensors."""
    return apply(_simple_rnn_sequence, x, kernel, recurrent_kernel, bias, h0, mask,
                 input_dropout, recurrent_dropout, activation=activation,
                 go_backwards=bool(go_backwards), zero_output_for_mask=bool(zero_output_for_mask))
