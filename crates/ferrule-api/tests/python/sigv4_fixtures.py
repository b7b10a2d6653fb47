"""Prints requests signed by botocore itself, as JSON, for the Rust SigV4 verifier's tests.

Two sources: real boto3 `iot` client calls captured just before they are sent (so the path,
query, headers and body are exactly what botocore puts on the wire), and botocore's signers
applied directly to hand-made requests (presigned query auth, odd paths and headers).
"""

import json
import sys
from urllib.parse import urlsplit

import boto3
import botocore.auth
import botocore.credentials
from botocore.awsrequest import AWSRequest

ACCESS_KEY = "AKIDFERRULETEST00001"
SECRET_KEY = "ferrule/secret+key/for-tests-0123456789"
ENDPOINT = "http://127.0.0.1:9000"


class Captured(Exception):
    pass


def emit(name, method, url, headers, body):
    parts = urlsplit(url)
    if isinstance(body, str):
        body = body.encode()
    return {
        "name": name,
        "method": method,
        "path": parts.path or "/",
        "query": parts.query or None,
        "headers": [[k, v if isinstance(v, str) else v.decode("latin-1")] for k, v in headers.items()],
        "body_hex": (body or b"").hex(),
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
    }


def client_fixtures():
    out = []
    client = boto3.client(
        "iot",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    current = {}

    def capture(request, **_):
        headers = dict(request.headers.items())
        # urllib3 adds Host from the URL when sending; botocore signs it from the same URL.
        headers.setdefault("Host", urlsplit(request.url).netloc)
        out.append(emit(current["name"], request.method, request.url, headers, request.body))
        raise Captured()

    client.meta.events.register("before-send.iot.*", capture)
    calls = [
        ("register_ca_certificate", dict(caCertificate="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                                         verificationCertificate="x", setAsActive=True, allowAutoRegistration=True)),
        ("list_attached_policies", dict(target="arn:aws:iot:us-east-1:123456789012:cert/" + "ab" * 32)),
        ("list_things", dict(maxResults=10, nextToken="a+b/c=", attributeName="colour", attributeValue="dark blue")),
        ("describe_thing", dict(thingName="my:thing_x")),
        ("update_certificate", dict(certificateId="cd" * 32, newStatus="ACTIVE")),
        ("attach_principal_policy", dict(policyName="p.1@x", principal="arn:aws:iot:us-east-1:123456789012:cert/ef")),
        ("create_policy", dict(policyName="pol", policyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))),
        ("describe_endpoint", dict(endpointType="iot:Data-ATS")),
        ("get_registration_code", dict()),
    ]
    for op, kwargs in calls:
        current["name"] = op
        try:
            getattr(client, op)(**kwargs)
        except Captured:
            pass
    return out


def signer_fixtures():
    out = []
    creds = botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY)

    def header_signed(name, method, url, headers, body):
        req = AWSRequest(method=method, url=url, headers=headers, data=body)
        req.headers["Host"] = urlsplit(url).netloc
        botocore.auth.SigV4Auth(creds, "iot", "us-east-1").add_auth(req)
        out.append(emit(name, method, req.url, dict(req.headers.items()), body))

    header_signed("dot-segments-and-double-slash", "GET", ENDPOINT + "/things//a/./b/../c", {}, b"")
    header_signed(
        "spaces-in-header", "POST", ENDPOINT + "/tags",
        {"Content-Type": "application/json", "X-Custom": "  a   b  c "}, b'{"resourceArn":"x","tags":[]}',
    )
    header_signed("utf8-path", "GET", ENDPOINT + "/things/%C3%A9t%C3%A9", {}, b"")

    req = AWSRequest(method="GET", url=ENDPOINT + "/cacertificates?pageSize=1&marker=abc%3D", headers={}, data=b"")
    req.headers["Host"] = urlsplit(ENDPOINT).netloc
    botocore.auth.SigV4QueryAuth(creds, "iot", "us-east-1", expires=300).add_auth(req)
    headers = {k: v for k, v in req.headers.items() if k.lower() != "authorization"}
    out.append(emit("presigned", "GET", req.url, headers, b""))

    lambda_req = AWSRequest(method="GET", url=ENDPOINT + "/2015-03-31/functions/", headers={}, data=b"")
    lambda_req.headers["Host"] = urlsplit(ENDPOINT).netloc
    botocore.auth.SigV4Auth(creds, "lambda", "eu-west-1").add_auth(lambda_req)
    out.append(emit("other-service-and-region", "GET", lambda_req.url, dict(lambda_req.headers.items()), b""))
    return out


if __name__ == "__main__":
    json.dump(client_fixtures() + signer_fixtures(), sys.stdout, indent=1)
