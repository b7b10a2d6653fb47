"""boto3 against the IAM front: documents round-trip as dicts, modeled exceptions match."""

import json
import os

import boto3

iam = boto3.client("iam", endpoint_url=os.environ["FERRULE_ENDPOINT"], region_name="us-east-1")

trust = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "iot.amazonaws.com"},
                   "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"a b": "c&d<e>+%"}}}],
}
role = iam.create_role(RoleName="boto-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
assert role["AssumeRolePolicyDocument"] == trust, role
assert role["CreateDate"].tzinfo is not None, role
assert iam.get_role(RoleName="BOTO-ROLE")["Role"]["RoleId"] == role["RoleId"]

try:
    iam.create_role(RoleName="boto-role", AssumeRolePolicyDocument=json.dumps(trust))
    raise AssertionError("duplicate role created")
except iam.exceptions.EntityAlreadyExistsException as e:
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 409, e.response
    assert e.response["Error"]["Type"] == "Sender", e.response

try:
    iam.get_role(RoleName="ghost")
    raise AssertionError("ghost role found")
except iam.exceptions.NoSuchEntityException as e:
    assert e.response["ResponseMetadata"]["RequestId"], e.response

try:
    iam.put_role_policy(RoleName="boto-role", PolicyName="p", PolicyDocument="[]")
    raise AssertionError("malformed policy accepted")
except iam.exceptions.MalformedPolicyDocumentException:
    pass

iam.put_role_policy(RoleName="boto-role", PolicyName="p", PolicyDocument=json.dumps(trust))
try:
    iam.delete_role(RoleName="boto-role")
    raise AssertionError("role with policies deleted")
except iam.exceptions.DeleteConflictException:
    pass

iam.create_user(UserName="boto-user")
key = iam.create_access_key(UserName="boto-user")["AccessKey"]
pages = list(iam.get_paginator("list_access_keys").paginate(UserName="boto-user",
                                                            PaginationConfig={"PageSize": 1}))
assert [k["AccessKeyId"] for p in pages for k in p["AccessKeyMetadata"]] == [key["AccessKeyId"]]
print("boto3 IAM ok")
