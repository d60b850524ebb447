#!/usr/bin/env python3
"""An emulated operator network on one machine, and patchswarm measured across it.

Builds D domains of H devices, one super-node host per domain, an origin host
and a router out of Linux network namespaces, shapes every link (HTB + bfifo),
delays and drops packets with the NFQUEUE delay line (ps_delayline), then runs
scenarios one after another: a client-server baseline (nginx + curl) and
patchswarm (daemons, one-shot fetch; flash crowd or spread arrivals; congested
origin; loss; a super-node down). Reports one JSON line per scenario run, a
table, and a PNG of completions over time, against the lower bounds T_min and
T_loc. See docs/netbench.md.

Must run as root. Exit status: 0 ok, 1 a scenario failed (or a --check bound),
2 usage, 77 network namespaces (or a tool) not available here: skipped.
"""
import argparse
import csv
import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SKIP = 77
MBIT = 1e6 / 8  # bytes per second in one Mbit/s
SCENARIOS = ["cs", "daemon", "oneshot", "spread", "origin10", "loss1", "superdown", "scale"]
NAME = "ims-client"


def log(msg):
    print(f"netbench: {msg}", file=sys.stderr, flush=True)


class Stop(Exception):
    """Raised by the INT/TERM/HUP handler so that `finally` cleans up."""


def run(argv, timeout=20, check=True, ns=None, capture=False):
    if ns:
        argv = ["ip", "netns", "exec", ns] + argv
    r = subprocess.run(argv, timeout=timeout, text=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE if capture else subprocess.DEVNULL, stderr=subprocess.PIPE)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()[:400]}")
    return r.stdout if capture else r.returncode


class Procs:
    """Every process this run started, by PID; only these are ever signalled."""

    def __init__(self):
        self.live = []

    def start(self, argv, logpath, ns=None):
        if ns:
            argv = ["ip", "netns", "exec", ns] + argv  # `ip netns exec` execs: the PID is the program's
        out = open(logpath, "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True)
        out.close()
        self.live.append(p)
        return p

    def stop(self, procs=None, grace=8.0):
        procs = list(self.live if procs is None else procs)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        end = time.time() + grace
        for p in procs:
            try:
                p.wait(timeout=max(0.1, end - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        self.live = [p for p in self.live if p not in procs]


def wait_for(pred, timeout, what, step=0.1):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def cpu_sample():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    return sum(v[:8]), idle


def cpu_busy(a, b):
    total, idle = b[0] - a[0], b[1] - a[1]
    return (total - idle) / total if total else 0.0


def children_cpu():
    """User + system CPU-seconds of every child process reaped so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------
# The network


class Net:
    """Namespaces: TAG-r router, TAG-o origin, TAG-bD domain D's bridge (a switch;
    its delay line holds intra-domain packets), TAG-dDs super-node host, TAG-dDhI
    devices. Domain D is 10.77.D.0/24 (router .1, super-node .2, devices .10+I);
    the origin is 10.77.100.2 behind the router's 10.77.100.1."""

    def __init__(self, args, procs, work):
        self.a, self.procs, self.work = args, procs, work
        self.tag = f"psn{os.getpid()}"
        self.made = []
        self.delaylines = []
        self.hosts = {}  # name -> (ns, ip, domain index or 0, role)
        self.links = []  # (ns, dev, kind) kind: dev_up dev_down sup_up sup_down uplink_up uplink_down origin_up

    def ns(self, suffix):
        return f"{self.tag}-{suffix}"

    def add_ns(self, name):
        run(["ip", "netns", "add", name])
        self.made.append(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"])

    def veth(self, ns1, dev1, ns2, dev2):
        run(["ip", "link", "add", "name", dev1, "netns", ns1, "type", "veth", "peer", "name", dev2, "netns", ns2])
        for ns, dev in ((ns1, dev1), (ns2, dev2)):
            # Wire-sized packets cost ~10x the CPU here; 16 KiB GSO keeps the queues honest.
            run(["ip", "-n", ns, "link", "set", "dev", dev, "gso_max_size", "16384", "up"])

    def host(self, name, ns, ip, gw, prefix=24):
        run(["ip", "-n", ns, "addr", "add", f"{ip}/{prefix}", "dev", "eth0"])
        net = ".".join(ip.split(".")[:3]) + ".0"
        # The VM's default is BBR; test hosts use cubic, set per route (the namespace's
        # net.ipv4.tcp_congestion_control may not be changed here).
        run(["ip", "-n", ns, "route", "replace", f"{net}/{prefix}", "dev", "eth0", "proto", "kernel",
             "scope", "link", "src", ip, "congctl", "cubic"])
        run(["ip", "-n", ns, "route", "add", "default", "via", gw, "congctl", "cubic"])

    def build(self):
        a = self.a
        r, o = self.ns("r"), self.ns("o")
        self.add_ns(r)
        run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], ns=r)
        self.add_ns(o)
        self.veth(o, "eth0", r, "o0")
        run(["ip", "-n", r, "addr", "add", "10.77.100.1/24", "dev", "o0"])
        self.host("origin", o, "10.77.100.2", "10.77.100.1")
        self.hosts["origin"] = (o, "10.77.100.2", 0, "origin")
        self.links.append((o, "eth0", "origin_up"))
        for d in range(1, a.domains + 1):
            b = self.ns(f"b{d}")
            self.add_ns(b)
            run(["ip", "-n", b, "link", "add", "br0", "type", "bridge"])
            run(["ip", "-n", b, "link", "set", "br0", "up"])
            # br_netfilter: bridged packets traverse this namespace's iptables, so the
            # bridge's delay line can hold intra-domain traffic.
            run(["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1"], ns=b)
            self.veth(b, "uplink", r, f"d{d}")
            run(["ip", "-n", b, "link", "set", "dev", "uplink", "master", "br0"])
            run(["ip", "-n", r, "addr", "add", f"10.77.{d}.1/24", "dev", f"d{d}"])
            self.links += [(b, "uplink", "uplink_up"), (r, f"d{d}", "uplink_down")]
            members = [(f"d{d}-super", "s", 2, "super")] + [
                (f"d{d}-dev{i}", f"h{i}", 10 + i, "peer") for i in range(1, a.devices + 1)]
            for name, sfx, last, role in members:
                h = self.ns(f"d{d}{sfx}")
                self.add_ns(h)
                port = f"p{sfx}"
                self.veth(h, "eth0", b, port)
                run(["ip", "-n", b, "link", "set", port, "master", "br0"])
                ip = f"10.77.{d}.{last}"
                self.host(name, h, ip, f"10.77.{d}.1")
                self.hosts[name] = (h, ip, d, role)
                kind = "sup" if role == "super" else "dev"
                self.links += [(h, "eth0", f"{kind}_up"), (b, port, f"{kind}_down")]
            # Only packets between two hosts of the domain go to the bridge's delay line;
            # packets to or from the router are delayed once, by the router's.
            run(["iptables", "-A", "FORWARD", "-s", f"10.77.{d}.0/24", "-d", f"10.77.{d}.0/24",
                 "-j", "NFQUEUE", "--queue-num", "0"], ns=b)
        # Byte counters on the router (rules without a target only count), then its delay line.
        run(["iptables", "-N", "PSCOUNT"], ns=r)
        rules = [("origin_out", ["-i", "o0"]), ("to_origin", ["-o", "o0"]), ("dom_to_dom", ["-i", "d+", "-o", "d+"])]
        for d in range(1, a.domains + 1):
            rules += [(f"into_d{d}", ["-o", f"d{d}"]), (f"out_of_d{d}", ["-i", f"d{d}"]),
                      (f"into_d{d}_udp", ["-o", f"d{d}", "-p", "udp"])]  # the DHT's share of it
        for tag, m in rules:
            run(["iptables", "-A", "PSCOUNT"] + m + ["-m", "comment", "--comment", tag], ns=r)
        run(["iptables", "-A", "FORWARD", "-j", "PSCOUNT"], ns=r)
        run(["iptables", "-A", "FORWARD", "-j", "NFQUEUE", "--queue-num", "0"], ns=r)

    def rates(self, scen):
        """Mbit/s per link kind for a scenario (before --scale)."""
        a = self.a
        sup = 1000.0 if a.super_gbit else None
        rates = {
            "dev_up": a.dev_up, "dev_down": a.dev_down,
            "sup_up": sup or a.dev_up, "sup_down": sup or a.dev_down,
            "uplink_up": a.uplink, "uplink_down": a.uplink,
            "origin_up": 10.0 if scen == "origin10" else a.origin_up,
        }
        return {k: v * scen_scale(a, scen) for k, v in rates.items()}

    def shape(self, rates):
        for ns, dev, kind in self.links:
            mbit = rates[kind]
            rate_bps = int(mbit * 1e6)
            limit = max(64 * 1024, int(mbit * MBIT * 0.1))  # ~100 ms of traffic, at least 64 KiB
            run(["tc", "qdisc", "del", "dev", dev, "root"], ns=ns, check=False)  # HTB cannot be changed in place
            run(["tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "1"], ns=ns)
            run(["tc", "class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb",
                 "rate", f"{rate_bps}bit", "ceil", f"{rate_bps}bit", "quantum", "60000"], ns=ns)
            run(["tc", "qdisc", "add", "dev", dev, "parent", "1:1", "handle", "10:", "bfifo",
                 "limit", str(limit)], ns=ns)

    def start_delaylines(self, loss, seed):
        self.stop_delaylines()
        lines = [(self.ns("r"), self.a.inter_ms)] + [
            (self.ns(f"b{d}"), self.a.intra_ms) for d in range(1, self.a.domains + 1)]
        for i, (ns, ms) in enumerate(lines):
            logp = os.path.join(self.work, f"delayline-{ns}.log")
            open(logp, "w").close()
            p = self.procs.start([self.a.delayline, "--queue", "0", "--delay-ms", str(ms), "--loss", str(loss),
                                  "--seed", str(seed + i)], logp, ns=ns)
            self.delaylines.append((p, logp))
            wait_for(lambda: "ready" in open(logp).read() or p.poll() is not None, 10, f"delay line in {ns}")
            if p.poll() is not None:
                raise RuntimeError(f"delay line in {ns} failed: {open(logp).read().strip()}")

    def stop_delaylines(self):
        """Stops the delay lines; returns their statistics (one dict each)."""
        stats = []
        if self.delaylines:
            self.procs.stop([p for p, _ in self.delaylines])
            for _, logp in self.delaylines:
                for line in open(logp):
                    if line.startswith("{"):
                        stats.append(json.loads(line))
        self.delaylines = []
        return stats

    def counters(self):
        out = run(["iptables", "-n", "-v", "-x", "-L", "PSCOUNT"], ns=self.ns("r"), capture=True)
        c = {}
        for line in out.splitlines():
            m = re.search(r"/\* (\S+) \*/", line)
            if m:
                c[m.group(1)] = int(line.split()[1])
        return c

    def destroy(self):
        for ns in reversed(self.made):
            try:
                run(["ip", "netns", "del", ns], check=False)
            except Exception as e:  # keep removing the others
                log(f"could not remove namespace {ns}: {e}")
        self.made = []


def scen_scale(a, scen):
    return a.scale * (0.5 if scen == "scale" else 1.0)


# ---------------------------------------------------------------------------
# Bounds


def bounds(a, rates, n_devices, downloaders, uploaders):
    """downloaders: {domain: [download Mbit/s of each]} (super-nodes included when they
    download); uploaders: {domain: [upload Mbit/s of each]} plus the origin's rate."""
    F = a.size * 8 / 1e6  # Mbit
    Us = rates["origin_up"]
    dmin = min(x for v in downloaders.values() for x in v)
    total_up = Us + sum(sum(v) for v in uploaders.values())
    t_min = max(F / Us, F / dmin, n_devices * F / total_up)
    loc = [(len(downloaders[d]) - 1) * F / sum(uploaders[d]) for d in downloaders if sum(uploaders.get(d, [])) > 0]
    t_loc = max([t_min] + loc)
    # T_one: the origin sends one copy in all, so every other copy the
    # downloaders take crosses a device's or super-node's uplink. T_loc leaves
    # out the exports this takes (every domain but one gets part of its import
    # from other domains' members), so with the origin held to one copy even a
    # perfect schedule finishes at T_one, above T_loc.
    peers_up = total_up - Us
    receivers = sum(len(v) for v in downloaders.values())
    t_one = max([t_loc] + ([(receivers - 1) * F / peers_up] if peers_up > 0 else []))
    return t_min, t_loc, t_one


# ---------------------------------------------------------------------------
# Scenarios


class Bench:
    def __init__(self, args, procs, net, work):
        self.a, self.procs, self.net, self.work = args, procs, net, work
        self.bin = args.patchswarm
        self.patch = os.path.join(work, "patch.bin")
        self.results = []

    def prepare(self):
        a = self.a
        with open(self.patch, "wb") as f:
            rng = random.Random(a.seed)
            left = a.size
            while left:
                n = min(left, 1 << 20)
                f.write(rng.randbytes(n))
                left -= n
        self.digest = sha256(self.patch)
        run([self.bin, "keygen", "--secret", f"{self.work}/op.secret", "--public", f"{self.work}/op.public"])

    def devices(self):
        return [n for n, h in self.net.hosts.items() if h[3] == "peer"]

    def supers(self, scen):
        s = [n for n, h in self.net.hosts.items() if h[3] == "super"]
        return s[1:] if scen == "superdown" else s

    def run_scenario(self, scen):
        a = self.a
        sdir = os.path.join(self.work, scen)
        shutil.rmtree(sdir, ignore_errors=True)
        os.makedirs(sdir)
        rates = self.net.rates(scen)
        self.rates_now = rates
        self.net.shape(rates)
        loss = 0.01 if scen == "loss1" else a.loss
        self.net.start_delaylines(loss, a.seed)
        log(f"== {scen}: {a.domains} domains x {a.devices} devices, {a.size / 2**20:.1f} MiB, "
            f"origin {rates['origin_up']:.0f} Mbit/s up, loss {loss}")
        fn = {"cs": self.client_server, "oneshot": self.oneshot}.get(scen, self.daemons)
        r0 = children_cpu()
        # Control sockets need a short path (107 bytes): a folder of their own under /tmp.
        self.sockdir = tempfile.mkdtemp(prefix="psn-", dir="/tmp")
        try:
            res = fn(scen, sdir)
        finally:
            shutil.rmtree(self.sockdir, ignore_errors=True)
            self.stop_nodes()
            r1 = children_cpu()
            dl = self.net.stop_delaylines()
            r2 = children_cpu()
        fig = self.figures(scen, rates, loss, res)
        fig["sim"] = self.simulate(scen, rates)
        fig["delaylines"] = dl
        # CPU-seconds of what this run started, reaped: nodes, nginx, curl (start-up to stop), then the delay lines.
        fig["cpu_s"] = {"nodes": round(r1 - r0, 1), "delaylines": round(r2 - r1, 1)}
        self.results.append(fig)
        print(json.dumps(fig, sort_keys=True), flush=True)
        if not a.keep:
            shutil.rmtree(sdir, ignore_errors=True)
        return fig

    def simulate(self, scen, rates):
        """The simulator's segment level on the same topology, caps and delays
        (the same engine as the nodes'): its last completion and copies, to set
        beside the emulated run's. None where it has no model of the scenario."""
        a = self.a
        if scen in ("cs", "loss1", "superdown"):
            return {"skipped": {"cs": "no P2P", "loss1": "no loss model", "superdown": "super-nodes in every domain"}[scen]}
        out = os.path.join(self.work, f"sim-{scen}")
        shutil.rmtree(out, ignore_errors=True)
        arrival = (["--arrival", "poll", "--poll-hours", str(a.spread / 3600)] if scen == "spread"
                   else ["--arrival", "flash", "--flash-minutes", "0.00001"])
        cmd = [self.bin, "sim", "--level", "segment", "--model", "p2p-locality", "--supers",
               "--devices", str(a.devices * a.domains), "--domains", str(a.domains), "--domain-dist", "equal",
               "--patch-mib", f"{a.size / 2**20:g}", *arrival, "--online-minutes", "600",
               "--device-down-mbps", f"{rates['dev_down']:g}", "--device-up-mbps", f"{rates['dev_up']:g}",
               "--device-slots", "4", "--super-down-mbps", f"{rates['sup_down']:g}",
               "--super-up-mbps", f"{rates['sup_up']:g}", "--super-slots", "64",
               "--origin-up-mbps", f"{rates['origin_up']:g}", "--origin-slots", "16",
               "--delay-local-ms", f"{a.intra_ms:g}", "--delay-remote-ms", f"{a.inter_ms:g}",
               "--remote-peers", "yes", "--seed", str(a.seed), "--plots", "no", "--out", out]
        try:
            run(cmd, timeout=600, capture=True)
            j = json.load(open(os.path.join(out, "summary.json")))["models"]["p2p-locality"]
            with open(os.path.join(out, "domains.csv")) as f:
                rows = list(csv.DictReader(f))
        except Exception as e:  # the emulated run stands on its own
            return {"error": str(e)}
        F = j["patch_bytes"]
        return {"last_s": round(j["completion_seconds"]["max"], 2),
                "origin_x": round(j["bytes_by_class"].get("origin", 0) / F, 3),
                "imports_x": {f"d{int(r['domain']) + 1}": round(float(r["imports"]), 3) for r in rows},
                "command": " ".join(cmd[1:])}

    def stop_nodes(self):
        """Stops what the scenario started (nodes, nginx, curl), not the delay lines."""
        lines = [p for p, _ in self.net.delaylines]
        self.procs.stop([p for p in self.procs.live if p not in lines])

    # --- measuring around the release

    def begin(self):
        self.c0, self.cpu0 = self.net.counters(), cpu_sample()
        self.t0 = time.time()

    def end(self):
        self.c1, self.cpu1 = self.net.counters(), cpu_sample()

    def check_files(self, files, done):
        """Completed nodes whose file is missing or differs from the patch (a node that did
        not complete shows in the count; its partial file is not compared)."""
        return sorted(n for n, p in files.items() if n in done and (not os.path.exists(p) or sha256(p) != self.digest))

    # --- client-server: nginx on the origin host, curl on every device at once

    def client_server(self, scen, sdir):
        a = self.a
        www = os.path.join(sdir, "www")
        os.makedirs(www)
        os.link(self.patch, os.path.join(www, "patch.bin"))
        conf = os.path.join(sdir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""daemon off; master_process off; worker_processes 1;
pid {sdir}/nginx.pid; error_log {sdir}/nginx.err warn;
events {{ worker_connections 1024; }}
http {{
  access_log off; sendfile on; tcp_nopush on;
  client_body_temp_path {sdir}/t1; proxy_temp_path {sdir}/t2; fastcgi_temp_path {sdir}/t3;
  uwsgi_temp_path {sdir}/t4; scgi_temp_path {sdir}/t5;
  server {{ listen 10.77.100.2:8080; root {www}; }}
}}
""")
        origin_ns = self.net.hosts["origin"][0]
        self.procs.start(["nginx", "-p", sdir, "-e", f"{sdir}/nginx.err", "-c", conf], f"{sdir}/nginx.log",
                         ns=origin_ns)
        wait_for(lambda: run(["curl", "-s", "-o", "/dev/null", "--max-time", "2", "-r", "0-0",
                              "http://10.77.100.2:8080/patch.bin"], ns=self.net.hosts["d1-dev1"][0],
                             check=False, timeout=5) == 0, 15, "nginx")
        files, procs = {}, {}
        self.begin()
        for n in self.devices():
            files[n] = os.path.join(sdir, f"{n}.bin")
            procs[n] = self.procs.start(["curl", "-sS", "--max-time", str(a.timeout), "-o", files[n],
                                         "http://10.77.100.2:8080/patch.bin"], f"{sdir}/{n}.log",
                                        ns=self.net.hosts[n][0])
        done = {}
        end = self.t0 + a.timeout + 10
        while len(done) < len(procs) and time.time() < end:
            for n, p in procs.items():
                if n not in done and p.poll() is not None:
                    done[n] = time.time() - self.t0 if p.returncode == 0 else None
            time.sleep(0.05)
        self.end()
        done = {n: t for n, t in done.items() if t is not None}
        return {"completions": done, "bad_files": self.check_files(files, done), "expected": len(procs),
                "status_bytes": None}

    # --- patchswarm daemons (and the one-shot fetch)

    def node_argv(self, name, sdir, role, domain, ip):
        argv = [self.bin, "node", "--data", f"{sdir}/{name}", "--role", role, "--domain", domain,
                "--trust", f"{self.work}/op.public", "--listen", f"{ip}:7000", "--dht-port", "4222",
                "--control", self.sock(name), "--log-level", self.a.log_level]
        if role == "super":  # what a cache admin knows of the links, in bytes/s
            r = self.rates_now
            argv += ["--uplink", f"{r['sup_up'] * 125000:.0f}", "--device-uplink", f"{r['dev_up'] * 125000:.0f}"]
        return argv

    def sock(self, name):
        return os.path.join(self.sockdir, name, "c.sock")

    def sockfolder(self, name):
        """A node's control socket folder: owner-only, as the daemon demands."""
        os.makedirs(os.path.join(self.sockdir, name), mode=0o700, exist_ok=True)
        os.chmod(os.path.join(self.sockdir, name), 0o700)

    def start_origin(self, sdir, extra=()):
        o = self.net.hosts["origin"]
        self.sockfolder("origin")
        p = self.procs.start(self.node_argv("origin", sdir, "origin", "core", o[1]) + list(extra),
                             f"{sdir}/origin.log", ns=o[0])
        wait_for(lambda: "ready" in open(f"{sdir}/origin.log").read() or p.poll() is not None, 20, "the origin")
        if p.poll() is not None:
            raise RuntimeError("origin failed: " + open(f"{sdir}/origin.log").read()[-400:])

    def domain_of(self, name):
        return f"d{self.net.hosts[name][2]}"

    def daemons(self, scen, sdir):
        a = self.a
        self.start_origin(sdir)
        delay = f"{a.spread}s" if scen == "spread" else a.start_delay
        names = self.supers(scen) + self.devices()
        for n in names:
            ns, ip, d, role = self.net.hosts[n]
            self.sockfolder(n)
            argv = self.node_argv(n, sdir, role, f"d{d}", ip) + ["--bootstrap", "10.77.100.2:4222"]
            if role == "peer":
                argv += ["--start-delay", delay]
            self.procs.start(argv, f"{sdir}/{n}.log", ns=ns)
        wait_for(lambda: all("ready" in open(f"{sdir}/{n}.log").read() for n in names), 60, "every node ready")
        # Every node has a peer, so that it hears the announcement at once.
        wait_for(lambda: all(self.ask(n).get("node", {}).get("peers", 0) >= 1 for n in names), 60,
                 "every node connected", step=0.5)
        self.begin()
        run([self.bin, "publish", "--key", f"{self.work}/op.secret", "--file", self.patch, "--name", NAME,
             "--version", "1", "--mandatory", "--out", f"{sdir}/patch.manifest", "--announce",
             "--socket", self.sock("origin")], timeout=60)
        done, per_node = {}, {}
        limit = a.timeout + (a.spread if scen == "spread" else 0)
        end = self.t0 + limit
        want = set(names)
        while not want <= set(done) and time.time() < end:
            for n in names:
                if n in done:
                    continue
                st = self.ask(n)
                for p in st.get("patches", []):
                    if p.get("state") == "complete" and p.get("completed_unix"):
                        done[n] = p["completed_unix"] - self.t0
                        per_node[n] = p.get("seconds_to_complete")
            time.sleep(0.25)
        self.end()
        status = {n: self.ask(n) for n in ["origin"] + names}
        files = {n: f"{sdir}/{n}/patches/{NAME}-v1" for n in self.devices()}
        res = {"completions": {n: t for n, t in done.items() if n in files},
               "super_completions": {n: t for n, t in done.items() if n not in files},
               "own_seconds": {n: per_node.get(n) for n in files if n in per_node},
               "bad_files": self.check_files(files, done), "expected": len(files)}
        # Why a node did not finish: what its control socket says.
        res["incomplete"] = {
            n: {"state": (status[n].get("patches") or [{}])[0].get("state", "no patch"),
                "progress": (status[n].get("patches") or [{}])[0].get("progress", 0),
                "announces_received": status[n].get("node", {}).get("announces_received"),
                "peers": status[n].get("node", {}).get("peers")}
            for n in names if n not in done}
        res["status_bytes"] = self.status_bytes(
            {n: (st.get("patches") or [{}])[0].get("bytes_from", {}) for n, st in status.items() if n != "origin"},
            sum(p.get("bytes_uploaded", 0) for p in status["origin"].get("patches", [])),
            {n: (st.get("patches") or [{}])[0].get("bytes_wasted_from", {}) for n, st in status.items() if n != "origin"})
        return res

    def ask(self, name, cmd="status"):
        """One request on a node's control socket (JSON lines); {} when it does not answer."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect(self.sock(name))
                s.sendall((json.dumps({"v": 1, "cmd": cmd}) + "\n").encode())
                return json.loads(s.makefile("rb").readline())
        except (OSError, ValueError):
            return {}

    def status_bytes(self, bytes_from, origin_sent, wasted_from=None):
        """Copies of the patch, from patchswarm's own per-source byte counts;
        wasted: Data that arrived from afar after its request was cancelled."""
        F = self.a.size
        imports, wasted = {}, {}
        for n, f in bytes_from.items():
            d = self.domain_of(n)
            imports[d] = imports.get(d, 0) + f.get("origin", 0) + f.get("other_domain", 0)
        for n, f in (wasted_from or {}).items():
            d = self.domain_of(n)
            wasted[d] = wasted.get(d, 0) + f.get("origin", 0) + f.get("other_domain", 0)
        got_from_origin = sum(f.get("origin", 0) for f in bytes_from.values())
        out = {"origin_sent_x": round(origin_sent / F, 3) if origin_sent else round(got_from_origin / F, 3),
               "imports_x": {d: round(b / F, 3) for d, b in sorted(imports.items())}}
        if wasted_from is not None:
            out["imports_wasted_x"] = {d: round(b / F, 3) for d, b in sorted(wasted.items())}
        return out

    def oneshot(self, scen, sdir):
        a = self.a
        run([self.bin, "publish", "--key", f"{self.work}/op.secret", "--file", self.patch, "--name", NAME,
             "--version", "1", "--out", f"{sdir}/patch.manifest"], timeout=60)
        self.start_origin(sdir, ["--serve", f"{sdir}/patch.manifest={self.patch}"])
        names = self.supers(scen) + self.devices()
        files = {n: f"{sdir}/{n}.bin" for n in names}
        self.begin()
        for n in names:
            ns, ip, d, role = self.net.hosts[n]
            self.procs.start([self.bin, "fetch", "--data", f"{sdir}/{n}", "--listen", f"{ip}:7000",
                              "--dht-port", "4222", "--bootstrap", "10.77.100.2:4222", "--domain", f"d{d}",
                              "--role", role, "--trust", f"{self.work}/op.public",
                              "--manifest", f"{sdir}/patch.manifest", "--out", files[n],
                              "--seed-ratio", "1000", "--seed-seconds", str(a.timeout),
                              "--timeout", str(a.timeout), "--stats-json", f"{sdir}/{n}.json"],
                             f"{sdir}/{n}.log", ns=ns)
        done = {}
        end = self.t0 + a.timeout
        while len(done) < len(names) and time.time() < end:
            for n in names:
                if n not in done and os.path.exists(files[n]):  # renamed into place when complete
                    done[n] = os.path.getmtime(files[n]) - self.t0
            time.sleep(0.1)
        self.end()
        self.stop_nodes()
        stats = {}
        for n in names:
            try:
                stats[n] = json.load(open(f"{sdir}/{n}.json"))
            except (OSError, ValueError):
                pass
        devs = set(self.devices())
        res = {"completions": {n: t for n, t in done.items() if n in devs},
               "super_completions": {n: t for n, t in done.items() if n not in devs},
               "bad_files": self.check_files(files, done),  # super-nodes' files too
               "expected": len(devs)}
        res["status_bytes"] = self.status_bytes(
            {n: {"origin": j.get("bytes_from_origin", 0), "other_domain": j.get("bytes_from_other_domains", 0)}
             for n, j in stats.items()}, 0)
        return res

    # --- figures

    def figures(self, scen, rates, loss, res):
        a = self.a
        F = a.size
        devs = self.devices()
        # For cs too, T_min and T_loc are the P2P system's on this network (super-nodes
        # downloading and uploading), so that the rows compare; t_min_cs_s is its own.
        supers = self.supers("daemon" if scen == "cs" else scen)
        down, up = {}, {}
        for n in devs + supers:
            d = self.net.hosts[n][2]
            kind = "sup" if self.net.hosts[n][3] == "super" else "dev"
            down.setdefault(d, []).append(rates[f"{kind}_down"])
            up.setdefault(d, []).append(rates[f"{kind}_up"])
        t_min, t_loc, t_one = bounds(a, rates, len(devs), down, up)
        cs_min = None
        if scen == "cs":  # the system's own bound: only the origin uploads, only devices download
            cs_min, _, _ = bounds(a, rates, len(devs), {d: [rates["dev_down"]] for d in down}, {})
        times = sorted(res["completions"].values())
        c = {k: self.c1.get(k, 0) - self.c0.get(k, 0) for k in self.c1}
        last = times[-1] if len(times) == res["expected"] else None
        ok = last is not None and not res["bad_files"]
        fig = {
            "scenario": scen, "domains": a.domains, "devices_per_domain": a.devices, "patch_bytes": F,
            "scale": scen_scale(a, scen), "loss": loss, "rates_mbit": rates,
            "delay_ms": {"intra": a.intra_ms, "inter": a.inter_ms},
            "complete": len(times), "expected": res["expected"], "identical": not res["bad_files"] and bool(times),
            "bad_files": res["bad_files"],
            "first_s": round(times[0], 2) if times else None,
            "median_s": round(statistics.median(times), 2) if times else None,
            "last_s": round(last, 2) if last is not None else None,
            "t_min_s": round(t_min, 2), "t_loc_s": round(t_loc, 2), "t_one_s": round(t_one, 2),
            "t_min_cs_s": round(cs_min, 2) if cs_min else None,
            "last_over_t_min": round(last / t_min, 2) if last else None,
            "last_over_t_loc": round(last / t_loc, 2) if last else None,
            "last_over_t_one": round(last / t_one, 2) if last else None,
            "median_over_t_min": round(statistics.median(times) / t_min, 2) if times else None,
            "wire": {
                "origin_sent_x": round(c.get("origin_out", 0) / F, 3),
                "imports_x": {f"d{d}": round(c.get(f"into_d{d}", 0) / F, 3) for d in range(1, a.domains + 1)},
                "imports_udp_x": {f"d{d}": round(c.get(f"into_d{d}_udp", 0) / F, 3) for d in range(1, a.domains + 1)},
                "exports_x": {f"d{d}": round(c.get(f"out_of_d{d}", 0) / F, 3) for d in range(1, a.domains + 1)},
                "dom_to_dom_x": round(c.get("dom_to_dom", 0) / F, 3),
            },
            "patchswarm_counts": res.get("status_bytes"),
            "cpu_busy": round(cpu_busy(self.cpu0, self.cpu1), 3), "cpus": os.cpu_count(),
            "wall_s": round(time.time() - self.t0, 1),
            "completions_s": {n: round(t, 2) for n, t in sorted(res["completions"].items())},
            "ok": ok,
        }
        if res.get("incomplete"):
            fig["incomplete"] = res["incomplete"]
        if res.get("super_completions"):
            fig["super_completions_s"] = {n: round(t, 2) for n, t in sorted(res["super_completions"].items())}
        if res.get("own_seconds"):
            own = [v for v in res["own_seconds"].values() if v is not None]
            if own:
                fig["own_median_s"] = round(statistics.median(own), 2)
                fig["own_max_s"] = round(max(own), 2)
        return fig


# ---------------------------------------------------------------------------
# Report


def table(results):
    hdr = (f"{'scenario':<10} {'done':>6} {'first':>6} {'median':>7} {'last':>7} {'T_min':>6} {'T_loc':>6} {'T_one':>6} "
           f"{'/T_min':>6} {'/T_loc':>6} {'/T_one':>6} {'origin x':>9} {'imports x (wire)':<22} {'d2d x':>6} {'cpu':>5} {'CPU-s':>11} ident")
    lines = [hdr]
    f = lambda v, w, p=1: f"{v:>{w}.{p}f}" if isinstance(v, (int, float)) else f"{'--':>{w}}"
    for r in results:
        ps = r.get("patchswarm_counts") or {}
        ox = f"{r['wire']['origin_sent_x']:.2f}"
        if ps.get("origin_sent_x"):
            ox += f"/{ps['origin_sent_x']:.2f}"
        imports = " ".join(f"{v:.2f}" for v in r["wire"]["imports_x"].values())
        lines.append(f"{r['scenario']:<10} {r['complete']:>3}/{r['expected']:<2} {f(r['first_s'], 6)} "
                     f"{f(r['median_s'], 7)} {f(r['last_s'], 7)} {f(r['t_min_s'], 6)} {f(r['t_loc_s'], 6)} {f(r.get('t_one_s'), 6)} "
                     f"{f(r['last_over_t_min'], 6, 2)} {f(r['last_over_t_loc'], 6, 2)} {f(r.get('last_over_t_one'), 6, 2)} {ox:>9} {imports:<22} "
                     f"{r['wire']['dom_to_dom_x']:>6.2f} {r['cpu_busy'] * 100:>4.0f}% "
                     f"{r.get('cpu_s', {}).get('nodes', 0):>5.0f}/{r.get('cpu_s', {}).get('delaylines', 0):<5.0f} "
                     f"{'yes' if r['identical'] else 'NO'}")
    notes = ["T_one: the bound when the origin sends one copy in all (every other copy crosses a member's uplink);",
             "origin x: copies the origin sent (wire, router counter / patchswarm's own count);",
             "imports x: copies into each domain from the router (wire bytes, ~3.6% over payload);",
             "d2d x: copies forwarded domain to domain; cpu: machine busy during the run (all cores, everything);",
             "CPU-s: CPU-seconds of the run's own processes (nodes/clients, delay lines)."]
    for r in results:
        if r.get("t_min_cs_s"):
            notes.append(f"{r['scenario']}: only the origin uploads; its own bound N*F/U_s = {r['t_min_cs_s']} s "
                         f"(last/that = {r['last_s'] / r['t_min_cs_s']:.2f})" if r["last_s"] else "")
        if r.get("incomplete"):
            states = sorted({f"{v['state']} (announcements heard: {v['announces_received']})"
                             for v in r["incomplete"].values()})
            notes.append(f"{r['scenario']}: not complete: {' '.join(sorted(r['incomplete']))}: {'; '.join(states)}")
        sim = r.get("sim") or {}
        if sim.get("last_s") and r.get("last_s"):
            ps = r.get("patchswarm_counts") or {}
            own = ps.get("imports_x") or {}
            worst = max((abs(sim["imports_x"].get(d, 0) - v) for d, v in own.items()), default=0)
            # The simulator times each device from its own arrival: with spread
            # arrivals, set it beside the slowest device's own time.
            emu, what = (r["own_max_s"], "slowest device from its own start") if r["scenario"] == "spread" and \
                r.get("own_max_s") else (r["last_s"], "last")
            notes.append(f"{r['scenario']}: simulator {sim['last_s']} s ({what}: emulated/sim {emu / sim['last_s']:.2f}), "
                         f"origin {sim['origin_x']:.2f} (nodes' count {ps.get('origin_sent_x', 0):.2f}), "
                         f"imports {' '.join(f'{v:.2f}' for v in sim['imports_x'].values())} "
                         f"(largest gap to the nodes' counts {worst:.2f})")
        elif sim.get("skipped"):
            notes.append(f"{r['scenario']}: simulator: not run ({sim['skipped']})")
        if r.get("own_median_s"):
            notes.append(f"{r['scenario']}: per device from its own start: median {r['own_median_s']} s, "
                         f"max {r['own_max_s']} s")
    scale = {r["scale"]: r for r in results if r["scenario"] in ("daemon", "scale") and r["last_s"]}
    if len(scale) == 2:
        (s1, r1), (s2, r2) = sorted(scale.items(), reverse=True)
        notes.append(f"scale check: rates x{s2 / s1:.2f} -> last completion x{r2['last_s'] / r1['last_s']:.2f} "
                     f"(network-bound: about x{s1 / s2:.0f})")
    return "\n".join(lines + [n for n in notes if n])


def plot(results, png, work):
    if not shutil.which("gnuplot"):
        log("gnuplot not found: no PNG")
        return
    plots = []
    for i, r in enumerate(results):
        times = sorted(r["completions_s"].values())
        if not times:
            continue
        dat = os.path.join(work, f"plot{i}.dat")
        with open(dat, "w") as f:
            f.write("0 0\n")
            for k, t in enumerate(times, 1):
                f.write(f"{t} {k}\n")
        plots.append(f"'{dat}' using 1:2 with steps lw 2 title '{r['scenario']} (x{r['scale']:g})'")
    if not plots:
        return
    t_min, t_loc = results[0]["t_min_s"], results[0]["t_loc_s"]
    script = f"""set terminal pngcairo size 1000,600 noenhanced
set output '{png}'
set title 'devices complete over time ({results[0]['domains']} domains x {results[0]['devices_per_domain']} devices, {results[0]['patch_bytes'] / 2**20:.0f} MiB)'
set xlabel 'seconds after the release'
set ylabel 'devices complete'
set key bottom right
set grid
set arrow from {t_min},graph 0 to {t_min},graph 1 nohead dt 2 lc rgb 'gray40'
set label 'T_min ({results[0]['scenario']})' at {t_min},graph 0.95 offset 0.5,0
set arrow from {t_loc},graph 0 to {t_loc},graph 1 nohead dt 3 lc rgb 'gray40'
set label 'T_loc ({results[0]['scenario']})' at {t_loc},graph 0.88 offset 0.5,0
plot {', '.join(plots)}
"""
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True, timeout=30)
    if r.returncode != 0:
        # pngcairo may be missing: the plain png terminal instead
        r = subprocess.run(["gnuplot"], input=script.replace("pngcairo", "png"), text=True,
                           capture_output=True, timeout=30)
    if r.returncode != 0:
        log(f"gnuplot failed: {r.stderr.strip()[:300]}")
    else:
        log(f"plot: {png}")


# ---------------------------------------------------------------------------


def parse_args(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    build = os.environ.get("BUILD_DIR", os.path.join(here, "..", "..", "build"))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--domains", type=int, default=3)
    p.add_argument("--devices", type=int, default=8, help="devices per domain")
    p.add_argument("--mib", type=float, default=32, help="patch size in MiB")
    p.add_argument("--scenarios", default="cs,daemon",
                   help=f"comma list, run in this order: {','.join(SCENARIOS)} (or all)")
    p.add_argument("--dev-up", type=float, default=8, help="device upload, Mbit/s")
    p.add_argument("--dev-down", type=float, default=32, help="device download, Mbit/s")
    p.add_argument("--super-gbit", action="store_true", help="super-node hosts at 1 Gbit/s both ways")
    p.add_argument("--origin-up", type=float, default=40, help="origin upload, Mbit/s")
    p.add_argument("--uplink", type=float, default=100, help="each domain's uplink to the router, Mbit/s each way")
    p.add_argument("--intra-ms", type=float, default=1, help="one-way delay inside a domain")
    p.add_argument("--inter-ms", type=float, default=20, help="one-way delay between domains and to the origin")
    p.add_argument("--loss", type=float, default=0, help="loss rate on every path (the loss1 scenario: 0.01)")
    p.add_argument("--scale", type=float, default=1, help="multiply every rate (the scale scenario halves it again)")
    p.add_argument("--start-delay", default="0s", help="devices' random start delay, up to (daemon scenarios)")
    p.add_argument("--spread", type=int, default=120, help="seconds the spread scenario's arrivals cover")
    p.add_argument("--timeout", type=int, default=600, help="seconds a scenario may take after the release")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log-level", default="warn", help="patchswarm nodes' log level")
    p.add_argument("--patchswarm", default=os.path.join(build, "patchswarm"))
    p.add_argument("--delayline", default=os.path.join(build, "bench", "net", "ps_delayline"))
    p.add_argument("--out", default=None, help="folder for results.jsonl, table.txt and completions.png")
    p.add_argument("--keep", action="store_true", help="keep the node folders and logs")
    p.add_argument("--check", action="store_true",
                   help="exit 1 unless every run completed with identical files within the --max-* bounds")
    p.add_argument("--max-origin-x", type=float, default=8, help="with --check: origin copies (wire)")
    p.add_argument("--max-import-x", type=float, default=8, help="with --check: copies into a domain (wire)")
    p.add_argument("--max-t-loc-x", type=float, default=30, help="with --check: last completion / T_loc")
    a = p.parse_args(argv)
    a.scenarios = SCENARIOS if a.scenarios == "all" else a.scenarios.split(",")
    for s in a.scenarios:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s!r}; known: {', '.join(SCENARIOS)}")
    if not (1 <= a.domains <= 99 and 1 <= a.devices <= 200):
        p.error("1..99 domains of 1..200 devices")
    a.size = int(a.mib * 2**20)
    a.patchswarm, a.delayline = os.path.abspath(a.patchswarm), os.path.abspath(a.delayline)
    return a


def preflight(a):
    """Exit 77 (skip) with the reason when this machine cannot run the network."""
    def skip(why):
        print(f"netbench: SKIPPED: {why}", flush=True)
        sys.exit(SKIP)
    if os.geteuid() != 0:
        skip("needs root (network namespaces, tc, iptables)")
    for tool in ("ip", "tc", "iptables", "sysctl"):
        if not shutil.which(tool):
            skip(f"'{tool}' not found")
    if "cs" in a.scenarios and not (shutil.which("nginx") and shutil.which("curl")):
        skip("the cs scenario needs nginx and curl")
    if not os.access(a.delayline, os.X_OK):
        skip(f"{a.delayline} not built (needs libnetfilter-queue-dev and libmnl-dev)")
    if not os.access(a.patchswarm, os.X_OK):
        skip(f"{a.patchswarm} not built")
    probe = f"psn{os.getpid()}-probe"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        skip(f"network namespaces not allowed here: {r.stderr.strip()}")
    try:
        r = subprocess.run(["ip", "netns", "exec", probe, "iptables", "-A", "INPUT", "-j", "NFQUEUE",
                            "--queue-num", "0"], capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            skip(f"iptables NFQUEUE not available: {r.stderr.strip()}")
        if not os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"):
            skip("br_netfilter not available (modprobe br_netfilter)")
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)


def main(argv):
    a = parse_args(argv)
    preflight(a)
    out = a.out or os.path.join(os.getcwd(), "netbench-out")
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="netbench-")
    procs = Procs()
    net = Net(a, procs, work)

    def on_signal(signum, _frame):
        raise Stop(f"signal {signum}")
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    bench = Bench(a, procs, net, work)
    status = 0
    try:
        t = time.time()
        net.build()
        log(f"network up in {time.time() - t:.1f} s: {len(net.made)} namespaces ({net.tag}-*)")
        bench.prepare()
        for scen in a.scenarios:
            try:
                r = bench.run_scenario(scen)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                log(f"{scen} failed: {e}")
                status = 1
                continue
            if not r["ok"]:
                status = 1
            if a.check:
                bad = []
                if not r["ok"]:
                    bad.append(f"{r['complete']}/{r['expected']} complete, identical={r['identical']}")
                if r["wire"]["origin_sent_x"] > a.max_origin_x:
                    bad.append(f"origin sent {r['wire']['origin_sent_x']}x > {a.max_origin_x}x")
                for d, x in r["wire"]["imports_x"].items():
                    if scen != "cs" and x > a.max_import_x:
                        bad.append(f"{d} imported {x}x > {a.max_import_x}x")
                if r["last_over_t_loc"] and scen != "cs" and r["last_over_t_loc"] > a.max_t_loc_x:
                    bad.append(f"last/T_loc {r['last_over_t_loc']} > {a.max_t_loc_x}")
                if r["scenario"] in ("daemon", "oneshot") and r["wire"]["origin_sent_x"] < 0.9:
                    bad.append(f"origin sent only {r['wire']['origin_sent_x']}x: the counters do not count")
                for b in bad:
                    log(f"CHECK FAILED {scen}: {b}")
                status = 1 if bad else status
    except Stop as e:
        log(f"stopped by {e}")
        status = 130
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)  # a second signal must not cut the clean-up short
        procs.stop()
        net.destroy()
        if bench.results:
            with open(os.path.join(out, "results.jsonl"), "a") as f:
                for r in bench.results:
                    f.write(json.dumps(r, sort_keys=True) + "\n")
            txt = table(bench.results)
            with open(os.path.join(out, "table.txt"), "w") as f:
                f.write(txt + "\n")
            print(txt, flush=True)
            plot(bench.results, os.path.join(out, "completions.png"), work)
        if a.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
