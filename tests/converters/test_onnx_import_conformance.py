"""ONNX's own node test cases (onnx.backend.test.case.node) as a conformance table for the
importer: each single-op model is imported with `import_onnx`, run in modelkit, and its
outputs compared (values, shapes and dtypes) with ONNX's expected outputs.

Every case either matches or raises a modelkit error; the cases modelkit does not support
are listed in KNOWN_UNSUPPORTED with the reason, and must fail cleanly.
"""

import importlib
import re
import warnings

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from modelkit.converters import onnx as onnx_conv
from modelkit.errors import ModelkitError
from modelkit.models import import_onnx
from modelkit.onnx_spec import LOW_PRECISION, OnnxValue, to_numpy

MODULES = [
    "abs", "add", "and_", "argmax", "argmin", "averagepool", "batch_normalization", "cast",
    "castlike", "ceil", "celu", "clip", "concat", "constantofshape", "conv", "cumsum", "einsum",
    "gatherelements", "topk", "trilu", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh",
    "acosh", "atanh", "quantizelinear", "dequantizelinear", "dynamicquantizelinear",
    "scatternd",
    "scatterelements", "gathernd", "depthtospace", "spacetodepth", "nonzero", "onehot", "shrink", "hardmax",
    "convtranspose", "cos", "div", "dropout", "elu", "equal", "erf", "exp", "expand", "flatten",
    "floor", "gather", "gelu", "gemm", "globalaveragepool", "globalmaxpool", "greater",
    "greater_or_equal", "gru", "hardsigmoid", "hardswish", "identity", "instance_normalization",
    "isinf", "isnan", "layernormalization", "leakyrelu", "less", "less_or_equal", "log",
    "logsoftmax", "lrn", "lstm", "matmul", "max", "maxpool", "mean", "min", "mish", "mod", "mul",
    "neg", "not_", "or_", "pad", "pow", "prelu", "rangeop", "reciprocal", "reduce_log_sum",
    "reduce_log_sum_exp", "reducel1", "reducel2", "reducemax", "reducemean", "reducemin",
    "reduceprod", "reducesum", "reducesumsquare", "relu", "reshape", "resize", "rnn", "round",
    "selu",
    "shape", "sigmoid", "sign", "sin", "size", "slice", "softmax", "softplus", "softsign",
    "split", "sqrt", "squeeze", "sub", "sum", "tanh", "thresholdedrelu", "tile", "transpose",
    "unsqueeze", "where", "xor",
    # (LpPool's and Attention's cases run in test_onnx_backend_api.py: generating LpPool's
    # takes seconds, and Attention's function expansions are large graphs)
    # normalisation, pooling, sampling
    "rmsnormalization", "groupnormalization", "meanvariancenormalization", "lpnormalization",
    "gridsample", "deformconv", "affinegrid", "roialign", "maxunpool", "col2im",
    "center_crop_pad",
    # attention and sequence models
    "rotaryembedding", "linear_attention", "causal_conv_with_state", "swish",
    "swiglu",
    # losses
    "negativeloglikelihoodloss", "softmax_cross_entropy_loss",
    # control flow
    "if_", "loop", "scan",
    # integer, quantized, detection, signal, misc
    "bitshift", "bitwiseand", "bitwiseor", "bitwisexor", "bitwisenot", "bitcast",
    "matmulinteger", "convinteger", "qlinearmatmul", "qlinearconv", "nonmaxsuppression",
    "dft", "stft", "melweightmatrix", "hannwindow", "hammingwindow", "blackmanwindow", "eyelike", "cumprod",
    "det", "compress", "reversesequence", "unique", "tensorscatter", "tfidfvectorizer",
    "image_decoder", "bernoulli",
    # sequences and optionals (lists / None at run time)
    "sequenceinsert", "sequence_map", "splittosequence", "optionalgetelement",
    "optionalhaselement",
    # strings (object arrays of str)
    "string_concat", "string_split", "stringnormalizer", "regex_full_match",
]

# case-name pattern -> why modelkit refuses it (the import or the run must raise a
# ModelkitError naming the problem)
KNOWN_UNSUPPORTED = {
    r"^test_optional_has_element_empty_no_input_.*$":
        "outputs that do not depend on any input (no graph input: no layer form)",
    r"^test_scan_sum$": "Scan of opset 8 (batched; onnx.version_converter does not upgrade it)",
    r"^test_(affine_grid_.*|linear_attention_.*)_expanded$":
        "function expansions whose control-flow outputs have no static rank (the import-time "
        "shape probe cannot run them)",
}


_CACHE = {}


def cases_of(module):
    """ONNX's node test cases of one case module. A case is made when its class's export
    functions run (on first import); when onnx's BackendTest imported every module already,
    run them again, into a fresh case list and name registry."""
    if module not in _CACHE:
        from onnx.backend.test.case import node as node_cases
        from onnx.backend.test.case.base import Base
        saved = node_cases._NodeTestCases, node_cases._existing_names
        node_cases._NodeTestCases, node_cases._existing_names = [], {}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mod = importlib.import_module(f"onnx.backend.test.case.node.{module}")
                if not node_cases._NodeTestCases:
                    for cls in vars(mod).values():
                        if isinstance(cls, type) and issubclass(cls, Base) and \
                                cls.__module__ == mod.__name__:
                            for key in [k for k in vars(cls) if k.startswith("export")]:
                                np.random.seed(0)
                                getattr(cls, key)()
            _CACHE[module] = node_cases._NodeTestCases       # function expansions too
        finally:
            node_cases._NodeTestCases, node_cases._existing_names = saved
    return _CACHE[module]


def known_reason(case):
    for pattern, why in KNOWN_UNSUPPORTED.items():
        if re.search(pattern, case.name):
            return why
    return None


def array(value):
    return numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else \
        np.asarray(value)


RANDOM_DROPOUT = re.compile(r"^test_training_dropout(_default|_mask|_default_mask)?$")


def check_random_dropout(case, feeds, got):
    """training_mode Dropout draws its own mask: every output is 0 or x / (1 - ratio), the
    mask output agrees, and about `ratio` of the values are dropped."""
    x = feeds[0]
    ratio = float(feeds[1]) if len(feeds) > 1 else 0.5
    y = got[0]
    kept = y != 0
    np.testing.assert_allclose(y[kept], (x / (1 - ratio))[kept], rtol=1e-5, err_msg=case.name)
    if len(got) > 1:
        np.testing.assert_array_equal(got[1], kept)
    assert abs(1 - kept.mean() - ratio) < 0.3


RANDOM_BERNOULLI = re.compile(r"^test_bernoulli")


def check_random_bernoulli(case, expected, got):
    """Bernoulli draws its own values: each output is 0 or 1, with ONNX's shape and dtype."""
    for g, e in zip(got, expected):
        assert g.shape == e.shape and g.dtype == e.dtype, case.name
        assert set(np.unique(g)) <= {0, 1}, case.name


def bits(a):
    """The bit patterns of a 1- or 2-byte array (NaNs compare equal, -0 != 0)."""
    return a.view({1: np.uint8, 2: np.uint16}[a.dtype.itemsize])


def value(v):
    """A case's input or output: an array, a sequence as a list of arrays, None (an empty
    optional)."""
    if v is None or isinstance(v, list):
        return v if v is None else [value(e) for e in v]
    return array(v)


def run_case(case):
    model = import_onnx(case.model)
    inits = {t.name for t in case.model.graph.initializer}
    kinds = [vi.type.WhichOneof("value") for vi in case.model.graph.input
             if vi.name not in inits]
    for inputs, expected in case.data_sets:
        feeds = [OnnxValue(value(i)) if k in ("sequence_type", "optional_type") else array(i)
                 for i, k in zip(inputs, kinds)]
        expected = [value(e) for e in expected]
        out = model(feeds if len(feeds) > 1 else feeds[0])
        got = [to_numpy(t) for t in (out if isinstance(out, (list, tuple)) else [out])]
        assert len(got) == len(expected)
        # a sequence output: its elements compared one by one
        pairs = [(g, e) for g, e in zip(got, expected) if not isinstance(e, list) and
                 e is not None]
        for g, e in zip(got, expected):
            if e is None:                       # an empty optional
                assert g is None, case.name
            elif isinstance(e, list):
                assert isinstance(g, list) and len(g) == len(e), case.name
                pairs += list(zip(g, e))
        got, expected = [p[0] for p in pairs], [p[1] for p in pairs]
        if RANDOM_DROPOUT.match(case.name):
            check_random_dropout(case, feeds, got)
            continue
        if RANDOM_BERNOULLI.match(case.name):
            check_random_bernoulli(case, expected, got)
            continue
        for g, e in zip(got, expected):
            e = np.asarray(e)
            assert g.shape == e.shape, f"{case.name}: shape {g.shape} != {e.shape}"
            assert g.dtype == e.dtype, f"{case.name}: dtype {g.dtype} != {e.dtype}"
            if e.dtype == object:                 # strings
                np.testing.assert_array_equal(g, e, err_msg=case.name)
            elif e.dtype.name in LOW_PRECISION:     # bfloat16, float8, int4, ...: bit-exact
                np.testing.assert_array_equal(bits(g), bits(e), err_msg=case.name)
            elif e.dtype == bool or np.issubdtype(e.dtype, np.integer):
                np.testing.assert_array_equal(g, e, err_msg=case.name)
            else:
                np.testing.assert_allclose(g.astype(np.float64), e.astype(np.float64),
                                           rtol=max(case.rtol, 1e-4), atol=max(case.atol, 1e-5),
                                           err_msg=case.name)


@pytest.mark.parametrize("module", MODULES)
def test_onnx_node_cases(module):
    cases = cases_of(module)
    assert cases, f"no ONNX node test cases found in module {module!r}"
    failures, passed = [], 0
    for case in cases:
        why = known_reason(case)
        if why is not None:
            try:
                run_case(case)
            except ModelkitError:
                continue
            except Exception as e:      # anything but a modelkit error is a defect
                failures.append(f"{case.name}: raised {type(e).__name__} instead of a "
                                f"modelkit error ({why}): {e}")
            continue
        try:
            run_case(case)
            passed += 1
        except Exception as e:
            failures.append(f"{case.name}: {type(e).__name__}: {str(e)[:300]}")
    assert not failures, "\n".join(failures)
    assert passed or all(known_reason(c) for c in cases), f"no case of {module!r} ran"


def test_conformance_table_covers_the_issue_ops():
    from modelkit.backend.onnx_ops import supported_op_types
    required = """Gemm MatMul Add Sub Mul Div Pow Neg Abs Exp Log Sqrt Erf Relu LeakyRelu PRelu Elu
    Selu Sigmoid HardSigmoid HardSwish Gelu Tanh Softmax LogSoftmax Softplus Softsign Clip Conv
    ConvTranspose MaxPool AveragePool GlobalAveragePool GlobalMaxPool BatchNormalization
    InstanceNormalization LayerNormalization Flatten Reshape Transpose Concat Squeeze Unsqueeze
    Gather Identity Dropout ReduceMean ReduceSum ReduceMax Pad Slice Shape Cast Tile Expand Max
    Min Sum Mean Where Equal Greater Less Not Constant ConstantOfShape LSTM GRU RNN""".split()
    missing = sorted(set(required) - set(supported_op_types()))
    assert missing == []
