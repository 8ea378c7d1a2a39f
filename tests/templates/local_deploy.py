"""The stacks deployed into a local CloudFormation (moto, server mode): the expanded target
stack in the target account, the staging stack as a StackSet places it (two staging
accounts x two regions, each instance stack named StackSet-<set>-<uuid>), then a
registration record put on a staging account's default bus and followed as far as moto
routes it. What this proves and what it cannot: docs/development.md.

Run from the repository root: `python3 tests/templates/local_deploy.py`. Needs
`moto[server,cloudformation]` and boto3. Ends with `N passed, N failed`."""
import io
import json
import logging
import os
import socket
import sys
import uuid
import warnings
import zipfile

import boto3
from moto.events.models import EventBus
from moto.server import ThreadedMotoServer
from samtranslator.yaml_helper import yaml_parse

sys.path.insert(0, os.path.dirname(__file__))
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
    template = json.loads(body) if body.lstrip().startswith("{") else yaml_parse(body)
    skipped = sorted({r["Type"] for k, r in template["Resources"].items() if k not in resources and "Condition" not in r})
    kind = "staging" if name.startswith("StackSet-") else name
    if skipped and kind not in SKIPPED_SHOWN:
        SKIPPED_SHOWN.add(kind)
        print(f"note {kind} stack: moto does not model, so did not create: {', '.join(skipped)}")
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


def staging_stacks(moto, central_bus_arn):
    with open("deploy/staging-account.yaml") as f:
        body = f.read()
    parameters = {"CentralBusArn": central_bus_arn, "TargetAccountId": TARGET, "StagingRoleRegion": CENTRAL_REGION}
    placed = {}
    for account in STAGING:
        for region in REGIONS:
            name = f"StackSet-{STACK_SET}-{uuid.uuid4()}"
            deployed, error = deploy(moto, account, region, name, body, parameters)
            check(f"staging stack {account} {region} ({len(name)}-character name): CREATE_COMPLETE", deployed is not None, error)
            if deployed is not None:
                placed[(account, region)] = deployed[1]
    for account in STAGING:
        roles = moto.client("iam", account, CENTRAL_REGION).list_roles(PathPrefix="/service-role/")["Roles"]
        names = [r["RoleName"] for r in roles]
        check(f"staging {account}: one DRS staging role for both regions", names == [f"DRSStagingAccountRole_{TARGET}"], names)
    for (account, region), resources in placed.items():
        for logical_id in ["ForwardAgentRegistration", "ForwardReconciliationRequests", "ForwardDeadLetters", "ForwardRole", "ScheduleRole"]:
            check(f"staging {account} {region}: {logical_id} created",
                  resources.get(logical_id, {}).get("ResourceStatus") == "CREATE_COMPLETE", resources.get(logical_id))
    return placed


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
        "Detail": json.dumps(sample["detail"]),
        "EventBusName": "default",
    }])
    check("registration record put on the staging account's default bus", put["FailedEntryCount"] == 0, put)
    messages = sqs.receive_message(QueueUrl=tap, WaitTimeSeconds=2, MaxNumberOfMessages=10).get("Messages", [])
    bodies = [json.loads(m["Body"]) for m in messages]
    check("it reached the central bus and matched the function's rule there",
          len(bodies) == 1 and bodies[0]["detail"].get("eventName") == "CreateSourceServerForDrs", bodies)
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
            staging_stacks(moto, central_bus_arn)
            follow_registration(moto)
    finally:
        moto.stop()
    print(f"local deploy: {checks['passed']} passed, {checks['failed']} failed")
    sys.exit(1 if checks["failed"] else 0)


if __name__ == "__main__":
    main()
