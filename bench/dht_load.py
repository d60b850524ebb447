#!/usr/bin/env python3
"""DHT traffic per node during a rollout (issue 14, item 3).

Starts an origin and DOMAINS domains of NODES daemons each (one super-node,
the rest devices) on loopback, lets them settle, then announces a mandatory
patch through the origin with `publish --announce`. Reads every node's DHT
socket counters (status: node.dht packets/bytes in/out, by message kind) and
prints packets and bytes per node per minute in three phases: idle before the
announcement, the rollout (until every node holds the patch), and after it.

  bench/dht_load.py [--build DIR] [--domains 3] [--nodes 9] [--mib 32]
                    [--idle 60] [--after 60] [--timeout 300] [--device-limit 1M]
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


class Swarm:
    def __init__(self, binary, work, socks):
        self.bin, self.work, self.socks = binary, work, socks
        self.procs, self.names, self.dht_port = [], [], None

    def start(self, name, role, domain, extra=()):
        os.makedirs(f"{self.socks}/{name}", mode=0o700)
        cmd = [self.bin, "node", "--data", f"{self.work}/{name}", "--role", role, "--domain", domain,
               "--trust", f"{self.work}/op.public", "--control", self.sock(name), "--log-level", "warn"]
        if self.dht_port:
            cmd += ["--bootstrap", f"127.0.0.1:{self.dht_port}"]
        ready = open(f"{self.work}/{name}.ready", "w")
        self.procs.append(subprocess.Popen(cmd + list(extra), stdout=ready,
                                           stderr=open(f"{self.work}/{name}.log", "w")))
        self.names.append(name)

    def sock(self, name):
        return f"{self.socks}/{name}/control.sock"

    def wait_ready(self, name):
        for _ in range(300):
            line = open(f"{self.work}/{name}.ready").read()
            if line.startswith("ready"):
                return line
            time.sleep(0.1)
        sys.exit(f"{name} did not start: " + open(f"{self.work}/{name}.log").read())

    def status(self):
        """Every node's reply to `patchswarm status --json` (what an operator reads)."""
        out = {}
        for n in self.names:
            r = subprocess.run([self.bin, "status", "--json", "--socket", self.sock(n)], check=True,
                               capture_output=True, text=True)
            out[n] = json.loads(r.stdout)
        return out

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def counters(status):
    """Per node: packets/bytes in/out and packets by kind (in + out)."""
    out = {}
    for n, st in status.items():
        d = st["node"]["dht"]
        kinds = {}
        for way in ("packets_in_by_kind", "packets_out_by_kind"):
            for k, v in d.get(way, {}).items():
                kinds[k] = kinds.get(k, 0) + v
        out[n] = {"pin": d["packets_in"], "pout": d["packets_out"], "bin": d["bytes_in"], "bout": d["bytes_out"],
                  "gets": d["gets"], "puts": d["puts"], "listens": d["listens"], "kinds": kinds}
    return out


def report(phase, a, b, seconds):
    nodes = len(a)
    per = 60.0 / seconds / nodes
    tot = {k: sum(b[n][k] - a[n][k] for n in a) for k in ("pin", "pout", "bin", "bout", "gets", "puts", "listens")}
    worst = max(a, key=lambda n: b[n]["bin"] + b[n]["bout"] - a[n]["bin"] - a[n]["bout"])
    wb = (b[worst]["bin"] + b[worst]["bout"] - a[worst]["bin"] - a[worst]["bout"]) * 60.0 / seconds
    kinds = {}
    for n in a:
        for k, v in b[n]["kinds"].items():
            kinds[k] = kinds.get(k, 0) + v - a[n]["kinds"].get(k, 0)
    top = ", ".join(f"{k} {v * per:.0f}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]) if v)
    print(f"{phase:<8} {seconds:6.1f} s  packets in {tot['pin'] * per:7.0f} out {tot['pout'] * per:7.0f}  "
          f"bytes in {tot['bin'] * per / 1024:7.1f} KiB out {tot['bout'] * per / 1024:7.1f} KiB  "
          f"(per node per minute; busiest node {worst} {wb / 1024:.1f} KiB/min)")
    print(f"{'':<8} packets by kind, in + out, per node per minute: {top}")
    print(f"{'':<8} this node's own operations per node per minute: gets {tot['gets'] * per:.1f}, "
          f"puts {tot['puts'] * per:.1f}, listens {tot['listens'] * per:.1f}")
    return tot


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--domains", type=int, default=3)
    ap.add_argument("--nodes", type=int, default=9, help="nodes per domain: a super-node and devices")
    ap.add_argument("--mib", type=int, default=32)
    ap.add_argument("--idle", type=float, default=60)
    ap.add_argument("--after", type=float, default=60)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--device-limit", default="", help="devices' --download-limit (e.g. 1M), for a slower rollout")
    args = ap.parse_args()
    print("$ bench/dht_load.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    binary = os.path.abspath(os.path.join(args.build, "patchswarm"))
    with tempfile.TemporaryDirectory() as work, tempfile.TemporaryDirectory(dir="/tmp") as socks:
        subprocess.run([binary, "keygen", "--secret", f"{work}/op.secret", "--public", f"{work}/op.public"],
                       check=True, stdout=subprocess.DEVNULL)
        with open(f"{work}/patch.bin", "wb") as f:
            f.write(os.urandom(args.mib << 20))
        sw = Swarm(binary, work, socks)
        try:
            run(sw, args, work)
        finally:
            sw.stop()


def run(sw, args, work):
    sw.start("origin", "origin", "core")
    sw.dht_port = sw.wait_ready("origin").split("dht=")[1].split()[0]
    for d in range(args.domains):
        sw.start(f"d{d}-super", "super", f"d{d}")
        for i in range(1, args.nodes):
            limit = ["--download-limit", args.device_limit] if args.device_limit else []
            sw.start(f"d{d}-dev{i}", "peer", f"d{d}", limit)
    for n in sw.names:
        sw.wait_ready(n)
    end = time.time() + 60
    while time.time() < end and any(s["node"]["peers"] < 1 for s in sw.status().values()):
        time.sleep(0.5)
    time.sleep(10)  # joined and settled: routing tables filled, memberships put
    print(f"{len(sw.names)} daemons ({args.domains} domains x {args.nodes} + origin), patch {args.mib} MiB")
    t0, c0 = time.time(), counters(sw.status())
    time.sleep(args.idle)
    t1, c1 = time.time(), counters(sw.status())
    subprocess.run([sw.bin, "publish", "--key", f"{work}/op.secret", "--file", f"{work}/patch.bin", "--name", "bench",
                    "--version", "1", "--mandatory", "--out", f"{work}/patch.manifest", "--announce",
                    "--socket", sw.sock("origin")], check=True, stdout=subprocess.DEVNULL)
    end = t1 + args.timeout
    while time.time() < end:
        st = sw.status()
        if all(any(p["state"] == "complete" for p in s["patches"]) for n, s in st.items() if n != "origin"):
            break
        time.sleep(0.5)
    else:
        sys.exit("rollout did not complete")
    t2, c2 = time.time(), counters(st)
    time.sleep(args.after)
    t3, c3 = time.time(), counters(sw.status())
    report("idle", c0, c1, t1 - t0)
    roll = report("rollout", c1, c2, t2 - t1)
    report("after", c2, c3, t3 - t2)
    per_domain = (roll["bin"]) / (len(sw.names) / args.nodes) / (args.mib << 20)
    print(f"rollout DHT bytes received per domain of {args.nodes}: {per_domain:.3f} copies of the patch")


if __name__ == "__main__":
    main()
