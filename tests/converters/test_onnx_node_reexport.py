"""Imported ONNX ops are written back unchanged: ONNX's own node cases for the ops added to
the importer are imported, exported again (at the opset they were imported from) and run
in onnxruntime, which must reproduce ONNX's expected outputs."""

import numpy as np
import onnxruntime as ort
import pytest

from modelkit.converters import onnx as onnx_conv
from modelkit.models import import_onnx

from test_onnx_import_conformance import cases_of, value

# (case module, case name): one or two cases per newly supported op that the installed
# onnxruntime implements at the case's opset
CASES = [
    ("rmsnormalization", "test_rms_normalization_3d_axis1_epsilon"),
    ("groupnormalization", "test_group_normalization_example"),
    ("attention", "test_attention_4d_gqa_with_past_and_present"),
    ("rotaryembedding", "test_rotary_embedding_interleaved"),
    ("swish", "test_swish"),
    ("gridsample", "test_gridsample_bicubic"),
    ("deformconv", "test_basic_deform_conv_with_padding"),
    ("col2im", "test_col2im_pads"),
    ("cumprod", "test_cumprod_2d_axis_0"),
    ("det", "test_det_nd"),
    ("tensorscatter", "test_tensorscatter_circular"),
    ("nonmaxsuppression", "test_nonmaxsuppression_two_classes"),
    ("qlinearmatmul", "test_qlinearmatmul_2D_int8_float32"),
    ("stft", "test_stft"),
    ("resize", "test_resize_downsample_scales_cubic_antialias"),
    ("resize", "test_resize_tf_crop_and_resize"),
    ("softmax_cross_entropy_loss", "test_sce_mean_weight_ii"),
    ("if_", "test_if"),
    ("loop", "test_loop11"),
    ("scan", "test_scan9_sum"),
    # sequences (lists at run time) and strings
    ("sequence_map", "test_sequence_map_add_1_sequence_1_tensor"),
    ("sequence_map", "test_sequence_map_extract_shapes_expanded"),
    ("splittosequence", "test_split_to_sequence_nokeepdims"),
    ("loop", "test_loop13_seq"),
    ("sequenceinsert", "test_sequence_insert_at_front"),
    ("string_split", "test_string_split_maxsplit"),
    ("regex_full_match", "test_regex_full_match_email_domain"),
]


def _case(module, name):
    return next(c for c in cases_of(module) if c.name == name)


@pytest.mark.parametrize("module,name", CASES, ids=[n for _, n in CASES])
def test_reexported_node_case_runs_in_onnxruntime(module, name):
    case = _case(module, name)
    proto = onnx_conv.export(import_onnx(case.model))
    own = max(o.version for o in case.model.opset_import if o.domain in ("", "ai.onnx"))
    assert proto.opset_import[0].version == max(17, own)
    kinds = {n.op_type for n in case.model.graph.node}
    assert kinds <= {n.op_type for n in proto.graph.node} | {"Constant"}
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for inputs, expected in case.data_sets:
        feeds = dict(zip([i.name for i in sess.get_inputs()], [value(x) for x in inputs]))
        for got, want in zip(sess.run(None, feeds), expected):
            _check(got, value(want), name)


def _check(got, want, name):
    if isinstance(want, list):                  # a sequence: element by element
        assert isinstance(got, list) and len(got) == len(want), name
        for g, w in zip(got, want):
            _check(g, w, name)
        return
    assert got.dtype == want.dtype and got.shape == want.shape
    if want.dtype == object:                    # strings
        np.testing.assert_array_equal(got, want, err_msg=name)
        return
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                               rtol=1e-4, atol=1e-4, err_msg=name)
