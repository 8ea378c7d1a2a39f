"""Every AWS CLI command in README.md and docs/, checked statically where it needs AWS:
the service and operation exist, and every flag is one of the operation's parameters (in
the AWS CLI's spelling), a global option, or one of a hand-written command's. Uses the
service models botocore ships (what the AWS CLI itself reads). Run from the repository
root: `python3 tests/docs_commands.py`. Ends with `N passed, N failed`."""
import glob
import re
import shlex
import sys

import botocore.session
from botocore import xform_name

GLOBAL = {"query", "output", "region", "profile", "endpoint-url", "no-cli-pager", "debug", "no-paginate", "cli-binary-format"}
# The AWS CLI's own commands, not operations of a service model.
CUSTOM = {
    ("cloudformation", "deploy"): {"template-file", "stack-name", "parameter-overrides", "capabilities",
                                   "s3-bucket", "no-execute-changeset", "tags", "role-arn"},
}

# Where the AWS CLI renames a parameter: its flag, and the model's member it stands for.
CLI_ALIASES = {
    ("sns", "subscribe"): {"notification-endpoint": "endpoint"},
}
session = botocore.session.get_session()
checks = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    checks["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok else ': ' + str(detail)}")


def commands(text):
    """`aws ...` commands: whole lines in code blocks (continuations joined) and inline ones."""
    found = []
    for block in re.findall(r"```(?:sh|bash)?\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        found += [line.split(" #")[0].strip() for line in joined.splitlines() if line.strip().startswith("aws ")]
    found += re.findall(r"`(aws [a-z0-9-]+ [a-z0-9-]+[^`]*)`", re.sub(r"\s*\n\s*", " ", text))
    return found


def flags_of(command):
    # Placeholders like <target account id> and JSON are values, not flags.
    cleaned = re.sub(r"<[^>]*>", "X", command).replace("...", "X")
    try:
        words = shlex.split(cleaned)
    except ValueError:
        words = cleaned.split()
    if len(words) > 3 and words[2] == "wait":
        # `aws <service> wait <waiter>`: the waiter's operation takes the flags.
        return words[1], ("wait", words[3]), [w[2:].split("=")[0] for w in words[4:] if w.startswith("--")]
    return words[1], words[2], [w[2:].split("=")[0] for w in words[3:] if w.startswith("--")]


def main():
    seen = set()
    for path in ["README.md", *sorted(glob.glob("docs/*.md"))]:
        with open(path) as f:
            text = f.read()
        for command in commands(text):
            service, operation, flags = flags_of(command)
            if (service, operation, tuple(flags)) in seen:
                continue
            seen.add((service, operation, tuple(flags)))
            name = f"{path}: aws {service} {operation}"
            if (service, operation) in CUSTOM:
                unknown = [f for f in flags if f not in CUSTOM[(service, operation)] | GLOBAL]
                check(name, not unknown, f"unknown flags {unknown}")
                continue
            try:
                model = session.get_service_model(service)
            except Exception as error:  # noqa: BLE001 - an unknown service is the finding
                check(name, False, f"no service {service}: {error}")
                continue
            by_cli_name = {xform_name(op).replace("_", "-"): op for op in model.operation_names}
            if isinstance(operation, tuple):
                waiter = operation[1]
                try:
                    waiters = session.get_waiter_model(service)
                except Exception:  # noqa: BLE001 - a service without waiters is the finding
                    waiters = None
                by_waiter = {xform_name(w).replace("_", "-"): w for w in (waiters.waiter_names if waiters else [])}
                if waiter not in by_waiter:
                    check(name, False, f"no waiter {waiter}")
                    continue
                operation = xform_name(waiters.get_waiter(by_waiter[waiter]).operation).replace("_", "-")
            if operation not in by_cli_name:
                check(name, False, f"no operation {operation}")
                continue
            shape = model.operation_model(by_cli_name[operation]).input_shape
            members = {xform_name(m).replace("_", "-") for m in (shape.members if shape else {})}
            allowed = members | {f"no-{m}" for m in members} | GLOBAL
            aliases = CLI_ALIASES.get((service, operation), {})
            flags = [aliases.get(f, f) for f in flags]
            unknown = [f for f in flags if f not in allowed]
            check(name, not unknown, f"unknown flags {unknown} (operation takes {sorted(members)})")
            required = {xform_name(m).replace("_", "-") for m in (shape.required_members if shape else [])}
            given = set(flags) | {f[3:] for f in flags if f.startswith("no-")}
            missing = sorted(required - given)
            check(f"{name}: its required flags", not missing or "cli-input-json" in flags, f"missing {missing}")
    print(f"docs commands: {checks['passed']} passed, {checks['failed']} failed")
    sys.exit(1 if checks["failed"] else 0)


if __name__ == "__main__":
    main()
