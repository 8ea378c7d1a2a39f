"""Every AWS CLI command in README.md and docs/, checked statically where it needs AWS:
the service and operation exist, and every flag is one of the operation's parameters (in
the AWS CLI's spelling), a global option, or one of a hand-written command's. Uses the
service models botocore ships (what the AWS CLI itself reads).

Where each command runs is checked too. Every command names its account and region with a
marker before it, in its section (a heading starts a new one):

- in a code block, a comment line: `# in: target account, <home>` (it covers the commands
  after it in the block, and in the section, until the next marker);
- in prose, before the inline command: `(in: staging account, the server's region)`.

The accounts: `management account` (the organization's management account, or the
delegated administrator with `--call-as DELEGATED_ADMIN`), `target account`, `staging
account`, `function's account` (only where the function is not in the target account),
`notifications account` (the one that receives alarm notifications), `local AWS` (the
bundled loopback AWS). Every StackSet command (an operation that takes `StackSetName`) runs
in the management account: the set lives there, and no other account finds it.

And one StackSet operation at a time: CloudFormation runs one operation on a set at a time
(`ManagedExecution`, "When false (default), StackSets performs one operation at a time"),
and refuses another with `OperationInProgressException`. The operations that start one (they
answer an `OperationId` and may be refused so) and those refused while one runs are read
from the model. In a section, such a command after one that started an operation on the
same set, with no wait between them, fails; a wait is a `describe-stack-set-operation` in an
`until` or `while` loop, and it must go on through every status still under way (`QUEUED`,
`RUNNING`, `STOPPING`), that is, name the final ones (`SUCCEEDED`, `FAILED`, `STOPPED`).

Run from the repository root: `python3 tests/docs_commands.py`. Ends with `N passed, N failed`."""
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


MARKER = re.compile(
    r"\bin: (management account|target account|staging account|function's account|notifications account|local AWS)"
    r", ([^)\n]*[^)\s])")
INLINE = re.compile(r"`(aws [a-z0-9-]+ [a-z0-9-]+[^`]*)`")


class Command:
    def __init__(self, text, line, section, where, loop, code=None):
        self.text, self.line, self.section, self.where, self.loop = text, line, section, where, loop
        # The whole shell line it is in (`operation=$(aws ...)`), for code blocks.
        self.code = code


def embedded(code):
    """Each `aws ...` in a shell line, also inside `$( ... )`, up to the end of its own
    command (an unquoted `)`, `;`, `|`, `&` or `>`)."""
    found = []
    # A placeholder (<account of step 2>) is a word: its `>` is no redirection.
    masked = re.sub(r"<[^<>]*>", lambda p: "X" * len(p.group(0)), code)
    for m in re.finditer(r"(?:(?<=^)|(?<=[\s(;|&\"'=]))aws ", masked):
        quote, depth, end = None, 0, len(code)
        for k in range(m.start(), len(code)):
            c = masked[k]
            if quote:
                quote = None if c == quote else quote
            elif c in "'\"":
                quote = c
            elif c == "(":
                depth += 1
            elif c == ")" and depth == 0 or c in ";|&>":
                end = k
                break
            elif c == ")":
                depth -= 1
        found.append(code[m.start():end].strip())
    return found


def scan(text):
    """Every `aws ...` command of a page, in order: in code blocks (continuations joined,
    also inside `$( ... )`) and inline ones, each with its section, the account and region
    the marker before it names, and the `until`/`while` line it is in."""
    lines = text.splitlines()
    found, section, where, i = [], "(top)", None, 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"```(\w*)\s*$", line.strip())
        if fence:
            j, body = i + 1, []
            while j < len(lines) and not lines[j].strip().startswith("```"):
                body.append(lines[j])
                j += 1
            if fence.group(1) in ("", "sh", "bash"):
                k = 0
                while k < len(body):
                    first, logical = k, body[k]
                    while logical.rstrip().endswith("\\") and k + 1 < len(body):
                        k += 1
                        logical = logical.rstrip()[:-1] + " " + body[k].strip()
                    k += 1
                    stripped = logical.strip()
                    if stripped.startswith("#"):
                        marker = MARKER.search(stripped)
                        where = (marker.group(1), marker.group(2).strip()) if marker else where
                        continue
                    code = stripped.split(" #")[0]
                    loop = code if re.match(r"(until|while)\b", code) else None
                    found += [Command(c, i + 2 + first, section, where, loop, code) for c in embedded(code)]
            i = j + 1
            continue
        if line.startswith("#"):
            section, where, i = line.lstrip("#").strip(), None, i + 1
            continue
        j = i
        while j < len(lines) and lines[j].strip() and not lines[j].startswith("#") and not lines[j].strip().startswith("```"):
            j += 1
        paragraph = re.sub(r"\s*\n\s*", " ", "\n".join(lines[i:j]))
        events = sorted([(m.start(), "in", m) for m in MARKER.finditer(paragraph)]
                        + [(m.start(), "aws", m) for m in INLINE.finditer(paragraph)], key=lambda e: e[0])
        for _, kind, m in events:
            if kind == "in":
                where = (m.group(1), m.group(2).strip())
            else:
                found.append(Command(m.group(1), i + 1, section, where, None))
        i = max(j, i + 1)
    return found


def commands(text):
    """`aws ...` commands: whole lines in code blocks (continuations joined) and inline ones."""
    return [c.text for c in scan(text)]


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


model_of = {}


def model(service):
    if service not in model_of:
        model_of[service] = session.get_service_model(service)
    return model_of[service]


def cli_operations(service):
    return {xform_name(op).replace("_", "-"): op for op in model(service).operation_names}


# DescribeStackSetOperation's statuses (CloudFormation API Reference, StackSetOperation):
# QUEUED "the operation is queued to be performed", RUNNING "currently being performed",
# STOPPING "in the process of stopping": still under way. The others are final.
UNDER_WAY = {"QUEUED", "RUNNING", "STOPPING"}


def stack_set_kinds():
    """From CloudFormation's model: the operations on a StackSet (they take StackSetName),
    those that start a StackSet operation (they answer an OperationId and are refused with
    OperationInProgressException), and those refused while one runs."""
    cfn = model("cloudformation")
    on_set, starts, refused = set(), set(), set()
    for cli, op in cli_operations("cloudformation").items():
        operation = cfn.operation_model(op)
        errors = {e.name for e in operation.error_shapes}
        if operation.input_shape is not None and "StackSetName" in operation.input_shape.members:
            on_set.add(cli)
            if "OperationInProgressException" in errors:
                refused.add(cli)
                if operation.output_shape is not None and "OperationId" in operation.output_shape.members:
                    starts.add(cli)
    final = set(cfn.shape_for("StackSetOperationStatus").enum) - UNDER_WAY
    return on_set, starts, refused, final


def words_of(command):
    cleaned = re.sub(r"<[^>]*>", "X", command)
    try:
        return shlex.split(cleaned)
    except ValueError:
        return cleaned.split()


def flag_value(words, flag):
    for k, w in enumerate(words):
        if w == flag and k + 1 < len(words):
            return words[k + 1]
        if w.startswith(flag + "="):
            return w.split("=", 1)[1]
    return None


def check_where(path, found, kinds):
    """Each command names its account and region; StackSet commands run in the management
    account; one StackSet operation at a time."""
    on_set, starts, refused, final = kinds
    pending, managed, section = {}, set(), None
    for c in found:
        words = words_of(c.text)
        service, operation = (words + ["", "", ""])[1:3]
        name = f"{path}:{c.line}: aws {service} {operation}"
        if c.section != section:
            pending, managed, section = {}, set(), c.section
        check(f"{name}: names the account and region it runs in", c.where is not None,
              "no `# in: <account>, <region>` comment line before it in its code block, nor "
              "`(in: <account>, <region>)` before it in its section")
        if service != "cloudformation" or operation not in on_set:
            continue
        account = c.where[0] if c.where else None
        check(f"{name}: a StackSet command, in the management account", account == "management account",
              f"shown in: {account}; the set lives in the management (or delegated administrator) account")
        stack_set = flag_value(words, "--stack-set-name")
        if operation == "create-stack-set" and re.search(r"--managed-execution\s+Active=true", c.text):
            managed.add(stack_set)
        if operation == "describe-stack-set-operation" and c.loop is not None:
            named = {s for s in final | UNDER_WAY if re.search(rf"\b{s}\b", c.loop)}
            check(f"{name}: the wait goes on while the operation is under way ({', '.join(sorted(UNDER_WAY))})",
                  final <= named or UNDER_WAY <= named,
                  f"the loop names {sorted(named)}: it must stop only on {sorted(final)} "
                  f"(or go on on every one of {sorted(UNDER_WAY)})")
            pending.pop(stack_set, None)
            continue
        if operation in refused:
            queued = operation in starts and stack_set in managed
            before = pending.get(stack_set)
            check(f"{name}: no other operation on {stack_set} under way", before is None or queued,
                  f"{before} started an operation on the set and nothing waited for it: CloudFormation "
                  "refuses this with OperationInProgressException")
        if operation in starts:
            pending[stack_set] = f"line {c.line} ({operation})"


def main():
    seen = set()
    kinds = stack_set_kinds()
    for path in ["README.md", *sorted(glob.glob("docs/*.md"))]:
        with open(path) as f:
            text = f.read()
        found = scan(text)
        for command in [c.text for c in found]:
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
        check_where(path, found, kinds)
    print(f"docs commands: {checks['passed']} passed, {checks['failed']} failed")
    sys.exit(1 if checks["failed"] else 0)


if __name__ == "__main__":
    main()
