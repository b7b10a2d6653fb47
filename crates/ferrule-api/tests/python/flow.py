"""The whole control-plane flow with boto3, every refusal included, against one Ferrule.

Environment: FERRULE_ENDPOINT (http://host:port), FERRULE_WORK_DIR (scratch directory) and the
AWS_* credentials. Certificates are made with the openssl command line, as operators make them.
Each check raises on failure; the script prints how many checks passed.
"""

import datetime
import json
import os
import subprocess
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["FERRULE_ENDPOINT"]
WORK = os.path.join(os.environ["FERRULE_WORK_DIR"], "boto3-flow")
os.makedirs(WORK, exist_ok=True)
ACCOUNT = "123456789012"
ARN = f"arn:aws:iot:us-east-1:{ACCOUNT}"

iot = boto3.client(
    "iot",
    endpoint_url=ENDPOINT,
    region_name="us-east-1",
    config=Config(retries={"max_attempts": 1, "mode": "standard"}),
)
checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise AssertionError(what)
    checks += 1


def eq(actual, expected, what=""):
    check(actual == expected, f"{what}: expected {expected!r}, got {actual!r}")


def fails(exception, http_status, fn, /, **kwargs):
    """Calls fn, which must raise the modeled `exception` with HTTP `status`."""
    global checks
    try:
        fn(**kwargs)
    except exception as e:
        eq(e.response["ResponseMetadata"]["HTTPStatusCode"], http_status, f"{fn.__name__} status")
        check(e.response["Error"]["Message"], f"{fn.__name__}: empty message")
        check(e.response["ResponseMetadata"].get("RequestId"), f"{fn.__name__}: no request id")
        return e.response
    except ClientError as e:
        raise AssertionError(f"{fn.__name__}({kwargs}) raised {e.response['Error']} instead of {exception.__name__}")
    raise AssertionError(f"{fn.__name__}({kwargs}) succeeded but should raise {exception.__name__}")


def openssl(*args):
    subprocess.run(["openssl", *args], cwd=WORK, check=True, capture_output=True)


def path(name):
    return os.path.join(WORK, name)


def read(name):
    with open(path(name)) as f:
        return f.read()


def root_ca(name):
    openssl("genrsa", "-out", f"{name}.key", "2048")
    openssl("req", "-x509", "-new", "-nodes", "-key", f"{name}.key", "-sha256", "-days", "1024",
            "-subj", f"/CN={name}", "-out", f"{name}.pem")
    return read(f"{name}.pem")


def signed_cert(name, cn, ca):
    openssl("genrsa", "-out", f"{name}.key", "2048")
    openssl("req", "-new", "-key", f"{name}.key", "-subj", f"/CN={cn}", "-out", f"{name}.csr")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "500", "-sha256")
    return read(f"{name}.pem")


def self_signed(name, cn):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-subj", f"/CN={cn}", "-days", "30",
            "-addext", "basicConstraints=critical,CA:FALSE", "-out", f"{name}.pem")
    return read(f"{name}.pem")


def cert_id(name):
    out = subprocess.run(["openssl", "x509", "-in", f"{name}.pem", "-noout", "-fingerprint", "-sha256"],
                         cwd=WORK, check=True, capture_output=True, text=True).stdout
    return out.strip().split("=", 1)[1].replace(":", "").lower()


def paginate(op, key, **kwargs):
    return [item for page in iot.get_paginator(op).paginate(**kwargs) for item in page[key]]


def policy_doc(action):
    return json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]})


X = iot.exceptions


def ca_registration():
    code = iot.get_registration_code()["registrationCode"]
    eq(len(code), 64, "registration code length")
    eq(iot.get_registration_code()["registrationCode"], code, "stable registration code")

    ca_pem = root_ca("rootCA")
    verification = signed_cert("verification", code, "rootCA")
    fails(X.CertificateValidationException, 400, iot.register_ca_certificate,
          caCertificate="-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n",
          verificationCertificate=verification)
    fails(X.RegistrationCodeValidationException, 400, iot.register_ca_certificate,
          caCertificate=ca_pem, verificationCertificate=signed_cert("wrongcn", "0" * 64, "rootCA"))
    root_ca("otherCA")
    fails(X.CertificateValidationException, 400, iot.register_ca_certificate,
          caCertificate=ca_pem, verificationCertificate=signed_cert("forged", code, "otherCA"))
    fails(X.CertificateValidationException, 400, iot.register_ca_certificate,
          caCertificate=read("wrongcn.pem"), verificationCertificate=verification)
    fails(X.InvalidRequestException, 400, iot.register_ca_certificate, caCertificate=ca_pem)

    role = f"arn:aws:iam::{ACCOUNT}:role/JITPRole"
    r = iot.register_ca_certificate(
        caCertificate=ca_pem, verificationCertificate=verification, setAsActive=True,
        allowAutoRegistration=True, registrationConfig={"templateBody": "{}", "roleArn": role},
        tags=[{"Key": "fleet", "Value": "a"}])
    ca_id = r["certificateId"]
    eq(ca_id, cert_id("rootCA"), "CA id is the DER's SHA-256")
    eq(r["certificateArn"], f"{ARN}:cacert/{ca_id}", "CA ARN")
    dup = fails(X.ResourceAlreadyExistsException, 409, iot.register_ca_certificate,
                caCertificate=ca_pem, verificationCertificate=verification)
    eq(dup.get("resourceId"), ca_id, "resourceId of the duplicate")
    eq(dup.get("resourceArn"), r["certificateArn"], "resourceArn of the duplicate")

    d = iot.describe_ca_certificate(certificateId=ca_id)
    desc = d["certificateDescription"]
    eq((desc["status"], desc["autoRegistrationStatus"], desc["certificateMode"]),
       ("ACTIVE", "ENABLE", "DEFAULT"), "CA description")
    check(isinstance(desc["creationDate"], datetime.datetime), "creationDate parses as a timestamp")
    check(desc["validity"]["notAfter"] > desc["validity"]["notBefore"], "validity")
    eq(d["registrationConfig"]["roleArn"], role, "registrationConfig")
    eq(iot.list_tags_for_resource(resourceArn=r["certificateArn"])["tags"], [{"Key": "fleet", "Value": "a"}], "CA tags")

    iot.update_ca_certificate(certificateId=ca_id, newStatus="INACTIVE", newAutoRegistrationStatus="DISABLE",
                              removeAutoRegistration=True)
    d = iot.describe_ca_certificate(certificateId=ca_id)
    eq((d["certificateDescription"]["status"], d["certificateDescription"]["autoRegistrationStatus"]),
       ("INACTIVE", "DISABLE"), "CA after update")
    check("registrationConfig" not in d, "registrationConfig removed")
    iot.update_ca_certificate(certificateId=ca_id, newStatus="ACTIVE")

    # An SNI_ONLY CA needs no verification certificate, and must not get one.
    sni_pem = read("otherCA.pem")
    fails(X.InvalidRequestException, 400, iot.register_ca_certificate, caCertificate=sni_pem,
          verificationCertificate=verification, certificateMode="SNI_ONLY")
    sni = iot.register_ca_certificate(caCertificate=sni_pem, certificateMode="SNI_ONLY")
    eq(iot.describe_ca_certificate(certificateId=sni["certificateId"])["certificateDescription"]["certificateMode"],
       "SNI_ONLY", "SNI_ONLY mode")
    listed = paginate("list_ca_certificates", "certificates", PaginationConfig={"PageSize": 1})
    eq(sorted(c["certificateId"] for c in listed), sorted([ca_id, sni["certificateId"]]), "CA pagination")
    return ca_id, sni["certificateId"]


def device_certificates(ca_id):
    ca_pem = read("rootCA.pem")
    d1 = iot.register_certificate(certificatePem=signed_cert("device1", "device-1", "rootCA"))
    eq(d1["certificateId"], cert_id("device1"), "device id")
    d2 = iot.register_certificate(certificatePem=signed_cert("device2", "device-2", "rootCA"),
                                  caCertificatePem=ca_pem, setAsActive=True)
    fails(X.CertificateStateException, 406, iot.register_certificate, certificatePem=read("device1.pem"),
          status="PENDING_ACTIVATION")
    dup = fails(X.ResourceAlreadyExistsException, 409, iot.register_certificate, certificatePem=read("device1.pem"))
    eq(dup.get("resourceId"), d1["certificateId"], "resourceId of the duplicate certificate")
    fails(X.CertificateValidationException, 400, iot.register_certificate,
          certificatePem=signed_cert("stranger", "stranger", "otherCA"), caCertificatePem=ca_pem)
    fails(X.CertificateValidationException, 400, iot.register_certificate, certificatePem="garbage")

    desc = iot.describe_certificate(certificateId=d1["certificateId"])["certificateDescription"]
    eq((desc["status"], desc["caCertificateId"], desc["certificateMode"]), ("INACTIVE", ca_id, "DEFAULT"),
       "device description")
    eq(iot.describe_certificate(certificateId=d2["certificateId"])["certificateDescription"]["status"], "ACTIVE",
       "setAsActive")
    by_ca = paginate("list_certificates_by_ca", "certificates", caCertificateId=ca_id,
                     PaginationConfig={"PageSize": 1})
    eq(sorted(c["certificateId"] for c in by_ca), sorted([d1["certificateId"], d2["certificateId"]]), "by CA")

    # Status rules.
    iot.update_certificate(certificateId=d1["certificateId"], newStatus="INACTIVE")
    for internal in ("PENDING_ACTIVATION", "PENDING_TRANSFER"):
        fails(X.InvalidRequestException, 400, iot.update_certificate, certificateId=d1["certificateId"],
              newStatus=internal)
    iot.update_certificate(certificateId=d1["certificateId"], newStatus="REVOKED")
    fails(X.CertificateStateException, 406, iot.update_certificate, certificateId=d1["certificateId"],
          newStatus="ACTIVE")
    fails(X.ResourceNotFoundException, 404, iot.update_certificate, certificateId="f" * 64, newStatus="ACTIVE")

    solo = iot.register_certificate_without_ca(certificatePem=self_signed("solo", "solo"), status="ACTIVE")
    solo_desc = iot.describe_certificate(certificateId=solo["certificateId"])["certificateDescription"]
    eq((solo_desc["certificateMode"], solo_desc["status"]), ("SNI_ONLY", "ACTIVE"), "without CA")
    check("caCertificateId" not in solo_desc, "no caCertificateId without a CA")

    keys = iot.create_keys_and_certificate(setAsActive=True)
    check(keys["keyPair"]["PrivateKey"].startswith("-----BEGIN RSA PRIVATE KEY-----"), "PrivateKey")
    check(keys["keyPair"]["PublicKey"].startswith("-----BEGIN PUBLIC KEY-----"), "PublicKey")
    with open(path("keys.pem"), "w") as f:
        f.write(keys["certificatePem"])
    eq(keys["certificateId"], cert_id("keys"), "issued certificate id")

    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "csr.key", "-subj", "/CN=from-csr",
            "-out", "device.csr")
    from_csr = iot.create_certificate_from_csr(certificateSigningRequest=read("device.csr"))
    eq(iot.describe_certificate(certificateId=from_csr["certificateId"])["certificateDescription"]["status"],
       "INACTIVE", "from CSR default status")
    fails(X.InvalidRequestException, 400, iot.create_certificate_from_csr, certificateSigningRequest="nope")

    all_certs = paginate("list_certificates", "certificates", PaginationConfig={"PageSize": 1})
    eq(len(all_certs), 5, "certificate pagination")
    ids = [c["certificateId"] for c in all_certs]
    eq(len(set(ids)), 5, "no repeats across pages")
    desc_order = [c["certificateId"] for c in iot.list_certificates(ascendingOrder=False)["certificates"]]
    eq(desc_order, list(reversed(ids)), "descending order")
    return {"device1": d1, "device2": d2, "solo": solo, "keys": keys, "csr": from_csr}


def policies(certs):
    target = certs["device2"]["certificateArn"]
    created = iot.create_policy(policyName="fleet", policyDocument=policy_doc("iot:*"),
                                tags=[{"Key": "k", "Value": "v"}])
    eq((created["policyVersionId"], created["policyArn"]), ("1", f"{ARN}:policy/fleet"), "create policy")
    dup = fails(X.ResourceAlreadyExistsException, 409, iot.create_policy, policyName="fleet",
                policyDocument=policy_doc("iot:*"))
    eq(dup.get("resourceArn"), created["policyArn"], "policy resourceArn")
    for bad in ["{", "[]", json.dumps({"Statement": []}),
                json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}),
                json.dumps({"Version": "2012-10-17", "Statement": [], "Extra": 1})]:
        fails(X.MalformedPolicyException, 400, iot.create_policy, policyName="bad", policyDocument=bad)

    v = iot.create_policy_version(policyName="fleet", policyDocument=policy_doc("iot:Connect"), setAsDefault=True)
    eq((v["policyVersionId"], v["isDefaultVersion"]), ("2", True), "new default version")
    for action in ("iot:Publish", "iot:Subscribe", "iot:Receive"):
        iot.create_policy_version(policyName="fleet", policyDocument=policy_doc(action))
    fails(X.VersionsLimitExceededException, 409, iot.create_policy_version, policyName="fleet",
          policyDocument=policy_doc("iot:*"))
    versions = iot.list_policy_versions(policyName="fleet")["policyVersions"]
    eq([x["versionId"] for x in versions], ["1", "2", "3", "4", "5"], "versions")
    eq([x["versionId"] for x in versions if x["isDefaultVersion"]], ["2"], "one default")
    got = iot.get_policy(policyName="fleet")
    eq((got["defaultVersionId"], got["policyDocument"]), ("2", policy_doc("iot:Connect")), "get policy")
    iot.set_default_policy_version(policyName="fleet", policyVersionId="3")
    gv = iot.get_policy_version(policyName="fleet", policyVersionId="3")
    eq((gv["isDefaultVersion"], gv["policyDocument"], gv["policyName"]), (True, policy_doc("iot:Publish"), "fleet"),
       "get policy version")
    fails(X.InvalidRequestException, 400, iot.delete_policy_version, policyName="fleet", policyVersionId="3")
    fails(X.ResourceNotFoundException, 404, iot.get_policy_version, policyName="fleet", policyVersionId="9")

    iot.create_policy(policyName="second", policyDocument=policy_doc("iot:Publish"))
    iot.attach_policy(policyName="fleet", target=target)
    iot.attach_policy(policyName="fleet", target=target)  # again: no change
    iot.attach_principal_policy(policyName="second", principal=target)
    eq([p["policyName"] for p in iot.list_attached_policies(target=target)["policies"]], ["fleet", "second"],
       "attached policies")
    eq([p["policyName"] for p in paginate("list_attached_policies", "policies", target=target,
                                          PaginationConfig={"PageSize": 1})], ["fleet", "second"],
       "attached policies, paginated")
    eq(len(iot.list_principal_policies(principal=target)["policies"]), 2, "principal policies")
    eq(iot.list_targets_for_policy(policyName="fleet")["targets"], [target], "targets")
    eq(iot.list_policy_principals(policyName="second")["principals"], [target], "principals")
    infos = [{"actionType": "PUBLISH", "resources": [f"{ARN}:topic/a/b"]},
             {"actionType": "CONNECT", "resources": [f"{ARN}:client/c1"]}]
    results = iot.test_authorization(principal=target, authInfos=infos, clientId="c1")["authResults"]
    eq([(r["authInfo"], r["authDecision"]) for r in results], list(zip(infos, ["ALLOWED", "IMPLICIT_DENY"])),
       "test authorization")
    eq([p["policyName"] for p in results[0]["allowed"]["policies"]], ["fleet", "second"], "allowing policies")
    eq([p["policyArn"] for p in results[1]["denied"]["implicitDeny"]["policies"]],
       [f"{ARN}:policy/fleet", f"{ARN}:policy/second"], "implicitly denying policies")
    results = iot.test_authorization(principal=target, authInfos=infos[:1], policyNamesToSkip=["fleet", "second"])
    eq(results["authResults"][0]["authDecision"], "IMPLICIT_DENY", "all policies skipped")
    fails(X.ResourceNotFoundException, 404, iot.test_authorization, principal=f"{ARN}:cert/{'e' * 64}",
          authInfos=infos)
    fails(X.InvalidRequestException, 400, iot.test_authorization, principal="us-east-1:cognito-id", authInfos=infos)
    fails(X.ResourceNotFoundException, 404, iot.attach_policy, policyName="fleet", target=f"{ARN}:cert/{'e' * 64}")
    fails(X.ResourceNotFoundException, 404, iot.attach_policy, policyName="nope", target=target)
    fails(X.DeleteConflictException, 409, iot.delete_policy, policyName="second")
    iot.detach_policy(policyName="fleet", target=target)
    iot.detach_principal_policy(policyName="second", principal=target)
    eq(iot.list_attached_policies(target=target)["policies"], [], "all detached")
    fails(X.DeleteConflictException, 409, iot.delete_policy, policyName="fleet")  # has versions
    for version in ("1", "2", "4", "5"):
        iot.delete_policy_version(policyName="fleet", policyVersionId=version)
    iot.delete_policy(policyName="fleet")
    fails(X.ResourceNotFoundException, 404, iot.get_policy, policyName="fleet")
    eq([p["policyName"] for p in paginate("list_policies", "policies", PaginationConfig={"PageSize": 1})],
       ["second"], "policies left")


def things(certs):
    principal = certs["solo"]["certificateArn"]
    t = iot.create_thing(thingName="sensor-1", attributePayload={"attributes": {"room": "kitchen"}})
    eq(t["thingArn"], f"{ARN}:thing/sensor-1", "thing ARN")
    again = iot.create_thing(thingName="sensor-1", attributePayload={"attributes": {"room": "kitchen"}})
    eq(again["thingId"], t["thingId"], "idempotent create")
    dup = fails(X.ResourceAlreadyExistsException, 409, iot.create_thing, thingName="sensor-1",
                attributePayload={"attributes": {"room": "hall"}})
    eq(dup.get("resourceArn"), t["thingArn"], "thing resourceArn")
    fails(X.InvalidRequestException, 400, iot.create_thing, thingName="too-many",
          attributePayload={"attributes": {"a": "1", "b": "2", "c": "3", "d": "4"}})
    d = iot.describe_thing(thingName="sensor-1")
    eq((d["defaultClientId"], d["thingId"], d["version"], d["attributes"]),
       ("sensor-1", t["thingId"], 1, {"room": "kitchen"}), "describe thing")
    iot.update_thing(thingName="sensor-1", attributePayload={"attributes": {"floor": "2"}, "merge": True},
                     expectedVersion=1)
    fails(X.VersionConflictException, 409, iot.update_thing, thingName="sensor-1", expectedVersion=1,
          attributePayload={"attributes": {"x": "y"}})
    iot.update_thing(thingName="sensor-1", attributePayload={"attributes": {"room": ""}, "merge": True})
    eq(iot.describe_thing(thingName="sensor-1")["attributes"], {"floor": "2"}, "merge removes empty values")
    iot.update_thing(thingName="sensor-1", thingTypeName="sensor", attributePayload={"attributes": {"room": "hall"}})
    d = iot.describe_thing(thingName="sensor-1")
    eq((d["thingTypeName"], d["attributes"], d["version"]), ("sensor", {"room": "hall"}, 4), "replace attributes")
    for i in range(3):
        iot.create_thing(thingName=f"t{i}", attributePayload={"attributes": {"room": "hall" if i else "attic"}})
    eq([x["thingName"] for x in paginate("list_things", "things", PaginationConfig={"PageSize": 1})],
       ["sensor-1", "t0", "t1", "t2"], "things pagination")
    eq([x["thingName"] for x in iot.list_things(attributeName="room", attributeValue="hall")["things"]],
       ["sensor-1", "t1", "t2"], "attribute filter")
    eq([x["thingName"] for x in iot.list_things(thingTypeName="sensor")["things"]], ["sensor-1"], "type filter")

    iot.attach_thing_principal(thingName="sensor-1", principal=principal)
    iot.attach_thing_principal(thingName="t0", principal=principal)
    eq(iot.list_thing_principals(thingName="sensor-1")["principals"], [principal], "thing principals")
    eq(paginate("list_principal_things", "things", principal=principal, PaginationConfig={"PageSize": 1}),
       ["sensor-1", "t0"], "principal things")
    fails(X.InvalidRequestException, 400, iot.attach_thing_principal, thingName="t1", principal=principal,
          thingPrincipalType="EXCLUSIVE_THING")
    fails(X.ResourceNotFoundException, 404, iot.attach_thing_principal, thingName="ghost", principal=principal)
    fails(X.ResourceNotFoundException, 404, iot.describe_thing, thingName="ghost")
    iot.update_certificate(certificateId=certs["solo"]["certificateId"], newStatus="INACTIVE")
    fails(X.DeleteConflictException, 409, iot.delete_certificate, certificateId=certs["solo"]["certificateId"],
          forceDelete=True)
    iot.detach_thing_principal(thingName="t0", principal=principal)
    eq(iot.list_principal_things(principal=principal)["things"], ["sensor-1"], "after detach")
    fails(X.VersionConflictException, 409, iot.delete_thing, thingName="t0", expectedVersion=7)
    iot.delete_thing(thingName="t0", expectedVersion=1)
    fails(X.ResourceNotFoundException, 404, iot.describe_thing, thingName="t0")

    eq(iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"], "localhost", "endpoint")
    arn = t["thingArn"]
    iot.tag_resource(resourceArn=arn, tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    iot.untag_resource(resourceArn=arn, tagKeys=["a"])
    eq(iot.list_tags_for_resource(resourceArn=arn)["tags"], [{"Key": "b", "Value": "2"}], "tags")


def rules():
    payload = {
        "sql": "SELECT * FROM 'sensors/+/temp' WHERE temp > 30",
        "actions": [{"republish": {"roleArn": f"arn:aws:iam::{ACCOUNT}:role/r", "topic": "alerts", "qos": 0}}],
        "ruleDisabled": False,
    }
    iot.create_topic_rule(ruleName="hot", topicRulePayload=payload, tags="team=iot")
    got = iot.get_topic_rule(ruleName="hot")
    eq(got["ruleArn"], f"{ARN}:rule/hot", "rule ARN")
    rule = got["rule"]
    eq((rule["sql"], rule["actions"], rule["ruleDisabled"], rule["awsIotSqlVersion"]),
       (payload["sql"], payload["actions"], False, "2015-10-08"), "get rule")
    check(isinstance(rule["createdAt"], datetime.datetime), f"createdAt parsed: {rule['createdAt']!r}")
    eq(iot.list_tags_for_resource(resourceArn=got["ruleArn"])["tags"], [{"Key": "team", "Value": "iot"}],
       "rule tags")
    dup = fails(X.ResourceAlreadyExistsException, 409, iot.create_topic_rule, ruleName="hot",
                topicRulePayload=payload)
    eq(dup.get("resourceArn"), got["ruleArn"], "rule resourceArn")
    fails(X.SqlParseException, 400, iot.create_topic_rule, ruleName="bad",
          topicRulePayload={"sql": "SELECT * FROM", "actions": []})
    fails(X.InvalidRequestException, 400, iot.create_topic_rule, ruleName="many",
          topicRulePayload={"sql": "SELECT * FROM 'a'", "actions": payload["actions"] * 11})
    for i in range(3):
        iot.create_topic_rule(ruleName=f"r{i}", topicRulePayload={"sql": f"SELECT * FROM 'r/{i}'", "actions": [],
                                                                 "ruleDisabled": i == 1})
    eq([r["ruleName"] for r in paginate("list_topic_rules", "rules", PaginationConfig={"PageSize": 1})],
       ["hot", "r0", "r1", "r2"], "rules pagination")
    eq([(r["ruleName"], r["topicPattern"]) for r in iot.list_topic_rules(topic="sensors/+/temp")["rules"]],
       [("hot", "sensors/+/temp")], "topic filter")
    eq([r["ruleName"] for r in iot.list_topic_rules(ruleDisabled=True)["rules"]], ["r1"], "disabled filter")
    iot.replace_topic_rule(ruleName="hot", topicRulePayload={**payload, "sql": "SELECT * FROM 'other'"})
    eq(iot.get_topic_rule(ruleName="hot")["rule"]["createdAt"], rule["createdAt"], "replace keeps createdAt")
    iot.disable_topic_rule(ruleName="hot")
    eq(iot.get_topic_rule(ruleName="hot")["rule"]["ruleDisabled"], True, "disabled")
    iot.enable_topic_rule(ruleName="hot")
    eq(iot.get_topic_rule(ruleName="hot")["rule"]["ruleDisabled"], False, "enabled")
    for name in ("hot", "r0", "r1", "r2"):
        iot.delete_topic_rule(ruleName=name)
    for op in (iot.get_topic_rule, iot.delete_topic_rule, iot.enable_topic_rule, iot.disable_topic_rule):
        fails(X.UnauthorizedException, 401, op, ruleName="hot")
    eq(iot.list_topic_rules()["rules"], [], "no rules left")


def teardown(ca_id, sni_id, certs):
    fails(X.CertificateStateException, 406, iot.delete_ca_certificate, certificateId=ca_id)
    iot.update_ca_certificate(certificateId=ca_id, newStatus="INACTIVE")
    fails(X.CertificateStateException, 406, iot.delete_ca_certificate, certificateId=ca_id)
    fails(X.CertificateStateException, 406, iot.delete_certificate, certificateId=certs["device2"]["certificateId"])
    iot.update_certificate(certificateId=certs["device2"]["certificateId"], newStatus="INACTIVE")
    for name in ("device1", "device2"):
        iot.delete_certificate(certificateId=certs[name]["certificateId"])
    iot.delete_ca_certificate(certificateId=ca_id)
    iot.delete_ca_certificate(certificateId=sni_id)
    fails(X.ResourceNotFoundException, 404, iot.describe_ca_certificate, certificateId=ca_id)
    eq(iot.list_ca_certificates()["certificates"], [], "no CAs left")
    iot.delete_registration_code()
    fails(X.ResourceNotFoundException, 404, iot.delete_registration_code)


def main():
    ca_id, sni_id = ca_registration()
    certs = device_certificates(ca_id)
    policies(certs)
    things(certs)
    rules()
    teardown(ca_id, sni_id, certs)
    print(f"boto3 flow: {checks} checks passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED after {checks} checks: {e}", file=sys.stderr)
        raise
