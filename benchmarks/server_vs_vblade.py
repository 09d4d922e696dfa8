"""The storage server against vblade: the same load generator, both on AF_PACKET over a veth pair.

Each row runs three targets in turn, each alone on a fresh veth pair whose far
end sits in a network namespace of its own: our server, vblade, and a null
responder that answers without any I/O (the load generator's own ceiling).
Prints MB/s or requests/s per target and the ratio ours/vblade; and our
server's resident memory while it serves 64 clients. Only answers without an
error count, and a read counts only when its data begins with the LBA asked for
(every sector of the image, and of every write, starts with its own LBA); a row
where a target answered with errors or the wrong data is marked INVALID.
Each target serves its own copy of the image (vblade writes into its file).
The last rows export the image read-only on both sides (ours `--read-only`,
vblade `-r`), a golden image many machines boot from: there our workers share
one client's reads.

Two CPU figures per request: the target's own processes, and the target's and
the load generator's together. Over a veth pair the kernel delivers a frame in
the sender's context, so a target's own figure leaves out the copy into its
receive ring (ours and the null responder's) that vblade, copying in its own
read(), pays itself; the sum counts both ends' work wherever it ran.

    sudo .venv/bin/python -m benchmarks.server_vs_vblade [--seconds 2]

The load generator is benchmarks/server_loadgen.c (C, blocking poll, recvmmsg and
sendmmsg), so it leaves most of a core to the target; its own CPU use is printed
as a share of one core. Each round starts with a warm-up the figures leave out
(our server creates a client's overlay, durably, on its first write).

Needs root (namespaces, raw sockets), vblade and cc. Not a test: nothing is asserted.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import time
from typing import NamedTuple

from difftest.server.netns import ROOT, VethNamespace
from spec.aoe.constants import SECTOR_BYTES

BUILD = os.path.join(ROOT, "build", "server-bench")
IMAGE_SECTORS = 1 << 19  # 256 MiB
SECTORS_4K = 8
PAGE_BYTES = 4096
BUFFER_COUNT = 128  # both targets advertise (and vblade sizes its socket buffer for) this many requests
LOAD_CPU, TARGET_CPU = 0, 1  # with --pin: the load generator's core, and vblade's and the null responder's


class Row(NamedTuple):
    label: str
    mtu: int
    workload: str
    clients: int
    window: int
    sectors: int | None  # per request; None: a full frame
    unit: str
    read_only: bool = False  # both targets export the image read-only (ours --read-only, vblade -r)


ROWS = [
    Row("sequential read, MTU 1500", 1500, "seqread", 1, 16, None, "MB/s"),
    Row("sequential write, MTU 1500", 1500, "seqwrite", 1, 16, None, "MB/s"),
    Row("sequential read, MTU 9000", 9000, "seqread", 1, 16, None, "MB/s"),
    Row("sequential write, MTU 9000", 9000, "seqwrite", 1, 16, None, "MB/s"),
    Row("4 KiB random read, 1 outstanding", 9000, "randread", 1, 1, SECTORS_4K, "req/s"),
    Row("4 KiB random read, 16 outstanding", 9000, "randread", 1, 16, SECTORS_4K, "req/s"),
    Row("4 KiB random read, 64 outstanding", 9000, "randread", 1, 64, SECTORS_4K, "req/s"),
    Row("4 KiB random write, 1 outstanding", 9000, "randwrite", 1, 1, SECTORS_4K, "req/s"),
    Row("4 KiB random write, 16 outstanding", 9000, "randwrite", 1, 16, SECTORS_4K, "req/s"),
    Row("4 KiB random write, 64 outstanding", 9000, "randwrite", 1, 64, SECTORS_4K, "req/s"),
    Row("8 clients, 4 KiB random read, 4 each", 9000, "randread", 8, 4, SECTORS_4K, "req/s"),
    Row("64 clients, 4 KiB random read, 2 each", 9000, "randread", 64, 2, SECTORS_4K, "req/s"),
    Row("64 clients, 4 KiB random write, 2 each", 9000, "randwrite", 64, 2, SECTORS_4K, "req/s"),
    Row("64 clients, sequential read, 4 each", 9000, "seqread", 64, 4, None, "MB/s"),  # many machines booting at once
    Row("sequential read, MTU 9000, read-only image", 9000, "seqread", 1, 16, None, "MB/s", read_only=True),  # a golden image
    Row("4 KiB random read, 16 outstanding, read-only", 9000, "randread", 1, 16, SECTORS_4K, "req/s", read_only=True),
    Row("64 clients, sequential read, 4 each, read-only", 9000, "seqread", 64, 4, None, "MB/s", read_only=True),
]
TARGETS = ("ours", "vblade", "null")


def build(name: str) -> str:
    """benchmarks/NAME.c compiled into build/server-bench/NAME (again when it or a header there is newer)."""
    binary = os.path.join(BUILD, name)
    source = os.path.join(ROOT, "benchmarks", name + ".c")
    inputs = [source] + glob.glob(os.path.join(ROOT, "benchmarks", "*.h"))
    if not os.path.exists(binary) or os.path.getmtime(binary) < max(map(os.path.getmtime, inputs)):
        subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", binary, source], check=True)
    return binary


def process_tree(pid: int) -> list[int]:
    """A process and its descendants (our server's workers are children of its first process)."""
    pids = [pid]
    for task in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for child in f.read().split():
                    pids += process_tree(int(child))
        except OSError:
            pass
    return pids


def resident_mb(pid: int) -> float:
    """Resident memory of the process and its descendants (pages they share counted once per process)."""
    total = 0
    for member in process_tree(pid):
        with open(f"/proc/{member}/status") as f:
            total += sum(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, its descendants and their reaped children: what serving
    cost, however busy the machine."""
    total = 0.0
    for member in process_tree(pid):
        with open(f"/proc/{member}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def stamped_image(path: str) -> None:
    """IMAGE_SECTORS sectors, each beginning with its LBA (8 bytes, little-endian), as the load generator checks."""
    chunk_sectors = (1 << 20) // SECTOR_BYTES
    with open(path, "wb") as f:
        for first in range(0, IMAGE_SECTORS, chunk_sectors):
            chunk = bytearray(bytes([first // chunk_sectors & 0xFF]) * (1 << 20))
            for i in range(chunk_sectors):
                chunk[i * SECTOR_BYTES : i * SECTOR_BYTES + 8] = (first + i).to_bytes(8, "little")
            f.write(chunk)


def stamped_image_file() -> str:
    """build/server-bench/stamped.img, made on first use (the folder too)."""
    os.makedirs(BUILD, exist_ok=True)
    image = os.path.join(BUILD, "stamped.img")
    if not os.path.exists(image):
        stamped_image(image)
    return image


def copy_in_pages(source: str, destination: str) -> None:
    """A new file with `source`'s bytes, written 4 KiB at a time and synced. The page cache then holds it
    in single pages, as it holds a fresh overlay; a file the kernel read or wrote in large pieces is
    cached in large folios, and a 4 KiB write into one walks all its blocks (measured: vblade's
    64-client writes took 7-12 µs each instead of 4.5-5)."""
    if os.path.exists(destination):
        os.unlink(destination)
    with open(source, "rb") as f:
        data = f.read()
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        for offset in range(0, len(data), PAGE_BYTES):
            os.pwrite(fd, data[offset : offset + PAGE_BYTES], offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def run_row(row, target: str, image: str, programs: dict, seconds: float, warmup: float, pin: bool, workers: int | None) -> dict:
    mtu, read_only = row.mtu, row.read_only
    os.sync()  # no target writes while the page cache still writes back the one before
    with VethNamespace(mtu) as net:
        log = os.path.join(BUILD, f"{target}.log")
        if target == "ours":
            state = os.path.join(BUILD, "state")
            shutil.rmtree(state, ignore_errors=True)
            options = ["--buffer-count", str(BUFFER_COUNT)] + (["--workers", str(workers)] if workers else []) + (["--read-only"] if read_only else [])
            process = net.start_server(image, state, log, options)
        elif target == "vblade":
            process = net.start_vblade_with(["-b", str(BUFFER_COUNT)] + (["-r"] if read_only else []), image.replace(".img", "-vblade.img"), log)
        else:
            process = net.start([programs["server_null_responder"], net.far_interface], log)
            time.sleep(0.1)
        if pin and target != "ours":  # our workers have pinned themselves, one per core
            os.sched_setaffinity(process.pid, {TARGET_CPU})
        generator = ([] if not pin else ["taskset", "-c", str(LOAD_CPU)]) + [programs["server_loadgen"], "--interface", net.host_interface,
                                                                              "--server-mac", net.far_mac().hex(":")]
        result = drive(generator, process.pid, row, seconds, warmup)
        result["rss_mb"] = resident_mb(process.pid) if process.poll() is None else float("nan")
        return result


def drive(generator: list[str], target_pid: int, row: tuple, seconds: float, warmup: float) -> dict:
    """Run the load generator (`generator`: its command and where it sends) for one row against a started
    target: its JSON, with the target's CPU per answered request (cpu_us) and, adding the generator's, both_us."""
    _label, mtu, workload, clients, window, sectors, _unit = row[:7]
    argv = generator + ["--workload", workload, "--clients", str(clients), "--window", str(window), "--mtu", str(mtu),
                        "--disk-sectors", str(IMAGE_SECTORS), "--seconds", str(seconds), "--warmup", str(warmup)]
    if sectors:
        argv += ["--sectors", str(sectors)]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if warmup > 0:
        process.stdout.readline()  # "measuring": the warm-up is over
    cpu_before = cpu_seconds(target_pid)
    output = process.stdout.read()
    if process.wait() != 0:
        raise RuntimeError(f"load generator failed: {' '.join(argv)}")
    target_cpu = cpu_seconds(target_pid) - cpu_before
    result = json.loads(output)
    served = result["ops_per_s"] * result["seconds"]
    result["cpu_us"] = target_cpu / served * 1e6 if served else float("nan")
    result["both_us"] = (target_cpu + result["cpu_s"]) / served * 1e6 if served else float("nan")  # with the load generator's
    return result


def report_problems(rounds: list[dict], targets: tuple[str, ...], indent: int) -> None:
    """Below a row: a target that answered with errors or the wrong data (the row is INVALID), or whose answers were rejected."""
    for target in targets:
        errors, wrong, rejected = (sum(r[target][key] for r in rounds) for key in ("errors", "wrong_data", "rejected"))
        if errors or wrong:
            print(f"{'':{indent}} INVALID: {target} answered {errors} requests with an error and {wrong} reads with the wrong data")
        if rejected:
            print(f"{'':{indent}} {target}: {rejected} answers rejected (late, or wrong tag/MAC/length)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="storage server against vblade")
    parser.add_argument("--seconds", type=float, default=2.0, help="load per row and target")
    parser.add_argument("--rows", help="comma-separated row numbers (default: all)")
    parser.add_argument("--pin", action="store_true",
                        help="the load generator on core 0 and each target on core 1 (default: the scheduler places them;"
                             " pinning helps on an otherwise idle machine and hurts on a busy one)")
    parser.add_argument("--warmup", type=float, default=0.5,
                        help="seconds of load before measuring, so a client's first contact (its overlay being created) is not counted (default 0.5)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per row; the median round is shown (default 3)")
    parser.add_argument("--workers", type=int, help="our server's worker processes (default: its own, one per CPU)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or not shutil.which("vblade") or not shutil.which("cc"):
        print("server_vs_vblade: skipped (needs root, vblade and cc)")
        return 0
    image = stamped_image_file()
    copy_in_pages(image, image.replace(".img", "-vblade.img"))  # vblade's writes go into its file
    programs = {name: build(name) for name in ("server_loadgen", "server_null_responder")}
    rows = [ROWS[int(i)] for i in args.rows.split(",")] if args.rows else ROWS
    args.pin = args.pin and os.cpu_count() >= 2
    placement = (f"load generator on core {LOAD_CPU}, vblade and the null responder on core {TARGET_CPU}, our workers one per core"
                 f" (worker 0 beside the load generator)" if args.pin else "load generator and targets placed by the scheduler (our workers pin themselves, one per core)")
    print(f"{placement}; "
          f"{args.seconds:g} s per row and target after {args.warmup:g} s of warm-up; each row {args.repeat} times (ours, vblade, null in turn), medians shown,"
          " the ratio's range over the rounds in brackets")
    print(f"{'row':47} {'ours':>10} {'vblade':>10} {'ratio':>7} {'(range)':>11} {'ceiling':>10}  unit   ours p50 ms  retransmits ours/vblade"
          "  CPU µs/request ours/vblade  with the load generator's  load generator's core % ours/vblade/null")
    for number, row in ((ROWS.index(r), r) for r in rows):
        unit = row.unit
        rounds = [{target: run_row(row, target, image, programs, args.seconds, args.warmup, args.pin, args.workers) for target in TARGETS} for _ in range(args.repeat)]
        for results in rounds:
            for result in results.values():
                result["value"] = result["mb_per_s"] if unit == "MB/s" else result["ops_per_s"]
        results = {t: sorted((r[t] for r in rounds), key=lambda result: result["value"])[len(rounds) // 2] for t in TARGETS}  # the median round of each
        value = {t: r["value"] for t, r in results.items()}
        ratio = value["ours"] / value["vblade"] if value["vblade"] else float("inf")
        ratios = [r["ours"]["value"] / r["vblade"]["value"] if r["vblade"]["value"] else float("inf") for r in rounds]
        print(f"{number:2} {row.label:44} {value['ours']:10.1f} {value['vblade']:10.1f} {ratio:6.2f}x ({min(ratios):.2f}–{max(ratios):.2f}) {value['null']:10.1f}  {unit:5}  "
              f"{results['ours']['p50_ms'] or 0:10.3f}  {sum(r['ours']['retransmits'] for r in rounds):>5}/{sum(r['vblade']['retransmits'] for r in rounds):<5}"
              f"  {results['ours']['cpu_us']:6.1f} / {results['vblade']['cpu_us']:<6.1f}"
              f"         {results['ours']['both_us']:6.1f} / {results['vblade']['both_us']:<6.1f}"
              f"  {' / '.join('%.0f' % (100 * results[t]['cpu_s'] / results[t]['seconds']) for t in TARGETS)}", flush=True)
        report_problems(rounds, TARGETS, 47)
        if row.clients == 64:
            print(f"{'':47} our server's resident memory with 64 clients, all processes: {max(r['ours']['rss_mb'] for r in rounds):.0f} MB", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
