"""The storage server's UDP transport against its ceiling: the same C load generator over loopback.

Each row runs two targets in turn on 127.0.0.1, each on a UDP port of its own:
our server (`storvisor serve --transport udp`, each datagram one whole Ethernet
frame, as QEMU's `-netdev dgram` sends them) on a fresh state directory, and
the null responder, which answers the same frames without any I/O (the most the
load generator and loopback carry: the ceiling). Prints MB/s or requests/s per
target, the ratio ours/ceiling with its range over the rounds, our median
latency, our server's CPU time per request (user + system of its process from
/proc/PID/stat over the measured interval) and the load generator's own CPU
share of one core. Only answers without an error count, and a read counts only
when its data begins with the LBA asked for (every sector of the image, and of
every write, starts with its own LBA); a row where a target answered with
errors or the wrong data is marked INVALID. Our server only reads the image:
its writes go to overlays in its state directory, made afresh for every run.

    .venv/bin/python -m benchmarks.server_udp [--seconds 2] [--repeat 3] [--rows 0,3] [--workers 2]

`--workers N` runs our server with N worker processes sharing the clients by
MAC on one port (default: one, the UDP default); its CPU figure counts them all.

Over loopback the kernel delivers a datagram mostly in the sender's context, so
a target's CPU figure includes handing its answers to the load generator, and
the generator's includes handing it the requests. Each round starts with a
warm-up the figures leave out (our server creates a client's overlay, durably,
on its first write).

Needs cc, not root: without root the sockets' buffers are capped by
net.core.rmem_max and wmem_max, and a burst that overflows them is lost and
sent again after 250 ms (the retransmits column). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time

from benchmarks.server_vs_vblade import BUILD, ROOT, SECTORS_4K, build, drive, report_problems, stamped_image_file
from difftest.server.netns import stop_process

SERVER_MAC = "02:53:56:00:00:01"  # our server's default on UDP, and the null responder's
HOST = "127.0.0.1"
TARGETS = ("ours", "null")

# (label, mtu, workload, clients, window, sectors per request or None for a full frame, unit)
ROWS = [
    ("sequential read, MTU 1500", 1500, "seqread", 1, 16, None, "MB/s"),
    ("sequential read, MTU 9000", 9000, "seqread", 1, 16, None, "MB/s"),
    ("sequential write, MTU 9000", 9000, "seqwrite", 1, 16, None, "MB/s"),
    ("4 KiB random read, 16 outstanding", 9000, "randread", 1, 16, SECTORS_4K, "req/s"),
    ("4 KiB random write, 16 outstanding", 9000, "randwrite", 1, 16, SECTORS_4K, "req/s"),
    ("8 clients, 4 KiB random read, 4 each", 9000, "randread", 8, 4, SECTORS_4K, "req/s"),
    ("64 clients, 4 KiB random read, 2 each", 9000, "randread", 64, 2, SECTORS_4K, "req/s"),
]


def free_port() -> int:
    """A UDP port on HOST nothing listens on now (every target gets a new one: our server ties a client's
    MAC to the address it came from for 30 s, so a port must not meet a generator of an earlier run)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def start_target(target: str, image: str, mtu: int, port: int, null_responder: str, workers: int) -> subprocess.Popen:
    """Our server (on a fresh state directory) or the null responder, listening on HOST:port."""
    log_path = os.path.join(BUILD, f"udp-{target}.log")
    state = os.path.join(BUILD, "udp-state")
    if target == "null":
        argv = [null_responder, "--udp", f"{HOST}:{port}"]
    else:
        shutil.rmtree(state, ignore_errors=True)
        argv = [sys.executable, "-m", "impl.cli", "serve", "--image", image, "--state", state, "--transport", "udp",
                "--listen", f"{HOST}:{port}", "--mtu", str(mtu), "--mac", SERVER_MAC, "--workers", str(workers)]
    with open(log_path, "w") as log:
        process = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if target == "ours":
        ready = lambda: os.path.exists(os.path.join(state, "control.sock"))  # made once the server listens
    else:
        time.sleep(0.1)  # it binds at once; it has no readiness signal, and the warm-up sends again what it missed
        ready = lambda: True
    deadline = time.monotonic() + 20
    while process.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.02)
    if process.poll() is not None or not ready():
        stop_process(process)
        with open(log_path) as log:
            raise RuntimeError(f"{target} did not start: {log.read()}")
    return process


def run_row(row: tuple, target: str, image: str, programs: dict[str, str], seconds: float, warmup: float, workers: int) -> dict:
    """One round of one row against one target: the load generator's JSON, with our figures added."""
    os.sync()  # no target writes while the page cache still writes back the one before
    port = free_port()
    process = start_target(target, image, row[1], port, programs["server_null_responder"], workers)
    try:
        result = drive([programs["server_loadgen"], "--udp", f"{HOST}:{port}", "--server-mac", SERVER_MAC], process.pid, row, seconds, warmup)
        if process.poll() is not None:
            raise RuntimeError(f"{target} exited during the run (status {process.returncode}); see {BUILD}/udp-{target}.log")
    finally:
        stop_process(process)
    result["value"] = result["mb_per_s"] if row[-1] == "MB/s" else result["ops_per_s"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the storage server over UDP against the null responder")
    parser.add_argument("--seconds", type=float, default=2.0, help="load per row and target")
    parser.add_argument("--rows", help="comma-separated row numbers (default: all)")
    parser.add_argument("--warmup", type=float, default=0.5,
                        help="seconds of load before measuring, so a client's first contact (its overlay being created) is not counted (default 0.5)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per row; the median round is shown (default 3)")
    parser.add_argument("--workers", type=int, default=1, help="our server's worker processes (default 1, the UDP default)")
    args = parser.parse_args(argv)
    if not shutil.which("cc"):
        print("server_udp: skipped (needs cc)")
        return 0
    image = stamped_image_file()
    programs = {name: build(name) for name in ("server_loadgen", "server_null_responder")}
    numbers = [int(i) for i in args.rows.split(",")] if args.rows else range(len(ROWS))
    print(f"UDP on {HOST}, one datagram per Ethernet frame, our server with {args.workers} worker(s); {args.seconds:g} s per row and target after {args.warmup:g} s of warm-up;"
          f" each row {args.repeat} times (ours, null in turn), medians shown, the ratio's range over the rounds in brackets")
    print(f"{'row':41} {'ours':>10} {'ceiling':>10} {'ratio':>7} {'(range)':>11}  unit   ours p50 ms  retransmits ours/null"
          "  CPU µs/request ours  load generator's core % ours/null")
    for number in numbers:
        row = ROWS[number]
        rounds = [{target: run_row(row, target, image, programs, args.seconds, args.warmup, args.workers) for target in TARGETS} for _ in range(args.repeat)]
        results = {t: sorted((r[t] for r in rounds), key=lambda result: result["value"])[len(rounds) // 2] for t in TARGETS}  # the median round of each
        value = {t: r["value"] for t, r in results.items()}
        ratio = value["ours"] / value["null"] if value["null"] else float("inf")
        ratios = [r["ours"]["value"] / r["null"]["value"] if r["null"]["value"] else float("inf") for r in rounds]
        print(f"{number:2} {row[0]:38} {value['ours']:10.1f} {value['null']:10.1f} {ratio:6.2f}x ({min(ratios):.2f}–{max(ratios):.2f})  {row[-1]:5}  "
              f"{results['ours']['p50_ms'] or 0:10.3f}  {sum(r['ours']['retransmits'] for r in rounds):>16}/{sum(r['null']['retransmits'] for r in rounds):<4}"
              f"  {results['ours']['cpu_us']:19.1f}"
              f"  {' / '.join('%.0f' % (100 * results[t]['cpu_s'] / results[t]['seconds']) for t in TARGETS)}", flush=True)
        report_problems(rounds, TARGETS, 41)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
