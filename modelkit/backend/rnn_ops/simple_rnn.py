"""The fused SimpleRNN sequence op."""

import numpy as np

from ..blas import single_threaded
from ..rnn_activations import get_activation
from ..tape import apply, defop
from .steps import (_apply_mask_step, _check, _empty, _from_time_major, _gemm, _init_state,
                    _prepare_mask, _project, _project_backward, _seq_grads, _to_time_major)


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
    with single_threaded():            # small per-step GEMMs
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
    with single_threaded():            # small per-step GEMMs
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


def simple_rnn_sequence(x, kernel, recurrent_kernel, bias=None, h0=None, mask=None,
                        input_dropout=None, recurrent_dropout=None, activation="tanh",
                        go_backwards=False, zero_output_for_mask=False):
    """A whole SimpleRNN sequence: returns (outputs (B, T, u), h_T) as Tensors."""
    return apply(_simple_rnn_sequence, x, kernel, recurrent_kernel, bias, h0, mask,
                 input_dropout, recurrent_dropout, activation=activation,
                 go_backwards=bool(go_backwards), zero_output_for_mask=bool(zero_output_for_mask))
