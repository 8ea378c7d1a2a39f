"""The documented local path, as docs/configuration.md gives it: `cargo run -p local-aws --
serve`, `cargo lambda watch` with the variables it prints, `cargo lambda invoke` of every
sample under events/, and the state page with an unsigned curl-like GET. Each response is
checked against what the sample's name says. Then the README's `./scripts/demo`, and what it
shows at its end. Run from the repository root with cargo-lambda
on PATH: `python3 tests/local_path.py`. Ends with `N passed, N failed`."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

checks = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    checks["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok else ': ' + str(detail)[:600]}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    raise SystemExit(f"gave up waiting for {what}")


def listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def main():
    aws_port, invoke_port = free_port(), free_port()
    serve = subprocess.Popen(
        ["cargo", "run", "-q", "-p", "local-aws", "--", "serve", "--port", str(aws_port)],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    env = dict(os.environ)
    # The variables `serve` prints, taken from what it printed.
    for line in serve.stdout:
        found = re.match(r"\s+export (\w+)=(\S+)", line)
        if found:
            env[found.group(1)] = found.group(2)
        if line.startswith("see what it did"):
            break
    check("serve prints the staging accounts to export", env.get("STAGING_ACCOUNT_IDS") == "111122223333,222233334444")
    watch = subprocess.Popen(
        ["cargo", "lambda", "watch", "-P", str(invoke_port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_for(lambda: listening(invoke_port), 600, "cargo lambda watch")
        expectations = {
            "announcement-by-arn": lambda r: r["created"] + r["skipped"] == 1,
            "announcement-by-id": lambda r: r["created"] + r["skipped"] == 1,
            "agent-registration": lambda r: r["created"] + r["skipped"] == 1,
            "drs-source-server-event": lambda r: r["created"] + r["skipped"] == 1,
            "announcement-malformed": lambda r: r["rejected"] == 1 and r["created"] == 0,
            "announcement-spoofed": lambda r: r["rejected"] == 1 and r["created"] == 0,
            "agent-registration-failed": lambda r: "ignored" in r,
            "drs-recovery-instance-event": lambda r: "ignored" in r,
            "unrelated-event": lambda r: "ignored" in r,
            "agent-registration-without-server": lambda r: r["reconciliation"]["complete"] is True,
            "staging-reconciliation-request": lambda r: r["reconciliation"]["complete"] is True
            and r["reconciliation"]["stagingAccountIds"] == ["222233334444"],
            "reconciliation-requested": lambda r: r["reconciliation"]["complete"] is True
            and r["rejected"] == 0 and r["reconciliation"]["dryRun"] is True,
            "scheduled-reconciliation": lambda r: r["reconciliation"]["complete"] is True
            and r["rejected"] == 0 and r["failed"] == 0
            and r["reconciliation"]["stagingAccountIds"] == ["111122223333", "222233334444"],
        }
        samples = sorted(name[:-5] for name in os.listdir("events") if name.endswith(".json"))
        check("every sample has an expectation", sorted(expectations) == samples, sorted(set(samples) ^ set(expectations)))
        # The scheduled reconciliation last: it extends every server left.
        order = [s for s in samples if s != "scheduled-reconciliation"] + ["scheduled-reconciliation"]
        for index, name in enumerate(order):
            # The first invoke waits for watch's own build of the function: a build of
            # the binary alone, whose features differ from the test build's (tokio's
            # test-util), so every AWS crate, EC2's too, is compiled again on a cold
            # machine. The rest answer in seconds.
            done = subprocess.run(
                ["cargo", "lambda", "invoke", "drs-extender", "-P", str(invoke_port), "--data-file", f"events/{name}.json"],
                env=env, capture_output=True, text=True, timeout=1800 if index == 0 else 300,
            )
            try:
                response = json.loads(done.stdout)
                ok = expectations[name](response)
            except (ValueError, KeyError, TypeError) as error:
                response, ok = f"{done.stdout} {done.stderr} ({error})", False
            check(f"cargo lambda invoke --data-file events/{name}.json", ok, response)
        with urllib.request.urlopen(f"http://127.0.0.1:{aws_port}/_local/state", timeout=10) as page:
            state = json.load(page)
        extended = {e["stagingSourceServerArn"] for e in state["extendedSourceServers"]}
        check("the state page answers an unsigned GET: all 8 staging servers extended", len(extended) == 8, extended)
        kinds = {e["DetailType"] for e in state["events"]}
        check("and the events emitted", {"Extended Source Server Created", "Reconciliation Completed", "Extension Request Rejected"} <= kinds, kinds)
    finally:
        for process in (watch, serve):
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    # The README's quick start, exactly as written: the demo's story ends with the
    # readiness table, the server that would not launch and why, the quota and the
    # stale extension.
    demo = subprocess.run(["./scripts/demo"], capture_output=True, text=True, timeout=900)
    check("./scripts/demo runs", demo.returncode == 0, demo.stderr[-600:])
    for line in [
        "111122223333   us-east-1         4      2        1          1  STALLED 1",
        "222233334444   us-east-1         4      3        0          1  EXTENSION_ERROR 1",
        "111122223333   us-east-1         4            1          0  SUBNET_NOT_FOUND 1",
        "would not launch: arn:aws:drs:us-east-1:444455556666:source-server/",
        "Quota: us-east-1 holds 14 source servers of 16 (87.5 % used, Service Quotas)",
        "stale extension reported: arn:aws:drs:us-east-1:444455556666:source-server/",
    ]:
        check(f"the demo shows: {line}", line in demo.stdout, demo.stdout[-1500:])
    print(f"local path: {checks['passed']} passed, {checks['failed']} failed")
    sys.exit(1 if checks["failed"] else 0)


if __name__ == "__main__":
    main()
