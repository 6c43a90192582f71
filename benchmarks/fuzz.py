"""The large fuzz campaign over modelkit's readers (.h5, .keras, .onnx).

    python benchmarks/fuzz.py [--cases 10000] [--seed 0] [--keep DIR] [--budget-mb 1024]

Runs the structure-aware fuzz harness of tests/converters/fuzz_harness.py: every case is a mutated
real model file loaded the way users do (load_model, InferenceSession + predict, summary),
each in a forked child limited to the budget of memory above its parent and to
CASE_SECONDS. Prints the outcome counts, the rate, the slowest case, and every finding
(foreign exception, hang, crash, allocation over the budget); exits 1 if there is any.
`--keep DIR` saves the files of the findings there.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "converters"))

from fuzz_harness import BAD_OUTCOMES, Campaign  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", default=None, help="folder for the files of the findings")
    ap.add_argument("--budget-mb", type=int, default=1024,
                    help="memory a case may allocate above its parent (default 1024)")
    ap.add_argument("--progress", type=int, default=500, help="print counts every N cases")
    args = ap.parse_args(argv)
    with Campaign(budget=args.budget_mb << 20) as campaign:
        report = campaign.run(args.cases, seed=args.seed, keep_failures=args.keep,
                              progress=args.progress)
    out = report["outcomes"]
    rate = report["cases"] / report["seconds"]
    print(f"{report['cases']} cases in {report['seconds']:.0f} s ({rate:.1f} cases/s), "
          f"seed {args.seed}")
    for key in ("ok", "refused", "skipped") + BAD_OUTCOMES:
        print(f"  {key:12s} {out[key]}")
    seconds, kind = report["slowest"]
    print(f"  slowest case {seconds:.2f} s ({kind})")
    kinds = sorted(report["by_kind"].items())
    print(f"  {len(kinds)} mutation kinds; refused/ok per kind:")
    for kind, counts in kinds:
        print(f"    {kind:40s} " + " ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    for f in report["findings"]:
        print(f"FINDING case {f['case']} {f['kind']}: {f['outcome']}: {f['detail'][:500]}")
    return 1 if report["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
