"""Training speed of the recurrent cells the fused C steps make beyond the plain ones,
against numpy's steps (MODELKIT_RNN_FUSED=0) in the same process.

Embedding(20000, 128) -> LSTM(128) or GRU(128) -> Dense(1, sigmoid), sequences of 80
tokens, batch 64, Adam (train_lstm.py's model), in these variants:

* plain: recurrent_activation='sigmoid' (train_lstm.py's benchmark);
* mask_zero: the Embedding masks token 0, and every sequence is padded in front with 0 to
  79 zeros (Keras's pad_sequences), so its rows start at different steps;
* hard_sigmoid: recurrent_activation='hard_sigmoid' (Keras 2.0-2.2's default);
* sigmoid_cell: activation='sigmoid' with hard sigmoid gates (the spec's Keras 1 example,
  `LSTM(output_dim=128, activation='sigmoid', inner_activation='hard_sigmoid')`);
* reset_before: GRU(reset_after=False) (Keras 2.0-2.2's and ONNX's default).

One model per variant; its epochs alternate between the fused steps and numpy's (the
switch is read at each call), and the medians of `--rounds` epochs of `--steps` steps are
printed with their ratio. The numbers of the two differ in rounding only (the fused steps'
own tanh and sigmoid; tests/backend/test_rnn_fused.py compares them).

    python benchmarks/rnn_variants.py [--steps 10] [--rounds 3] [--only lstm-mask_zero ...]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

VOCAB, EMBED, UNITS, STEPS_T, BATCH = 20000, 128, 128, 80, 64
VARIANTS = {
    "lstm-plain": ("LSTM", {}, False),
    "lstm-mask_zero": ("LSTM", {}, True),
    "lstm-hard_sigmoid": ("LSTM", {"recurrent_activation": "hard_sigmoid"}, False),
    "lstm-sigmoid_cell": ("LSTM", {"activation": "sigmoid",
                                   "recurrent_activation": "hard_sigmoid"}, False),
    "gru-plain": ("GRU", {}, False),
    "gru-mask_zero": ("GRU", {}, True),
    "gru-hard_sigmoid": ("GRU", {"recurrent_activation": "hard_sigmoid"}, False),
    "gru-reset_before": ("GRU", {"reset_after": False}, False),
}


def build(layer, options, mask_zero):
    from modelkit import layers
    from modelkit.models import Sequential

    options = {"recurrent_activation": "sigmoid", **options}
    model = Sequential([layers.Embedding(VOCAB, EMBED, input_length=STEPS_T,
                                         mask_zero=mask_zero),
                        getattr(layers, layer)(UNITS, **options),
                        layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="adam")
    return model


def data(n, padded):
    rng = np.random.default_rng(0)
    x = rng.integers(1, VOCAB, (n, STEPS_T)).astype(np.int32)
    if padded:                                  # 0 to STEPS_T - 1 zeros in front
        x[np.arange(STEPS_T) < rng.integers(0, STEPS_T, (n, 1))] = 0
    return x, rng.integers(0, 2, (n, 1)).astype(np.float32)


def epoch_ms(model, x, y, fused):
    os.environ["MODELKIT_RNN_FUSED"] = "1" if fused else "0"
    t = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    return (time.perf_counter() - t) / (len(x) // BATCH) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="training steps an epoch")
    parser.add_argument("--rounds", type=int, default=3, help="epochs each way (median)")
    parser.add_argument("--only", nargs="*", choices=sorted(VARIANTS), help="these variants")
    args = parser.parse_args()
    print(f"Embedding({VOCAB}, {EMBED}) + RNN({UNITS}), {STEPS_T} steps, batch {BATCH}: "
          f"ms a training step (median of {args.rounds} epochs of {args.steps} steps)")
    print(f"  {'variant':20s} {'fused C steps':>14s} {'numpy steps':>12s}  ratio")
    for name in args.only or VARIANTS:
        layer, options, mask_zero = VARIANTS[name]
        x, y = data(BATCH * args.steps, mask_zero)
        model = build(layer, options, mask_zero)
        model.fit(x[:BATCH * 2], y[:BATCH * 2], batch_size=BATCH, epochs=1, verbose=0)
        times = {True: [], False: []}
        for _ in range(args.rounds):
            for fused in (True, False):
                times[fused].append(epoch_ms(model, x, y, fused))
        fused, plain = (float(np.median(times[k])) for k in (True, False))
        print(f"  {name:20s} {fused:14.1f} {plain:12.1f}  {plain / fused:5.2f}x")
    os.environ.pop("MODELKIT_RNN_FUSED", None)


if __name__ == "__main__":
    main()
