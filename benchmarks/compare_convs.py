"""Held-out quality of the DICE encoder with each message-passing layer (DiceConfig.conv).

For each split seed s: held_out_split(library, 0.25, seed=s), an encoder with the default
config and seed s for each conv, quality_report before and after pretraining on the training
circuits. Prints a Markdown table (the JSON rows also hold the pretraining wall time, which on a
shared machine says more about the other jobs than about the model).

    python benchmarks/compare_convs.py --splits 0 1 2
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from circml.datasets import circuit_library
from circml.dice import DiceEncoder, held_out_split, quality_report
from circml.dice.encoder import CONV_TYPES


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", type=int, nargs="+", default=[0])
    ap.add_argument("--convs", nargs="+", default=list(CONV_TYPES), choices=CONV_TYPES)
    ap.add_argument("--json", help="also write the raw numbers here")
    args = ap.parse_args()
    lib = circuit_library()
    rows = []
    for s in args.splits:
        train, held, distractors = held_out_split(lib, 0.25, seed=s)
        for conv in args.convs:
            enc = DiceEncoder(seed=s, conv=conv)
            before = quality_report(enc, held, distractors)
            t0 = time.perf_counter()
            enc.pretrain(train, progress=False)
            secs = time.perf_counter() - t0
            after = quality_report(enc, held, distractors)
            row = dict(split=s, conv=conv, params=enc.num_parameters, seconds=secs,
                       **{f"before_{k}": before[k] for k in ("nn_accuracy", "alignment", "uniformity")},
                       **{f"after_{k}": after[k] for k in ("nn_accuracy", "alignment", "uniformity")},
                       final_loss=enc.history["train_loss"][-1])
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| conv | parameters | NN accuracy untrained → pretrained | alignment | uniformity |")
    print("|---|---|---|---|---|")
    for conv in args.convs:
        r = [x for x in rows if x["conv"] == conv]
        m = lambda k: float(np.mean([x[k] for x in r]))  # noqa: E731
        accs = ", ".join(f"{x['after_nn_accuracy']:.3f}" for x in r)
        print(f"| {conv} | {r[0]['params']:,} | {m('before_nn_accuracy'):.3f} → **{m('after_nn_accuracy'):.3f}**"
              f"{' (' + accs + ')' if len(r) > 1 else ''} | {m('after_alignment'):.3f} | {m('after_uniformity'):.3f} "
              "|")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
