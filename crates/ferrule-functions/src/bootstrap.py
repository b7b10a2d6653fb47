# Ferrule's Python worker: runs one Lambda handler, invocation after invocation.
#
# argv: <code directory> <handler "module.function">
# Protocol (see protocol.rs): one JSON request per line on stdin, one JSON response per line on
# stdout. Everything else - the handler's prints, its stderr, our START/END/REPORT lines - goes to
# stderr, which the host collects as the invocation's log lines. The REPORT line is the last log
# line of an invocation and is written (and flushed) before the response.
import importlib
import json
import math
import os
import sys
import time
import traceback


def _protocol_streams():
    # Keep private copies of fd 0 and fd 1 for the protocol, then point fd 0 at /dev/null and
    # fd 1 at stderr, so that neither Python prints nor child processes or C extensions writing
    # to fd 1 can corrupt the protocol, and nothing the handler reads consumes our requests.
    proto_in = os.fdopen(os.dup(0), "r", encoding="utf-8")
    proto_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull, "r")
    sys.stdout = sys.stderr
    return proto_in, proto_out


def _log(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _error(error_type, message, stack=None):
    return {"errorMessage": message, "errorType": error_type, "stackTrace": stack or []}


class LambdaContext:
    """The attributes and methods of AWS's Python context object."""

    def __init__(self, ctx):
        self.function_name = ctx["function_name"]
        self.function_version = ctx["function_version"]
        self.invoked_function_arn = ctx["invoked_function_arn"]
        # AWS hands this over as a string (it comes from an environment variable there).
        self.memory_limit_in_mb = str(ctx["memory_limit_in_mb"])
        self.aws_request_id = ctx["aws_request_id"]
        self.log_group_name = ctx["log_group_name"]
        self.log_stream_name = ctx["log_stream_name"]
        self.identity = None
        self.client_context = None
        self._deadline_ms = int(ctx["deadline_ms"])

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def __repr__(self):
        return (
            "LambdaContext([aws_request_id={},log_group_name={},log_stream_name={},"
            "function_name={},memory_limit_in_mb={},function_version={},"
            "invoked_function_arn={}])".format(
                self.aws_request_id,
                self.log_group_name,
                self.log_stream_name,
                self.function_name,
                self.memory_limit_in_mb,
                self.function_version,
                self.invoked_function_arn,
            )
        )


def _load(code_dir, handler_name):
    """Returns (handler, None) or (None, error) - an import error is reported per invocation."""
    sys.path.insert(0, code_dir)
    module_name, _, function_name = handler_name.rpartition(".")
    if not module_name or not function_name:
        return None, _error(
            "Runtime.MalformedHandlerName",
            "Bad handler '{}': not enough values to unpack (expected 2, got 1)".format(handler_name),
        )
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except SyntaxError as e:
        return None, _error(
            "Runtime.UserCodeSyntaxError",
            "Syntax error in module '{}': {}".format(module_name, e),
        )
    except Exception as e:
        return None, _error(
            "Runtime.ImportModuleError",
            "Unable to import module '{}': {}".format(module_name, e),
        )
    handler = getattr(module, function_name, None)
    if handler is None:
        return None, _error(
            "Runtime.HandlerNotFound",
            "Handler '{}' missing on module '{}'".format(function_name, module_name),
        )
    return handler, None


def _invoke(handler, event, context):
    """Returns the response body: {"ok": ...} or {"error": ...}, already JSON-checked."""
    try:
        result = handler(event, context)
    except Exception as e:
        tb = e.__traceback__.tb_next if e.__traceback__ else None  # drop this frame
        stack = traceback.format_list(traceback.extract_tb(tb))
        error = _error(type(e).__name__, str(e), stack)
        _log("[ERROR] {}: {}".format(error["errorType"], error["errorMessage"]))
        _log("Traceback (most recent call last):")
        for frame in stack:
            for line in frame.rstrip("\n").split("\n"):
                _log(line)
        return {"error": error}
    try:
        _dumps(result)
    except (TypeError, ValueError) as e:
        error = _error("Runtime.MarshalError", "Unable to marshal response: {}".format(e))
        _log("[ERROR] Runtime.MarshalError: {}".format(error["errorMessage"]))
        return {"error": error}
    return {"ok": result}


def _default(o):
    # Like AWS's encoder: Decimals (from DynamoDB, say) are numbers.
    import decimal

    if isinstance(o, decimal.Decimal):
        return int(o) if o == o.to_integral_value() else float(o)
    raise TypeError("Object of type {} is not JSON serializable".format(type(o).__name__))


def _dumps(value):
    # NaN and Infinity are not JSON: refuse them here rather than break the protocol.
    return json.dumps(value, allow_nan=False, default=_default)


def _max_memory_mb():
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    except Exception:
        return 0


def main():
    code_dir, handler_name = sys.argv[1], sys.argv[2]
    proto_in, proto_out = _protocol_streams()
    init_started = time.monotonic()
    handler, init_error = _load(code_dir, handler_name)
    init_ms = (time.monotonic() - init_started) * 1000
    first = True
    while True:
        line = proto_in.readline()
        if not line:
            return
        request = json.loads(line)
        ctx = request["context"]
        request_id = ctx["aws_request_id"]
        _log("START RequestId: {} Version: {}".format(request_id, ctx["function_version"]))
        started = time.monotonic()
        if init_error is not None:
            _log("[ERROR] {}: {}".format(init_error["errorType"], init_error["errorMessage"]))
            body = {"error": init_error}
        else:
            body = _invoke(handler, request["event"], LambdaContext(ctx))
        duration = (time.monotonic() - started) * 1000
        sys.stdout.flush()
        _log("END RequestId: {}".format(request_id))
        report = (
            "REPORT RequestId: {}\tDuration: {:.2f} ms\tBilled Duration: {} ms\t"
            "Memory Size: {} MB\tMax Memory Used: {} MB".format(
                request_id,
                duration,
                max(1, math.ceil(duration)),
                ctx["memory_limit_in_mb"],
                _max_memory_mb(),
            )
        )
        if first:
            report += "\tInit Duration: {:.2f} ms".format(init_ms)
            first = False
        _log(report)
        body["id"] = request["id"]
        proto_out.write(_dumps(body) + "\n")
        proto_out.flush()


if __name__ == "__main__":
    main()
