"""The fused LSTM sequence op (Keras gate order i, f, c, o; kept i, f, o, c inside)."""

import numpy as np

from ...errors import ShapeError
from .. import native
from ..blas import single_threaded
from ..rnn_activations import get_activation, sigmoid_of_half, tanh_to_sigmoid
from ..tape import apply, defop
from .steps import (_apply_mask_step, _check, _empty, _from_time_major, _gate_blocks,
                    _gate_masks, _gate_split, _gemm, _halve_leading, _init_state, _keep_bytes,
                    _masked_output_grads, _masked_outputs, _prepare_mask, _project_ahead,
                    _project_backward, _rec_backward, _rec_forward, _rec_weight_grad,
                    _seq_grads, _time_slice, _TimeChunks, all_zero, fused_acts, fused_backward,
                    fused_forward, fused_steps, weights_on_side)


# Internally the gates are ordered i, f, o, c so the three recurrent-activation gates are
# one contiguous block; Keras's order is i, f, c, o. Swapping blocks 2 and 3 is its own
# inverse.
_LSTM_PERM_BLOCKS = (0, 1, 3, 2)


def _lstm_perm(a):
    """`a` (..., 4u) with its gate blocks swapped between the Keras and internal orders."""
    return _gate_blocks(a, _LSTM_PERM_BLOCKS)


def _lstm_perm_kernel(kernel):
    """The permuted kernel (I, 4u) in Fortran order, so that the input gradient's GEMM
    d(projection) @ kernel.T reads a contiguous kernel.T (as `kernel[:, perm]` gave)."""
    return _gate_blocks(kernel.T, _LSTM_PERM_BLOCKS, axis=0).T


def _activate_gates(zt, act, ract, halved):
    """One step's pre-activations (4, B, u), gate-major i, f, o, c -> the gates' values, in
    place (`halved`: the i, f, o rows hold z / 2 and the recurrent activation is sigmoid)."""
    sig, cell = zt[:3], zt[3]
    if halved and act.name == "tanh":
        np.tanh(zt, out=zt)                         # all four gates in one pass
        tanh_to_sigmoid(sig)
        return
    if halved:
        sigmoid_of_half(sig)
    else:
        ract.fwd(sig, sig)
    act.fwd(cell, cell)


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
    if kernel.shape[1] != 4 * U or recurrent_kernel.shape != (U, 4 * U) or (
            bias is not None and bias.shape != (4 * U,)):
        raise ShapeError(f"lstm_sequence: expected kernel (.., {4 * U}), recurrent_kernel "
                         f"{(U, 4 * U)} and bias ({4 * U},), got {kernel.shape}, "
                         f"{recurrent_kernel.shape} and "
                         f"{None if bias is None else bias.shape}")
    W = _lstm_perm_kernel(kernel)
    R = _lstm_perm(recurrent_kernel)
    b = None if bias is None else _lstm_perm(bias)
    halved = ract.name == "sigmoid"
    # weights for the forward GEMMs: with sigmoid gates, their columns halved
    Wf, Rf, bf = _halve_leading(3 * U, W, R, b) if halved else (W, R, b)
    idrop = _gate_masks(input_dropout, 4, list(_LSTM_PERM_BLOCKS))
    rdrop = _gate_masks(recurrent_dropout, 4, list(_LSTM_PERM_BLOCKS))
    if rdrop is not None and rdrop.ndim == 2:
        rdrop = np.broadcast_to(rdrop, (4,) + rdrop.shape)
    Rg = _gate_split(R, 4) if rdrop is not None else None
    Rgf = _gate_split(Rf, 4)
    keep, drop_rows = _prepare_mask(mask, go_backwards, x.shape[:2])

    H = _empty((T + 1, B, U), dt)
    C = _empty((T + 1, B, U), dt)
    H[0] = _init_state(h0, B, U, dt)
    C[0] = _init_state(c0, B, U, dt)
    AC = _empty((T, B, U), dt)                      # a(c_t)
    OUT = H[1:] if keep is None else _empty((T, B, U), dt)
    HD = None if rdrop is None else _empty((4, T, B, U), dt)
    save_pre = act.needs_x or ract.needs_x
    PRE = _empty((T, 4, B, U), dt) if save_pre else None
    rec = np.empty((4, B, U), dt)
    tmp = np.empty((B, U), dt)
    # sigmoid gates from tanh(z / 2) and the new cell as one C pass where it can
    fused = halved and act.name == "tanh" and native.takes(H, C)
    acts = fused_acts(act, ract)
    with single_threaded():            # small per-step GEMMs; projection ahead on the worker
        # Z[t, k]: gate k (i, f, o, c) of step t, contiguous: the input projection (bias
        # included), then the pre-activation, then the gate's value
        Z, xm, ready = _project_ahead(x, go_backwards, Wf, bf, idrop, 4, gate_major=True)
        steps = range(T)

        def keep_masked(t):             # masked rows keep their states
            _apply_mask_step(OUT, H, t, keep, drop_rows, zero_output_for_mask)
            np.copyto(C[t + 1], C[t], where=drop_rows[t])

        if acts is not None and fused_steps(Z, H, C, rdrop=rdrop):
            keep8 = None if keep is None else _keep_bytes(keep)
            fused_forward(lambda rp, rd, lo, hi: native.lstm_forward_steps(
                rp, Z, H, C, AC, lo, hi, rd, HD, keep8, acts), [(Rf, 4)], T, ready, rdrop)
            if keep is not None:
                _masked_outputs(OUT, H, keep, zero_output_for_mask)
            steps = ()                  # all made in C
        for t in steps:
            ready(t)
            zt = Z[t]
            hd = _rec_forward(H[t], rdrop, Rgf, rec)
            if hd is not None:
                HD[:, t] = hd
            zt += rec
            if save_pre:
                PRE[t] = zt
            c_new = C[t + 1]
            if fused:
                np.tanh(zt, out=zt)
                native.lstm_cell_step(zt, C[t], c_new)
            else:
                _activate_gates(zt, act, ract, halved)
                i, f, o, g = zt
                np.multiply(f, C[t], out=c_new)
                np.multiply(i, g, out=tmp)
                c_new += tmp
            act.fwd(c_new, AC[t])
            np.multiply(zt[2], AC[t], out=H[t + 1])
            if keep is not None:
                keep_masked(t)
    saved = dict(x_shape=x.shape, xm=xm, W=W, R=R, Rg=Rg, has_bias=bias is not None,
                 idrop=idrop, rdrop=rdrop, keep=keep, drop_rows=drop_rows, Z=Z, H=H, C=C, AC=AC,
                 HD=HD, PRE=PRE, act=act, ract=ract, go_backwards=go_backwards,
                 zero_output=zero_output_for_mask)
    return (np.swapaxes(OUT, 0, 1), H[T], C[T]), saved


def _lstm_backward_unmasked(Z, DZ, C, AC, PRE, dh, dc, gseq, R, Rg, rdrop, act, ract, tmp,
                            work1, done, size):
    """BPTT of an unmasked LSTM sequence, in place on dh, dc and DZ (the hot loop: every
    array is preallocated, every update in place, every gate block contiguous); `done(t)`
    after each step (at least after each `size` steps). gseq: the output sequence's
    gradient (B, T, U)."""
    T, _, B, U = Z.shape
    gs = None if all_zero(gseq) else _seq_grads(gseq)   # None: only the last output is used
    acts = fused_acts(act, ract)
    if acts is not None and fused_steps(Z, AC, C, DZ, dh, dc, rdrop=rdrop):
        return fused_backward(lambda rtp, gq, rd, lo, hi: native.lstm_backward_steps(
            rtp, Z, AC, C, gq, dh, dc, DZ, lo, hi, rd, None, acts), [(R, 4)],
            None if gs is None else gseq, T, size, done, rdrop)
    RT = np.ascontiguousarray(R.T) if rdrop is None else None
    dzg = np.empty((4, B, U), Z.dtype)                  # this step's gate gradients
    work3 = np.empty((3, B, U), Z.dtype)
    DZg = DZ.reshape(T, B, 4, U).transpose(0, 2, 1, 3)  # gate-major view of DZ
    # the step's elementwise part as one C pass where it can (the same numbers)
    fused = (PRE is None and act.name == "tanh" and ract.name == "sigmoid"
             and native.takes(Z, AC, C, DZ, dh, dc))
    for t in range(T - 1, -1, -1):
        zt = Z[t]
        if gs is not None:
            dh += gs[t]                                                 # d h'
        if fused:
            native.lstm_bptt_step(zt, AC[t], C[t], dh, dc, DZ[t])
        else:
            _lstm_step_grads(zt, AC[t], C[t], C[t + 1], dh, dc, dzg, DZg[t], PRE, t, act,
                             ract, tmp, work1, work3)
        if rdrop is None:
            _gemm(DZ[t], RT, out=dh)                                    # d h
        else:
            dh[...] = _rec_backward(DZ[t], rdrop, R, Rg)
        done(t)


def _lstm_step_grads(zt, ac, c, c_new, dh, dc, dzg, dz, PRE, t, act, ract, tmp, work1,
                     work3):
    """One BPTT step's gate gradients into dz (gate-major view) and dc, with numpy."""
    i, f, o, g = zt
    np.multiply(dh, ac, out=dzg[2])                                     # d o
    np.multiply(dh, o, out=tmp)
    act.grad(tmp, ac, c_new, work1)
    dc += tmp                                                           # d c'
    np.multiply(dc, g, out=dzg[0])                                      # d i
    np.multiply(dc, c, out=dzg[1])                                      # d f
    np.multiply(dc, i, out=dzg[3])                                      # d g
    dc *= f                                                             # d c
    ract.grad(dzg[:3], zt[:3], None if PRE is None else PRE[t][:3], work3)
    act.grad(dzg[3], g, None if PRE is None else PRE[t][3], work1)
    np.copyto(dz, dzg)


def _lstm_backward_masked(Z, DZ, C, AC, PRE, dh, dc, gs, R, Rg, rdrop, act, ract, keep,
                          drop_rows, zero_output, tmp, done, size):
    """BPTT of a masked LSTM sequence: masked steps pass the state gradients through and
    (unless zero_output) hand the output gradient back to the previous output; `done(t)`
    after each step (at least after each `size` steps)."""
    T, _, B, U = Z.shape
    acts = fused_acts(act, ract)
    if acts is not None and fused_steps(Z, AC, C, DZ, dh, dc, rdrop=rdrop):
        keep8 = _keep_bytes(keep)
        return fused_backward(lambda rtp, gq, rd, lo, hi: native.lstm_backward_steps(
            rtp, Z, AC, C, gq, dh, dc, DZ, lo, hi, rd, keep8, acts), [(R, 4)],
            _masked_output_grads(np.swapaxes(gs, 0, 1), keep, zero_output), T, size, done,
            rdrop)
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
        done(t)


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
    needs_x, needs_k, needs_r, needs_b, needs_h0, needs_c0 = needs[:6]
    needs_b = needs_b if s["has_bias"] else False
    xm, W, idrop = s["xm"], s["W"], s["idrop"]
    hs = H[:T] if rdrop is None else s["HD"]
    per_gate_x = idrop is not None and idrop.ndim == 3

    DX = _empty((T, B, W.shape[0]), dt) if needs_x else None

    def chunk_grads(lo, hi, part):
        """Part 0: the input gradient's rows; 1: (d kernel, d bias); 2: d recurrent_kernel."""
        dz = DZ[lo:hi]
        if part == 2:
            return None, (_rec_weight_grad(_time_slice(hs, lo, hi, rdrop is not None), dz,
                                           rdrop) if needs_r else None), None
        _, dW, db = _project_backward(dz, _time_slice(xm, lo, hi, per_gate_x), W, idrop, 4,
                                      needs_x and part == 0, needs_k and part == 1,
                                      needs_b and part == 1,
                                      None if DX is None else DX[lo:hi])
        return dW, None, db

    # the weight gradients on the backward's side stream, this thread returning dx first
    side = weights_on_side((needs_k, needs_r, needs_b),
                           2.0 * T * B * (W.shape[0] + U) * 4 * U)
    chunks = _TimeChunks(T, chunk_grads, parts=3)
    with single_threaded():            # small per-step GEMMs; the big ones overlap BPTT
        if keep is None:
            _lstm_backward_unmasked(Z, DZ, C, AC, PRE, dh, dc, gseq, R, Rg, rdrop, act, ract,
                                    tmp, work1, chunks.done, chunks.size)
        else:
            _lstm_backward_masked(Z, DZ, C, AC, PRE, dh, dc, gs, R, Rg, rdrop, act, ract,
                                  keep, drop_rows, zero_output, tmp, chunks.done, chunks.size)
        if not side:
            dW, dR, db = chunks.results()
    dx = None if DX is None else _from_time_major(DX, s["go_backwards"])
    if side:            # (part, entry) of each: kernel (1, 0), recurrent (2, 1), bias (1, 2)
        dW, dR, db = (chunks.deferred((part,), (k,), _lstm_perm) if need else None for
                      need, part, k in ((needs_k, 1, 0), (needs_r, 2, 1), (needs_b, 1, 2)))
        dx = None if dx is None else chunks.after((0,), dx)
    else:
        dW, dR, db = (None if g is None else _lstm_perm(g) for g in (dW, dR, db))
    return (dx, dW, dR, db, dh if needs_h0 else None, dc if needs_c0 else None,
            None, None, None)


def lstm_sequence(x, kernel, recurrent_kernel, bias=None, h0=None, c0=None, mask=None,
                  input_dropout=None, recurrent_dropout=None, activation="tanh",
                  recurrent_activation="sigmoid", go_backwards=False,
                  zero_output_for_mask=False):
    """A whole LSTM sequence: returns (outputs (B, T, u), h_T, c_T) as Tensors."""
    return apply(_lstm_sequence, x, kernel, recurrent_kernel, bias, h0, c0, mask,
                 input_dropout, recurrent_dropout, activation=activation,
                 recurrent_activation=recurrent_activation, go_backwards=bool(go_backwards),
                 zero_output_for_mask=bool(zero_output_for_mask))
