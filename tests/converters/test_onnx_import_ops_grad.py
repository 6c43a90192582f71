"""Float64 finite-difference gradient checks for every differentiable ONNX op an imported
`OnnxOp` runs (modelkit.backend.onnx_ops), and for the backend ops added for them."""

import numpy as np
import pytest

from modelkit.backend import OPS, apply
from modelkit.backend.gradcheck import assert_gradients_close
from modelkit.backend.onnx_ops import run_onnx_op

RNG = np.random.default_rng(7)


def r(*shape):
    return RNG.normal(size=shape)


def pos(*shape):
    return RNG.uniform(0.5, 2.0, size=shape)


CASES = []


def case(name, op_type, arrays, attrs=None, consts=None, out=0, num_outputs=1, opset=17):
    """`arrays`: differentiated inputs; `consts`: {position: fixed array or None}."""
    CASES.append(pytest.param(op_type, arrays, attrs or {}, consts or {}, out, num_outputs,
                              opset, id=name))


for u in ["Abs", "Neg", "Exp", "Tanh", "Sigmoid", "Erf", "Softplus", "Softsign", "Relu",
          "HardSwish", "Mish", "Gelu", "Identity"]:
    case(u, u, [r(2, 3)])
for u in ["Log", "Sqrt", "Reciprocal"]:
    case(u, u, [pos(2, 3)])
for u in ["Tan", "Atan", "Sinh", "Cosh", "Asinh"]:
    case(u, u, [r(2, 3) * 0.5])
for u in ["Asin", "Acos", "Atanh"]:
    case(u, u, [RNG.uniform(-0.8, 0.8, size=(2, 3))])
case("Acosh", "Acosh", [RNG.uniform(1.5, 3.0, size=(2, 3))])
case("Shrink", "Shrink", [r(2, 5)], {"lambd": 0.3, "bias": 0.1})
case("DepthToSpace-DCR", "DepthToSpace", [r(1, 8, 2, 3)], {"blocksize": 2})
case("DepthToSpace-CRD", "DepthToSpace", [r(1, 8, 2, 3)], {"blocksize": 2, "mode": "CRD"})
case("SpaceToDepth", "SpaceToDepth", [r(1, 2, 4, 6)], {"blocksize": 2})
case("Gelu-tanh", "Gelu", [r(2, 3)], {"approximate": "tanh"})
case("LeakyRelu", "LeakyRelu", [r(2, 3)], {"alpha": 0.3})
case("Elu", "Elu", [r(2, 3)], {"alpha": 0.7})
case("Selu-custom", "Selu", [r(2, 3)], {"alpha": 1.5, "gamma": 0.9})
case("Celu", "Celu", [r(2, 3)], {"alpha": 2.0})
case("HardSigmoid", "HardSigmoid", [r(2, 3) * 0.5], {"alpha": 0.3, "beta": 0.4})
case("PRelu-bcast", "PRelu", [r(2, 3, 4), r(3, 1)])
case("Clip", "Clip", [r(2, 5)], consts={1: np.array(-0.5), 2: np.array(0.6)})
for b in ["Add", "Sub", "Mul", "Div"]:
    case(f"{b}-bcast", b, [r(2, 3, 4), pos(3, 1)])
case("Pow", "Pow", [pos(2, 3), r(3)])
case("Max-variadic", "Max", [r(2, 3), r(3), r(1, 3)])
case("Min-variadic", "Min", [r(2, 3), r(2, 1)])
case("Sum-variadic", "Sum", [r(2, 3), r(3), r(2, 3)])
case("Mean-variadic", "Mean", [r(2, 3), r(3)])
case("Where-bcast", "Where", [r(2, 3), r(3)], consts={0: RNG.normal(size=(2, 1)) > 0},
     )
case("MatMul-batched", "MatMul", [r(2, 3, 4), r(4, 5)])
case("Gemm-trans", "Gemm", [r(4, 3), r(5, 4), r(5)], {"transA": 1, "transB": 1,
                                                      "alpha": 0.5, "beta": 2.0})
case("Softmax", "Softmax", [r(2, 3, 4)], {"axis": 1})
case("LogSoftmax", "LogSoftmax", [r(2, 3, 4)])
case("Softmax-opset11", "Softmax", [r(2, 3, 4)], {"axis": 1}, opset=11)
for red in ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceL1",
            "ReduceSumSquare", "ReduceLogSumExp", "ReduceProd"]:
    case(red, red, [r(2, 3, 4)], {"keepdims": 0}, consts={1: np.array([1, -1])})
case("ReduceMean-attr-axes", "ReduceMean", [r(2, 3, 4)], {"axes": [2], "keepdims": 1}, opset=13)
case("ReduceLogSum", "ReduceLogSum", [pos(2, 3)], consts={1: np.array([1])})
case("Reshape-0-1", "Reshape", [r(2, 3, 4)], consts={1: np.array([0, -1])})
case("Flatten-axis2", "Flatten", [r(2, 3, 4)], {"axis": 2})
case("Transpose", "Transpose", [r(2, 3, 4)], {"perm": [2, 0, 1]})
case("Concat", "Concat", [r(2, 3), r(2, 2)], {"axis": -1})
case("Squeeze", "Squeeze", [r(2, 1, 3)], consts={1: np.array([1])})
case("Unsqueeze", "Unsqueeze", [r(2, 3)], consts={1: np.array([0, -1])})
case("Gather-axis1-neg", "Gather", [r(3, 4, 2)], {"axis": 1},
     consts={1: np.array([[0, -1], [2, 2]])})
case("Slice-negstep", "Slice", [r(4, 5)],
     consts={1: np.array([-1, 1]), 2: np.array([-100, 5]), 3: np.array([0, 1]),
             4: np.array([-2, 2])})
case("Split", "Split", [r(2, 6)], {"axis": 1}, consts={1: np.array([2, 4])}, out=1,
     num_outputs=2)
case("Tile", "Tile", [r(2, 3)], consts={1: np.array([2, 1])})
case("Expand", "Expand", [r(3, 1)], consts={1: np.array([2, 3, 4])})
for mode in ["constant", "reflect", "edge", "wrap"]:
    case(f"Pad-{mode}", "Pad", [r(2, 3, 4)], {"mode": mode},
         consts={1: np.array([0, 1, 2, 0, 2, 1])})
case("Pad-negative", "Pad", [r(2, 5)], consts={1: np.array([0, -1, 1, -2])})
case("Conv2D-pads-groups-dil", "Conv", [r(1, 4, 6, 6), r(6, 2, 3, 2), r(6)],
     {"pads": [1, 0, 2, 1], "group": 2, "dilations": [2, 1], "strides": [1, 2]})
case("Conv1D-same-lower", "Conv", [r(2, 3, 7), r(2, 3, 4)], {"auto_pad": "SAME_LOWER",
                                                             "strides": [2]})
case("ConvTranspose-groups-pads", "ConvTranspose", [r(1, 4, 3, 3), r(4, 3, 3, 2), r(6)],
     {"group": 2, "strides": [2, 1], "pads": [1, 0, 0, 1], "output_padding": [1, 0]})
case("ConvTranspose-output_shape", "ConvTranspose", [r(1, 2, 3), r(2, 3, 3)],
     {"strides": [2], "output_shape": [6]})
case("MaxPool-pads-ceil", "MaxPool", [r(1, 2, 5, 5)], {"kernel_shape": [3, 2],
                                                       "strides": [2, 2], "pads": [1, 0, 1, 1],
                                                       "ceil_mode": 1})
case("MaxPool-with-Indices", "MaxPool", [r(1, 2, 5, 5)], {"kernel_shape": [3, 3],
                                                         "strides": [2, 2], "pads": [1, 1, 1, 1]},
     num_outputs=2)
case("AveragePool-include-pad", "AveragePool", [r(1, 2, 5, 5)],
     {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
      "count_include_pad": 1, "ceil_mode": 1})
case("AveragePool-exclude-pad", "AveragePool", [r(1, 2, 5)],
     {"kernel_shape": [2], "strides": [2], "pads": [1, 0]})
case("MaxPool-dilated", "MaxPool", [r(1, 2, 7, 6)], {"kernel_shape": [2, 3],
                                                     "strides": [2, 1], "dilations": [2, 2],
                                                     "pads": [1, 0, 0, 1], "ceil_mode": 1})
case("AveragePool-dilated", "AveragePool", [r(1, 2, 7, 6)],
     {"kernel_shape": [2, 2], "strides": [1, 2], "dilations": [3, 2], "pads": [1, 1, 0, 1]})
case("GlobalAveragePool", "GlobalAveragePool", [r(2, 3, 2, 2)])
case("GlobalMaxPool", "GlobalMaxPool", [r(2, 3, 2, 2)])
case("BatchNormalization", "BatchNormalization", [r(2, 3, 2), r(3), r(3), r(3), pos(3)],
     {"epsilon": 1e-3})
for _out in range(3):       # training_mode: Y and the two updated running statistics
    case(f"BatchNormalization-training-out{_out}", "BatchNormalization",
         [r(3, 2, 4), r(2), r(2), r(2), pos(2)], {"epsilon": 1e-3, "momentum": 0.8,
                                                   "training_mode": 1},
         out=_out, num_outputs=3, opset=15)
case("InstanceNormalization", "InstanceNormalization", [r(2, 3, 4), r(3), r(3)])
case("LayerNormalization", "LayerNormalization", [r(2, 3, 4), r(3, 4), r(3, 4)], {"axis": 1})
case("LRN", "LRN", [r(1, 5, 2, 2)], {"size": 3, "alpha": 0.1, "beta": 0.75, "bias": 2.0})
case("Resize-nearest-asymmetric", "Resize", [r(1, 2, 2, 3)],
     {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"},
     consts={1: None, 2: np.array([1, 1, 2, 1.5])})
case("Resize-linear-align-corners", "Resize", [r(1, 2, 3, 2)],
     {"mode": "linear", "coordinate_transformation_mode": "align_corners"},
     consts={1: None, 2: None, 3: np.array([1, 2, 5, 3])})
case("Resize-cubic-antialias-exclude", "Resize", [r(1, 2, 6, 5)],
     {"mode": "cubic", "antialias": 1, "exclude_outside": 1, "cubic_coeff_a": -0.5},
     consts={1: None, 2: np.array([1, 1, 0.6, 1.4])})
case("Resize-linear-tf-crop", "Resize", [r(1, 1, 4, 5)],
     {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize",
      "extrapolation_value": 2.0},
     consts={1: np.array([0, 0, -0.2, 0.1, 1, 1, 0.8, 1.3]), 2: None,
             3: np.array([1, 1, 3, 3])})
_grid = RNG.uniform(-1.3, 1.3, size=(2, 3, 2, 2))
case("GridSample-linear-reflection", "GridSample", [r(2, 2, 4, 5), _grid],
     {"mode": "linear", "padding_mode": "reflection"}, opset=20)
case("GridSample-cubic-border-align", "GridSample", [r(2, 1, 4, 5), _grid],
     {"mode": "cubic", "padding_mode": "border", "align_corners": 1}, opset=20)
case("GridSample-3d-linear-zeros", "GridSample",
     [r(1, 2, 3, 4, 3), RNG.uniform(-1.1, 1.1, size=(1, 2, 2, 1, 3))], opset=20)
case("GridSample-nearest", "GridSample", [r(2, 2, 4, 5)], {"mode": "nearest"},
     consts={1: _grid}, opset=20)
case("AffineGrid-2d", "AffineGrid", [r(2, 2, 3)], consts={1: np.array([2, 1, 3, 4])}, opset=20)
case("AffineGrid-3d-align", "AffineGrid", [r(1, 3, 4)], {"align_corners": 1},
     consts={1: np.array([1, 1, 2, 3, 2])}, opset=20)
case("GatherElements", "GatherElements", [r(3, 4)], {"axis": 1},
     consts={1: np.array([[0, 3], [1, 1], [-1, 2]])})
case("TopK-values", "TopK", [r(3, 5)], {"axis": 1}, consts={1: np.array([2])}, num_outputs=2)
case("CumSum-exclusive-reverse", "CumSum", [r(3, 4)], {"exclusive": 1, "reverse": 1},
     consts={1: np.array(1)})
case("Trilu-lower", "Trilu", [r(2, 3, 4)], {"upper": 0}, consts={1: np.array(1)})
case("Einsum-batched-matmul", "Einsum", [r(2, 3, 4), r(2, 4, 5)],
     {"equation": "bij,bjk->bik"})
case("Einsum-sum-only-in-one", "Einsum", [r(3, 4), r(4)], {"equation": "ij,j->i"})
case("Einsum-implicit-outer", "Einsum", [r(3), r(2, 4)], {"equation": "i,jk"})
case("Einsum-ellipsis-broadcast", "Einsum", [r(2, 1, 3, 4), r(5, 4, 2)],
     {"equation": "...ij,...jk->...ik"})
case("Einsum-batch-diagonal", "Einsum", [r(2, 3, 3)], {"equation": "...ii->...i"})
case("Einsum-trace-implicit", "Einsum", [r(3, 3), r(3)], {"equation": "ii,j"})
for red in ("none", "add", "max"):
    case(f"ScatterND-{red}", "ScatterND", [r(4, 3), r(2, 3)], {"reduction": red},
         consts={1: np.array([[2], [-1]])})
case("ScatterElements", "ScatterElements", [r(3, 4), r(3, 2)], {"axis": 1},
     consts={1: np.array([[0, 3], [1, 2], [2, 0]])})
case("GatherND", "GatherND", [r(3, 4, 2)], consts={1: np.array([[0, 1], [2, -1]])})
case("RMSNormalization", "RMSNormalization", [r(2, 3, 4), r(3, 4)], {"axis": 1})
case("GroupNormalization", "GroupNormalization", [r(2, 4, 3), r(4), r(4)], {"num_groups": 2},
     opset=21)
case("MeanVarianceNormalization", "MeanVarianceNormalization", [r(2, 3, 2, 2)])
case("LpNormalization-p1", "LpNormalization", [r(2, 3)], {"axis": 0, "p": 1})
case("LpNormalization-p2", "LpNormalization", [r(2, 3)])
case("LpPool-p3-pads", "LpPool", [r(1, 2, 5, 4)], {"kernel_shape": [2, 2], "p": 3,
                                                   "pads": [1, 0, 0, 1], "strides": [2, 1]})
case("LpPool-p2-dilated", "LpPool", [r(1, 2, 6)], {"kernel_shape": [2], "dilations": [2]})
for _excl in (0, 1):
    for _rev in (0, 1):
        case(f"CumProd-excl{_excl}-rev{_rev}", "CumProd", [r(3, 4)],
             {"exclusive": _excl, "reverse": _rev}, consts={1: np.array(1)})
case("CumProd-with-zero", "CumProd", [np.array([[1.5, 0.0, -2.0, 0.7]])],
     consts={1: np.array(-1)})
case("Det", "Det", [r(2, 3, 3)])
case("Compress-axis", "Compress", [r(3, 4)], {"axis": 1},
     consts={1: np.array([True, False, True])})
case("Compress-flat", "Compress", [r(2, 3)], consts={1: np.array([0, 1, 1, 0, 1])})
case("ReverseSequence", "ReverseSequence", [r(4, 3, 2)], {"time_axis": 0, "batch_axis": 1},
     consts={1: np.array([4, 1, 2])})
case("CenterCropPad", "CenterCropPad", [r(5, 2, 3)], {"axes": [0, 2]},
     consts={1: np.array([2, 6])})
case("Swish", "Swish", [r(2, 3)], {"alpha": 0.7})
case("SwiGLU", "SwiGLU", [r(2, 3), r(2, 3)], {"alpha": 1.3})
_labels = np.array([[0, 2], [1, -1]])
case("NegativeLogLikelihoodLoss-weight-ignore", "NegativeLogLikelihoodLoss",
     [r(2, 3, 2), pos(3)], {"ignore_index": -1}, consts={1: _labels})
case("NegativeLogLikelihoodLoss-sum", "NegativeLogLikelihoodLoss", [r(2, 3, 2)],
     {"reduction": "sum"}, consts={1: np.array([[0, 2], [1, 1]])})
for _out in (0, 1):
    case(f"SoftmaxCrossEntropyLoss-out{_out}", "SoftmaxCrossEntropyLoss", [r(2, 3, 2), pos(3)],
         {"ignore_index": -1, "reduction": "mean"}, consts={1: _labels}, out=_out,
         num_outputs=2)
case("SoftmaxCrossEntropyLoss-none", "SoftmaxCrossEntropyLoss", [r(3, 4)],
     {"reduction": "none"}, consts={1: np.array([3, 0, 1])})
case("Attention-4d-gqa-past-causal-mask", "Attention",
     [r(1, 4, 2, 3), r(1, 2, 2, 3), r(1, 2, 2, 3), r(1, 1, 2, 2), r(1, 2, 1, 3), r(1, 2, 1, 3)],
     {"is_causal": 1, "scale": 0.7})
case("Attention-3d-softcap-boolmask", "Attention", [r(2, 3, 4), r(2, 2, 4), r(2, 2, 6)],
     {"q_num_heads": 2, "kv_num_heads": 2, "softcap": 2.0},
     consts={3: np.array([[True, False], [True, True], [False, True]])})
for _out in (1, 3):
    case(f"Attention-out{_out}", "Attention", [r(1, 2, 3, 2), r(1, 2, 3, 2), r(1, 2, 3, 2)],
         {"qk_matmul_output_mode": 3, "left_window_size": 1}, out=_out, num_outputs=4)
case("RotaryEmbedding-3d-interleaved-partial", "RotaryEmbedding",
     [r(2, 3, 8), r(5, 1), r(5, 1)], {"num_heads": 2, "interleaved": 1,
                                       "rotary_embedding_dim": 2},
     consts={3: np.array([[0, 1, 4], [2, 2, 3]])}, opset=23)
case("RotaryEmbedding-4d", "RotaryEmbedding", [r(1, 2, 3, 4), r(1, 3, 2), r(1, 3, 2)], opset=23)
case("DFT-complex-axis1", "DFT", [r(2, 5, 3, 2)], {"axis": 1}, opset=17)
case("DFT-real-onesided-len", "DFT", [r(2, 6, 1)], {"onesided": 1}, consts={1: np.array(8)},
     opset=17)
case("DFT-inverse-onesided", "DFT", [r(1, 4, 2)], {"inverse": 1, "onesided": 1},
     consts={1: None, 2: np.array(-2)}, opset=20)
case("STFT-window", "STFT", [r(2, 9, 1), r(4)], consts={1: np.array(2)}, opset=17)
for _out in (0, 1):
    case(f"CausalConvWithState-silu-out{_out}", "CausalConvWithState",
         [r(2, 3, 4), r(3, 1, 3), r(3), r(2, 3, 2)], {"activation": "silu"}, out=_out,
         num_outputs=2, opset=27)
case("LinearAttention-gated-delta-gqa", "LinearAttention",
     [r(1, 3, 4), r(1, 3, 2), r(1, 3, 3), r(1, 1, 2, 3), r(1, 3, 1) * 0.3, pos(1, 3, 1) * 0.5],
     {"q_num_heads": 2, "kv_num_heads": 1, "update_rule": "gated_delta"}, opset=27)
case("LinearAttention-linear-state-out", "LinearAttention", [r(1, 3, 4), r(1, 3, 4), r(1, 3, 2)],
     {"q_num_heads": 2, "kv_num_heads": 2, "update_rule": "linear", "scale": 0.5}, out=1,
     num_outputs=2, opset=27)
case("TensorScatter-circular", "TensorScatter", [r(2, 2, 4, 3), r(2, 2, 2, 3)],
     {"mode": "circular"}, consts={2: np.array([3, 1])}, opset=24)
case("MaxUnpool-output-shape", "MaxUnpool", [r(1, 1, 2, 2)], {"kernel_shape": [2, 2],
                                                             "strides": [2, 2]},
     consts={1: np.array([[[[5, 3], [10, 15]]]]), 2: np.array([1, 1, 5, 4])})
case("Col2Im-pads-strides-dilations", "Col2Im", [r(1, 8, 9)],
     {"pads": [1, 0, 0, 1], "strides": [1, 2], "dilations": [2, 1]},
     consts={1: np.array([4, 5]), 2: np.array([2, 2])}, opset=18)
case("GatherND-batch-dims", "GatherND", [r(2, 3, 4)], {"batch_dims": 1},
     consts={1: np.array([[[1], [-1]], [[0], [2]]])})
_rois = np.array([[0.3, 0.5, 3.2, 2.9], [1.1, 0.2, 4.4, 3.7]])
for _mode in ("avg", "max"):
    case(f"RoiAlign-{_mode}", "RoiAlign", [r(2, 2, 5, 6)],
         {"mode": _mode, "output_height": 2, "output_width": 3, "sampling_ratio": 2},
         consts={1: _rois, 2: np.array([1, 0])}, opset=22)
case("DeformConv-mask-stride", "DeformConv",
     [r(1, 2, 3, 4), r(1, 2, 2, 2), r(1, 8, 2, 2) * 0.6, r(1), pos(1, 4, 2, 2) * 0.5],
     {"strides": [1, 2]}, opset=22)
H = 2
case("LSTM-bidir-seqlens-peep", "LSTM",
     [r(3, 2, 3), r(2, 4 * H, 3), r(2, 4 * H, H), r(2, 8 * H)],
     {"direction": "bidirectional", "hidden_size": H},
     consts={4: np.array([3, 2], np.int32), 5: None, 6: None, 7: None})
case("LSTM-peephole-init-clip", "LSTM",
     [r(3, 2, 3), r(1, 4 * H, 3), r(1, 4 * H, H), r(1, 8 * H), r(1, 2, H), r(1, 2, H),
      r(1, 3 * H)],
     {"hidden_size": H, "clip": 1.5}, consts={4: None}, out=0)
case("LSTM-layout1-Yc", "LSTM", [r(2, 3, 3), r(1, 4 * H, 3), r(1, 4 * H, H)],
     {"hidden_size": H, "layout": 1, "direction": "reverse"}, out=2, num_outputs=3)
case("GRU-lbr-reverse", "GRU", [r(3, 2, 3), r(1, 3 * H, 3), r(1, 3 * H, H), r(1, 6 * H)],
     {"hidden_size": H, "linear_before_reset": 1, "direction": "reverse"})
case("GRU-bidir-Yh", "GRU", [r(3, 2, 3), r(2, 3 * H, 3), r(2, 3 * H, H), r(2, 6 * H)],
     {"hidden_size": H, "direction": "bidirectional"}, out=1, num_outputs=2)
case("RNN-relu-affine", "RNN", [r(3, 2, 3), r(2, H, 3), r(2, H, H), r(2, 2 * H)],
     {"hidden_size": H, "direction": "bidirectional", "activations": ["Relu", "Affine"],
      "activation_alpha": [0.5], "activation_beta": [0.1]})


@pytest.mark.parametrize("op_type,arrays,attrs,consts,out,num_outputs,opset", CASES)
def test_onnx_op_gradient(op_type, arrays, attrs, consts, out, num_outputs, opset):
    n = len(arrays) + len(consts)

    def fn(*variables):
        it = iter(variables)
        inputs = [None if consts.get(i, 0) is None else
                  (np.asarray(consts[i]) if i in consts else next(it)) for i in range(n)]
        from modelkit.backend.tensor import Tensor
        inputs = [Tensor(x) if isinstance(x, np.ndarray) else x for x in inputs]
        return run_onnx_op(op_type, inputs, attrs, opset=opset,
                           num_outputs=num_outputs)[out]
    assert_gradients_close(fn, arrays, rtol=1e-4, atol=1e-6)


def test_erf_gradient():
    assert_gradients_close(lambda x: apply(OPS.get("erf"), x), [r(3, 4)])


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_take_gradient_any_axis(axis):
    idx = np.array([[1, 0], [-1, 1]])
    assert_gradients_close(lambda x: apply(OPS.get("take"), x, idx, axis=axis), [r(3, 2, 3)])
