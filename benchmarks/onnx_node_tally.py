"""Run ONNX's own conformance cases through modelkit's ONNX backend and tally the failures.

    python benchmarks/onnx_node_tally.py                       # every node case
    python benchmarks/onnx_node_tally.py --kind pytorch-converted
    python benchmarks/onnx_node_tally.py --filter '^test_resize' --show 40
    python benchmarks/onnx_node_tally.py --json tally.json     # per-case results, to diff runs

Each case goes through `ModelkitBackend.prepare(model).run(inputs)` and is compared exactly as
`onnx.backend.test.BackendTest` compares (its `assert_similar_outputs`: shapes, dtypes,
rtol/atol of the case), with a per-case timeout. A failure is put under one reason:

- unsupported: the importer refused an op (`UnsupportedError`); tallied per refused op type
- wrong result: the outputs differ from ONNX's expected ones (shape, dtype or value)
- exception: anything else raised while importing or running (type named)
- timeout: the case ran past --timeout seconds

Failures are tallied by reason and by op type (the op types of the case's graph).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import signal
import sys
import time
import warnings

import numpy as np


class CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CaseTimeout()


def load_cases(kind):
    """ONNX's test cases of one kind ('node' cases are generated from onnx's case modules)."""
    from onnx.backend.test.loader import load_model_tests
    np.random.seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_model_tests(kind=kind)


def case_model_and_data(case):
    """(ModelProto, [(inputs, expected)]) of a case, from memory (node) or its folder."""
    import glob

    import onnx
    from onnx.backend.test.runner import Runner, _normalize_tensor
    if case.model_dir is None:
        data = [([_normalize_tensor(i) for i in ins], [_normalize_tensor(o) for o in outs])
                for ins, outs in case.data_sets]
        return case.model, data
    model = onnx.load(os.path.join(case.model_dir, "model.onnx"))
    data = []
    for d in sorted(glob.glob(os.path.join(case.model_dir, "test_data_set*"))):
        ins, outs = [], []
        for i in range(len(glob.glob(os.path.join(d, "input_*.pb")))):
            Runner._load_proto(None, os.path.join(d, f"input_{i}.pb"), ins,
                               model.graph.input[i].type)
        for i in range(len(glob.glob(os.path.join(d, "output_*.pb")))):
            Runner._load_proto(None, os.path.join(d, f"output_{i}.pb"), outs,
                               model.graph.output[i].type)
        data.append((ins, outs))
    return model, data


def op_types(model):
    return sorted({n.op_type for n in model.graph.node}) or ["(no node)"]


def unsupported_ops(message, model):
    """The op types an UnsupportedError names (those of the graph that appear in it)."""
    named = [t for t in op_types(model) if re.search(rf"\b{t}\b", message)]
    return named or op_types(model)


def run_case(case, backend, timeout):
    """(reason or None, op types to blame, message)."""
    from onnx.backend.test.runner import Runner

    from modelkit.errors import UnsupportedError
    model, data = case_model_and_data(case)
    signal.alarm(timeout)
    try:
        rep = backend.prepare(model)
        for inputs, expected in data:
            got = list(rep.run(inputs))
            try:
                Runner.assert_similar_outputs(expected, got, rtol=case.rtol, atol=case.atol)
            except (AssertionError, TypeError) as e:
                return "wrong result", op_types(model), _short(e)
    except CaseTimeout:
        return "timeout", op_types(model), f"> {timeout} s"
    except UnsupportedError as e:
        return "unsupported", unsupported_ops(str(e), model), _short(e)
    except Exception as e:      # noqa: BLE001 - every other failure is tallied by its type
        return f"exception: {type(e).__name__}", op_types(model), _short(e)
    finally:
        signal.alarm(0)
    return None, op_types(model), ""


def _short(e):
    return " ".join(str(e).split())[:240]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", default="node",
                   help="node, pytorch-converted, pytorch-operator, simple (default node)")
    p.add_argument("--filter", default=None, help="regex on case names")
    p.add_argument("--timeout", type=int, default=30, help="seconds per case (default 30)")
    p.add_argument("--show", type=int, default=0, help="list this many failing cases")
    p.add_argument("--json", default=None, help="write {case: [reason, ops, message]} here")
    args = p.parse_args(argv)

    from modelkit.converters.onnx import backend
    signal.signal(signal.SIGALRM, _alarm)
    cases = [c for c in load_cases(args.kind)
             if args.filter is None or re.search(args.filter, c.name)]
    results = {}
    t0 = time.perf_counter()
    for case in sorted(cases, key=lambda c: c.name):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            np.random.seed(0)
            results[case.name] = run_case(case, backend, args.timeout)
    elapsed = time.perf_counter() - t0

    failed = {n: r for n, r in results.items() if r[0] is not None}
    print(f"{args.kind}: {len(results) - len(failed)} of {len(results)} cases pass "
          f"({elapsed:.0f} s)")
    by_reason = collections.Counter(r[0].split(":")[0] if r[0].startswith("exception")
                                    else r[0] for r in failed.values())
    print("failures by reason:", dict(by_reason.most_common()))
    by_op = collections.defaultdict(collections.Counter)
    for reason, ops, _ in failed.values():
        for t in ops:
            by_op[t][reason] += 1
    print("failures by op type (cases, reasons):")
    for t, c in sorted(by_op.items(), key=lambda kv: -sum(kv[1].values())):
        print(f"  {t:28s} {sum(c.values()):4d}  {dict(c)}")
    for name, (reason, ops, msg) in list(failed.items())[:args.show]:
        print(f"  {name}: [{reason}] {msg}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
