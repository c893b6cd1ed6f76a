#!/usr/bin/env python3
"""Helpers for bench/run.sh: process CPU/RSS sampling, idle connections, wrk
output parsing, admin /stats, and the final Markdown report.

Subcommands (all print to stdout):
  pids ROOT                 ROOT and all its descendants, one per line
  cpu ROOT                  utime+stime (seconds) summed over ROOT + descendants
  rss ROOT                  VmRSS (KB) summed over ROOT + descendants
  freeport [N]              N free 127.0.0.1 TCP ports
  wrk FILE                  parse wrk output -> JSON
  stats URL                 admin /stats -> JSON {name: value}
  wait-http URL TIMEOUT     poll until URL answers 200 (exit 1 on timeout)
  wait-port PORT TIMEOUT    poll until 127.0.0.1:PORT accepts (exit 1 on timeout)
  idle PORT N ROOT SETTLE   open N keep-alive connections through PORT, one GET
                            each, hold them, measure RSS of ROOT's tree -> JSON
  set RESULTS.json SECTION KEY VALUE   record a value (SECTION "-" = top level)
  get JSON KEY              one key of a JSON object
  calc EXPR                 arithmetic -> JSON number or null
  report RESULTS.json OUT.md  write the Markdown table
"""
import asyncio
import json
import os
import re
import socket
import sys
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")


def descendants(root):
    """root and every descendant (by ppid), from /proc/*/stat."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        # comm may contain spaces/parens: split after the last ')'
        rest = s[s.rindex(")") + 2:].split()
        ppid = int(rest[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(root):
    """utime+stime of each process (its stat already includes all threads)."""
    total = 0
    for p in descendants(root):
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2:].split()
        # fields 14,15 (1-based) -> index 11,12 after pid and comm removed
        total += int(rest[11]) + int(rest[12])
    return total / CLK_TCK


def rss_kb(root):
    total = 0
    for p in descendants(root):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def freeports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def parse_wrk(path):
    txt = open(path, errors="replace").read()
    r = {"requests": 0, "seconds": None, "errors_connect": 0, "errors_read": 0,
         "errors_write": 0, "errors_timeout": 0, "non2xx": 0, "rps": None}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", txt)
    if m:
        r["requests"] = int(m.group(1))
        v, u = float(m.group(2)), m.group(3)
        r["seconds"] = v * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60}[u]
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", txt)
    if m:
        (r["errors_connect"], r["errors_read"], r["errors_write"],
         r["errors_timeout"]) = map(int, m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", txt)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", txt)
    if m:
        r["rps"] = float(m.group(1))
    return r


def get_stats(url):
    with urllib.request.urlopen(url, timeout=5) as resp:
        data = json.load(resp)
    return {s["name"]: s["value"] for s in data.get("stats", [])}


def wait_http(url, timeout):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return True
        except Exception:
            pass
        time.sleep(0.1)
    return False


def wait_port(port, timeout):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


async def _open_one(port, sem, timeout):
    async with sem:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), timeout)
        writer.write(b"GET /small HTTP/1.1\r\nHost: upstream.bench\r\n"
                     b"Connection: keep-alive\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = head.split(b"\r\n", 1)[0]
        m = re.search(rb"(?i)content-length:\s*(\d+)", head)
        if m:
            await asyncio.wait_for(reader.readexactly(int(m.group(1))), timeout)
        if b" 200 " not in status + b" ":
            raise RuntimeError(f"status {status!r}")
        return reader, writer


async def _idle(port, n, root, settle, timeout=20.0):
    sem = asyncio.Semaphore(64)
    before = rss_kb(root)
    t0 = time.time()
    results = await asyncio.gather(*[_open_one(port, sem, timeout) for _ in range(n)],
                                   return_exceptions=True)
    t_open = time.time() - t0
    ok = [r for r in results if not isinstance(r, BaseException)]
    errs = {}
    for r in results:
        if isinstance(r, BaseException):
            k = f"{type(r).__name__}: {r}"[:120]
            errs[k] = errs.get(k, 0) + 1
    await asyncio.sleep(settle)
    after = rss_kb(root)
    # are they still alive? a zero-byte peek would block; just check transports
    alive = sum(1 for _, w in ok if not w.is_closing())
    for _, w in ok:
        w.close()
    await asyncio.sleep(0.5)
    return {"n": n, "opened": len(ok), "alive_at_measure": alive, "errors": errs,
            "rss_before_kb": before, "rss_after_kb": after,
            "kb_per_conn": (after - before) / len(ok) if ok else None,
            "open_seconds": round(t_open, 2)}


def fmt(v, nd=2):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    if isinstance(v, bool) or isinstance(v, int):
        return str(v)
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.{nd}f}"


def report(res_path, out_path):
    R = json.load(open(res_path))
    ng, sc = R.get("nginx", {}), R.get("sidecar", {})

    def ratio(a, b):
        try:
            return b / a if a else None
        except TypeError:
            return None

    rows = []

    def row(metric, key, target=None, check=None, absolute=False):
        a, b = ng.get(key), sc.get(key)
        r = ratio(a, b)
        verdict = ""
        if check is not None:
            v = b if absolute else r
            if v is None:
                verdict = " — n/a"
            else:
                verdict = " — PASS" if check(v) else " — FAIL"
        rows.append((metric, fmt(a), fmt(b), fmt(r), (target or "") + verdict))

    row("CPU per keep-alive request (µs)", "ka_cpu_us_per_req", "ratio ≤ 0.75",
        lambda r: r <= 0.75)
    row("  keep-alive requests/s (wall, info)", "ka_rps")
    row("CPU per new connection (ms)", "nc_cpu_ms_per_conn", "ratio ≤ 0.5",
        lambda r: r <= 0.5)
    row("  new connections/s (wall, info)", "nc_rps")
    row("Resumed handshakes, load (b), upstream log (%)", "nc_resumed_pct",
        "sidecar ≥ 99%", lambda v: v >= 99, absolute=True)
    row("Resumed handshakes, load (b), sidecar /stats (%)", "nc_stats_resumed_pct",
        "sidecar ≥ 99%", lambda v: v >= 99, absolute=True)
    row("Bulk 1 GiB: MB per CPU-second", "bulk_mb_per_cpu_s", "ratio ≥ 1.5",
        lambda r: r >= 1.5)
    row("  bulk wall throughput MB/s (info)", "bulk_mb_per_s")
    row("Memory per idle connection (KB)", "idle_kb_per_conn", "sidecar ≤ 12 KB",
        lambda v: v <= 12, absolute=True)
    row("Baseline RSS (MB)", "baseline_rss_mb", "sidecar ≤ 4 MB",
        lambda v: v <= 4, absolute=True)

    m = R.get("machine", {})
    lines = []
    lines.append(f"# mTLS origination: nginx stream proxy_ssl vs mtls-sidecar\n")
    lines.append(f"- date: {m.get('date','?')}")
    lines.append(f"- machine: nproc={m.get('nproc','?')}, kernel {m.get('kernel','?')}, "
                 f"nginx {m.get('nginx','?')}, {m.get('wrk','?')}")
    lines.append(f"- mode: {R.get('mode','?')}; keep-alive load `{R.get('ka_cmd','')}`; "
                 f"new-connection load `{R.get('nc_cmd','')}`; idle N={R.get('idle_n','?')}; "
                 f"nofile limit {m.get('nofile','?')}")
    lines.append("- **The machine is shared and noisy** (2 cores also running wrk, the "
                 "upstream nginx and other users' jobs): treat single runs as indicative, "
                 "repeat before drawing conclusions.")
    lines.append("")
    lines.append("| metric | nginx | sidecar | ratio (sidecar/nginx) | target |")
    lines.append("|---|---|---|---|---|")
    for r in rows:
        lines.append("| " + " | ".join(r) + " |")
    lines.append("")
    lines.append("Raw per-load numbers:")
    lines.append("")
    lines.append("| raw | nginx | sidecar |")
    lines.append("|---|---|---|")
    keys = sorted(set(ng) | set(sc))
    for k in keys:
        if k.startswith("_"):
            continue
        a, b = ng.get(k), sc.get(k)
        if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
            a, b = json.dumps(a), json.dumps(b)
        lines.append(f"| {k} | {fmt(a) if not isinstance(a, str) else a} | "
                     f"{fmt(b) if not isinstance(b, str) else b} |")
    notes = R.get("anomalies", [])
    lines.append("")
    lines.append("Anomalies:" if notes else "Anomalies: none detected by the script.")
    for n in notes:
        lines.append(f"- {n}")
    text = "\n".join(lines) + "\n"
    with open(out_path, "w") as f:
        f.write(text)
    sys.stdout.write(text)


def main():
    a = sys.argv[1:]
    cmd = a[0]
    if cmd == "pids":
        print("\n".join(map(str, descendants(int(a[1])))))
    elif cmd == "cpu":
        print(f"{cpu_seconds(int(a[1])):.2f}")
    elif cmd == "rss":
        print(rss_kb(int(a[1])))
    elif cmd == "freeport":
        print(" ".join(map(str, freeports(int(a[1]) if len(a) > 1 else 1))))
    elif cmd == "wrk":
        print(json.dumps(parse_wrk(a[1])))
    elif cmd == "stats":
        print(json.dumps(get_stats(a[1])))
    elif cmd == "wait-http":
        sys.exit(0 if wait_http(a[1], float(a[2])) else 1)
    elif cmd == "wait-port":
        sys.exit(0 if wait_port(int(a[1]), float(a[2])) else 1)
    elif cmd == "idle":
        port, n, root, settle = int(a[1]), int(a[2]), int(a[3]), float(a[4])
        print(json.dumps(asyncio.run(_idle(port, n, root, settle))))
    elif cmd == "set":
        # set RESULTS.json SECTION KEY VALUE   (VALUE parsed as JSON if possible)
        path, section, key, val = a[1], a[2], a[3], a[4]
        try:
            R = json.load(open(path))
        except (OSError, ValueError):
            R = {}
        try:
            v = json.loads(val)
        except ValueError:
            v = val
        if section == "-":
            R[key] = v
        elif section == "anomalies":
            R.setdefault("anomalies", []).append(v)
        else:
            R.setdefault(section, {})[key] = v
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(R, f, indent=1)
        os.replace(tmp, path)
    elif cmd == "get":
        # get JSON_STRING KEY -> value
        v = json.loads(a[1]).get(a[2])
        print("" if v is None else v)
    elif cmd == "calc":
        # calc EXPR  (python arithmetic on numbers; prints null on error)
        try:
            print(json.dumps(eval(a[1], {"__builtins__": {}}, {})))
        except Exception:
            print("null")
    elif cmd == "report":
        report(a[1], a[2])
    else:
        sys.exit(f"unknown subcommand {cmd}")


if __name__ == "__main__":
    main()
