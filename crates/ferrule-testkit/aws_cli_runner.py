"""Runs aws CLI commands for the Rust tests, many in one process.

Each command goes through `awscli.clidriver.create_clidriver().main(args)`: the very entry point
the `aws` executable calls (its script is `sys.exit(awscli.clidriver.main())`), with a fresh
driver and botocore session per command, so argument parsing, file:// parameters, pagination
and output formatting are the real CLI's. Only the interpreter start-up and imports, about a
second of CPU per command, are paid once.

Protocol: one JSON object per line on stdin, {"args": [...], "env": {...}}; one JSON object per
line on stdout, {"rc": int, "stdout": str, "stderr": str}.
"""

import contextlib
import io
import json
import os
import sys

import awscli.clidriver


def run(args, env):
    os.environ.update(env)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = awscli.clidriver.create_clidriver().main(args)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
    return {"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()}


def main():
    reply = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        reply.write(json.dumps(run(request["args"], request.get("env", {}))) + "\n")
        reply.flush()


if __name__ == "__main__":
    main()
