"""The stacks deployed into a local CloudFormation (moto, server mode): the expanded target
stack in the target account, the staging template through moto's StackSet API (one set, the
same parameters in every region, instances over two accounts and two regions, and an account
whose console already made DRS's staging role), docs/deploy.md's own StackSet commands run in
their documented order, then a registration record put on a staging
account's default bus and followed as far as moto routes it, its `account` checked. What this proves and what it cannot: docs/development.md.

Run from the repository root: `python3 tests/templates/local_deploy.py`. Needs
`moto[server,cloudformation]` and boto3. Ends with `N passed, N failed`."""
import io
import json
import logging
import os
import re
import shlex
import socket
import sys
import uuid
import warnings
import zipfile

import boto3
import jmespath
from botocore import xform_name
from moto.cloudformation.models import CloudFormationBackend
from moto.events.models import EventBus
from moto.server import ThreadedMotoServer
from samtranslator.yaml_helper import yaml_parse

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from docs_commands import scan  # noqa: E402 - the docs checker's own reading of a page's commands
from expand import expand  # noqa: E402

TARGET = "444455556666"
STAGING = ["111122223333", "222233334444"]
CENTRAL_REGION = "us-east-1"
REGIONS = [CENTRAL_REGION, "eu-west-1"]
STACK_SET = "drs-extender-staging"

checks = {"passed": 0, "failed": 0}
SKIPPED_SHOWN = set()


def check(name, ok, detail=""):
    checks["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok else ': ' + str(detail)}")


# moto's gaps, mended where they would stop the deployment rather than check it: Ref of an
# AWS::Events::EventBus is its name in CloudFormation (its page, Return values); moto 5.2
# hands back the object. And moto splits a CommaDelimitedList only when it is passed, not
# its default: deploy() passes those defaults as values.
if not hasattr(EventBus, "physical_resource_id"):
    EventBus.physical_resource_id = property(lambda bus: bus.name)
# moto 5.2 names a self-managed StackSet's instance stack `StackSet:<set>`, which its own
# stack-name check then refuses; CloudFormation names it `StackSet-<set>-<uuid>`.
_create_stack = CloudFormationBackend.create_stack


def _create_stack_named_as_stacksets_do(self, name, *args, **kwargs):
    if name.startswith("StackSet:"):
        name = f"StackSet-{name.split(':', 1)[1]}-{uuid.uuid4()}"
    return _create_stack(self, name, *args, **kwargs)


CloudFormationBackend.create_stack = _create_stack_named_as_stacksets_do


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    """One moto server; a session per account (moto keys each account's resources by the
    account of the credentials an assumed role returns)."""

    def __init__(self):
        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.sessions = {}

    def client(self, service, account, region):
        if account not in self.sessions:
            sts = boto3.client("sts", endpoint_url=self.endpoint, region_name=region,
                               aws_access_key_id="testing", aws_secret_access_key="testing")
            creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/deployer", RoleSessionName="deploy")["Credentials"]
            self.sessions[account] = boto3.Session(
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
            )
        return self.sessions[account].client(service, endpoint_url=self.endpoint, region_name=region)

    def stop(self):
        self.server.stop()


def deploy(moto, account, region, name, body, parameters):
    cfn = moto.client("cloudformation", account, region)
    declared = yaml_parse(body).get("Parameters", {})
    parameters = {
        **{k: p["Default"] for k, p in declared.items() if p["Type"] == "CommaDelimitedList" and p.get("Default")},
        **parameters,
    }
    try:
        cfn.create_stack(
            StackName=name,
            TemplateBody=body,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        )
        cfn.get_waiter("stack_create_complete").wait(StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    except Exception as error:  # noqa: BLE001 - the stack's events say why
        events = cfn.describe_stack_events(StackName=name)["StackEvents"]
        reasons = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}" for e in events if "FAILED" in e["ResourceStatus"]]
        return None, f"{error}; {reasons}"
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    resources = {r["LogicalResourceId"]: r for r in cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]}
    skipped_types(cfn, name, body, f"{name} stack")
    return (stack, resources), None


def target_stack(moto):
    # The code `sam deploy` would upload, at the URI the expansion names.
    s3 = moto.client("s3", TARGET, CENTRAL_REGION)
    s3.create_bucket(Bucket="bucket")
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\n")
    s3.put_object(Bucket="bucket", Key="drs-extender.zip", Body=code.getvalue())

    expanded = expand("template.yaml")
    deployed, error = deploy(moto, TARGET, CENTRAL_REGION, "drs-extender", json.dumps(expanded),
                             {"SenderAccountIds": ",".join(STAGING)})
    check("target stack: CREATE_COMPLETE", deployed is not None, error)
    if deployed is None:
        return None
    stack, resources = deployed
    for logical_id in ["CentralBus", "FailureQueue", "ExtenderFunction", "ExtenderFunctionRole", "FunctionLogGroup", "Dashboard",
                       "ExtenderFunctionAgentRegistration", "ExtenderFunctionReconciliationRequests"]:
        check(f"target stack: {logical_id} created", resources.get(logical_id, {}).get("ResourceStatus") == "CREATE_COMPLETE",
              resources.get(logical_id))
    events = moto.client("events", TARGET, CENTRAL_REGION)
    names = {r["Name"] for r in events.list_rules(EventBusName="drs-extender")["Rules"]}
    check("target stack: the central bus's rules carry the names its alarms watch",
          {"drs-extender-agent-registration", "drs-extender-drs-source-server-events", "drs-extender-announcements",
           "drs-extender-reconciliation-requests"} <= names, names)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    check("target stack: CentralBusArn output", outputs.get("CentralBusArn", "").endswith(":event-bus/drs-extender"), outputs)
    return outputs.get("CentralBusArn")


# The static checks that stand in for what moto does not create (deploy_checks.py and
# check_templates.py): a resource type moto skips with none of them listed fails the run.
STATIC_CHECKS = {
    "AWS::CloudWatch::Alarm": "alarm_actions_in_region, alarm_dimensions, alarm_periods, runbook links",
    "AWS::CloudWatch::Dashboard": "alarm_dimensions (its metrics' RuleName)",
    "AWS::Scheduler::Schedule": "same_account_schedule_targets, dead_letter_permissions, names_rendered",
    "AWS::Scheduler::ScheduleGroup": "names_rendered",
    "AWS::SQS::QueuePolicy": "dead_letter_queue_sources",
    "AWS::Events::EventBusPolicy": "check_templates (the senders named; Rules refuse neither)",
    "AWS::Lambda::EventInvokeConfig": "check_templates (retries, on-failure destination)",
    "AWS::CloudTrail::Trail": "names_rendered",
    "AWS::S3::BucketPolicy": "cfn-lint, checkov",
    "AWS::SNS::TopicPolicy": "alarm_topic_policy",
}
MANAGEMENT = "999988887777"
# An account whose DRS console already made the staging role.
CONSOLE_ROLE_ACCOUNT = "333344445555"


def skipped_types(cfn, stack_name, body, kind):
    resources = {r["LogicalResourceId"] for r in cfn.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]}
    template = yaml_parse(body)
    stack = {"Resources": template["Resources"]}
    skipped = sorted({r["Type"] for k, r in stack["Resources"].items() if k not in resources and "Condition" not in r})
    if skipped and kind not in SKIPPED_SHOWN:
        SKIPPED_SHOWN.add(kind)
        print(f"note {kind}: moto does not model, so did not create: {', '.join(skipped)}")
        for kind_skipped in skipped:
            check(f"{kind}: {kind_skipped}, skipped by moto, is checked statically", kind_skipped in STATIC_CHECKS,
                  "add a deploy-time check for it")
            if kind_skipped in STATIC_CHECKS:
                print(f"     {kind_skipped}: {STATIC_CHECKS[kind_skipped]}")
    return resources


def alarm_topics(moto):
    """deploy/alarm-topic.yaml in every region the stacks are placed in, in the account that
    receives the notifications: the name every stack's AlarmTopicName gives, in each region."""
    with open("deploy/alarm-topic.yaml") as f:
        body = f.read()
    for region in REGIONS:
        deployed, error = deploy(moto, MANAGEMENT, region, "drs-extender-alarms", body, {"OrganizationId": "o-exampleorgid1"})
        check(f"alarm topic {region}: CREATE_COMPLETE", deployed is not None, error)
        if deployed is None:
            continue
        outputs = {o["OutputKey"]: o["OutputValue"] for o in deployed[0].get("Outputs", [])}
        expected = f"arn:aws:sns:{region}:{MANAGEMENT}:drs-extender-alarms"
        check(f"alarm topic {region}: the ARN the stacks' alarms resolve to", outputs.get("AlarmTopicArn") == expected, outputs)


def instance_stack(cfn):
    """The StackSet's instance stack in one account and region, as CloudFormation names it."""
    live = [st["StackName"] for st in cfn.list_stacks()["StackSummaries"]
            if st["StackName"].startswith(f"StackSet-{STACK_SET}-") and st["StackStatus"] == "CREATE_COMPLETE"]
    return live[-1] if live else None


def staging_stack_set(moto, central_bus_arn):
    """The staging template as a StackSet places it: one set, its parameters the same in every
    region, instances over two accounts and two regions. Self-managed here: moto hides a
    service-managed set's instance stacks, so their resources could not be listed."""
    with open("deploy/staging-account.yaml") as f:
        body = f.read()
    declared = yaml_parse(body)["Parameters"]
    values = {
        # moto splits a CommaDelimitedList only when it is passed, not its default.
        **{k: p["Default"] for k, p in declared.items() if p["Type"] == "CommaDelimitedList" and p.get("Default")},
        "CentralBusArn": central_bus_arn, "TargetAccountId": TARGET, "StagingRoleRegion": CENTRAL_REGION,
        "AlarmTopicName": "drs-extender-alarms", "AlarmTopicAccountId": MANAGEMENT,
        # Named, as the documented create-stack-set names it: an override needs the set to specify it.
        "CreateStagingRole": "true",
    }
    as_parameters = lambda v: [{"ParameterKey": k, "ParameterValue": x} for k, x in v.items()]  # noqa: E731
    cfn = moto.client("cloudformation", MANAGEMENT, CENTRAL_REGION)
    cfn.create_stack_set(StackSetName=STACK_SET, TemplateBody=body, Parameters=as_parameters(values),
                         Capabilities=["CAPABILITY_NAMED_IAM"], PermissionModel="SELF_MANAGED")
    preferences = {"RegionConcurrencyType": "PARALLEL", "FailureTolerancePercentage": 100, "MaxConcurrentPercentage": 25}
    operation = cfn.create_stack_instances(StackSetName=STACK_SET, Accounts=STAGING, Regions=REGIONS,
                                           OperationPreferences=preferences)["OperationId"]
    status = cfn.describe_stack_set_operation(StackSetName=STACK_SET, OperationId=operation)["StackSetOperation"]["Status"]
    check("staging StackSet: create-stack-instances over 2 accounts x 2 regions SUCCEEDED", status == "SUCCEEDED", status)
    instances = cfn.list_stack_instances(StackSetName=STACK_SET)["Summaries"]
    placed = sorted((i["Account"], i["Region"], i["Status"]) for i in instances)
    check("staging StackSet: four instances, CURRENT", placed == sorted((a, r, "CURRENT") for a in STAGING for r in REGIONS), placed)

    for account in STAGING:
        for region in REGIONS:
            instance_cfn = moto.client("cloudformation", account, region)
            stack_name = instance_stack(instance_cfn)
            check(f"staging {account} {region}: instance stack {stack_name} ({len(stack_name or '')} characters)",
                  stack_name is not None)
            if stack_name is None:
                continue
            resources = skipped_types(instance_cfn, stack_name, body, "staging StackSet instance")
            for logical_id in ["ForwardAgentRegistration", "ForwardReconciliationRequests", "ForwardDeadLetters", "ForwardRole", "ScheduleRole"]:
                check(f"staging {account} {region}: {logical_id} created", logical_id in resources, sorted(resources))
            check(f"staging {account} {region}: the staging role only in StagingRoleRegion",
                  ("StagingAccountRole" in resources) == (region == CENTRAL_REGION), sorted(resources))
    for account in STAGING:
        roles = moto.client("iam", account, CENTRAL_REGION).list_roles(PathPrefix="/service-role/")["Roles"]
        names = [r["RoleName"] for r in roles]
        check(f"staging {account}: one DRS staging role for both regions", names == [f"DRSStagingAccountRole_{TARGET}"], names)

    # An account whose console already made the role: the set's own parameters collide.
    iam = moto.client("iam", CONSOLE_ROLE_ACCOUNT, CENTRAL_REGION)
    iam.create_role(RoleName=f"DRSStagingAccountRole_{TARGET}", Path="/service-role/",
                    AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    try:
        cfn.create_stack_instances(StackSetName=STACK_SET, Accounts=[CONSOLE_ROLE_ACCOUNT], Regions=[CENTRAL_REGION],
                                   OperationPreferences=preferences)
        collided = None
    except Exception as error:  # noqa: BLE001 - the refusal is what is checked
        collided = str(error)
    check("an account that has DRS's staging role: its instance fails without the override",
          collided is not None and "already exists" in collided.lower(), collided)
    cfn.delete_stack_instances(StackSetName=STACK_SET, Accounts=[CONSOLE_ROLE_ACCOUNT], Regions=[CENTRAL_REGION], RetainStacks=False)
    # moto takes an instance's overrides as its whole parameter list: all of them, one changed.
    overrides = as_parameters({**values, "CreateStagingRole": "false"})
    cfn.create_stack_instances(StackSetName=STACK_SET, Accounts=[CONSOLE_ROLE_ACCOUNT], Regions=REGIONS,
                               ParameterOverrides=overrides, OperationPreferences=preferences)
    console_cfn = moto.client("cloudformation", CONSOLE_ROLE_ACCOUNT, CENTRAL_REGION)
    stack_name = instance_stack(console_cfn)
    resources = {r["LogicalResourceId"] for r in console_cfn.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]} if stack_name else set()
    roles = [r["RoleName"] for r in iam.list_roles(PathPrefix="/service-role/")["Roles"]]
    check("with CreateStagingRole=false it deploys, and leaves the console's role alone",
          "ForwardAgentRegistration" in resources and "StagingAccountRole" not in resources
          and roles == [f"DRSStagingAccountRole_{TARGET}"], (sorted(resources), roles))


# The deploy path's own management account, with an organization of its own: an OU of two
# staging accounts (moto gives them their ids).
DOCS_MANAGEMENT = "777766665555"


def shorthand(shape, word):
    """The AWS CLI's shorthand `Key=value,Key=value` for a structure, typed by the model."""
    value = {}
    for pair in word.split(","):
        key, _, text = pair.partition("=")
        member = shape.members[key]
        if member.type_name == "list":
            value.setdefault(key, []).append(text)
        else:
            value[key] = typed(member, text)
    return value


def typed(shape, text):
    if shape.type_name == "integer":
        return int(text)
    if shape.type_name == "boolean":
        return text.lower() == "true"
    if shape.type_name == "structure":
        return shorthand(shape, text)
    if text.startswith("file://"):
        with open(text[len("file://"):]) as f:
            return f.read()
    return text


def cli_call(client, command, mend=lambda operation, params: params):
    """An `aws cloudformation ...` command line as the AWS CLI would send it: its flags read
    into the operation's parameters by the model, `--query` applied to the answer."""
    words = shlex.split(command)
    model = client.meta.service_model
    operation = {xform_name(o).replace("_", "-"): o for o in model.operation_names}[words[2]]
    shape = model.operation_model(operation).input_shape
    members = {xform_name(m).replace("_", "-"): m for m in shape.members}
    params, query, k = {}, None, 3
    while k < len(words):
        flag, k, values = words[k][2:], k + 1, []
        while k < len(words) and not words[k].startswith("--"):
            values.append(words[k])
            k += 1
        if flag == "query":
            query = values[0]
        elif flag in ("output", "region"):
            continue
        elif flag.startswith("no-") and flag[3:] in members:
            params[members[flag[3:]]] = False
        else:
            member = shape.members[members[flag]]
            if member.type_name == "boolean" and not values:
                params[members[flag]] = True
            elif member.type_name == "list":
                params[members[flag]] = [typed(member.member, v) for v in values]
            else:
                params[members[flag]] = typed(member, values[0])
    answer = getattr(client, xform_name(operation))(**mend(operation, params))
    return operation, params, (jmespath.search(query, answer) if query else answer)


def documented_stack_set_path(moto, central_bus_arn):
    """docs/deploy.md's StackSet commands (steps 6 to 9), read from the page and run in the
    order it gives them, against moto: service-managed, over an OU of two accounts in two
    regions. moto answers an operation at once, so the order CloudFormation enforces (one
    operation at a time) is checked statically by tests/docs_commands.py; here each command
    must be accepted as written, each wait must see a final status, an override may name only
    a parameter the set specifies, and the listing of instances not CURRENT comes back empty."""
    with open("docs/deploy.md") as f:
        text = f.read()
    path = text[text.index("## From zero to verified, in order"):text.index("## Reference")]
    found = [c for c in scan(path) if c.text.startswith("aws cloudformation ") and "--stack-set-name" in c.text]
    org = moto.client("organizations", DOCS_MANAGEMENT, CENTRAL_REGION)
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    ou = org.create_organizational_unit(ParentId=root, Name="staging")["OrganizationalUnit"]["Id"]
    accounts = []
    for name in ("staging-a", "staging-b"):
        account = org.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"]["AccountId"]
        org.move_account(AccountId=account, SourceParentId=root, DestinationParentId=ou)
        accounts.append(account)
    placeholders = {
        "<CentralBusArn of step 3>": central_bus_arn, "<target>": TARGET, "<account of step 2>": MANAGEMENT,
        "<one region every account replicates in>": CENTRAL_REGION, "<StagingRoleRegion>": CENTRAL_REGION,
        "<ou-...>": ou, "<regions>": " ".join(REGIONS), "<account>": accounts[0], "<region>": CENTRAL_REGION,
    }
    with open("deploy/staging-account.yaml") as f:
        declared = yaml_parse(f.read())["Parameters"]
    lists = [{"ParameterKey": k, "ParameterValue": p["Default"]} for k, p in declared.items()
             if p["Type"] == "CommaDelimitedList" and p.get("Default")]

    def mend(operation, params):
        # moto splits a CommaDelimitedList only when it is passed, not its default.
        if operation != "CreateStackSet":
            return params
        return {**params, "Parameters": params.get("Parameters", []) + lists}

    cfn = moto.client("cloudformation", DOCS_MANAGEMENT, CENTRAL_REGION)
    final = set(cfn.meta.service_model.shape_for("StackSetOperationStatus").enum) - {"QUEUED", "RUNNING", "STOPPING"}
    shell, specified, order = {}, set(), []
    for c in found:
        command = c.text
        for name, value in shell.items():
            command = command.replace(f'"${name}"', value).replace(f"${name}", value)
        for placeholder, value in placeholders.items():
            command = command.replace(placeholder, value)
        left = re.findall(r"<[^>]*>|\$\w+", command)
        name = f"deploy.md:{c.line}: {' '.join(c.text.split()[1:3])}"
        if left:
            check(f"{name}: every placeholder known", False, left)
            continue
        try:
            operation, params, answer = cli_call(cfn, command, mend)
        except Exception as error:  # noqa: BLE001 - the refusal is the finding
            check(f"{name}: accepted as written", False, error)
            continue
        order.append(operation)
        if operation == "CreateStackSet":
            specified = {p["ParameterKey"] for p in params.get("Parameters", [])}
        for override in params.get("ParameterOverrides", []):
            check(f"{name}: overrides {override['ParameterKey']}, a parameter the set specifies",
                  override["ParameterKey"] in specified, sorted(specified))
        capture = re.match(r"(?:until\s+)?(\w+)=\$\(", c.code or "")
        if capture:
            shell[capture.group(1)] = str(answer)
        if c.loop is not None:
            check(f"{name}: the wait ends on a final status", answer in final, answer)
        elif operation == "ListStackInstances" and "Status!='CURRENT'" in command:
            check(f"{name}: no instance other than CURRENT", answer == [], answer)
        else:
            check(f"{name}: accepted as written", True)
    print(f"     deploy path's StackSet calls, in order: {', '.join(order)}")
    expected = ["CreateStackSet", "CreateStackInstances", "DescribeStackSetOperation", "UpdateStackInstances",
                "DescribeStackSetOperation"]
    check("the deploy path creates the set and its instances, waits, overrides, waits", order[:5] == expected, order)
    instances = cfn.list_stack_instances(StackSetName=STACK_SET)["Summaries"]
    placed = sorted((i["Account"], i["Region"]) for i in instances)
    check("the deploy path's instances: every account of the OU in every region",
          placed == sorted((a, r) for a in accounts for r in REGIONS), placed)


def follow_registration(moto):
    """A registration record on a staging account's default bus, in a region that is not the
    central one, followed to the function's rule on the central bus. moto cannot invoke a
    Lambda target, so the rule's target is swapped for a tap (an SQS queue): the rule and its
    pattern are the deployed ones."""
    events = moto.client("events", TARGET, CENTRAL_REGION)
    sqs = moto.client("sqs", TARGET, CENTRAL_REGION)
    tap = sqs.create_queue(QueueName="tap")["QueueUrl"]
    tap_arn = sqs.get_queue_attributes(QueueUrl=tap, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for rule in events.list_rules(EventBusName="drs-extender")["Rules"]:
        targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName="drs-extender")["Targets"]
        events.remove_targets(Rule=rule["Name"], EventBusName="drs-extender", Ids=[t["Id"] for t in targets])
        if rule["Name"] in ("drs-extender-agent-registration", "drs-extender-reconciliation-requests"):
            events.put_targets(Rule=rule["Name"], EventBusName="drs-extender", Targets=[{"Id": "tap", "Arn": tap_arn}])

    with open("events/agent-registration.json") as f:
        sample = json.load(f)
    staging_region = REGIONS[1]
    put = moto.client("events", STAGING[0], staging_region).put_events(Entries=[{
        "Source": sample["source"],
        "DetailType": sample["detail-type"],
        # CloudTrail records the region the agent registered in: the staging region.
        "Detail": json.dumps({**sample["detail"], "awsRegion": staging_region}),
        "EventBusName": "default",
    }])
    check("registration record put on the staging account's default bus", put["FailedEntryCount"] == 0, put)
    messages = sqs.receive_message(QueueUrl=tap, WaitTimeSeconds=2, MaxNumberOfMessages=10).get("Messages", [])
    bodies = [json.loads(m["Body"]) for m in messages]
    check("it reached the central bus and matched the function's rule there",
          len(bodies) == 1 and bodies[0]["detail"].get("eventName") == "CreateSourceServerForDrs", bodies)
    # The function acts on a server of account A only for an event whose `account` is A, the
    # target or its own (interface, "Who may ask"); it reads A from detail.recipientAccountId
    # and the region from detail.awsRegion. EventBridge keeps a forwarded event's `account`
    # and `region` (the sender's); moto's delivery to a queue drops `account` and rewrites
    # `region`, so here only the detail is checked, and `account` where moto keeps it.
    detail = bodies[0]["detail"] if bodies else {}
    check("the forwarded record names the staging account and region the function reads",
          detail.get("recipientAccountId") == STAGING[0] and detail.get("awsRegion") == staging_region,
          {k: detail.get(k) for k in ("recipientAccountId", "awsRegion")})
    account = bodies[0].get("account") if bodies else None
    if account is None:
        print("note moto drops `account` on delivery: that the function authorises the record rests on EventBridge keeping it")
    else:
        check("the forwarded record keeps the staging account as its `account`", account == STAGING[0], account)
    for m in messages:
        sqs.delete_message(QueueUrl=tap, ReceiptHandle=m["ReceiptHandle"])

    # What the staging schedule puts on its own default bus, as Scheduler would.
    request = moto.client("events", STAGING[1], staging_region).put_events(Entries=[{
        "Source": "drs-extender.staging-account", "DetailType": "Reconciliation Requested", "Detail": "{}", "EventBusName": "default",
    }])
    messages = sqs.receive_message(QueueUrl=tap, WaitTimeSeconds=2, MaxNumberOfMessages=10).get("Messages", [])
    bodies = [json.loads(m["Body"]) for m in messages]
    check("a staging account's reconciliation request reaches the function's rule on the central bus",
          request["FailedEntryCount"] == 0 and [b["detail-type"] for b in bodies] == ["Reconciliation Requested"], bodies)
    kept = [b["account"] for b in bodies if b.get("account") is not None]
    if kept:
        check("the request's `account` is the staging account, so the function reconciles that account alone",
              kept == [STAGING[1]], kept)
    for m in messages:
        sqs.delete_message(QueueUrl=tap, ReceiptHandle=m["ReceiptHandle"])

    unrelated = moto.client("events", STAGING[0], staging_region).put_events(Entries=[{
        "Source": "aws.drs", "DetailType": "DRS Recovery Instance State Change", "Detail": "{}", "EventBusName": "default",
    }])
    messages = sqs.receive_message(QueueUrl=tap, WaitTimeSeconds=1).get("Messages", [])
    check("an event no forwarding rule matches stays in the staging account", unrelated["FailedEntryCount"] == 0 and not messages, messages)


def main():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("moto").setLevel(logging.ERROR)
    # moto warns once per resource type it does not model; deploy() lists them per stack.
    warnings.simplefilter("ignore")
    sys.stdout.flush()
    for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"]:
        os.environ.pop(key, None)
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    moto = Moto()
    try:
        central_bus_arn = target_stack(moto)
        if central_bus_arn:
            alarm_topics(moto)
            staging_stack_set(moto, central_bus_arn)
            documented_stack_set_path(moto, central_bus_arn)
            follow_registration(moto)
    finally:
        moto.stop()
    print(f"local deploy: {checks['passed']} passed, {checks['failed']} failed")
    sys.exit(1 if checks["failed"] else 0)


if __name__ == "__main__":
    main()
