"""The fused GRU sequence op (`reset_after` True and False)."""

import numpy as np

from ...errors import ShapeError
from .. import native
from ..blas import single_threaded
from ..rnn_activations import get_activation, sigmoid_of_half
from ..tape import apply, defop
from .steps import (_apply_mask_step, _check, _empty, _from_time_major, _gate_masks,
                    _gate_split, _gemm, _halve_leading, _incoming_grad, _init_state,
                    _keep_bytes, _masked_output_grads, _masked_outputs, _prepare_mask,
                    _project_ahead, _project_backward, _rec_backward, _rec_forward,
                    _rec_weight_grad, _seq_grads, _time_slice, _TimeChunks, all_zero,
                    fused_acts, fused_backward, fused_forward, fused_steps, weights_on_side)


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

    H = _empty((T + 1, B, U), dt)
    H[0] = _init_state(h0, B, U, dt)
    OUT = H[1:] if keep is None else _empty((T, B, U), dt)
    save_pre = act.needs_x or ract.needs_x
    PRE = _empty((T, 3, B, U), dt) if save_pre else None
    tmp = np.empty((B, U), dt)
    u2 = 2 * U
    # weights for the forward GEMMs: with sigmoid gates, the z and r columns halved
    halved = ract.name == "sigmoid"
    Wf, Rf, bf_in, bf_rec = (_halve_leading(u2, kernel, R, b_in, b_rec) if halved
                             else (kernel, R, b_in, b_rec))
    with single_threaded():            # small per-step GEMMs; projection ahead on the worker
        # Z[t, k]: gate k (z, r, hh) of step t, contiguous: the input projection (input
        # bias included), then the pre-activation, then the gate's value
        Z, xm, ready = _project_ahead(x, go_backwards, Wf, bf_in, idrop, 3,
                                      gate_major=True)
        if reset_after:
            Rfull = np.ascontiguousarray(R)
            Rg = _gate_split(R, 3) if rdrop is not None else None
            Rgf = _gate_split(Rf, 3)
            brec = None if bf_rec is None else bf_rec.reshape(3, 1, U)
            HD = None if rdrop is None else _empty((3, T, B, U), dt)
            RH = _empty((T, B, U), dt)                          # h R_h + b_rh
            rec = np.empty((3, B, U), dt)
            steps = range(T)
            acts = fused_acts(act, ract)
            if acts is not None and fused_steps(Z, H, RH, rdrop=rdrop):
                brec = None if bf_rec is None else np.ascontiguousarray(bf_rec, dtype=dt)
                keep8 = None if keep is None else _keep_bytes(keep)
                fused_forward(lambda rp, rd, lo, hi: native.gru_forward_steps(
                    rp, brec, Z, H, RH, lo, hi, rd, HD, keep8, acts), [(Rf, 3)], T, ready,
                    rdrop)
                if keep is not None:
                    _masked_outputs(OUT, H, keep, zero_output_for_mask)
                steps = ()              # all made in C
            for t in steps:
                ready(t)
                zt = Z[t]
                hd = _rec_forward(H[t], rdrop, Rgf, rec)
                if hd is not None:
                    HD[:, t] = hd
                if brec is not None:
                    rec += brec
                zt[:2] += rec[:2]
                if save_pre:
                    PRE[t, :2] = zt[:2]
                _activate(zt[:2], ract, halved)
                np.copyto(RH[t], rec[2])
                np.multiply(zt[1], RH[t], out=tmp)
                zt[2] += tmp
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
            Rg = _gate_split(Rzr, 2) if rdrop is not None else None
            Rgf = _gate_split(Rf[:, :u2], 2)
            rd_zr = None if rdrop is None else rdrop[:2]
            rd_h = None if rdrop is None else rdrop[2]
            HD = None if rdrop is None else _empty((2, T, B, U), dt)
            Q = _empty((T, B, U), dt)                           # r * (h * rd_h)
            rec = np.empty((2, B, U), dt)
            steps = range(T)
            acts = fused_acts(act, ract)
            if acts is not None and fused_steps(Z, H, Q, rdrop=rdrop):
                keep8 = None if keep is None else _keep_bytes(keep)
                fused_forward(lambda rp, rp_h, rd, lo, hi: native.gru_before_forward_steps(
                    rp, rp_h, Z, H, Q, lo, hi, rd, HD, keep8, acts),
                    [(Rf[:, :u2], 2), (Rh, 1)], T, ready, rdrop)
                if keep is not None:
                    _masked_outputs(OUT, H, keep, zero_output_for_mask)
                steps = ()              # all made in C
            for t in steps:
                ready(t)
                zt = Z[t]
                hd = _rec_forward(H[t], rd_zr, Rgf, rec)
                if hd is not None:
                    HD[:, t] = hd
                zt[:2] += rec
                if save_pre:
                    PRE[t, :2] = zt[:2]
                _activate(zt[:2], ract, halved)
                np.multiply(zt[1], H[t], out=Q[t])
                if rd_h is not None:
                    Q[t] *= rd_h
                _gemm(Q[t], Rh, out=tmp)
                zt[2] += tmp
                if save_pre:
                    PRE[t, 2] = zt[2]
                act.fwd(zt[2], zt[2])
                _gru_update(zt, H, t, tmp)
                if keep is not None:
                    _apply_mask_step(OUT, H, t, keep, drop_rows, zero_output_for_mask)
            extra = dict(Rzr=Rzr, Rh=Rh, Rg=Rg, HD=HD, Q=Q, rd_zr=rd_zr, rd_h=rd_h)
    saved = dict(xm=xm, kernel=kernel, bias_shape=None if bias is None else bias.shape,
                 idrop=idrop, rdrop=rdrop, keep=keep, drop_rows=drop_rows, Z=Z, H=H, PRE=PRE,
                 act=act, ract=ract, reset_after=reset_after, go_backwards=go_backwards,
                 zero_output=zero_output_for_mask, **extra)
    return (np.swapaxes(OUT, 0, 1), H[T]), saved


def _activate(gates, ract, halved):
    """The z and r gates' values from their pre-activations (halved: z / 2 and sigmoid)."""
    if halved:
        sigmoid_of_half(gates)
    else:
        ract.fwd(gates, gates)


def _gru_update(zt, H, t, tmp):
    """h' = z * h + (1 - z) * hh = hh + z * (h - hh)."""
    z, hh = zt[0], zt[2]
    np.subtract(H[t], hh, out=tmp)
    tmp *= z
    np.add(hh, tmp, out=H[t + 1])


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
    gs = None if all_zero(gseq) else _seq_grads(gseq)
    dh = np.array(ghT, dtype=dt)
    carry = np.zeros((B, U), dt) if keep is not None and not zero_output else None
    DZ = _empty((T, B, width), dt)          # d(pre-activations) = d(input projection)
    DZg = DZ.reshape(T, B, 3, U).transpose(0, 2, 1, 3)
    if reset_after:                         # d(h R + b_rec)
        DREC = _empty((T, B, width), dt)
        DRECg = DREC.reshape(T, B, 3, U).transpose(0, 2, 1, 3)
        Rfull, Rg, RH = s["Rfull"], s["Rg"], s["RH"]
        RfullT = Rfull.T
    else:
        RhT = np.ascontiguousarray(s["Rh"].T)
        rd_h, rd_zr, Rzr, Rg = s["rd_h"], s["rd_zr"], s["Rzr"], s["Rg"]
    dzg = np.empty((3, B, U), dt)
    dh_new = np.empty((B, U), dt)
    tmp = np.empty((B, U), dt)
    needs_x, needs_k, needs_r, needs_b, needs_h0 = needs[:5]
    has_bias = s["bias_shape"] is not None
    xm, kernel, idrop = s["xm"], s["kernel"], s["idrop"]
    per_gate_x = idrop is not None and idrop.ndim == 3
    hs = H[:T] if rdrop is None else s["HD"]

    DX = _empty((T, B, kernel.shape[0]), dt) if needs_x else None

    def chunk_grads(lo, hi, part):
        """Part 0: the input gradient's rows; 1: (d kernel, d input bias); 2: (d
        recurrent_kernel, d recurrent bias)."""
        dz = DZ[lo:hi]
        if part < 2:
            _, dW, db_in = _project_backward(dz, _time_slice(xm, lo, hi, per_gate_x), kernel,
                                             idrop, 3, needs_x and part == 0,
                                             needs_k and part == 1,
                                             needs_b and has_bias and part == 1,
                                             None if DX is None else DX[lo:hi])
            return dW, None, db_in, None
        hsl = _time_slice(hs, lo, hi, rdrop is not None)
        dR = db_rec = None
        if reset_after:
            drec = DREC[lo:hi]
            if needs_r:
                dR = _rec_weight_grad(hsl, drec, rdrop)
            if needs_b and has_bias:
                db_rec = drec.reshape(-1, width).sum(axis=0)
        elif needs_r:
            n = (hi - lo) * B
            dR = np.empty((U, width), dt)
            dR[:, :u2] = _rec_weight_grad(hsl, dz[:, :, :u2], rd_zr)
            dR[:, u2:] = _gemm(s["Q"][lo:hi].reshape(n, U).T, dz[:, :, u2:].reshape(n, U))
        return None, dR, None, db_rec

    # the weight gradients on the backward's side stream, this thread returning dx first
    side = weights_on_side((needs_k, needs_r, needs_b if has_bias else False),
                           2.0 * T * B * (kernel.shape[0] + U) * width)
    chunks = _TimeChunks(T, chunk_grads, parts=3)
    # an unmasked reset_after step's elementwise part as one C pass (the same numbers)
    acts = fused_acts(act, ract)
    in_c = acts is not None and fused_steps(Z, H, DZ, dh, *((RH, DREC) if reset_after else ()),
                                             rdrop=rdrop)
    fused = (keep is None and reset_after and act.name == "tanh" and ract.name == "sigmoid"
             and native.takes(Z, H, RH, DZ, DREC, dh))
    with single_threaded():            # small per-step GEMMs; the big ones overlap BPTT
        if in_c:
            keep8 = None if keep is None else _keep_bytes(keep)
            out_grads = (gseq if gs is not None else None) if keep is None else \
                _masked_output_grads(gseq, keep, zero_output)
            if reset_after:
                fused_backward(lambda rtp, gq, rd, lo, hi: native.gru_backward_steps(
                    rtp, Z, H, RH, gq, dh, DZ, DREC, lo, hi, rd, keep8, acts), [(Rfull, 3)],
                    out_grads, T, chunks.size, chunks.done, rdrop)
            else:
                fused_backward(lambda rtp, rtp_h, gq, rd, lo, hi:
                               native.gru_before_backward_steps(rtp, rtp_h, Z, H, gq, dh, DZ,
                                                                lo, hi, rd, keep8, acts),
                               [(s["Rzr"], 2), (s["Rh"], 1)], out_grads, T, chunks.size,
                               chunks.done, rdrop)
        for t in () if in_c else range(T - 1, -1, -1):
            zt = Z[t]
            z, r, hh = zt
            if fused:
                dh, dh_new = dh_new, dh
                if gs is not None:
                    dh_new += gs[t]
                native.gru_bptt_step(zt, H[t], RH[t], dh_new, dh, DZ[t], DREC[t])
                dh += _state_grad(DREC[t], RfullT, rdrop, Rfull, Rg, tmp)
                chunks.done(t)
                continue
            # h' = hh + z * (h - hh)
            if keep is None:                # dh_new: d h', then dh: d h starts anew
                dh, dh_new = dh_new, dh
                if gs is not None:
                    dh_new += gs[t]
                np.multiply(dh_new, z, out=dh)                              # direct path to h
            else:
                _incoming_grad(gs, t, dh, carry, keep, drop_rows, dh_new)
                np.multiply(dh_new, z, out=tmp)
                dh += tmp                                                   # direct path to h
            np.subtract(H[t], hh, out=dzg[0])
            dzg[0] *= dh_new                                                # d z
            np.subtract(1, z, out=dzg[2])
            dzg[2] *= dh_new                                                # d hh
            act.grad(dzg[2], hh, None if PRE is None else PRE[t, 2])        # d pre_h
            if reset_after:
                np.multiply(dzg[2], RH[t], out=dzg[1])                      # d r
                np.multiply(dzg[2], r, out=DRECg[t, 2])                     # d (h R_h + b_rh)
                ract.grad(dzg[:2], zt[:2], None if PRE is None else PRE[t, :2])
                np.copyto(DZg[t], dzg)
                np.copyto(DRECg[t, :2], dzg[:2])
                dh += _state_grad(DREC[t], RfullT, rdrop, Rfull, Rg, tmp)
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
            chunks.done(t)
        if not side:
            dW, dR, db_in, db_rec = chunks.results()
    dx = None if DX is None else _from_time_major(DX, s["go_backwards"])
    if side:            # kernel: part 1's entry 0, recurrent: part 2's 1, bias: 2 and 3
        dW = chunks.deferred((1,), (0,), _same) if needs_k else None
        dR = chunks.deferred((2,), (1,), _same) if needs_r else None
        db = chunks.deferred((1, 2), (2, 3), _gru_bias) if needs_b and has_bias else None
        dx = None if dx is None else chunks.after((0,), dx)
    else:
        db = _gru_bias(db_in, db_rec)
    return (dx, dW, dR, db, dh if needs_h0 else None, None, None, None)


def _state_grad(drec, RfullT, rdrop, Rfull, Rg, out):
    """A reset_after step's gradient of the previous state through h R + b_rec (drec: its
    gradient, B x 3u): one GEMM into `out`, or per gate through the recurrent dropout."""
    if rdrop is None:
        return _gemm(drec, RfullT, out=out)
    return _rec_backward(drec, rdrop, Rfull, Rg)


def _same(g):
    return g


def _gru_bias(db_in, db_rec):
    """The bias gradient from its input and (reset_after) recurrent parts."""
    return db_in if db_rec is None else np.stack([db_in, db_rec])


def gru_sequence(x, kernel, recurrent_kernel, bias=None, h0=None, mask=None,
                 input_dropout=None, recurrent_dropout=None, activation="tanh",
                 recurrent_activation="sigmoid", reset_after=True, go_backwards=False,
                 zero_output_for_mask=False):
    """A whole GRU sequence: returns (outputs (B, T, u), h_T) as Tensors."""
    return apply(_gru_sequence, x, kernel, recurrent_kernel, bias, h0, mask, input_dropout,
                 recurrent_dropout, activation=activation,
                 recurrent_activation=recurrent_activation, reset_after=bool(reset_after),
                 go_backwards=bool(go_backwards), zero_output_for_mask=bool(zero_output_for_mask))
