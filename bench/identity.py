#!/usr/bin/env python3
"""Device identities for bench/identity.sh: certificates, their registration, and the operator
that activates just-in-time registered certificates.

Subcommands:
  pki DIR        CAs and device certificates (ECDSA P-256 and RSA-2048) into DIR.
  provision DIR  Registers DIR's CAs and device certificates with the control plane at
                 --endpoint (ACTIVE, with an allow-all policy), as an operator would with
                 `aws iot register-ca-certificate` and `aws iot register-certificate`.
  operator       The JITR operator ferrule-bench drives: prints `ready`, then for each
                 certificate id read from stdin calls UpdateCertificate ACTIVE and AttachPolicy
                 and prints `ok ID UPDATE_US ATTACH_US` (or `error ID MESSAGE`); --workers
                 threads, each with its own client, take requests as they come.
                 With --action revoke it calls UpdateCertificate REVOKED instead and prints
                 `ok ID UPDATE_US 0` (bench/revocation.sh).

The control plane is reached with boto3 (one persistent client, SigV4), with credentials from
AWS_SHARED_CREDENTIALS_FILE and AWS_DEFAULT_REGION. Keys and certificates are made with the
`cryptography` package (OpenSSL underneath); nothing leaves the machine.
"""

import argparse
import datetime
import os
import sys
import time

ALLOW_ALL = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}'
ACCOUNT = "123456789012"


# --- pki -----------------------------------------------------------------------------------


def _crypto():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    return x509, hashes, serialization, ec, rsa, ExtendedKeyUsageOID, NameOID


def new_key(kind):
    _, _, _, ec, rsa, _, _ = _crypto()
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_cert(subject_cn, key, issuer_cert=None, issuer_key=None, ca=False):
    x509, hashes, _, _, _, eku, NameOID = _crypto()
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def pem_cert(cert):
    _, _, serialization, _, _, _, _ = _crypto()
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def pem_key(key):
    _, _, serialization, _, _, _, _ = _crypto()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def write(path, text, secret=False):
    with open(path, "w") as f:
        f.write(text)
    if secret:
        os.chmod(path, 0o600)


def load_ca(directory, name):
    x509, _, serialization, _, _, _, _ = _crypto()
    with open(os.path.join(directory, f"{name}.pem"), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(directory, f"{name}.key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    return cert, key


def cmd_pki(args):
    """CAs: ca-ec (P-256), ca-rsa (RSA-2048), ca-jitr (P-256, for auto-registration).
    Device sets: ec/ and rsa/ (leaf only, for pre-registration), and one directory per
    --jitr-set of new P-256 devices under ca-jitr (leaf + CA, as AWS asks of JITR devices)."""
    started = time.monotonic()
    out = args.dir
    os.makedirs(out, exist_ok=True)
    cas = {}
    for name, kind in (("ca-ec", "ec"), ("ca-rsa", "rsa"), ("ca-jitr", "ec")):
        key = new_key(kind)
        cert = make_cert(f"ferrule-bench {name}", key, ca=True)
        write(os.path.join(out, f"{name}.pem"), pem_cert(cert))
        write(os.path.join(out, f"{name}.key"), pem_key(key), secret=True)
        cas[name] = (cert, key)

    def devices(subdir, count, kind, ca, chain):
        path = os.path.join(out, subdir)
        os.makedirs(path, exist_ok=True)
        ca_cert, ca_key = cas[ca]
        for i in range(count):
            key = new_key(kind)
            cert = make_cert(f"{subdir}-{i:04d}", key, ca_cert, ca_key)
            body = pem_cert(cert) + (pem_cert(ca_cert) if chain else "")
            write(os.path.join(path, f"d{i:04d}.crt"), body)
            write(os.path.join(path, f"d{i:04d}.key"), pem_key(key), secret=True)

    devices("ec", args.ec, "ec", "ca-ec", chain=False)
    devices("rsa", args.rsa, "rsa", "ca-rsa", chain=False)
    for spec in args.ec_set:
        name, count = spec.split("=")
        devices(name, int(count), "ec", "ca-ec", chain=False)
    for spec in args.jitr_set:
        name, count = spec.split("=")
        devices(name, int(count), "ec", "ca-jitr", chain=True)
    print(f"pki: {time.monotonic() - started:.1f} s", file=sys.stderr)


# --- control plane -------------------------------------------------------------------------


def client(endpoint):
    import boto3
    import botocore.config

    return boto3.client(
        "iot",
        endpoint_url=endpoint,
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


def cert_arn(region, cert_id):
    return f"arn:aws:iot:{region}:{ACCOUNT}:cert/{cert_id}"


def cmd_provision(args):
    started = time.monotonic()
    iot = client(args.endpoint)
    region = iot.meta.region_name
    code = iot.get_registration_code()["registrationCode"]
    for name, auto in (("ca-ec", False), ("ca-rsa", False), ("ca-jitr", True)):
        ca_cert, ca_key = load_ca(args.dir, name)
        # Proof of possession: a certificate whose CN is the registration code, signed by the CA.
        verification = make_cert(code, new_key("ec"), ca_cert, ca_key)
        ca_id = iot.register_ca_certificate(
            caCertificate=pem_cert(ca_cert),
            verificationCertificate=pem_cert(verification),
            setAsActive=True,
            allowAutoRegistration=auto,
        )["certificateId"]
        print(f"{name} {ca_id}")
    iot.create_policy(policyName=args.policy, policyDocument=ALLOW_ALL)
    registered = 0
    sets = [("ec", "ca-ec"), ("rsa", "ca-rsa")] + [(name, "ca-ec") for name in args.set]
    for subdir, ca in sets:
        ca_pem = pem_cert(load_ca(args.dir, ca)[0])
        path = os.path.join(args.dir, subdir)
        for entry in sorted(os.listdir(path)):
            if not entry.endswith(".crt"):
                continue
            with open(os.path.join(path, entry)) as f:
                pem = f.read()
            cert_id = iot.register_certificate(
                certificatePem=pem, caCertificatePem=ca_pem, status="ACTIVE"
            )["certificateId"]
            iot.attach_policy(policyName=args.policy, target=cert_arn(region, cert_id))
            registered += 1
    print(
        f"provision: 3 CAs, {registered} certificates in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )


def cmd_operator(args):
    import concurrent.futures
    import threading

    local = threading.local()
    out = threading.Lock()

    def iot():
        # One client per worker thread, made once and reused: a persistent operator.
        if not hasattr(local, "iot"):
            local.iot = client(args.endpoint)
            # Warm up: the first call pays for the connection and botocore's lazy loading.
            local.iot.get_policy(policyName=args.policy)
        return local.iot

    def say(line):
        with out:
            print(line, flush=True)

    def revoke(cert_id):
        try:
            c = iot()
            t0 = time.monotonic_ns()
            c.update_certificate(certificateId=cert_id, newStatus="REVOKED")
            t1 = time.monotonic_ns()
            say(f"ok {cert_id} {(t1 - t0) // 1000} 0")
        except Exception as e:  # reported to the bench, which counts it
            message = " ".join(str(e).split())
            say(f"error {cert_id} {type(e).__name__}: {message}")

    def activate(cert_id):
        try:
            c = iot()
            t0 = time.monotonic_ns()
            c.update_certificate(certificateId=cert_id, newStatus="ACTIVE")
            t1 = time.monotonic_ns()
            c.attach_policy(policyName=args.policy, target=cert_arn(c.meta.region_name, cert_id))
            t2 = time.monotonic_ns()
            say(f"ok {cert_id} {(t1 - t0) // 1000} {(t2 - t1) // 1000}")
        except Exception as e:  # reported to the bench, which counts it
            message = " ".join(str(e).split())
            say(f"error {cert_id} {type(e).__name__}: {message}")

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.workers) as pool:
        # Every worker's client is made and warmed up before the first request.
        barrier = threading.Barrier(args.workers)
        for f in [pool.submit(lambda: (iot(), barrier.wait())) for _ in range(args.workers)]:
            f.result()
        say("ready")
        for line in sys.stdin:
            cert_id = line.strip()
            if cert_id:
                pool.submit(revoke if args.action == "revoke" else activate, cert_id)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pki")
    p.add_argument("dir")
    p.add_argument("--ec", type=int, default=50)
    p.add_argument("--rsa", type=int, default=50)
    p.add_argument("--jitr-set", action="append", default=[], metavar="NAME=COUNT")
    p.add_argument(
        "--ec-set", action="append", default=[], metavar="NAME=COUNT",
        help="another directory of P-256 devices under ca-ec (register it with provision --set)",
    )
    p.set_defaults(run=cmd_pki)
    p = sub.add_parser("provision")
    p.add_argument("dir")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--policy", default="bench-allow-all")
    p.add_argument(
        "--set", action="append", default=[], metavar="NAME",
        help="also register DIR/NAME (made by pki --ec-set) under ca-ec",
    )
    p.set_defaults(run=cmd_provision)
    p = sub.add_parser("operator")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--policy", default="bench-allow-all")
    p.add_argument("--workers", type=int, default=1, help="requests handled at the same time")
    p.add_argument("--action", choices=["activate", "revoke"], default="activate")
    p.set_defaults(run=cmd_operator)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
