"""Training speed with numpy's OpenBLAS on modelkit's worker pool (backend/blas_pool.py)
against OpenBLAS's own threads, in the same process.

train_mlp.py's model (784-500-500-10, tanh, Dropout(0.5), SGD with Nesterov momentum,
batch 200) on 12000 random samples. Its epochs alternate between the two: the pool
(installed: OpenBLAS's jobs, SGD's update, dropout, tanh's gradient and the batch gather
split across the pool's workers) and OpenBLAS's own threads with every kernel on the
calling thread (uninstalled); each epoch starts after a pause that lets the other side's
idle threads stop spinning. Prints each epoch's ms a step, the medians and their ratio,
and in how many of the rounds the pool was faster; the numbers of the two agree bit for
bit (tests/backend/test_blas_pool.py).

    python benchmarks/blas_pool.py [--rounds 10] [--steps 60]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

SETTLE_S = 0.3              # OpenBLAS's idle workers spin for a while after their last job


def switch(on):
    """The pool installed (on) or not; the training loop's own install() then keeps it so."""
    from modelkit.backend import blas_pool
    blas_pool.uninstall()
    if on:
        os.environ.pop("MODELKIT_BLAS_POOL", None)
        blas_pool.install()
    else:
        os.environ["MODELKIT_BLAS_POOL"] = "0"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="epochs of each side")
    parser.add_argument("--steps", type=int, default=60, help="training steps per epoch")
    args = parser.parse_args()

    import train_mlp
    from modelkit.backend import blas, blas_pool

    rng = np.random.default_rng(0)
    n = train_mlp.BATCH * args.steps
    x = rng.random((n, 784), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
    model = train_mlp.build_model()
    model.fit(x[:1000], y[:1000], batch_size=train_mlp.BATCH, epochs=1, verbose=0)
    if not blas_pool.installed():
        print("the pool is not installed here (numpy's BLAS is not OpenBLAS 0.3.27+, no C "
              "kernels, or MODELKIT_BLAS_POOL=0): nothing to compare")
        return
    print(f"MLP 784-500-500-10, batch {train_mlp.BATCH}, {args.steps} steps an epoch, "
          f"OpenBLAS on {blas.threads()} threads; ms a step")
    times = {"pool": [], "openblas": []}
    for _ in range(args.rounds):
        for side in times:
            switch(side == "pool")
            time.sleep(SETTLE_S)
            model.fit(x[:1000], y[:1000], batch_size=train_mlp.BATCH, epochs=1, verbose=0)
            start = time.perf_counter()
            model.fit(x, y, batch_size=train_mlp.BATCH, epochs=1, verbose=0)
            times[side].append((time.perf_counter() - start) / args.steps * 1e3)
    switch(True)
    for side, ms in times.items():
        print(f"  {side:9s} " + " ".join(f"{t:5.2f}" for t in ms) + f"   median {np.median(ms):.2f}")
    pool, own = np.array(times["pool"]), np.array(times["openblas"])
    print(f"  ratio (OpenBLAS's threads / pool, median) {np.median(own) / np.median(pool):.3f}; "
          f"the pool faster in {int((pool < own).sum())} of {args.rounds} rounds")


if __name__ == "__main__":
    main()
