"""Expands a SAM template as `sam deploy` does (aws-sam-translator, offline) and
prints or returns the resources it really creates."""
import json
import os
import sys

import boto3  # noqa: F401  (samtranslator's loader needs botocore's session)
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class OfflinePolicies(ManagedPolicyLoader):
    """The managed policies a template names, without calling IAM."""

    def __init__(self):
        pass

    def load(self):
        return {}


def expand(path):
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(path) as f:
        template = yaml_parse(f.read())
    # SAM packages code before it transforms; give it the URI `sam deploy` would.
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://bucket/drs-extender.zip"
    try:
        return transform(template, {}, OfflinePolicies())
    except InvalidDocumentException as error:
        raise SystemExit(f"{path}: {[str(e) for e in error.causes]}")


if __name__ == "__main__":
    expanded = expand(sys.argv[1] if len(sys.argv) > 1 else "template.yaml")
    if "--json" in sys.argv:
        print(json.dumps(expanded, indent=1, default=str))
    else:
        for logical_id, resource in sorted(expanded["Resources"].items()):
            print(f"{resource['Type']:45} {logical_id}")
