"""Speed of modelkit's image affine resampling against scipy.ndimage.affine_transform.

Keras's ImageDataGenerator transforms each image with scipy (bilinear, per channel);
modelkit does the same arithmetic in numpy (modelkit/preprocessing/image/resample.py) so it
needs no scipy. This times one random-rotation-plus-zoom transform per image, both ways,
alternating, in one process, and prints modelkit / scipy (and checks they agree).
scipy is needed only here:

    pip install scipy && python benchmarks/preprocessing_affine.py [--repeats 30]
"""

import argparse

import numpy as np
from norm_ops import best_of   # the timer of benchmarks/norm_ops.py (this folder is on sys.path)

CASES = [("cifar 32x32x3", (32, 32, 3)), ("mnist 28x28x1", (28, 28, 1)),
         ("imagenet 224x224x3", (224, 224, 3))]
MODES = ("nearest", "reflect")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    from scipy import ndimage

    from modelkit.preprocessing.image import transform_matrix_offset_center
    from modelkit.preprocessing.image.resample import affine_resample

    theta = np.deg2rad(17.0)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0],
                    [0, 0, 1]]) @ np.diag([0.9, 1.15, 1.0])
    for name, shape in CASES:
        x = np.random.RandomState(0).uniform(0, 255, size=shape).astype("float32")
        m = transform_matrix_offset_center(rot, shape[0], shape[1])
        channels = np.ascontiguousarray(np.moveaxis(x, 2, 0))
        for mode in MODES:
            def with_scipy():
                return np.stack([ndimage.affine_transform(c, m[:2, :2], m[:2, 2], order=1,
                                                          mode=mode) for c in channels])

            def with_modelkit():
                return affine_resample(channels, m[:2, :2], m[:2, 2], order=1, mode=mode)

            diff = float(np.abs(with_scipy() - with_modelkit()).max())
            t_ref, t_mk = [], []
            for _ in range(3):   # alternate so machine load hits both alike
                t_ref.append(best_of(with_scipy, args.repeats))
                t_mk.append(best_of(with_modelkit, args.repeats))
            ref, mk = min(t_ref), min(t_mk)
            print(f"{name:20s} {mode:8s} scipy {ref * 1e6:9.1f} us  modelkit {mk * 1e6:9.1f} us"
                  f"  ratio {mk / ref:5.2f}  max|diff| {diff:.1e}")


if __name__ == "__main__":
    main()
