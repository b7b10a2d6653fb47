"""Differential test: the same boto3 calls against moto's server mode and against Ferrule.

Response *shapes* are compared (keys and value types, recursively, ResponseMetadata ignored;
errors by their code and HTTP status). Where Ferrule deliberately follows AWS instead of moto
(shared/reference/aws-iot.md section 13), the difference is on an explicit allow-list with the
reason, and the Ferrule side is checked against what AWS does. Every allow-listed difference
that occurred is printed; any other difference fails the test.

Environment: FERRULE_ENDPOINT, FERRULE_WORK_DIR and the AWS_* credentials for Ferrule.
moto_server is started here on a free port and stopped at the end.
"""

import datetime
import hashlib
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

WORK = os.path.join(os.environ["FERRULE_WORK_DIR"], "differential")
os.makedirs(WORK, exist_ok=True)

# (step, path) -> why Ferrule differs from moto on purpose. A path is the dotted key path of
# the difference, "*" for the whole step (one side an error, the other a success).
ALLOWED = {
    ("get_registration_code", "registrationCode"):
        "value: AWS gives 64 hex characters; moto a UUID",
    ("register_ca_certificate", "certificateArn"):
        "value: AWS names CA certificates arn:...:cacert/ID; moto uses cert/",
    ("register_ca_certificate", "certificateId"):
        "value: AWS's id is the SHA-256 of the DER; moto hashes the PEM text",
    ("register_ca_wrong_code", "*"):
        "AWS checks proof of possession (RegistrationCodeValidationException); moto ignores the verification certificate",
    ("describe_ca_certificate", "certificateDescription.autoRegistrationStatus"):
        "AWS returns autoRegistrationStatus; moto leaves it out",
    ("describe_ca_certificate", "certificateDescription.certificateMode"):
        "AWS returns certificateMode; moto leaves it out",
    ("describe_ca_certificate", "certificateDescription.customerVersion"):
        "AWS returns customerVersion; moto leaves it out",
    ("describe_ca_certificate", "certificateDescription.generationId"):
        "AWS returns generationId; moto leaves it out",
    ("describe_ca_certificate", "registrationConfig"):
        "AWS returns the registration config given at registration; moto drops it",
    ("default_status", "status"):
        "AWS registers INACTIVE when no status is given; moto stores no status",
    ("register_certificate_pending_activation", "*"):
        "AWS refuses PENDING_ACTIVATION with 406 CertificateStateException; moto accepts it",
    ("register_certificate_unknown_ca", "*"):
        "AWS requires a registered CA that signed the certificate (CertificateValidationException); moto registers it",
    ("describe_certificate", "certificateDescription.caCertificateId"):
        "AWS returns the signing CA's id; moto leaves it out",
    ("describe_certificate", "certificateDescription.certificateMode"):
        "AWS returns certificateMode; moto leaves it out",
    ("describe_certificate", "certificateDescription.customerVersion"):
        "AWS returns customerVersion; moto leaves it out",
    ("describe_certificate", "certificateDescription.generationId"):
        "AWS returns generationId; moto leaves it out",
    ("list_certificates", "certificates[].certificateMode"):
        "AWS lists certificateMode; moto leaves it out",
    ("list_certificates_by_ca", "certificates[].certificateMode"):
        "AWS lists certificateMode; moto leaves it out",
    ("update_certificate_pending_activation", "*"):
        "AWS refuses PENDING_ACTIVATION (internal status) with InvalidRequestException; moto accepts it",
    ("update_certificate_revoked_to_active", "*"):
        "AWS refuses REVOKED -> ACTIVE with CertificateStateException; moto accepts it",
    ("list_certificates_page_of_one", "nextMarker"):
        "AWS paginates (pageSize -> nextMarker); moto returns everything",
    ("list_certificates_page_of_one", "certificates[].certificateMode"):
        "AWS lists certificateMode; moto leaves it out",
    ("list_policies_page_of_one", "nextMarker"):
        "AWS paginates (pageSize -> nextMarker); moto returns everything",
    ("create_thing_different_config", "*"):
        "AWS refuses to re-create a thing with another configuration (ResourceAlreadyExistsException); moto overwrites it",
    ("create_policy_malformed", "*"):
        "AWS validates policy documents (MalformedPolicyException); moto accepts any JSON",
    ("register_ca_duplicate", "*"):
        "AWS refuses a CA that is already registered (ResourceAlreadyExistsException); moto registers it again",
    ("list_ca_certificates", "*"):
        "moto answers 500 (a moto bug with the CAs registered above); nothing to compare",
    ("delete_registration_code", "*"):
        "moto answers 500 (a moto bug); Ferrule deletes the code as AWS does",
    ("update_thing_version_conflict", "*"):
        "AWS checks expectedVersion (VersionConflictException); moto ignores it",
    ("get_policy", "creationDate"):
        "AWS returns creationDate; moto leaves it out",
    ("get_policy", "lastModifiedDate"):
        "AWS returns lastModifiedDate; moto leaves it out",
    ("get_policy", "generationId"):
        "AWS returns generationId; moto leaves it out",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto():
    port = free_port()
    proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("moto_server exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("moto_server did not start")


def client(endpoint, key, secret):
    return boto3.client("iot", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key,
                        aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}))


def openssl(*args):
    subprocess.run(["openssl", *args], cwd=WORK, check=True, capture_output=True)


def read(name):
    with open(os.path.join(WORK, name)) as f:
        return f.read()


def root_ca(name):
    openssl("genrsa", "-out", f"{name}.key", "2048")
    openssl("req", "-x509", "-new", "-nodes", "-key", f"{name}.key", "-sha256", "-days", "1024",
            "-subj", f"/CN={name}", "-out", f"{name}.pem")


def signed_cert(name, cn, ca):
    openssl("genrsa", "-out", f"{name}.key", "2048")
    openssl("req", "-new", "-key", f"{name}.key", "-subj", f"/CN={cn}", "-out", f"{name}.csr")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "500", "-sha256")


def der_id(pem):
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


DOC = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]})
DOC2 = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]})


def scenario(iot, label):
    """The calls, in order; returns [(step, response or error)]. `label` names the server for
    its own verification certificate (the registration codes differ)."""
    out = []
    ctx = {}

    def step(name, fn, **kwargs):
        try:
            r = fn(**kwargs)
        except ClientError as e:
            r = {"__error__": e.response["Error"]["Code"],
                 "__status__": e.response["ResponseMetadata"]["HTTPStatusCode"]}
        out.append((name, r))
        return r

    code = step("get_registration_code", iot.get_registration_code)["registrationCode"]
    signed_cert(f"verification-{label}", code, "rootCA")
    verification = read(f"verification-{label}.pem")
    ca = step("register_ca_certificate", iot.register_ca_certificate, caCertificate=read("rootCA.pem"),
              verificationCertificate=verification, setAsActive=True, allowAutoRegistration=True,
              registrationConfig={"templateBody": "{}", "roleArn": "arn:aws:iam::123456789012:role/JITPRole"})
    ctx["ca_id"] = ca["certificateId"]
    step("register_ca_duplicate", iot.register_ca_certificate, caCertificate=read("rootCA.pem"),
         verificationCertificate=verification)
    step("register_ca_wrong_code", iot.register_ca_certificate, caCertificate=read("caB.pem"),
         verificationCertificate=read("wrongcode.pem"))
    step("describe_ca_certificate", iot.describe_ca_certificate, certificateId=ctx["ca_id"])
    step("update_ca_certificate", iot.update_ca_certificate, certificateId=ctx["ca_id"], newStatus="ACTIVE",
         newAutoRegistrationStatus="ENABLE")
    step("list_ca_certificates", iot.list_ca_certificates)

    d1 = step("register_certificate", iot.register_certificate, certificatePem=read("device1.pem"),
              caCertificatePem=read("rootCA.pem"), status="ACTIVE")
    ctx["dev1"] = d1
    step("register_certificate_duplicate", iot.register_certificate, certificatePem=read("device1.pem"),
         caCertificatePem=read("rootCA.pem"), status="ACTIVE")
    d2 = step("register_certificate_default_status", iot.register_certificate,
              certificatePem=read("device2.pem"), caCertificatePem=read("rootCA.pem"))
    step("default_status", lambda: {"status": iot.describe_certificate(
        certificateId=d2["certificateId"])["certificateDescription"].get("status")})
    step("register_certificate_pending_activation", iot.register_certificate,
         certificatePem=read("device3.pem"), caCertificatePem=read("rootCA.pem"), status="PENDING_ACTIVATION")
    step("register_certificate_unknown_ca", iot.register_certificate, certificatePem=read("stranger.pem"),
         caCertificatePem=read("caB.pem"), status="INACTIVE")
    step("describe_certificate", iot.describe_certificate, certificateId=d1["certificateId"])
    step("list_certificates", iot.list_certificates)
    step("list_certificates_by_ca", iot.list_certificates_by_ca, caCertificateId=ctx["ca_id"])
    step("update_certificate", iot.update_certificate, certificateId=d2["certificateId"], newStatus="INACTIVE")
    step("update_certificate_pending_activation", iot.update_certificate, certificateId=d2["certificateId"],
         newStatus="PENDING_ACTIVATION")
    iot.update_certificate(certificateId=d2["certificateId"], newStatus="REVOKED")
    step("update_certificate_revoked_to_active", iot.update_certificate, certificateId=d2["certificateId"],
         newStatus="ACTIVE")
    keys = step("create_keys_and_certificate", iot.create_keys_and_certificate, setAsActive=True)
    step("create_certificate_from_csr", iot.create_certificate_from_csr,
         certificateSigningRequest=read("csr.csr"), setAsActive=False)
    step("delete_certificate_active", iot.delete_certificate, certificateId=keys["certificateId"])
    step("list_certificates_page_of_one", iot.list_certificates, pageSize=1)

    target = d1["certificateArn"]
    step("create_policy", iot.create_policy, policyName="fleet", policyDocument=DOC)
    step("create_policy_duplicate", iot.create_policy, policyName="fleet", policyDocument=DOC)
    step("create_policy_malformed", iot.create_policy, policyName="bad",
         policyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Perhaps"}]}))
    step("get_policy", iot.get_policy, policyName="fleet")
    step("create_policy_version", iot.create_policy_version, policyName="fleet", policyDocument=DOC2,
         setAsDefault=True)
    step("list_policy_versions", iot.list_policy_versions, policyName="fleet")
    step("get_policy_version", iot.get_policy_version, policyName="fleet", policyVersionId="1")
    step("set_default_policy_version", iot.set_default_policy_version, policyName="fleet", policyVersionId="1")
    step("delete_default_policy_version", iot.delete_policy_version, policyName="fleet", policyVersionId="1")
    step("create_policy_second", iot.create_policy, policyName="second", policyDocument=DOC)
    step("list_policies_page_of_one", iot.list_policies, pageSize=1)
    step("attach_policy", iot.attach_policy, policyName="fleet", target=target)
    step("attach_principal_policy", iot.attach_principal_policy, policyName="second", principal=target)
    step("list_attached_policies", iot.list_attached_policies, target=target)
    step("list_principal_policies", iot.list_principal_policies, principal=target)
    step("list_targets_for_policy", iot.list_targets_for_policy, policyName="fleet")
    step("list_policy_principals", iot.list_policy_principals, policyName="second")
    step("delete_policy_attached", iot.delete_policy, policyName="second")
    step("detach_policy", iot.detach_policy, policyName="fleet", target=target)
    step("detach_principal_policy", iot.detach_principal_policy, policyName="second", principal=target)
    step("delete_policy_version", iot.delete_policy_version, policyName="fleet", policyVersionId="2")
    step("delete_policy", iot.delete_policy, policyName="fleet")
    step("get_policy_missing", iot.get_policy, policyName="fleet")

    step("create_thing", iot.create_thing, thingName="sensor-1",
         attributePayload={"attributes": {"room": "kitchen"}})
    step("create_thing_same_config", iot.create_thing, thingName="sensor-1",
         attributePayload={"attributes": {"room": "kitchen"}})
    step("create_thing_different_config", iot.create_thing, thingName="sensor-1",
         attributePayload={"attributes": {"room": "hall"}})
    iot.create_thing(thingName="sensor-2")
    step("describe_thing", iot.describe_thing, thingName="sensor-1")
    step("update_thing", iot.update_thing, thingName="sensor-1",
         attributePayload={"attributes": {"floor": "2"}, "merge": True})
    step("update_thing_version_conflict", iot.update_thing, thingName="sensor-1", expectedVersion=99,
         attributePayload={"attributes": {"floor": "3"}, "merge": True})
    step("list_things", iot.list_things)
    step("list_things_page_of_one", iot.list_things, maxResults=1)
    step("attach_thing_principal", iot.attach_thing_principal, thingName="sensor-1", principal=target)
    step("list_thing_principals", iot.list_thing_principals, thingName="sensor-1")
    step("list_principal_things", iot.list_principal_things, principal=target)
    step("detach_thing_principal", iot.detach_thing_principal, thingName="sensor-1", principal=target)
    step("describe_thing_missing", iot.describe_thing, thingName="ghost")
    step("delete_thing", iot.delete_thing, thingName="sensor-2")
    step("describe_endpoint", iot.describe_endpoint, endpointType="iot:Data-ATS")
    step("delete_ca_certificate_active", iot.delete_ca_certificate, certificateId=ctx["ca_id"])
    step("delete_registration_code", iot.delete_registration_code)
    return out


def shape(value):
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        merged = {}
        kinds = set()
        for item in value:
            s = shape(item)
            if isinstance(s, dict):
                merged.update(s)
            else:
                kinds.add(s)
        if merged:
            return [merged]
        return [sorted(kinds)[0]] if kinds else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, datetime.datetime):
        return "timestamp"
    return type(value).__name__


def diff(a, b, path=""):
    """Paths where the shapes a (Ferrule) and b (moto) differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            p = f"{path}.{k}" if path else k
            if k not in a or k not in b:
                out.append((p, "only in Ferrule" if k in a else "only in moto"))
            else:
                out.extend(diff(a[k], b[k], p))
        return out
    if isinstance(a, list) and isinstance(b, list):
        if a and b:
            return diff(a[0], b[0], f"{path}[]")
        return []  # an empty list on one side says nothing about the item shape
    if a != b:
        return [(path, f"Ferrule {a!r}, moto {b!r}")]
    return []


def main():
    os.chdir(WORK)
    root_ca("rootCA")
    root_ca("caB")
    signed_cert("wrongcode", "not-the-registration-code", "caB")
    for name in ("device1", "device2", "device3"):
        signed_cert(name, name, "rootCA")
    root_ca("strangerCA")
    signed_cert("stranger", "stranger", "strangerCA")
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "csr.key", "-subj", "/CN=from-csr",
            "-out", "csr.csr")

    moto, moto_endpoint = start_moto()
    try:
        ferrule = scenario(client(os.environ["FERRULE_ENDPOINT"], os.environ["AWS_ACCESS_KEY_ID"],
                                  os.environ["AWS_SECRET_ACCESS_KEY"]), "ferrule")
        mocked = scenario(client(moto_endpoint, "testing", "testing"), "moto")
    finally:
        moto.terminate()
        moto.wait(timeout=10)

    allowed_hits = []
    unexpected = []
    for (name, f), (name2, m) in zip(ferrule, mocked):
        assert name == name2
        f_err, m_err = "__error__" in f, "__error__" in m
        if f_err or m_err:
            if f_err and m_err and (f["__error__"], f["__status__"]) == (m["__error__"], m["__status__"]):
                continue
            where = (name, "*")
            what = (f"Ferrule {f.get('__error__', 'success')} {f.get('__status__', '')}, "
                    f"moto {m.get('__error__', 'success')} {m.get('__status__', '')}")
            (allowed_hits if where in ALLOWED else unexpected).append((where, what))
            continue
        for path, what in diff(shape(f), shape(m)):
            where = (name, path)
            (allowed_hits if where in ALLOWED else unexpected).append((where, what))
        # Values where AWS and moto differ on purpose: Ferrule must match AWS.
        for key in ("certificateArn", "certificateId", "registrationCode"):
            if key in f and (name, key) in ALLOWED and f[key] != m.get(key):
                allowed_hits.append(((name, key), f"Ferrule {f[key]!r}, moto {m.get(key)!r}"))

    # The Ferrule side of the deliberate value differences is what AWS does.
    steps = dict(ferrule)
    code = steps["get_registration_code"]["registrationCode"]
    assert re.fullmatch(r"[0-9a-f]{64}", code), code
    ca = steps["register_ca_certificate"]
    assert ca["certificateArn"].endswith(f":cacert/{ca['certificateId']}"), ca
    assert ca["certificateId"] == der_id(read("rootCA.pem")), ca
    assert steps["describe_certificate"]["certificateDescription"]["certificateId"] == der_id(read("device1.pem"))
    assert steps["default_status"]["status"] == "INACTIVE"

    print(f"differential: {len(ferrule)} calls compared against moto_server")
    print("deliberate differences (Ferrule follows AWS, not moto):")
    seen = set()
    for where, what in allowed_hits:
        if where in seen:
            continue
        seen.add(where)
        print(f"  {where[0]} {where[1]}: {what}\n      why: {ALLOWED[where]}")
    unused = sorted(set(ALLOWED) - seen)
    if unused:
        print("allow-list entries that did not occur this run:")
        for where in unused:
            print(f"  {where[0]} {where[1]}")
    if unexpected:
        print("UNEXPECTED differences:")
        for where, what in unexpected:
            print(f"  {where[0]} {where[1]}: {what}")
        sys.exit(1)
    print("no unexpected differences")


if __name__ == "__main__":
    main()
