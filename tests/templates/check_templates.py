"""The templates as they deploy: the target stack expanded by aws-sam-translator (what
`sam deploy` runs), the staging stack as written, every rule pattern matched against
the sample events with moto's EventBridge pattern engine. Run from the repository root:
`python3 tests/templates/check_templates.py`. Ends with `N passed, N failed`."""
import glob
import json
import os
import re
import sys

from moto.events.models import EventPattern
from samtranslator.yaml_helper import yaml_parse

sys.path.insert(0, os.path.dirname(__file__))
from expand import expand  # noqa: E402

checks = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    checks["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok else ': ' + str(detail)}")


def resolve(value, parameters):
    """Parameter references resolved to their defaults, as a deployment without
    overrides would see them."""
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] in parameters:
            p = parameters[value["Ref"]]
            default = p.get("Default", "")
            return default.split(",") if p["Type"] == "CommaDelimitedList" else default
        return {k: resolve(v, parameters) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, parameters) for v in value]
    return value


def of_type(resources, kind):
    return {k: v for k, v in resources.items() if v["Type"] == kind}


def mentions(value, text):
    return text in json.dumps(value)


# --- the target stack, expanded ----------------------------------------------------
target = expand("template.yaml")
res = target["Resources"]
params = target["Parameters"]

queues = of_type(res, "AWS::SQS::Queue")
check("exactly one queue, the dead-letter queue", list(queues) == ["FailureQueue"], list(queues))

rules = of_type(res, "AWS::Events::Rule")
check("four rules on the central bus", len(rules) == 4, list(rules))
for name, rule in rules.items():
    targets = rule["Properties"]["Targets"]
    dead = [t.get("DeadLetterConfig") for t in targets]
    check(
        f"{name}: dead letters to FailureQueue",
        all(d == {"Arn": {"Fn::GetAtt": ["FailureQueue", "Arn"]}} for d in dead),
        dead,
    )
    check(f"{name}: retry policy kept", all("RetryPolicy" in t for t in targets))

schedules = of_type(res, "AWS::Scheduler::Schedule")
for name, schedule in schedules.items():
    props = schedule["Properties"]
    check(f"{name}: dead letters to FailureQueue", props["Target"].get("DeadLetterConfig") == {"Arn": {"Fn::GetAtt": ["FailureQueue", "Arn"]}})
    check(f"{name}: in the stack's own group", props.get("GroupName") == {"Ref": "ScheduleGroup"}, props.get("GroupName"))

alarms = of_type(res, "AWS::CloudWatch::Alarm")
watched = {(a["Properties"]["Namespace"], a["Properties"]["MetricName"]) for a in alarms.values() if "MetricName" in a["Properties"]}
for metric in [
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    ("AWS/Lambda", "Errors"),
    ("AWS/Lambda", "AsyncEventsDropped"),
    ("AWS/Lambda", "DestinationDeliveryFailures"),
    ("AWS/Scheduler", "TargetErrorCount"),
    ("AWS/Scheduler", "InvocationDroppedCount"),
    ("drs-extender", "ReconciliationComplete"),
    ("drs-extender", "ExtensionErrors"),
    ("drs-extender", "QuotaExceeded"),
    ("drs-extender", "RegionNotServed"),
    ("drs-extender", "LaunchBaselineFailed"),
    ("drs-extender", "UnfinishedScopes"),
    ("drs-extender", "NotReady"),
    ("drs-extender", "QuotaUsedPercent"),
]:
    check(f"an alarm on {metric[0]} {metric[1]}", metric in watched)
queue_alarm = [a for a in alarms.values() if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"]
check("the queue alarm watches FailureQueue", all(mentions(a, "FailureQueue") for a in queue_alarm) and queue_alarm)


def walk(value):
    if isinstance(value, dict):
        yield None, value
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


def lost_events_alarmed(resources, rule_name, bus_dimension):
    """An alarm summing what the rule did not deliver: FailedInvocations, which leaves out
    DeadLetterInvocations (the target not invoked), and InvocationsFailedToBeSentToDlq
    (EventBridge User Guide, 'Monitoring Amazon EventBridge')."""
    for alarm in of_type(resources, "AWS::CloudWatch::Alarm").values():
        stats = [m["MetricStat"]["Metric"] for m in alarm["Properties"].get("Metrics", []) if "MetricStat" in m]
        names = {s["MetricName"] for s in stats}
        if names == {"FailedInvocations", "DeadLetterInvocations", "InvocationsFailedToBeSentToDlq"} and all(
            mentions(s["Dimensions"], rule_name) and mentions(s["Dimensions"], "EventBusName") == bus_dimension for s in stats
        ):
            return True
    return False


for name, rule in rules.items():
    rule_name = rule["Properties"].get("Name")
    check(f"{name}: named ({rule_name})", isinstance(rule_name, str), rule_name)
    check(f"{name}: lost events alarmed (EventBusName and RuleName)", lost_events_alarmed(res, str(rule_name), True))
heartbeat = [a for a in alarms.values() if a["Properties"].get("MetricName") == "ReconciliationComplete"]
check(
    "heartbeat: missing data breaches, two periods",
    heartbeat and heartbeat[0]["Properties"]["TreatMissingData"] == "breaching" and heartbeat[0]["Properties"]["EvaluationPeriods"] == 2,
)

check("bus policy enforced: a Rules assertion", "SendersAreNamed" in target.get("Rules", {}), list(target.get("Rules", {})))

role = res["ExtenderFunctionRole"]["Properties"]
check("no X-Ray permissions", not mentions(role.get("ManagedPolicyArns"), "Xray"), role.get("ManagedPolicyArns"))
policy_text = json.dumps(role.get("Policies"))
check("no drs:* wildcard", '"drs:*"' not in policy_text)
check("DRS actions only when no role is assumed", "CallsDrsItself" in policy_text and "drs:CreateExtendedSourceServer" in policy_text)
check(
    "drs:TagResource and drs:UntagResource on this account's source servers",
    re.search(r'"Action": \["drs:TagResource", "drs:UntagResource"\], "Resource": \{"Fn::Sub": "arn:\$\{AWS::Partition\}:drs:\*:\$\{AWS::AccountId\}:source-server/\*"\}', policy_text) is not None,
    policy_text,
)
delete_statements = [
    node for _, node in walk(role.get("Policies"))
    if isinstance(node, dict) and "drs:DeleteSourceServer" in json.dumps(node.get("Action", ""))
]
check(
    "drs:DeleteSourceServer only with StaleExtensions=delete, only on servers marked broken",
    "DeletesStaleExtensions" in policy_text and len(delete_statements) == 1
    and delete_statements[0].get("Condition") == {"Null": {"aws:ResourceTag/drs-extender:error-since": "false"}},
    delete_statements,
)
check("StaleExtensions defaults to report", params["StaleExtensions"]["Default"] == "report")
QUOTA_ACTIONS = ["servicequotas:GetServiceQuota", "servicequotas:GetAWSDefaultServiceQuota"]
quota_statements = [
    node for _, node in walk(role.get("Policies"))
    if isinstance(node, dict) and node.get("Action") == QUOTA_ACTIONS
]
check(
    "servicequotas:GetServiceQuota and GetAWSDefaultServiceQuota where DRS is called (no resource type in the Service Authorization Reference)",
    len(quota_statements) == 1 and quota_statements[0].get("Resource") == "*",
    quota_statements,
)
quota_alarm = [a["Properties"] for a in alarms.values() if a["Properties"].get("MetricName") == "QuotaUsedPercent"]
check(
    "the quota alarm fires past QuotaWarnPercent, the line the function warns at",
    quota_alarm and quota_alarm[0]["Threshold"] == {"Ref": "QuotaWarnPercent"}
    and quota_alarm[0]["ComparisonOperator"] == "GreaterThanThreshold",
    quota_alarm,
)
check("QuotaWarnPercent defaults to 80, as QUOTA_WARN_PERCENT does", params["QuotaWarnPercent"]["Default"] == 80)
LAUNCH_READS = [
    "drs:GetLaunchConfiguration", "ec2:DescribeLaunchTemplateVersions", "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups", "ec2:DescribeVpcs", "ec2:DescribeInstanceTypeOfferings",
]
launch_statements = [
    node for _, node in walk(role.get("Policies"))
    if isinstance(node, dict) and node.get("Action") == LAUNCH_READS
]
check(
    "the launch readiness reads where DRS is called, and only reads (ec2:Describe* take no resource-level permissions)",
    len(launch_statements) == 1 and launch_statements[0].get("Resource") == "*"
    and not any(a.startswith("ec2:") and a not in LAUNCH_READS + ["ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate"] for a in re.findall(r'"(ec2:[A-Za-z]+)"', policy_text)),
    launch_statements,
)
launch_alarm = [a["Properties"] for a in alarms.values() if a["Properties"].get("MetricName") == "LaunchNotReady"]
check(
    "the launch alarm fires on any server that would not launch",
    launch_alarm and launch_alarm[0]["Threshold"] == 0 and launch_alarm[0]["ComparisonOperator"] == "GreaterThanThreshold",
    launch_alarm,
)
check("LaunchChecksPerRun defaults to 500, as LAUNCH_CHECKS_PER_RUN does", params["LaunchChecksPerRun"]["Default"] == 500)
BASELINE_WRITES = {
    "drs:UpdateLaunchConfiguration": {"Fn::Sub": "arn:${AWS::Partition}:drs:*:${AWS::AccountId}:source-server/*"},
    "ec2:CreateLaunchTemplateVersion": {"Fn::Sub": "arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:launch-template/*"},
    "ec2:ModifyLaunchTemplate": {"Fn::Sub": "arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:launch-template/*"},
}
baseline_grants = {}
for value, node in walk(role.get("Policies")):
    if isinstance(node, dict) and set(node) == {"Fn::If"}:
        cond, yes, _ = node["Fn::If"]
        if isinstance(yes, dict) and "Action" in yes:
            actions = yes["Action"] if isinstance(yes["Action"], list) else [yes["Action"]]
            for action in actions:
                if action in BASELINE_WRITES:
                    baseline_grants[action] = (cond, yes.get("Resource"), yes.get("Condition"))
DRS_MANAGED = {"Null": {"aws:ResourceTag/AWSElasticDisasterRecoveryManaged": "false"}}
check(
    "the launch baseline's writes only with LaunchBaseline set, each on its own resource type in this account, templates only DRS's",
    set(baseline_grants) == set(BASELINE_WRITES)
    and all(cond == "AppliesLaunchBaseline" and res == BASELINE_WRITES[a] for a, (cond, res, _) in baseline_grants.items())
    and all(c == DRS_MANAGED for a, (_, _, c) in baseline_grants.items() if a.startswith("ec2:"))
    and sum(policy_text.count(f'"{a}"') for a in BASELINE_WRITES) == len(BASELINE_WRITES),
    baseline_grants,
)
check(
    "AppliesLaunchBaseline: a LaunchBaseline set, where DRS is called",
    target["Conditions"]["AppliesLaunchBaseline"] == {"Fn::And": [{"Fn::Not": [{"Fn::Equals": [{"Ref": "LaunchBaseline"}, ""]}]}, {"Condition": "CallsDrsItself"}]},
    target["Conditions"].get("AppliesLaunchBaseline"),
)
check("LaunchBaseline defaults to none, as LAUNCH_BASELINE does", params["LaunchBaseline"]["Default"] == "")
scheduler_schedules = [r["Properties"] for r in res.values() if r.get("Type") == "AWS::Scheduler::Schedule"]
check(
    "the schedule tells each run its period, for its turn of the launch checks",
    len(scheduler_schedules) == 1 and "periodSeconds" in json.dumps(scheduler_schedules[0]["Target"].get("Input")),
    scheduler_schedules,
)
check("sts:AssumeRole only with a target role", "AssumesRole" in policy_text and "sts:AssumeRole" in policy_text)

function = res["ExtenderFunction"]["Properties"]
check("no tracing configured", "TracingConfig" not in function)
check("logs to the stack's own log group", function.get("LoggingConfig", {}).get("LogGroup") == {"Ref": "FunctionLogGroup"})
log_groups = of_type(res, "AWS::Logs::LogGroup")
check("log group with a retention parameter", log_groups.get("FunctionLogGroup", {}).get("Properties", {}).get("RetentionInDays") == {"Ref": "LogRetentionDays"})
check("LogRetentionDays defaults to 30", params["LogRetentionDays"]["Default"] == 30)
check("fan-out requests go to the central bus", function["Environment"]["Variables"].get("FAN_OUT_EVENT_BUS") == {"Ref": "CentralBus"})
check("no reserved concurrency by default", params["ReservedConcurrency"]["Default"] == 0)
check("no routine per-server DRS event by default", "PIT Snapshot" not in params["DrsEventDetailTypes"]["Default"])

dashboards = of_type(res, "AWS::CloudWatch::Dashboard")
check("a dashboard", len(dashboards) == 1)
for dashboard in dashboards.values():
    body, values = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    # A placeholder standing as a JSON value is a number (a Number parameter); inside
    # a string, any text.
    filled = re.sub(r"(:\s*)\$\{[^}]+\}", r"\g<1>1", body)
    filled = re.sub(r"\$\{[^}]+\}", "x", filled)
    try:
        widgets = json.loads(filled)["widgets"]
        titles = " ".join(w["properties"]["title"] for w in widgets)
        check("dashboard body is JSON once substituted", True)
        for word in ["created", "duration", "Dead-letter", "errors", "Cold starts", "could not deliver",
                     "extended servers, by region", "extension errors", "not extended",
                     "source-server quota used"]:
            check(f"dashboard shows {word}", word.lower() in titles.lower(), titles)
    except (ValueError, KeyError) as error:
        check("dashboard body is JSON once substituted", False, error)

# --- the staging stack, as written ----------------------------------------------------
with open("deploy/staging-account.yaml") as f:
    staging = yaml_parse(f.read())
sres = staging["Resources"]
srole = sres["StagingAccountRole"]["Properties"]
check("staging role: DRS's name and path", srole["RoleName"] == {"Fn::Sub": "DRSStagingAccountRole_${TargetAccountId}"} and srole["Path"] == "/service-role/")
check("staging role: created in one region only", mentions(staging["Conditions"][sres["StagingAccountRole"]["Condition"]], "StagingRoleRegion"))
check("staging role: DRS's managed policy", mentions(srole["ManagedPolicyArns"], "service-role/AWSElasticDisasterRecoveryStagingAccountPolicy_v2"))
trust = srole["AssumeRolePolicyDocument"]["Statement"][0]
check("staging role: trusts DRS for the target account", trust["Principal"] == {"Service": "drs.amazonaws.com"} and sorted(trust["Action"]) == ["sts:AssumeRole", "sts:SetSourceIdentity"] and mentions(trust["Condition"], "sts:SourceIdentity"))
for name, rule in of_type(sres, "AWS::Events::Rule").items():
    target_props = rule["Properties"]["Targets"][0]
    check(f"staging {name}: dead-letter queue", target_props.get("DeadLetterConfig") == {"Arn": {"Fn::GetAtt": ["ForwardDeadLetters", "Arn"]}})
    check(f"staging {name}: lost events alarmed (RuleName)", lost_events_alarmed(sres, f'"Ref": "{name}"', False))
request = sres["ReconcileRequestSchedule"]["Properties"]["Target"]
check(
    "staging schedule puts its reconciliation request on its own default bus",
    request["Arn"] == {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"}
    and request["EventBridgeParameters"]["DetailType"] == "Reconciliation Requested",
)
staging_watched = {a["Properties"].get("MetricName") for a in of_type(sres, "AWS::CloudWatch::Alarm").values()}
check("staging schedule: TargetErrorCount and InvocationDroppedCount alarmed", {"TargetErrorCount", "InvocationDroppedCount"} <= staging_watched)
check("KMS statements printed", "KmsKeyPolicyStatements" in staging["Outputs"])

# --- every alarm links to a runbook section that exists -------------------------------
with open("docs/runbooks.md") as f:
    sections = set(re.findall(r"^## ([a-z-]+)$", f.read(), re.M))
for stack, resources in [("target", res), ("staging", sres)]:
    for name, alarm in of_type(resources, "AWS::CloudWatch::Alarm").items():
        link = re.search(r"runbooks\.md#([a-z-]+)", " ".join(alarm["Properties"]["AlarmDescription"].split()))
        check(f"{stack} {name}: its runbook exists", link is not None and link.group(1) in sections, link and link.group(1))

# --- rule patterns against the sample events -----------------------------------------
patterns = {}
for name, rule in rules.items():
    patterns[f"central:{name}"] = resolve(rule["Properties"]["EventPattern"], params)
for name, rule in of_type(sres, "AWS::Events::Rule").items():
    patterns[f"staging:{name}"] = resolve(rule["Properties"]["EventPattern"], staging["Parameters"])


def matching(event):
    return sorted(n for n, p in patterns.items() if EventPattern.load(json.dumps(p)).matches_event(event))


expected = {
    "agent-registration": ["central:ExtenderFunctionAgentRegistration", "staging:ForwardAgentRegistration"],
    "agent-registration-without-server": ["central:ExtenderFunctionAgentRegistration", "staging:ForwardAgentRegistration"],
    "agent-registration-failed": ["central:ExtenderFunctionAgentRegistration", "staging:ForwardAgentRegistration"],
    "drs-source-server-event": ["central:ExtenderFunctionDrsSourceServerEvents", "staging:ForwardDrsSourceServerEvents"],
    "drs-recovery-instance-event": [],
    "announcement-by-arn": ["central:ExtenderFunctionAnnouncements"],
    "announcement-by-id": ["central:ExtenderFunctionAnnouncements"],
    "announcement-malformed": ["central:ExtenderFunctionAnnouncements"],
    "announcement-spoofed": ["central:ExtenderFunctionAnnouncements"],
    "reconciliation-requested": ["central:ExtenderFunctionReconciliationRequests"],
    "staging-reconciliation-request": ["central:ExtenderFunctionReconciliationRequests", "staging:ForwardReconciliationRequests"],
    "scheduled-reconciliation": [],
    "unrelated-event": [],
}
samples = {os.path.basename(p)[:-5]: json.load(open(p)) for p in glob.glob("events/*.json")}
check("every sample event has an expectation", sorted(samples) == sorted(expected), sorted(set(samples) ^ set(expected)))
for name, event in sorted(samples.items()):
    got = matching(event)
    check(f"{name} matches {expected.get(name)}", got == expected.get(name), got)

# The function's own outcome events must start nothing (no loop); its fan-out requests
# must reach the reconciliation rule, once.
source = params["ResultEventSource"]["Default"]
for detail_type in [
    "Extended Source Server Created",
    "Extended Source Server Skipped",
    "Extended Source Server Failed",
    "Extension Request Rejected",
    "Reconciliation Completed",
    "Extended Source Server Unhealthy",
]:
    own = {"source": source, "detail-type": detail_type, "account": "444455556666", "detail": {}, "resources": []}
    check(f"own '{detail_type}' matches no inbound rule", matching(own) == [], matching(own))
fan_out = {"source": source, "detail-type": "Reconciliation Requested", "detail": {"fannedOut": True}, "resources": []}
check("own fan-out request matches the reconciliation rule once", matching(fan_out) == ["central:ExtenderFunctionReconciliationRequests"], matching(fan_out))

print(f"templates: {checks['passed']} passed, {checks['failed']} failed")
sys.exit(1 if checks["failed"] else 0)
