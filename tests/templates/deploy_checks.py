"""What CloudFormation, IAM, EventBridge and Scheduler refuse, or accept and then ignore, at
deploy time and at run time: the points `cfn-lint`, the serverless rules and the SAM
transform do not see. Each check names the AWS documentation it rests on.

Run from the repository root: `python3 tests/templates/deploy_checks.py` (or `--root DIR`
to check the templates of another checkout). Ends with `N passed, N failed`."""
import argparse
import json
import os
import re
import sys

from samtranslator.yaml_helper import yaml_parse

sys.path.insert(0, os.path.dirname(__file__))
from expand import expand  # noqa: E402

# A StackSet names each instance's stack `StackSet-<set name>-<uuid>`; a stack name may be
# 128 characters, so names built from it are rendered with one that long.
STACK_NAME = ("StackSet-" + "drs-extender-staging-" * 5)[:91] + "-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
ACCOUNT = "111122223333"
REGIONS = ["us-east-1", "ap-southeast-2"]

# (resource type, name property): most characters, from each resource's CloudFormation page
# ("AWS::Scheduler::Schedule", "AWS::IAM::Role", ...) and its service's API reference.
NAME_LIMITS = {
    ("AWS::Scheduler::Schedule", "Name"): 64,
    ("AWS::Scheduler::ScheduleGroup", "Name"): 64,
    ("AWS::IAM::Role", "RoleName"): 64,
    ("AWS::IAM::ManagedPolicy", "ManagedPolicyName"): 128,
    ("AWS::Events::Rule", "Name"): 64,
    ("AWS::Events::EventBus", "Name"): 256,
    ("AWS::CloudWatch::Alarm", "AlarmName"): 255,
    ("AWS::CloudWatch::Dashboard", "DashboardName"): 255,
    ("AWS::Logs::LogGroup", "LogGroupName"): 512,
    ("AWS::SQS::Queue", "QueueName"): 80,
    ("AWS::Lambda::Function", "FunctionName"): 64,
    ("AWS::CloudTrail::Trail", "TrailName"): 128,
}
# IAM names are unique per account, whatever the region (IAM User Guide, "IAM object quotas"
# and "IAM identifiers": "names must be unique within the account").
GLOBAL_NAMES = {
    ("AWS::IAM::Role", "RoleName"),
    ("AWS::IAM::ManagedPolicy", "ManagedPolicyName"),
    ("AWS::IAM::User", "UserName"),
    ("AWS::IAM::Group", "GroupName"),
    ("AWS::IAM::InstanceProfile", "InstanceProfileName"),
}
# CloudFormation User Guide, "Rule functions": the only functions a Rules section may use.
RULE_FUNCTIONS = {
    "Fn::And", "Fn::Contains", "Fn::EachMemberEquals", "Fn::EachMemberIn", "Fn::Equals",
    "Fn::Not", "Fn::Or", "Fn::RefAll", "Fn::ValueOf", "Fn::ValueOfAll", "Ref",
}

checks = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    checks["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok else ': ' + str(detail)}")


class Stack:
    """One template as one stack instance sees it: parameters at their defaults (or the
    values given), pseudo parameters for one account, region and stack name."""

    def __init__(self, label, template, region, parameters=None):
        self.label = label
        self.template = template
        self.resources = template.get("Resources", {})
        self.region = region
        self.values = {"AWS::Region": region, "AWS::AccountId": ACCOUNT, "AWS::StackName": STACK_NAME, "AWS::Partition": "aws"}
        for name, p in template.get("Parameters", {}).items():
            value = (parameters or {}).get(name, p.get("Default"))
            if value is not None and p["Type"] == "CommaDelimitedList":
                value = str(value).split(",")
            self.values[name] = value

    def render(self, value):
        """A value with Ref, Fn::Sub, Fn::If and Fn::Join worked out where they can be;
        None where it rests on something only a deployment knows."""
        if isinstance(value, (str, int, float)):
            return value
        if isinstance(value, dict) and len(value) == 1:
            (fn, arg), = value.items()
            if fn == "Ref":
                return self.values.get(arg) if arg in self.values else None
            if fn == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                missing = []

                def fill(match):
                    key = match.group(1)
                    got = self.render(extra[key]) if key in extra else self.values.get(key)
                    if got is None:
                        missing.append(key)
                        return ""
                    return str(got)

                out = re.sub(r"\$\{([^}!]+)\}", fill, text)
                return None if missing else out
            if fn == "Fn::If":
                return self.render(arg[1] if self.condition(arg[0]) else arg[2])
            if fn == "Fn::Join":
                parts = [self.render(p) for p in self.render_list(arg[1])]
                return None if any(p is None for p in parts) else str(arg[0]).join(map(str, parts))
        return None

    def render_list(self, value):
        got = self.render(value) if isinstance(value, dict) else value
        return got if isinstance(got, list) else [got]

    def truth(self, expr):
        (fn, arg), = expr.items()
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Fn::Equals":
            return self.render(arg[0]) == self.render(arg[1])
        if fn == "Fn::Not":
            return not self.truth(arg[0])
        if fn == "Fn::And":
            return all(self.truth(a) for a in arg)
        if fn == "Fn::Or":
            return any(self.truth(a) for a in arg)
        raise ValueError(f"condition function {fn}")

    def condition(self, name):
        return self.truth(self.template["Conditions"][name])

    def created(self, logical_id):
        condition = self.resources[logical_id].get("Condition")
        return condition is None or self.condition(condition)

    def of_type(self, kind):
        return {k: v for k, v in self.resources.items() if v["Type"] == kind and self.created(k)}


def walk(value, path=()):
    """Every (path, dict) in a template value."""
    if isinstance(value, dict):
        yield path, value
        for k, v in value.items():
            yield from walk(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, path + (i,))


def names_rendered(stack):
    # Each resource's page in the CloudFormation User Guide gives its name's length.
    for (kind, prop), limit in NAME_LIMITS.items():
        for logical_id, resource in stack.of_type(kind).items():
            name = resource.get("Properties", {}).get(prop)
            if name is None:
                continue
            rendered = stack.render(name)
            check(
                f"{stack.label} {logical_id}.{prop} fits {limit} characters with a {len(STACK_NAME)}-character stack name "
                "(a StackSet instance's is StackSet-<set>-<uuid>; CloudFormation User Guide, 'Create stack instances')",
                rendered is not None and len(rendered) <= limit,
                f"{rendered!r} ({len(rendered) if rendered else '?'} characters)",
            )


def global_names_once(template, label, parameters):
    stacks = [Stack(label, template, region, parameters) for region in REGIONS]
    for logical_id, resource in template["Resources"].items():
        for kind, prop in GLOBAL_NAMES:
            if resource["Type"] != kind or prop not in resource.get("Properties", {}):
                continue
            if "AWS::Region" in json.dumps(resource["Properties"][prop]):
                continue
            creating = [s.region for s in stacks if s.created(logical_id)]
            check(
                f"{label} {logical_id}: a fixed IAM name is created in one region of a StackSet, not "
                f"{len(REGIONS)} (IAM User Guide, 'IAM identifiers': names are unique in the account)",
                len(creating) <= 1,
                f"created in {creating}",
            )


def rule_functions(template, label):
    used = set()
    for rule in template.get("Rules", {}).values():
        for part in [rule.get("RuleCondition"), *(a.get("Assert") for a in rule.get("Assertions", []))]:
            for _, node in walk(part):
                used.update(k for k in node if k.startswith("Fn::") or k in ("Ref", "Condition"))
    check(
        f"{label}: Rules use only rule functions (CloudFormation User Guide, 'Rule functions')",
        used <= RULE_FUNCTIONS,
        sorted(used - RULE_FUNCTIONS),
    )


def rule_on_custom_bus(stack, logical_id):
    resource = stack.resources.get(logical_id, {})
    if resource.get("Type") != "AWS::Events::Rule":
        return False
    bus = resource["Properties"].get("EventBusName", "default")
    return bus != "default"


def alarm_dimensions(stack):
    """EventBridge's metrics carry RuleName (and EventBusName for a custom bus): the rule's
    name. Ref of a rule on a custom bus is `bus|rule` (CloudFormation User Guide,
    'AWS::Events::Rule', Return values), which no metric carries."""
    watchers = {**stack.of_type("AWS::CloudWatch::Alarm"), **stack.of_type("AWS::CloudWatch::Dashboard")}
    rule_names = {stack.render(r["Properties"].get("Name")) for r in stack.of_type("AWS::Events::Rule").values()}
    for logical_id, resource in watchers.items():
        bad = [
            node["Ref"]
            for _, node in walk(resource["Properties"])
            if set(node) == {"Ref"} and rule_on_custom_bus(stack, node["Ref"])
        ]
        check(
            f"{stack.label} {logical_id}: no Ref of a rule on a custom bus as a metric dimension "
            "(EventBridge User Guide, 'Monitoring Amazon EventBridge')",
            not bad,
            bad,
        )
        for _, node in walk(resource["Properties"]):
            if node.get("Namespace") == "AWS/Events" and "Dimensions" in node:
                dims = {d["Name"]: d["Value"] for d in node["Dimensions"]}
                rule = dims.get("RuleName")
                named = isinstance(rule, dict) and set(rule) == {"Ref"} and rule["Ref"] in stack.resources
                check(
                    f"{stack.label} {logical_id}: RuleName {json.dumps(rule)} names a rule of the stack",
                    named or stack.render(rule) in rule_names,
                    sorted(n for n in rule_names if n),
                )


def dead_letter_permissions(stack):
    """Scheduler sends a schedule's dead letters with the schedule's execution role
    (EventBridge Scheduler User Guide, 'Configuring a schedule's dead-letter queue')."""
    for logical_id, schedule in stack.of_type("AWS::Scheduler::Schedule").items():
        target = schedule["Properties"]["Target"]
        queue = target.get("DeadLetterConfig", {}).get("Arn")
        if queue is None:
            continue
        role_id = target["RoleArn"]["Fn::GetAtt"][0]
        statements = [
            st
            for policy in stack.resources[role_id]["Properties"].get("Policies", [])
            for st in policy["PolicyDocument"]["Statement"]
        ]
        allowed = any(
            st.get("Effect") == "Allow"
            and "sqs:SendMessage" in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
            and st.get("Resource") in (queue, "*", [queue])
            for st in statements
        )
        check(f"{stack.label} {logical_id}: its execution role {role_id} may send to its dead-letter queue", allowed)


def same_account_schedule_targets(stack):
    """Scheduler's PutEvents target is a bus of the schedule's own account and region
    (EventBridge Scheduler User Guide, 'Using templated targets'): the target is the
    stack's own resource, or an ARN built from AWS::AccountId and AWS::Region."""
    for logical_id, schedule in stack.of_type("AWS::Scheduler::Schedule").items():
        arn = schedule["Properties"]["Target"]["Arn"]
        own = (
            (isinstance(arn, dict) and "Fn::GetAtt" in arn and arn["Fn::GetAtt"][0] in stack.resources)
            or (isinstance(arn, dict) and arn.get("Ref") in stack.resources)
            or (isinstance(arn, dict) and "${AWS::AccountId}" in json.dumps(arn.get("Fn::Sub")) and "${AWS::Region}" in json.dumps(arn.get("Fn::Sub")))
        )
        check(f"{stack.label} {logical_id}: targets its own account and region", own, arn)


def event_bus_targets(stack):
    """An event-bus target takes a role and a dead-letter queue, no retry policy
    (AWS CDK API reference, 'aws_events_targets.EventBus': no retryPolicy)."""
    for logical_id, rule in stack.of_type("AWS::Events::Rule").items():
        for target in rule["Properties"].get("Targets", []):
            rendered = stack.render(target["Arn"])
            is_bus = ":event-bus/" in str(rendered) or ("Ref" in target["Arn"] and "Bus" in target["Arn"]["Ref"])
            if is_bus:
                check(f"{stack.label} {logical_id}: event-bus target without a RetryPolicy", "RetryPolicy" not in target)


def new_account_defaults(stack):
    """A new account's Lambda concurrency quota may be 10, and Lambda keeps 100
    unreserved (Lambda Developer Guide, 'Configuring reserved concurrency'); its memory
    quota may be 3,008 MB (Lambda quotas)."""
    for logical_id, function in stack.of_type("AWS::Lambda::Function").items():
        props = function["Properties"]
        reserved = props.get("ReservedConcurrentExecutions")
        rendered = None if reserved is None else stack.render(reserved)
        check(f"{stack.label} {logical_id}: reserves no concurrency by default", rendered in (None, 0, "0"), rendered)
        memory = stack.render(props.get("MemorySize", 128))
        check(f"{stack.label} {logical_id}: default memory within a new account's 3,008 MB", int(memory) <= 3008, memory)


def alarm_periods(stack):
    """An alarm's period is 10, 20, 30 or a multiple of 60 seconds; periods times
    evaluation periods at most a day under an hour's period, a week above (CloudWatch API
    Reference, 'PutMetricAlarm')."""
    params = stack.template.get("Parameters", {})
    for logical_id, alarm in stack.of_type("AWS::CloudWatch::Alarm").items():
        props = alarm["Properties"]
        period = props.get("Period")
        if isinstance(period, dict) and "Ref" in period:
            p = params[period["Ref"]]
            candidates = p.get("AllowedValues")
            ok = candidates is not None and all(
                (int(v) in (10, 20, 30) or int(v) % 60 == 0)
                and int(v) * props["EvaluationPeriods"] <= (86400 if int(v) < 3600 else 604800)
                for v in candidates
            )
            check(f"{stack.label} {logical_id}: every period {period['Ref']} allows is one an alarm accepts", ok, candidates or "any number")


def tagging_by_resource(stack):
    """drs:TagResource rests on nothing undocumented: no drs:CreateAction condition (the
    Service Authorization Reference lists the key, but no value for this action)."""
    for logical_id, resource in stack.resources.items():
        for _, node in walk(resource.get("Properties", {})):
            action = node.get("Action")
            if action == "drs:TagResource" or (isinstance(action, list) and "drs:TagResource" in action):
                check(f"{stack.label} {logical_id}: drs:TagResource not conditioned on drs:CreateAction", "drs:CreateAction" not in json.dumps(node.get("Condition", {})))


def granted_actions(stack, role_id):
    """The drs:, servicequotas: and ec2: actions a role's inline policies grant, Fn::If taken to
    the branch the stack's conditions pick; an action granted under a condition is named with it."""
    def taken(value):
        if isinstance(value, dict) and set(value) == {"Fn::If"}:
            cond, yes, no = value["Fn::If"]
            return taken(yes if stack.condition(cond) else no)
        if isinstance(value, dict) and value.get("Ref") == "AWS::NoValue":
            return []
        if isinstance(value, list):
            return [item for v in value for item in taken(v)]
        return [value]

    actions = set()
    for policy in stack.resources[role_id]["Properties"].get("Policies", []):
        for statement in taken(policy["PolicyDocument"]["Statement"]):
            action = statement.get("Action", [])
            condition = statement.get("Condition")
            for name in [action] if isinstance(action, str) else action:
                if name.startswith(("drs:", "servicequotas:", "ec2:")):
                    actions.add(name if condition is None else f"{name} if {json.dumps(condition, sort_keys=True)}")
    return actions


def assumed_role_grants_what_the_function_does(target, target_role):
    """With TARGET_ROLE_ARN set, every DRS and Service Quotas call goes through the assumed
    role: it must grant what the function's own role grants when it calls them itself."""
    drs_managed = ' if {"Null": {"aws:ResourceTag/AWSElasticDisasterRecoveryManaged": "false"}}'
    writes = {"drs:UpdateLaunchConfiguration", "ec2:CreateLaunchTemplateVersion" + drs_managed, "ec2:ModifyLaunchTemplate" + drs_managed}
    for stale in ["report", "delete"]:
        for baseline in [False, True]:
            own = Stack("target", target, REGIONS[0], {"SenderAccountIds": "222233334444", "StaleExtensions": stale,
                                                        "LaunchBaseline": '{"default": {"copyTags": true}}' if baseline else ""})
            role = Stack("target-role", target_role, REGIONS[0], {"ExtenderRoleArn": f"arn:aws:iam::{ACCOUNT}:role/r", "StaleExtensions": stale,
                                                                  "AppliesLaunchBaseline": "true" if baseline else "false"})
            mine, theirs = granted_actions(own, "ExtenderFunctionRole"), granted_actions(role, "TargetRole")
            check(f"target-role grants what the function grants itself (StaleExtensions={stale}, baseline={baseline})",
                  mine == theirs and {"servicequotas:GetServiceQuota", "servicequotas:GetAWSDefaultServiceQuota"} <= mine
                  and (writes <= mine if baseline else not writes & mine), sorted(mine ^ theirs))


def branches(stack, value):
    """A list property rendered, Fn::If taken to the branch the stack's conditions pick."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        cond, yes, no = value["Fn::If"]
        return branches(stack, yes if stack.condition(cond) else no)
    if isinstance(value, dict) and value.get("Ref") == "AWS::NoValue":
        return []
    if isinstance(value, list):
        return [item for v in value for item in branches(stack, v)]
    return [stack.render(value)]


def alarm_actions_in_region(stack):
    """CloudWatch refuses an alarm action whose SNS topic is in another region ("Invalid
    region ... specified"; CloudWatch API Reference, 'PutMetricAlarm': an action is
    arn:aws:sns:region:account-id:sns-topic-name), and a StackSet gives a parameter one
    value in every region it places the stack: checked once per region."""
    for logical_id, alarm in stack.of_type("AWS::CloudWatch::Alarm").items():
        actions = [a for a in branches(stack, alarm["Properties"].get("AlarmActions", [])) if a is not None]
        regions = {a.split(":")[3] if str(a).startswith("arn:") else None for a in actions}
        check(
            f"{stack.label} in {stack.region} {logical_id}: notifies a topic in its own region",
            bool(actions) and regions == {stack.region},
            actions or "no action rendered",
        )


def dead_letter_queue_sources(stack):
    """A dead-letter queue's policy for events.amazonaws.com names the rules that send to
    it by aws:SourceArn (EventBridge User Guide, 'Using dead-letter queues to process
    undelivered events'), not only the account."""
    for logical_id, policy in stack.of_type("AWS::SQS::QueuePolicy").items():
        for st in policy["Properties"]["PolicyDocument"]["Statement"]:
            if st.get("Principal", {}).get("Service") != "events.amazonaws.com":
                continue
            conditions = st.get("Condition", {})
            named = any("aws:SourceArn" in block for block in conditions.values())
            check(f"{stack.label} {logical_id} {st.get('Sid')}: senders named by aws:SourceArn", named, conditions)


def alarm_topic_policy(stack):
    """The alarm topic lets cloudwatch.amazonaws.com publish, and only for alarms of named
    accounts or the organization (aws:SourceAccount, aws:SourceOrgID): a service principal
    without them would publish for any account's alarms (IAM User Guide, 'The confused
    deputy problem')."""
    for logical_id, policy in stack.of_type("AWS::SNS::TopicPolicy").items():
        statements = [st for st in policy["Properties"]["PolicyDocument"]["Statement"] if isinstance(st, dict) and "Effect" in st]
        for raw in policy["Properties"]["PolicyDocument"]["Statement"]:
            if isinstance(raw, dict) and "Fn::If" in raw:
                cond, yes, no = raw["Fn::If"]
                picked = yes if stack.condition(cond) else no
                if isinstance(picked, dict) and "Effect" in picked:
                    statements.append(picked)
        cloudwatch = [st for st in statements if st.get("Principal", {}).get("Service") == "cloudwatch.amazonaws.com"]
        check(f"{stack.label} {logical_id}: CloudWatch may publish", bool(cloudwatch), statements)
        for st in cloudwatch:
            keys = {k for block in st.get("Condition", {}).values() for k in block}
            check(f"{stack.label} {logical_id} {st.get('Sid')}: scoped by aws:SourceAccount or aws:SourceOrgID",
                  bool(keys & {"aws:SourceAccount", "aws:SourceOrgID"}), st.get("Condition"))


def run(root):
    target = expand(os.path.join(root, "template.yaml"))
    with open(os.path.join(root, "deploy/staging-account.yaml")) as f:
        staging = yaml_parse(f.read())
    with open(os.path.join(root, "deploy/target-role.yaml")) as f:
        target_role = yaml_parse(f.read())
    staging_parameters = {
        "CentralBusArn": f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/drs-extender",
        "TargetAccountId": "444455556666",
        "StagingRoleRegion": REGIONS[0],
    }

    for label, template, parameters in [
        ("target", target, {"SenderAccountIds": "222233334444"}),
        ("staging", staging, staging_parameters),
        ("target-role", target_role, {"ExtenderRoleArn": f"arn:aws:iam::{ACCOUNT}:role/r"}),
    ]:
        stack = Stack(label, template, REGIONS[0], parameters)
        names_rendered(stack)
        rule_functions(template, label)
        alarm_dimensions(stack)
        dead_letter_permissions(stack)
        same_account_schedule_targets(stack)
        event_bus_targets(stack)
        new_account_defaults(stack)
        alarm_periods(stack)
        tagging_by_resource(stack)
        dead_letter_queue_sources(stack)
    assumed_role_grants_what_the_function_does(target, target_role)
    # Notification in every region a StackSet (or a second target stack) places a stack,
    # the parameters the same everywhere.
    topic = {
        "AlarmTopicName": "drs-extender-alarms",
        "AlarmTopicAccountId": "999988887777",
        "AlarmTopicArn": f"arn:aws:sns:{REGIONS[0]}:999988887777:drs-extender-alarms",
    }
    for region in REGIONS:
        alarm_actions_in_region(Stack("target", target, region, {"SenderAccountIds": "222233334444", **topic}))
        alarm_actions_in_region(Stack("staging", staging, region, {**staging_parameters, **topic}))
    with open(os.path.join(root, "deploy/alarm-topic.yaml")) as f:
        alarm_topic = yaml_parse(f.read())
    for parameters in [{}, {"OrganizationId": "o-exampleorgid1"}]:
        stack = Stack("alarm-topic", alarm_topic, REGIONS[0], parameters)
        names_rendered(stack)
        alarm_topic_policy(stack)
    # The staging template is placed in every region an account replicates in.
    global_names_once(staging, "staging", staging_parameters)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="the checkout whose templates to check")
    run(parser.parse_args().root)
    print(f"deploy checks: {checks['passed']} passed, {checks['failed']} failed")
    sys.exit(1 if checks["failed"] else 0)
