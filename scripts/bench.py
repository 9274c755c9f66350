"""Benchmark driver for scripts/bench.sh: kmsxacct's cycle against the AWS CLI and boto3 peers.

Runs (a) kmsxacct setup + verify + teardown (three processes, release build), (b) the AWS CLI peer,
(c) the boto3 peer, interleaved, on fresh aliases each run; then --help time, binary size, peak
RSS per command, and each command's wall time against its dependent-call floor (from the `calls`
that --output json reports). Writes bench/RESULTS.md and prints it.
"""

import argparse
import asyncio
import datetime
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time

OWNER, USER = "A", "B"
OWNER_ACCOUNT, USER_ACCOUNT = "111111111111", "222222222222"
REGION = "us-east-1"


def timed(cmd, **kw):
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"benchmark step failed: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return elapsed, proc


def longest_chain(calls):
    """Longest sequence of calls each starting after the previous one ended (dependent calls)."""
    calls = sorted(calls, key=lambda c: c["end_ms"])
    best = []
    for i, c in enumerate(calls):
        prior = [best[j] for j in range(i) if calls[j]["end_ms"] <= c["start_ms"] + 0.05]
        best.append(1 + max(prior, default=0))
    return max(best, default=0)


def kmsxacct_cycle(binary, workdir, alias):
    results = {}
    for command in (["setup", "--owner", OWNER, "--user", USER, "--alias", alias], ["verify"], ["teardown"]):
        rss_file = os.path.join(workdir, "rss")
        wall, proc = timed(
            ["/usr/bin/time", "-f", "%M", "-o", rss_file, binary, "--output", "json", *command],
            cwd=workdir,
        )
        report = json.loads(proc.stdout)
        with open(rss_file) as f:
            rss_kb = int(f.read().strip().splitlines()[-1])
        results[command[0]] = {"wall": wall, "rss_kb": rss_kb, "calls": report.get("calls", [])}
    return results


def start_delay_proxy(upstream_port, delay):
    """A loopback TCP proxy that holds each chunk from the client for `delay` seconds before
    passing it on: every request then pays a network round trip, as against real AWS, while
    LocalStack's own service time stays what it is. Returns the proxy's port."""
    ready = threading.Event()
    port = []

    async def pipe(reader, writer, hold):
        try:
            while data := await reader.read(65536):
                if hold:
                    await asyncio.sleep(hold)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(client_reader, client_writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(pipe(client_reader, up_writer, delay), pipe(up_reader, client_writer, 0))

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        async with server:
            await server.serve_forever()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    ready.wait(10)
    return port[0]


def process_cpu_seconds(pid):
    """CPU time (user + system) a process has used so far, or None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def fanout(binary, users, runs, port=None, server_pid=None, concurrency=None):
    """Setup (then teardown, untimed) with `users` user accounts, each its own LocalStack account,
    in a config of its own, `runs` times after one warm-up run (LocalStack's first touch of an
    account costs it ~0.1 s). Returns the medians of the wall time, the AWS calls, and the
    server's CPU time during a setup (None without a readable server pid)."""
    work = tempfile.mkdtemp(prefix="kmsxacct-fanout-")
    config, creds = os.path.join(work, "config"), os.path.join(work, "credentials")
    endpoint = "http://127.0.0.1:" + str(port or os.environ.get("LOCALSTACK_PORT", "4566"))
    names = ["fan-owner"] + [f"fan-u{i:02d}" for i in range(users)]
    accounts = [OWNER_ACCOUNT] + [f"3000000000{i:02d}" for i in range(users)]
    with open(config, "w") as c, open(creds, "w") as k:
        for n, a in zip(names, accounts):
            c.write(f"[profile {n}]\nregion = {REGION}\nendpoint_url = {endpoint}\n\n")
            k.write(f"[{n}]\naws_access_key_id = {a}\naws_secret_access_key = bench\n\n")
    env = dict(os.environ, AWS_CONFIG_FILE=config, AWS_SHARED_CREDENTIALS_FILE=creds,
               AWS_ENDPOINT_URL=endpoint)
    walls, calls, server_cpu = [], [], []
    for run in range(runs + 1):
        alias = f"alias/bench/fan-{secrets.token_hex(3)}-{users}-{run}"
        record = os.path.join(work, f"{run}.toml")
        args = [binary, "--config", record, "--output", "json"]
        if concurrency:
            args += ["--concurrency", str(concurrency)]
        args += ["setup", "--owner", names[0], "--alias", alias]
        for n in names[1:]:
            args += ["--user", n]
        cpu_before = process_cpu_seconds(server_pid)
        wall, proc = timed(args, env=env, cwd=work)
        cpu_after = process_cpu_seconds(server_pid)
        if run > 0:
            walls.append(wall)
            calls.append(len(json.loads(proc.stdout).get("calls", [])))
            if cpu_before is not None and cpu_after is not None:
                server_cpu.append(cpu_after - cpu_before)
        timed([binary, "--config", record, "teardown"], env=env, cwd=work)
    cpu = statistics.median(server_cpu) if len(server_cpu) == runs else None
    return statistics.median(walls), statistics.median(calls), cpu


def fmt_ms(seconds):
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def summary(values):
    return statistics.median(values), min(values), max(values)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--out", required=True)
    ap.add_argument("--peers", required=True, help="folder of the peer scripts")
    ap.add_argument("--localstack-pid", type=int, help="LocalStack's process id, to measure its CPU time per call")
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="kmsxacct-bench-")
    walls = {"kmsxacct": [], "awscli": [], "boto3": []}
    per_command = {c: {"wall": [], "rss_kb": [], "calls": [], "chain": [], "durations": []}
                   for c in ("setup", "verify", "teardown")}
    tag = secrets.token_hex(3)
    for run in range(args.runs):
        order = ["kmsxacct", "awscli", "boto3"]
        order = order[run % 3:] + order[:run % 3]
        for tool in order:
            alias = f"alias/bench/{tag}-{run}-{tool}"
            if tool == "kmsxacct":
                for f in ("kmsxacct.toml",):
                    path = os.path.join(workdir, f)
                    if os.path.exists(path):
                        os.remove(path)
                res = kmsxacct_cycle(args.binary, workdir, alias)
                walls["kmsxacct"].append(sum(r["wall"] for r in res.values()))
                for c, r in res.items():
                    pc = per_command[c]
                    pc["wall"].append(r["wall"])
                    pc["rss_kb"].append(r["rss_kb"])
                    pc["calls"].append(len(r["calls"]))
                    pc["chain"].append(longest_chain(r["calls"]))
                    pc["durations"].extend(x["end_ms"] - x["start_ms"] for x in r["calls"])
            elif tool == "awscli":
                wall, _ = timed(["bash", os.path.join(args.peers, "awscli-cycle.sh"), OWNER, USER,
                                 OWNER_ACCOUNT, USER_ACCOUNT, REGION, alias])
                walls["awscli"].append(wall)
            else:
                wall, _ = timed([sys.executable, os.path.join(args.peers, "boto3_cycle.py"), OWNER, USER,
                                 OWNER_ACCOUNT, USER_ACCOUNT, REGION, alias])
                walls["boto3"].append(wall)
        print(f"run {run + 1}/{args.runs}: kmsxacct {fmt_ms(walls['kmsxacct'][-1])}, "
              f"aws cli {fmt_ms(walls['awscli'][-1])}, boto3 {fmt_ms(walls['boto3'][-1])}", file=sys.stderr)

    fan_runs = max(3, args.runs // 2)
    pid = args.localstack_pid
    fan = {(1, None): fanout(args.binary, 1, fan_runs, server_pid=pid)}
    for concurrency in (None, 1, 20):
        fan[(20, concurrency)] = fanout(args.binary, 20, fan_runs, server_pid=pid, concurrency=concurrency)
    fan_1, calls_1, _ = fan[(1, None)]
    fan_20, calls_20, cpu_20 = fan[(20, None)]
    rtt = 0.020
    delayed = start_delay_proxy(int(os.environ.get("LOCALSTACK_PORT", "4566")), rtt)
    rtt_1, _, _ = fanout(args.binary, 1, fan_runs, delayed)
    rtt_20, _, _ = fanout(args.binary, 20, fan_runs, delayed)

    helps = []
    for _ in range(30):
        wall, _ = timed([args.binary, "--help"])
        helps.append(wall)
    size = os.path.getsize(args.binary)
    all_durations = [d for pc in per_command.values() for d in pc["durations"]]
    call_latency = statistics.median(all_durations) / 1000.0

    med = {k: summary(v) for k, v in walls.items()}
    lines = [
        "# kmsxacct benchmark results",
        "",
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by `scripts/bench.sh` "
        f"on {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"against LocalStack 4.8.1 on loopback; {args.runs} runs of each, interleaved, fresh alias per run.",
        "",
        "## Full cycle: setup + verify + teardown",
        "",
        "| tool | median | min | max | kmsxacct ÷ tool | target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    targets = {"kmsxacct": "", "awscli": "≤ 0.02", "boto3": "≤ 0.20"}
    names = {"kmsxacct": "kmsxacct (3 processes, release)", "awscli": "AWS CLI script (13 processes)",
             "boto3": "boto3 script (1 process, 13 calls)"}
    for tool in ("kmsxacct", "awscli", "boto3"):
        m, lo, hi = med[tool]
        ratio = "" if tool == "kmsxacct" else f"{med['kmsxacct'][0] / m:.3f}"
        lines.append(f"| {names[tool]} | {fmt_ms(m)} | {fmt_ms(lo)} | {fmt_ms(hi)} | {ratio} | {targets[tool]} |")
    lines += [
        "",
        "## Per command (kmsxacct)",
        "",
        f"Median single-call latency in this run: {call_latency * 1000:.1f} ms "
        "(median duration of every AWS call kmsxacct made, from its `calls` report).",
        "",
        "| command | median wall | AWS calls | longest dependent chain | wall ÷ (chain × call latency) | peak RSS |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c, pc in per_command.items():
        wall = statistics.median(pc["wall"])
        chain = statistics.median(pc["chain"])
        floor_ratio = wall / (chain * call_latency) if chain else float("nan")
        lines.append(
            f"| {c} | {fmt_ms(wall)} | {statistics.median(pc['calls']):.0f} | {chain:.0f} | "
            f"{floor_ratio:.2f} | {max(pc['rss_kb']) / 1024:.1f} MB |"
        )
    lines += [
        "",
        "## Fan-out",
        "",
        f"`setup` with 20 user accounts (default --concurrency 8): median {fmt_ms(fan_20)}; "
        f"with 1: {fmt_ms(fan_1)}; ratio {fan_20 / fan_1:.2f} (target ≤ 3), {fan_runs} runs each "
        "after a warm-up run.",
        "",
        "| user accounts | --concurrency | median wall | AWS calls | LocalStack CPU time |",
        "| --- | --- | --- | --- | --- |",
    ]
    for (users, concurrency), (wall, calls, cpu) in fan.items():
        lines.append(
            f"| {users} | {concurrency or '8 (default)'} | {fmt_ms(wall)} | {calls:.0f} | "
            f"{fmt_ms(cpu) if cpu is not None else 'n/a'} |"
        )
    lines += [
        "",
        "LocalStack CPU time: what its process used during the setup (`/proc/PID/stat`).",
    ]
    if cpu_20 is not None:
        lines += [
            "",
            f"Against this LocalStack the ratio follows the call count ({calls_20:.0f} calls against "
            f"{calls_1:.0f}), not the dependent chain: LocalStack is one Python process, and its own CPU "
            f"time for the 20-account setup, {fmt_ms(cpu_20)}, is already {cpu_20 / fan_1:.2f} × the "
            "whole 1-account setup. How many accounts are worked on at once changes nothing (rows "
            "above). Each user account costs 4 calls: STS GetCallerIdentity and IAM GetRole, read "
            "in every account before the first change so that a conflict anywhere changes "
            "nothing, then CreateRole and PutRolePolicy."
            + (" So on this LocalStack the ≤ 3 target is out of reach for a setup that makes these calls."
               if cpu_20 > 3 * fan_1 else ""),
        ]
    lines += [
        "",
        f"With {rtt * 1000:.0f} ms added to every request (a loopback proxy holding each request, as a "
        f"network round trip to AWS would): 20 user accounts {fmt_ms(rtt_20)}, 1 user account "
        f"{fmt_ms(rtt_1)}, ratio {rtt_20 / rtt_1:.2f} (target ≤ 3).",
    ]
    lines += [
        "",
        "## Start-up and size",
        "",
        f"- `kmsxacct --help`: median {fmt_ms(statistics.median(helps))} over 30 runs (target ≤ 5 ms).",
        f"- Release binary: {size / 1e6:.1f} MB (target ≤ 15 MB).",
        "",
    ]
    text = "\n".join(lines)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
