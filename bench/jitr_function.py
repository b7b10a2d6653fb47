#!/usr/bin/env python3
"""Just-in-time registration with a real function: time from a device's first connection to its
first accepted publish, in --jitr-mode hold and aws.

For each mode a release build of Ferrule is started on free loopback ports with a fresh data
directory, and set up as AWS's JITR walk-through does, with the real tools: openssl makes a CA
(registered with proof of possession, active, auto-registration on), the aws CLI creates the
execution role and its policy, the function (the walk-through's Python handler calling boto3
attach_principal_policy and update_certificate), the IoT policy JustInTime and the topic rule on
$aws/events/certificates/registered/<caId>. Then DEVICES never-seen devices (ECDSA P-256, made
beforehand) publish one at a time with mosquitto_pub, presenting their certificate followed by
the CA's; a device whose connection is refused retries after RETRY_MS, as a device SDK would.
The time runs from starting the device's first mosquitto_pub to that of its first successful one
exiting (after PUBACK). The first device also pays for the function's cold start.

Prints a markdown table on stdout; progress on stderr.

Environment: DEVICES (20), RETRY_MS (100), CARGO_TARGET_DIR (./target).
"""

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
DEVICES = int(os.environ.get("DEVICES", "20"))
RETRY_S = int(os.environ.get("RETRY_MS", "100")) / 1000
REGION = "us-east-1"
ACCOUNT = "123456789012"

HANDLER = """import os
import boto3

def lambda_handler(event, context):
    region = os.environ['AWS_REGION']
    certificate_id = event['certificateId']
    arn = 'arn:aws:iot:' + region + ':' + event['awsAccountId'] + ':cert/' + certificate_id
    iot = boto3.client('iot')
    iot.attach_principal_policy(policyName='JustInTime', principal=arn)
    iot.update_certificate(certificateId=certificate_id, newStatus='ACTIVE')
"""


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def run(args, cwd=None, env=None):
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def openssl(work, *args):
    return run(["openssl", *args], cwd=work)


def make_ca(work):
    openssl(work, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    openssl(work, "req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "30",
            "-out", "ca.pem", "-subj", "/CN=bench JITR CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def make_device(work, name):
    openssl(work, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key")
    openssl(work, "req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
    openssl(work, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "30", "-sha256")
    with open(os.path.join(work, f"{name}-chain.pem"), "w") as chain:
        for part in (f"{name}.pem", "ca.pem"):
            with open(os.path.join(work, part)) as f:
                chain.write(f.read())


class Ferrule:
    def __init__(self, binary, mode, work):
        self.data = os.path.join(work, f"data-{mode}")
        self.log = open(os.path.join(work, f"ferrule-{mode}.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "--data-dir", self.data, "--mqtts-listen", "127.0.0.1:0",
             "--mqtt-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0",
             "--jitr-mode", mode, "--log", "warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        listeners = os.path.join(self.data, "listeners.toml")
        deadline = time.time() + 30
        while not os.path.exists(listeners):
            if time.time() > deadline or self.proc.poll() is not None:
                raise SystemExit("ferrule did not start")
            time.sleep(0.05)
        self.addr = {}
        with open(listeners) as f:
            for line in f:
                key, value = line.split("=", 1)
                self.addr[key.strip()] = value.strip().strip('"')
        self.env = dict(os.environ, AWS_SHARED_CREDENTIALS_FILE=os.path.join(self.data, "credentials"),
                        AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE="/dev/null")
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            self.env.pop(key, None)

    def aws(self, *args):
        out = run(["aws", *args, "--endpoint-url", f"http://{self.addr['api']}", "--output", "json"],
                  env=self.env)
        return json.loads(out) if out.strip() else None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def set_up(f, work):
    code = f.aws("iot", "get-registration-code")["registrationCode"]
    openssl(work, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "verification.key")
    openssl(work, "req", "-new", "-key", "verification.key", "-out", "verification.csr", "-subj", f"/CN={code}")
    openssl(work, "x509", "-req", "-in", "verification.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "verification.pem", "-days", "30", "-sha256")
    ca_id = f.aws("iot", "register-ca-certificate", "--ca-certificate", f"file://{work}/ca.pem",
                  "--verification-cert", f"file://{work}/verification.pem", "--set-as-active",
                  "--allow-auto-registration")["certificateId"]
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
        "Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    role = f.aws("iam", "create-role", "--role-name", "JITRRole",
                 "--assume-role-policy-document", json.dumps(trust))["Role"]["Arn"]
    f.aws("iam", "put-role-policy", "--role-name", "JITRRole", "--policy-name", "jitr",
          "--policy-document", json.dumps({"Version": "2012-10-17", "Statement": [{
              "Effect": "Allow", "Resource": "*", "Action": [
                  "iot:UpdateCertificate", "iot:CreatePolicy", "iot:AttachPrincipalPolicy"]}]}))
    zip_path = os.path.join(work, "jitr.zip")
    with zipfile.ZipFile(zip_path, "w") as z:
        z.writestr("lambda_function.py", HANDLER)
    f.aws("lambda", "create-function", "--function-name", "jitr", "--runtime", "python3.11",
          "--handler", "lambda_function.lambda_handler", "--role", role,
          "--zip-file", f"fileb://{zip_path}", "--timeout", "10")
    f.aws("iot", "create-policy", "--policy-name", "JustInTime", "--policy-document", json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": ["iot:Connect", "iot:Publish", "iot:UpdateThingShadow"],
            "Resource": f"arn:aws:iot:{REGION}:{ACCOUNT}:*"}]}))
    f.aws("iot", "create-topic-rule", "--rule-name", "JITR", "--topic-rule-payload", json.dumps({
        "sql": f"SELECT * FROM '$aws/events/certificates/registered/{ca_id}'",
        "actions": [{"lambda": {"functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:jitr"}}]}))


def first_publish(f, work, name):
    host, port = f.addr["mqtts"].rsplit(":", 1)
    args = ["mosquitto_pub", "--cafile", os.path.join(f.data, "server-ca.pem"), "-h", "localhost",
            "-p", port, "--cert", os.path.join(work, f"{name}-chain.pem"),
            "--key", os.path.join(work, f"{name}.key"), "-i", name, "-q", "1",
            "-t", f"devices/{name}", "-m", "hello"]
    started = time.monotonic()
    connections = 0
    while True:
        connections += 1
        out = subprocess.run(args, capture_output=True, text=True, timeout=60)
        if out.returncode == 0:
            return time.monotonic() - started, connections
        if time.monotonic() - started > 60:
            raise SystemExit(f"{name} was not accepted within 60 s: {out.stderr.strip()}")
        time.sleep(RETRY_S)


def main():
    for tool in ("openssl", "aws", "mosquitto_pub"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed")
    log("building ferrule (release)...")
    subprocess.run(["cargo", "build", "--release", "-p", "ferrule"], cwd=ROOT, check=True,
                   stdout=sys.stderr)
    binary = os.path.join(TARGET, "release", "ferrule")
    rows = []
    for mode in ("hold", "aws"):
        work = tempfile.mkdtemp(prefix=f"jitr-function-{mode}-")
        try:
            make_ca(work)
            log(f"{mode}: making {DEVICES} device certificates...")
            names = [f"dev{i}" for i in range(DEVICES)]
            for name in names:
                make_device(work, name)
            f = Ferrule(binary, mode, work)
            try:
                set_up(f, work)
                times, conns = [], []
                for name in names:
                    took, n = first_publish(f, work, name)
                    times.append(took * 1000)
                    conns.append(n)
                    log(f"{mode}: {name} {took * 1000:.0f} ms, {n} connection(s)")
            finally:
                f.stop()
        finally:
            shutil.rmtree(work, ignore_errors=True)
        warm = sorted(times[1:]) or times
        p95 = warm[min(len(warm) - 1, int(round(0.95 * (len(warm) - 1))))]
        rows.append(f"| {mode} | {DEVICES} | {times[0]:.0f} | {statistics.median(warm):.0f} | {p95:.0f} | "
                    f"{max(warm):.0f} | {statistics.mean(conns):.1f} |")
    print(f"JITR with a function: first connection -> first accepted publish (ms), {DEVICES} new "
          f"ECDSA P-256 devices one at a time per mode; retry pause {RETRY_S * 1000:.0f} ms; "
          f"{os.cpu_count()} cores.")
    print()
    print("| --jitr-mode | devices | first device (cold function) | p50 (warm) | p95 | max | connections per device |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
