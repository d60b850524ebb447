#!/usr/bin/env python3
"""Summarise a segment-level simulator trace (`patchswarm sim ... --trace yes`).

Prints two tables:
  * upload rate (MB/s) per bin of BIN seconds, by sender class: each domain's
    devices and super-node toward their own domain, toward other domains, and
    the origin; this shows which uplinks sit idle in which phase;
  * per segment of one domain: when it first entered the domain and from
    whom, and when each member got it (the spread inside the domain).

usage: bench/sim_trace.py OUTDIR [--model p2p-locality] [--bin 5] [--domain NAME]
"""
import argparse
import collections
import csv
import os
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--model", default="p2p-locality")
    ap.add_argument("--bin", type=float, default=5.0, help="seconds per column (default 5)")
    ap.add_argument("--domain", help="domain whose segments to list (default: the first)")
    a = ap.parse_args()
    up_path = os.path.join(a.outdir, f"trace_uploads_{a.model}.csv")
    seg_path = os.path.join(a.outdir, f"trace_segments_{a.model}.csv")
    for p in (up_path, seg_path):
        if not os.path.exists(p):
            sys.exit(f"sim_trace: {p} not found (run the simulator with --level segment --trace yes)")

    rows = collections.defaultdict(lambda: collections.defaultdict(float))
    last_bin = 0
    with open(up_path) as f:
        for r in csv.DictReader(f):
            b = int(int(r["second"]) // a.bin)
            last_bin = max(last_bin, b)
            where = "origin" if r["role"] == "origin" else f'{r["role"]}:{r["domain"]}' + (" far" if r["far"] == "1" else "")
            rows[where][b] += int(r["bytes"]) / 1e6 / a.bin
    print(f"upload MB/s per {a.bin:g} s, by sender (far = to other domains)")
    print("%-22s" % "sender" + "".join("%7g" % (b * a.bin) for b in range(last_bin + 1)))
    for k in sorted(rows):
        print("%-22s" % k + "".join("%7.2f" % rows[k].get(b, 0) for b in range(last_bin + 1)))

    arrivals = collections.defaultdict(list)
    domains = []
    with open(seg_path) as f:
        for r in csv.DictReader(f):
            if r["role"] == "origin":
                continue
            if r["domain"] not in domains:
                domains.append(r["domain"])
            src = "origin" if r["from_role"] == "origin" else f'{r["from_role"]}:{r["from_domain"]}'
            arrivals[(r["domain"], int(r["segment"]))].append((float(r["seconds"]), src))
    dom = a.domain or (domains[0] if domains else None)
    if dom is None:
        return
    print(f"\nsegments of domain {dom}: first arrival (from), then each member's arrival time")
    segs = sorted({s for d, s in arrivals if d == dom}, key=lambda s: min(arrivals[(dom, s)])[0])
    for s in segs:
        a_ = sorted(arrivals[(dom, s)])
        print("seg %4d  first %6.1f s from %-14s last %6.1f s  %s" % (
            s, a_[0][0], a_[0][1], a_[-1][0], " ".join("%.0f" % t for t, _ in a_)))


if __name__ == "__main__":
    main()
