#!/usr/bin/env python3
"""Counts test cases from a `bazel test` run: prints "PASSED FAILED SKIPPED".

Each test target's log is read: a Python unittest target counts its cases
("Ran N tests", "FAILED (failures=F, errors=E)", "skipped=S": a skipped case
is neither passed nor failed); any other target counts as one case. A target
that Bazel reports as failed, timed out or not run but whose log shows no
failure still counts one failure, so nothing is lost; so does a run whose
`bazel test` exit status was not 0 while no target failed (the third
argument), and a run that executed no test at all."""
import os
import re
import sys


def main(testlogs, bazel_output, bazel_status="0"):
    text = open(bazel_output, errors="replace").read()
    results = re.findall(r"^(//\S+)\s+(?:\(cached\)\s+)?(PASSED|FAILED|TIMEOUT|FLAKY|NO STATUS|FAILED TO BUILD)",
                         text, re.M)
    passed = failed = skipped = 0
    if not results:
        failed = 1  # the build broke, or nothing ran: never a pass
    for target, status in results:
        log = os.path.join(testlogs, target[2:].replace(":", "/"), "test.log")
        body = open(log, errors="replace").read() if os.path.exists(log) else ""
        ran = re.search(r"^Ran (\d+) tests? in", body, re.M)
        if ran:
            total = int(ran.group(1))
            tail = body[ran.end():]
            bad = sum(int(n) for n in re.findall(r"(?:failures|errors|unexpected successes)=(\d+)",
                                                 tail))
            skip = sum(int(n) for n in re.findall(r"(?:skipped|expected failures)=(\d+)", tail))
            if status != "PASSED" and bad == 0:
                bad = 1
            passed += max(total - bad - skip, 0)
            failed += bad
            skipped += skip
        elif status == "PASSED":
            passed += 1
        else:
            failed += 1
    if bazel_status != "0" and failed == 0:
        failed = 1  # bazel itself said the run failed
    print(passed, failed, skipped)


if __name__ == "__main__":
    main(*sys.argv[1:4])
