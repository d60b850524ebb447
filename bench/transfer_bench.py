#!/usr/bin/env python3
"""Transfer benchmarks (issue 4), run through the real CLI: separate processes,
real OpenDHT nodes, encrypted streams on 127.0.0.1, segments verified and
written (fdatasync) by every downloader.

  one     one holder -> one downloader, beside the same crypto done in memory by
          one core (bench_crypto_mem: secretstream push + pull + BLAKE2b per MiB)
  fanout  one holder -> ten downloaders at once (one domain: they also serve
          each other)
  serve   one holder -> ten downloaders, each in a domain of its own, so that
          the holder serves every byte: its own CPU seconds per GB served,
          beside the in-memory pipeline's CPU seconds per GB (bench_crypto_mem,
          one core, measured in the same run)
  fanin   ten holders -> one downloader
  publish `patchswarm publish` of the patch beside `b2sum` of the same file
          (page cache warm, median of --runs runs each, alternating)

Prints MB/s (10^6 B/s), CPU seconds per GB moved (all processes, user+sys) and
the peak resident memory of each kind of process. Speeds are meant to be read
as the ratios printed beside them: on a shared machine the absolute figures
move with the others' load, the ratios much less.

  bench/transfer_bench.py [--build build] [--size-mib 1024] [--only one,fanout,fanin,publish] [--runs 3]
"""
import argparse, json, os, re, shutil, signal, subprocess, sys, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
ap.add_argument("--size-mib", type=int, default=1024)
ap.add_argument("--only", default="one,fanout,serve,fanin,publish")
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--dir", default=tempfile.gettempdir())
args = ap.parse_args()
BIN = os.path.abspath(os.path.join(args.build, "patchswarm"))
MEM = os.path.abspath(os.path.join(args.build, "bench", "bench_crypto_mem"))
work = tempfile.mkdtemp(prefix="ps-bench-", dir=args.dir)
size = args.size_mib << 20


def run(*a):
    subprocess.run([BIN, *a], check=True, stdout=subprocess.DEVNULL)


def start(name, *a):
    out = open(os.path.join(work, name + ".log"), "w")
    return subprocess.Popen([BIN, *a], stdout=out, stderr=subprocess.STDOUT)


def wait_ready(name, timeout=30):
    path = os.path.join(work, name + ".log")
    for _ in range(timeout * 20):
        m = re.search(r"^ready .* dht=(\d+)", open(path).read(), re.M)
        if m:
            return int(m.group(1))
        time.sleep(0.05)
    sys.exit(f"{name} did not start: {open(path).read()}")


def reap(p):
    """Waits for a process; returns (cpu seconds, peak RSS in KiB)."""
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def holder(name, bootstrap=None):
    a = ["node", "--data", f"{work}/{name}", "--domain", "d1", "--role", "super", "--trust", f"{work}/op.public",
         "--serve", f"{work}/patch.manifest={work}/patch.bin", "--max-peers", "64"]
    if bootstrap:
        a += ["--bootstrap", f"127.0.0.1:{bootstrap}"]
    p = start(name, *a)
    return p, wait_ready(name)


def fetcher(name, bootstrap, domain="d1", max_peers=64):
    return start(name, "fetch", "--data", f"{work}/{name}", "--domain", domain, "--trust", f"{work}/op.public",
                 "--bootstrap", f"127.0.0.1:{bootstrap}", "--manifest", f"{work}/patch.manifest",
                 "--out", f"{work}/{name}.bin", "--seed-ratio", "0", "--timeout", "600", "--max-peers", str(max_peers),
                 "--stats-json", f"{work}/{name}.json")


def scenario(holders, downloaders, spread=False):
    """spread: each downloader in a domain of its own with one connection, so
    that it finds and uses only the holders (super-nodes, found under the
    cross-domain key), not the other downloaders."""
    hs = []
    p, port = holder("h0")
    hs.append(p)
    for i in range(1, holders):
        hs.append(holder(f"h{i}", port)[0])
    time.sleep(1.5)  # let the holders' records settle in the DHT
    fs = [fetcher(f"f{i}", port, f"x{i}", 1) if spread else fetcher(f"f{i}", port) for i in range(downloaders)]
    cpu, rss_f, secs, from_holders = 0.0, 0, [], 0
    for i, f in enumerate(fs):
        c, r = reap(f)
        if f.returncode != 0:
            sys.exit(f"f{i} failed: {open(os.path.join(work, f'f{i}.log')).read()}")
        cpu += c
        rss_f = max(rss_f, r)
        stats = json.load(open(f"{work}/f{i}.json"))
        secs.append(stats["seconds_to_complete"])
        from_holders -= stats["bytes_uploaded"]  # what the downloaders served each other
    rss_h, cpu_h = 0, 0.0
    for h in hs:
        h.send_signal(signal.SIGTERM)
        c, r = reap(h)
        cpu += c
        cpu_h += c
        rss_h = max(rss_h, r)
    for i in range(downloaders):
        if not filecmp(f"{work}/f{i}.bin"):
            sys.exit(f"f{i}.bin differs from the patch")
        shutil.rmtree(f"{work}/f{i}", ignore_errors=True)
        os.remove(f"{work}/f{i}.bin")
    for i in range(holders):
        shutil.rmtree(f"{work}/h{i}", ignore_errors=True)
    moved = size * downloaders
    from_holders += moved
    return {"mbps": moved / max(secs) / 1e6, "cpu_per_gb": cpu / (moved / 1e9), "holder_cpu_per_gb": cpu_h / (max(from_holders, 1) / 1e9),
            "holder_share": from_holders / moved,
            "rss_holder_mib": rss_h / 1024, "rss_downloader_mib": rss_f / 1024, "slowest_s": max(secs)}


def in_memory_mbps():
    """The in-memory pipeline on one core (secretstream push + pull + BLAKE2b), MB/s."""
    out = subprocess.run([MEM, str(min(args.size_mib, 1024))], capture_output=True, text=True, check=True).stdout
    return float(out)


def timed(cmd):
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def publish_vs_b2sum():
    """Median wall seconds of publish and of b2sum over the same (cached) file, runs alternating."""
    pub = ["publish", "--key", f"{work}/op.secret", "--file", f"{work}/patch.bin", "--name", "bench", "--version", "1",
           "--out", f"{work}/again.manifest"]
    timed(["b2sum", f"{work}/patch.bin"])  # warm the page cache
    p, b = [], []
    for _ in range(max(1, args.runs)):
        b.append(timed(["b2sum", f"{work}/patch.bin"]))
        p.append(timed([BIN, *pub]))
        os.remove(f"{work}/again.manifest")
    return sorted(p)[len(p) // 2], sorted(b)[len(b) // 2]


def filecmp(path):
    return subprocess.run(["cmp", "-s", path, f"{work}/patch.bin"]).returncode == 0


try:
    run("keygen", "--secret", f"{work}/op.secret", "--public", f"{work}/op.public")
    with open(f"{work}/patch.bin", "wb") as f:
        for _ in range(args.size_mib):
            f.write(os.urandom(1 << 20))
    run("publish", "--key", f"{work}/op.secret", "--file", f"{work}/patch.bin", "--name", "bench", "--version", "1",
        "--out", f"{work}/patch.manifest")
    cmd = " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])
    print(f"$ {cmd}\n(patch {args.size_mib} MiB, {os.cpu_count()} cores, loopback)\n")
    only = args.only.split(",")
    if "one" in only:
        mem = in_memory_mbps()
        r = scenario(1, 1)
        print(f"one stream:      {r['mbps']:7.1f} MB/s   in-memory one core: {mem:6.1f} MB/s   ratio {r['mbps'] / mem:5.2f}"
              f"   CPU {r['cpu_per_gb']:5.2f} s/GB   RSS holder {r['rss_holder_mib']:.1f} MiB, downloader {r['rss_downloader_mib']:.1f} MiB")
    if "fanout" in only:
        r = scenario(1, 10)
        print(f"1 -> 10:         {r['mbps']:7.1f} MB/s aggregate   CPU {r['cpu_per_gb']:5.2f} s/GB   "
              f"RSS holder {r['rss_holder_mib']:.1f} MiB, downloader {r['rss_downloader_mib']:.1f} MiB")
    if "serve" in only:
        r = scenario(1, 10, spread=True)
        mem_cpu = 1e3 / in_memory_mbps()  # one core: CPU seconds per GB through the in-memory pipeline
        print(f"1 -> 10 domains: {r['mbps']:7.1f} MB/s aggregate   holder {r['holder_cpu_per_gb']:5.2f} CPU-s per GB it served"
              f" ({r['holder_share'] * 100:.0f}% of the bytes)   in-memory pipeline {mem_cpu:5.2f} CPU-s/GB"
              f"   ratio {r['holder_cpu_per_gb'] / mem_cpu:5.2f}")
    if "fanin" in only:
        r = scenario(10, 1)
        print(f"10 -> 1:         {r['mbps']:7.1f} MB/s aggregate   CPU {r['cpu_per_gb']:5.2f} s/GB   "
              f"RSS holder {r['rss_holder_mib']:.1f} MiB, downloader {r['rss_downloader_mib']:.1f} MiB")
    if "publish" in only:
        p, b = publish_vs_b2sum()
        print(f"publish:         {size / p / 1e6:7.1f} MB/s   b2sum same file: {size / b / 1e6:7.1f} MB/s   ratio {b / p:5.2f}"
              f"   (median of {max(1, args.runs)})")
finally:
    shutil.rmtree(work, ignore_errors=True)
