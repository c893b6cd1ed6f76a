#!/usr/bin/env python3
"""Counts test cases from a `bazel test` run: prints "PASSED FAILED".

Each test target's log is read: a Python unittest target counts its cases
("Ran N tests", "FAILED (failures=F, errors=E)"); any other target counts as
one case. A target that Bazel reports as failed, timed out or not run but
whose log shows no failure still counts one failure, so nothing is lost."""
import os
import re
import sys


def main(testlogs, bazel_output):
    text = open(bazel_output, errors="replace").read()
    results = re.findall(r"^(//\S+)\s+(?:\(cached\)\s+)?(PASSED|FAILED|TIMEOUT|FLAKY|NO STATUS|FAILED TO BUILD)",
                         text, re.M)
    passed = failed = 0
    if not results and ("FAILED" in text or "ERROR" in text):
        failed = 1  # the build itself broke
    for target, status in results:
        log = os.path.join(testlogs, target[2:].replace(":", "/"), "test.log")
        body = open(log, errors="replace").read() if os.path.exists(log) else ""
        ran = re.search(r"^Ran (\d+) tests? in", body, re.M)
        if ran:
            total = int(ran.group(1))
            bad = sum(int(n) for n in re.findall(r"(?:failures|errors)=(\d+)",
                                                 body[ran.end():]))
            if status != "PASSED" and bad == 0:
                bad = 1
            passed += max(total - bad, 0)
            failed += bad
        elif status == "PASSED":
            passed += 1
        else:
            failed += 1
    print(passed, failed)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
