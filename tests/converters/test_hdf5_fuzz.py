"""Fuzz the readers: a few hundred structure-aware mutations of real .h5, .keras and .onnx
files (links, storage, datasets, dtypes, JSON at every nesting level, zip members, ONNX
attributes/initializers/opsets, raw bytes), each loaded in a forked child limited in memory
and time (see fuzz_harness.py). Every case must load or raise a ModelkitError: no foreign
exception, no hang, no crash, no allocation beyond the budget. `benchmarks/fuzz.py` runs the
large campaign with the same harness."""

import os

from fuzz_harness import BAD_OUTCOMES, FORMATS, Campaign

NEVER_LOADS = {"external_link", "external_raw", "virtual", "hard_dup", "hard_loop", "soft_loop",
               "soft_out", "bzip2", "dup", "graph_only", "no_outputs"}
CASES = int(os.environ.get("MODELKIT_FUZZ_CASES", "300"))


def test_fuzz_readers_every_format(tmp_path):
    with Campaign(str(tmp_path)) as campaign:
        report = campaign.run(CASES, seed=1234)
    outcomes = report["outcomes"]
    findings = [f"{f['kind']}: {f['outcome']}: {f['detail'][:300]}" for f in report["findings"]]
    assert not findings, "\n".join(findings[:20])
    assert not any(outcomes[k] for k in BAD_OUTCOMES)
    # the campaign exercised every format and both results (not all refused, not all loaded)
    kinds = {k.split("/")[0] for k in report["by_kind"]}
    assert kinds == set(FORMATS)
    assert outcomes["refused"] > CASES // 4 and outcomes["ok"] > 0
    assert outcomes["skipped"] < CASES // 10
    # what leaves the file is never accepted, whatever it replaced
    for kind, counts in report["by_kind"].items():
        if kind.rsplit(":", 1)[-1] in NEVER_LOADS:
            assert counts["ok"] == 0, (kind, dict(counts))
