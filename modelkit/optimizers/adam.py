"""The Adam family: Adam (with AMSGrad), Adamax, Nadam."""

import math

import numpy as np

from .. import backend as K
from ..backend import native
from .base import Optimizer, descend_scaled, over_rows


class _AdamFamily(Optimizer):
    """Adam, Adamax and Nadam: beta_1, beta_2, epsilon and the slots m, v."""

    def _set_betas(self, beta_1, beta_2, epsilon):
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon if epsilon is not None else K.epsilon())

    def _slot_names(self):
        return ("m", "v")

    def _first_moment(self, g, m, scratch):
        """m = b1 m + (1 - b1) g, in place."""
        b1 = self.beta_1
        m *= b1
        np.multiply(g, 1.0 - b1, out=scratch)
        m += scratch

    def _moments(self, g, slots, scratch):
        """Adam's moments in place: m as above, v = b2 v + (1 - b2) g^2; returns (m, v)."""
        b2 = self.beta_2
        m, v = slots["m"], slots["v"]
        self._first_moment(g, m, scratch)
        v *= b2
        np.multiply(g, g, out=scratch)
        scratch *= (1.0 - b2)
        v += scratch
        return m, v

    def _hyper_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Adam(_AdamFamily):
    """tf.keras Adam: lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t); p -= lr_t m / (sqrt(v) + eps)."""

    _KERAS3_SLOT_ALIASES = {"m": ("momentum", "momentums"), "v": ("velocity", "velocities"),
                            "vhat": ("velocity_hat", "velocity_hats")}

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, name="Adam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_betas(beta_1, beta_2, epsilon)
        self.amsgrad = bool(amsgrad)

    def _slot_names(self):
        return ("m", "v", "vhat") if self.amsgrad else ("m", "v")

    def _prepare_step(self, lr, t):
        return lr * math.sqrt(1.0 - self.beta_2 ** t) / (1.0 - self.beta_1 ** t)

    _sparse_updates = True

    def _native(self, p, slots, *more):
        """Whether backend/native's fused kernel makes this update (its numbers are the
        numpy passes' below, bit for bit)."""
        return not self.amsgrad and native.takes(p, slots["m"], slots["v"], *more)

    def _update_sparse(self, p, g, slots, scratch, lr, lr_t):
        """tf.keras Adam on IndexedSlices: m, v decay everywhere, the rows' gradient terms
        are added row-wise, the parameter step is dense (as for a dense gradient)."""
        b1, b2 = self.beta_1, self.beta_2
        rows, vals = g.indices, g.values
        gm = np.multiply(vals, 1.0 - b1)            # the same casts as _moments on dense g
        gv = np.multiply(vals, vals)
        gv *= 1.0 - b2
        if self._native(p, slots, gm, gv):
            rows = np.ascontiguousarray(rows, dtype=np.int64)
            m, v = slots["m"], slots["v"]

            def fused(sl, work):
                native.adam_rows(p, m, v, sl.start, sl.stop, rows, gm, gv, b1, b2,
                                 self.epsilon, lr_t)
            over_rows(fused, p, scratch)
            return

        def block(sl, work):
            lo, hi = np.searchsorted(rows, (sl.start, sl.stop))
            at = rows[lo:hi] - sl.start
            s = _rows(slots, sl)
            m, v = s["m"], s["v"]
            m *= b1
            m[at] += gm[lo:hi]
            v *= b2
            v[at] += gv[lo:hi]
            self._step(p[sl], m, v, s, work, lr_t)
        over_rows(block, p, scratch)

    def _update(self, p, g, slots, scratch, lr, lr_t):
        fused = self._native(p, slots, g)

        def block(sl, work):
            s = _rows(slots, sl)
            if fused:
                native.adam_dense(p[sl], s["m"], s["v"], g[sl], self.beta_1, self.beta_2,
                                  self.epsilon, lr_t)
                return
            m, v = self._moments(g[sl], s, work)
            self._step(p[sl], m, v, s, work, lr_t)
        over_rows(block, p, scratch)

    def _step(self, p, m, v, slots, scratch, lr_t):
        if self.amsgrad:
            vhat = slots["vhat"]
            np.maximum(vhat, v, out=vhat)
            v = vhat
        descend_scaled(p, m, v, self.epsilon, lr_t, scratch)

    def _hyper_config(self):
        return {**super()._hyper_config(), "amsgrad": self.amsgrad}


class Adamax(_AdamFamily):
    """m = b1 m + (1-b1) g; v = max(b2 v, |g|); p -= lr / (1 - b1^t) * m / (v + eps)."""

    _KERAS3_SLOT_ALIASES = {"m": ("m", "momentum"), "v": ("u", "norm")}

    def __init__(self, learning_rate=0.002, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name="Adamax", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_betas(beta_1, beta_2, epsilon)

    def _prepare_step(self, lr, t):
        return lr / (1.0 - self.beta_1 ** t)

    def _update(self, p, g, slots, scratch, lr, lr_t):
        m, v = slots["m"], slots["v"]
        self._first_moment(g, m, scratch)
        v *= self.beta_2
        np.abs(g, out=scratch)
        np.maximum(v, scratch, out=v)
        np.add(v, self.epsilon, out=scratch)
        np.divide(m, scratch, out=scratch)
        scratch *= lr_t
        p -= scratch


class Nadam(_AdamFamily):
    """tf.keras 2 Nadam with the momentum schedule mu_t = b1 (1 - 0.5 * 0.96^(0.004 t)).

    As in tf.keras, `decay` here is the schedule decay (default 0.004; Keras 1 called it
    `schedule_decay`) and the learning rate is not decayed."""

    _KERAS3_SLOT_ALIASES = {"m": ("momentum", "momentums"), "v": ("velocity", "velocities")}

    def __init__(self, learning_rate=0.002, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name="Nadam", **kwargs):
        if "schedule_decay" in kwargs:
            kwargs["decay"] = kwargs.pop("schedule_decay")
        kwargs.setdefault("decay", 0.004)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_betas(beta_1, beta_2, epsilon)
        self._m_cache = 1.0

    def _decayed_lr(self):
        return float(self._learning_rate.value)

    def _prepare_step(self, lr, t):
        b1 = self.beta_1
        mu_t = b1 * (1.0 - 0.5 * 0.96 ** (self.decay * t))
        mu_t1 = b1 * (1.0 - 0.5 * 0.96 ** (self.decay * (t + 1)))
        m_schedule_new = self._m_cache * mu_t
        m_schedule_next = m_schedule_new * mu_t1
        self._m_cache = m_schedule_new
        return (mu_t, mu_t1, 1.0 - m_schedule_new, 1.0 - m_schedule_next,
                1.0 - self.beta_2 ** t)

    def _update(self, p, g, slots, scratch, lr, shared):
        mu_t, mu_t1, g_denom, m_denom, v_denom = shared
        m, v = self._moments(g, slots, scratch)
        # m_bar = (1 - mu_t) g / g_denom + mu_t1 m / m_denom
        m_bar = np.multiply(g, (1.0 - mu_t) / g_denom)
        np.multiply(m, mu_t1 / m_denom, out=scratch)
        m_bar += scratch
        np.divide(v, v_denom, out=scratch)
        descend_scaled(p, m_bar, scratch, self.epsilon, lr, scratch)

    def _extra_state(self):
        return {"momentum_cache": np.asarray(self._m_cache, dtype=np.float32)}

    def _set_extra_state(self, weights):
        for key in ("momentum_cache", "m_cache"):
            if key in weights:
                self._m_cache = float(np.asarray(weights[key]).reshape(()))
                return


def _rows(slots, sl):
    """The slots' views over one block of rows."""
    return {k: a[sl] for k, a in slots.items()}
