#!/usr/bin/env python3
"""Fleet benchmark (issue 9): N new projects bootstrapped by one `sluice fleet run` against one
`sluice emulator` on loopback, time scaled. Prints the figures BENCHMARKS.md §7 records:

- wall time of the fleet, and the bound max(one target's critical path, calls / rate limit),
  where the second term is, over every rate-limited service, its calls divided by its limit;
- peak RSS of the one fleet process, and of the same targets as separate `sluice run` processes
  (measured for SEPARATE of them at once, per process, times N);
- the store's size;
- time to resume the fleet after a SIGKILL half-way (process start to the first target
  continued), and `fleet status` on the finished store.

Usage: cargo build --release && python3 scripts/bench_fleet.py [N] [TIME_SCALE] [SEPARATE] [CONCURRENCY] [SERVICE=RPM ...]
(SERVICE=RPM: the fleet file's `rate_limits`, e.g. serviceusage.googleapis.com=60.)
Loopback only; everything lives in a temporary directory.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "sluice")
PLAN = os.path.join(ROOT, "plans", "agent-gateway-egress.json")
BILLING = "billingAccounts/01D3A0-5E1B7C-9F2A44"
ADMIN = "bench-admin"
# Google's defaults, as in crates/gcp/src/rate.rs (GOOGLE_DEFAULT_RATES; PER_PROJECT: limited
# per target project, as Google counts them).
PER_PROJECT = {"aiplatform.googleapis.com", "networkservices.googleapis.com", "agentregistry.googleapis.com"}
RATES = {
    "serviceusage.googleapis.com": 240,
    "cloudresourcemanager.googleapis.com": 600,
    "iam.googleapis.com": 600,
    "aiplatform.googleapis.com": 600,
    "networkservices.googleapis.com": 300,
    "agentregistry.googleapis.com": 1200,
    "orgpolicy.googleapis.com": 300,
    "cloudbilling.googleapis.com": 300,
}


def emulator(work, scale, separate):
    config = {
        "seed": 1,
        "time_scale": scale,
        "latency_ms": 0,
        "request_log_limit": 5_000_000,
        # Grants and APIs usable soon after they are made, so that one target's critical path is
        # the same alone and in a fleet (with Google's minutes, whether a deploy meets a grant
        # not yet propagated depends on timing, and a failed deploy doubles the path).
        "delays": {"iam_propagation": 5, "service_usable": 5},
        "organizations": [{
            "id": "123456789012",
            "projects": [{"id": ADMIN, "number": 100000000009, "enabled_services": [
                "cloudresourcemanager.googleapis.com", "cloudbilling.googleapis.com",
                "iam.googleapis.com", "serviceusage.googleapis.com"]}]
            + [{"id": f"separate-{i:04}", "number": 300000000000 + i, "enabled_services": []}
               for i in range(1, separate + 1)],
        }],
        "billing_accounts": [{"name": BILLING}],
    }
    path = os.path.join(work, "emulator.json")
    with open(path, "w") as f:
        json.dump(config, f)
    proc = subprocess.Popen([BIN, "emulator", "--port", "0", "--config", path],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if found:
            return proc, found.group(1)
    raise SystemExit("the emulator did not start")


def fleet_file(work, name, count, pattern, concurrency=None, rate_limits=None):
    path = os.path.join(work, f"{name}.fleet.json")
    with open(path, "w") as f:
        json.dump({
            "name": name,
            "plan": PLAN,
            "vars": {"pickle_gcs_uri": "gs://bench-agents/agent.pkl"},
            "new_projects": {"count": count, "id_pattern": pattern,
                             "parent": "organizations/123456789012", "billing_account": BILLING},
            "concurrency": concurrency or count,
            "rate_limits": rate_limits or {},
        }, f)
    return path


def cloud_args(url, scale):
    return ["--endpoint", url, "--access-token", "bench-token", "--time-scale", str(scale),
            "--quota-project", ADMIN]


def timed(args, env=None):
    """Runs `args` under /usr/bin/time: (wall seconds, peak RSS in KiB, exit code)."""
    started = time.monotonic()
    proc = subprocess.run(["/usr/bin/time", "-f", "RSS %M"] + args, capture_output=True, text=True,
                          env=env)
    wall = time.monotonic() - started
    rss = int(re.search(r"RSS (\d+)", proc.stderr).group(1))
    return wall, rss, proc.returncode, proc


def requests(url):
    with urllib.request.urlopen(f"{url}/_emulator/requests") as answer:
        return json.load(answer)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    scale = float(sys.argv[2]) if len(sys.argv) > 2 else 0.01
    separate = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    concurrency = int(sys.argv[4]) if len(sys.argv) > 4 else n
    overrides = {a.split("=")[0]: int(a.split("=")[1]) for a in sys.argv[5:]}
    RATES.update(overrides)
    work = tempfile.mkdtemp(prefix="sluice-bench-fleet-")
    env = dict(os.environ, SLUICE_LOG="warn")
    proc, url = emulator(work, scale, separate)
    try:
        # One target alone: the critical path (process start included).
        solo = fleet_file(work, "solo", 1, "solo-{index}-target")
        wall1, rss1, code, out = timed([BIN, "--store", os.path.join(work, "solo-store"), "fleet", "run",
                                        solo] + cloud_args(url, scale), env)
        assert code == 0, out.stderr[-2000:]
        before = len(requests(url))

        # The fleet.
        big = fleet_file(work, "bench", n, "bench-{index}", concurrency, overrides)
        store = os.path.join(work, "store")
        report = os.path.join(work, "report.json")
        wall, rss, code, out = timed([BIN, "--store", store, "fleet", "run", big, "--report", report]
                                     + cloud_args(url, scale), env)
        assert code == 0, out.stderr[-3000:]
        log = requests(url)[before:]
        # Calls per service as the client's limiters counted them (the emulator's log cannot
        # attribute an operation poll under `locations/*/operations` to its API).
        with open(report) as f:
            per_service = {r["service"]: r["sent"] for r in json.load(f)["rate_limits"]}
        # A client-based service: all its calls through one limit. A per-project one: the
        # busiest project's calls (the emulator's log names the project in the path).
        by_rate = {s: c / RATES[s] * 60 * scale for s, c in per_service.items()
                   if s in RATES and s not in PER_PROJECT}
        busiest = {}
        for entry in log:
            service = entry.get("service")
            if service in PER_PROJECT:
                project = entry["path"].split("/")[3]
                busiest[(service, project)] = busiest.get((service, project), 0) + 1
        for (service, _), count in busiest.items():
            by_rate[service] = max(by_rate.get(service, 0), count / RATES[service] * 60 * scale)
        slowest = max(by_rate, key=by_rate.get)
        bound = max(wall1, by_rate[slowest])
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(store) for f in fs)

        started = time.monotonic()
        status = subprocess.run([BIN, "--store", store, "fleet", "status", "--json"], capture_output=True)
        status_wall = time.monotonic() - started
        assert status.returncode == 0

        # Resume: a second fleet killed half-way, then `fleet resume`.
        half = fleet_file(work, "resumed", n, "resume-{index}", concurrency, overrides)
        store2 = os.path.join(work, "store2")
        run = subprocess.Popen([BIN, "--store", store2, "fleet", "run", half] + cloud_args(url, scale),
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        done = 0
        fleet_id = None
        for line in run.stderr:
            found = re.search(r"fleet run (fleet-\S+)", line)
            if found:
                fleet_id = found.group(1)
            if re.search(r"\(\d+ done\)", line):
                done += 1
                if done >= n // 2:
                    break
        run.send_signal(signal.SIGKILL)
        run.wait()
        started = time.monotonic()
        resume = subprocess.Popen([BIN, "--store", store2, "fleet", "resume", fleet_id]
                                  + cloud_args(url, scale),
                                  stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        first_continued = None
        for line in resume.stderr:
            if first_continued is None and "started (" in line:
                first_continued = time.monotonic() - started
        resume_code = resume.wait()
        resume_wall = time.monotonic() - started

        # The same targets as separate processes: SEPARATE `sluice run`s at once, one store each.
        runs = []
        for i in range(1, separate + 1):
            runs.append(subprocess.Popen(
                ["/usr/bin/time", "-f", "RSS %M", BIN, "--store", os.path.join(work, f"sep-{i}"), "run", "--auto-approve", PLAN,
                 "--var", f"project=separate-{i:04}", "--var", "pickle_gcs_uri=gs://bench-agents/agent.pkl"]
                + cloud_args(url, scale), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env))
        separate_rss = []
        for p in runs:
            _, err = p.communicate()
            separate_rss.append(int(re.search(r"RSS (\d+)", err).group(1)))
        print(json.dumps({
            "targets": n,
            "concurrency": concurrency,
            "rate_overrides": overrides,
            "time_scale": scale,
            "one_target_wall_s": round(wall1, 2),
            "fleet_wall_s": round(wall, 2),
            "calls": len(log),
            "calls_per_service": per_service,
            "rate_bound_s_by_service": {s: round(v, 2) for s, v in by_rate.items()},
            "bound_s": round(bound, 2),
            "wall_over_bound": round(wall / bound, 3),
            "fleet_peak_rss_mb": round(rss / 1024, 1),
            "one_target_fleet_peak_rss_mb": round(rss1 / 1024, 1),
            "separate_processes": separate,
            "separate_peak_rss_mb_each_avg": round(sum(separate_rss) / len(separate_rss) / 1024, 1),
            "separate_peak_rss_mb_sum": round(sum(separate_rss) / 1024, 1),
            "separate_peak_rss_mb_for_n": round(sum(separate_rss) / len(separate_rss) * n / 1024, 1),
            "store_bytes": size,
            "fleet_status_s": round(status_wall, 3),
            "resume_to_first_target_s": round(first_continued or -1, 3),
            "resume_wall_s": round(resume_wall, 2),
            "resume_exit": resume_code,
        }, indent=2))
    finally:
        proc.terminate()


if __name__ == "__main__":
    main()
