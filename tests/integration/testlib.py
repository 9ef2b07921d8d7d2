"""testlib: what the integration tests share: paths to the programs under
test, message classes generated from the project's .proto files (as any
application would make them), a kvnode process, and a gRPC client of the
public API.
"""

import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time

import grpc

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", ".."), "basalt")
KVNODE = os.path.join(RUNFILES, "kvnode/kvnode")
KVCTL = os.path.join(RUNFILES, "tools/kvctl/kvctl")
PROTO_DIR = os.path.join(RUNFILES, "proto")

# The limits of the public API, as documented in kv.proto.
KEY_BYTES_MAX = 4096
VALUE_BYTES_MAX = 1024 * 1024
SCAN_LIMIT_MAX = 10000
SCAN_LIMIT_DEFAULT = 1000

# Upper bound on waiting for a process to come up or go down.
STARTUP_DEADLINE_S = 30


def generate_messages(out_dir):
    """Message classes from protoc --python_out, as any application would make."""
    subprocess.run(
        ["protoc", "--proto_path=" + PROTO_DIR, "--python_out=" + out_dir,
         "basalt/v1/kv.proto", "basalt/v1/shard.proto", "basalt/v1/raft.proto",
         "basalt/v1/admin.proto",
         "grpc/health/v1/health.proto"],
        check=True)
    sys.path.insert(0, out_dir)


def load_module(name, path):
    """Imports a generated module by path: grpc.health.v1 would otherwise be
    looked for inside grpcio's own grpc package."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MESSAGES_DIR = tempfile.mkdtemp(prefix="basalt-pb-")
generate_messages(MESSAGES_DIR)
from basalt.v1 import kv_pb2, raft_pb2, shard_pb2  # noqa: E402,F401
health_pb2 = load_module("health_pb2", os.path.join(MESSAGES_DIR, "grpc/health/v1/health_pb2.py"))


class Node:
    """One kvnode process, listening on a port the kernel picked."""

    def __init__(self, data_dir, node_id=None, bootstrap=True):
        self.data_dir = data_dir
        self.log_path = os.path.join(data_dir + ".log")
        self.proc = None
        self.port = None
        self.node_id = node_id
        self.extra_args = (["--node-id", str(node_id)] if node_id else []) + (
            ["--bootstrap"] if bootstrap else [])

    def start(self):
        log = open(self.log_path, "a")
        offset = log.tell()
        self.proc = subprocess.Popen(
            [KVNODE, "--listen", "127.0.0.1:0", "--data-dir", self.data_dir] + self.extra_args,
            stderr=log, stdout=log)
        log.close()
        self.port = self._wait_for_port(offset)
        return self

    def _wait_for_port(self, offset):
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while time.monotonic() < deadline:
            # The log first: a node may serve and then stop at once (one the
            # router removed does), and its port is still what start() owes.
            exited = self.proc.poll() is not None
            with open(self.log_path) as f:
                f.seek(offset)
                for line in f:
                    if "(port " in line:
                        return int(line.split("(port ")[1].split(")")[0])
            if exited:
                raise AssertionError(
                    "kvnode exited with %d:\n%s" % (self.proc.returncode, self.log()))
            time.sleep(0.02)
        raise AssertionError(
            "kvnode did not start within %ds:\n%s" % (STARTUP_DEADLINE_S, self.log()))

    def log(self):
        return self.read_file(self.log_path)

    @staticmethod
    def read_file(path):
        with open(path) as f:
            return f.read()

    @property
    def endpoint(self):
        return "127.0.0.1:%d" % self.port

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=STARTUP_DEADLINE_S)
        return self.proc.returncode


class Client:
    """The public API through grpcio's generic unary calls."""

    def __init__(self, endpoint):
        self.channel = grpc.insecure_channel(endpoint)
        grpc.channel_ready_future(self.channel).result(timeout=STARTUP_DEADLINE_S)
        self.calls = {}
        for method, req, resp in [
                ("Put", kv_pb2.PutRequest, kv_pb2.PutResponse),
                ("Get", kv_pb2.GetRequest, kv_pb2.GetResponse),
                ("Delete", kv_pb2.DeleteRequest, kv_pb2.DeleteResponse),
                ("Scan", kv_pb2.ScanRequest, kv_pb2.ScanResponse)]:
            self.calls[method] = self.channel.unary_unary(
                "/basalt.v1.KV/" + method,
                request_serializer=req.SerializeToString,
                response_deserializer=resp.FromString)
        self.health = self.channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString)

    def put(self, key, value):
        return self.calls["Put"](kv_pb2.PutRequest(key=key, value=value), timeout=10)

    def get(self, key, consistency=kv_pb2.CONSISTENCY_STRONG):
        return self.calls["Get"](kv_pb2.GetRequest(key=key, consistency=consistency), timeout=10)

    def delete(self, key):
        return self.calls["Delete"](kv_pb2.DeleteRequest(key=key), timeout=10)

    def scan(self, start=b"", end=b"", limit=0, consistency=kv_pb2.CONSISTENCY_UNSPECIFIED):
        return self.calls["Scan"](
            kv_pb2.ScanRequest(start=start, end=end, limit=limit, consistency=consistency),
            timeout=10)

    def raw(self, method, payload):
        call = self.channel.unary_unary("/basalt.v1.KV/" + method)
        return call(payload, timeout=10)

    def close(self):
        self.channel.close()


def not_ready(error):
    """Whether a call was refused by a replica that holds no data yet (one
    waiting for its first snapshot): another time, or another replica."""
    return ("basalt-error", "not-ready") in (error.trailing_metadata() or ())


def kvctl(endpoint, *args):
    return subprocess.run([KVCTL, "--endpoints", endpoint] + list(args), capture_output=True)


def wait_for(condition, what, deadline_s=30):
    """Waits until condition() is true, polling; fails after deadline_s."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError("timed out after %ss waiting for %s" % (deadline_s, what))


class Admin:
    """The internal NodeAdmin service of one kvnode."""

    def __init__(self, endpoint):
        self.channel = grpc.insecure_channel(endpoint)
        grpc.channel_ready_future(self.channel).result(timeout=STARTUP_DEADLINE_S)

        def method(name, req, resp):
            return self.channel.unary_unary(
                "/basalt.v1.NodeAdmin/" + name, request_serializer=req.SerializeToString,
                response_deserializer=resp.FromString)

        self.update_nodes = method("UpdateNodes", raft_pb2.UpdateNodesRequest,
                                   raft_pb2.UpdateNodesResponse)
        self.create_replica = method("CreateReplica", raft_pb2.CreateReplicaRequest,
                                     raft_pb2.CreateReplicaResponse)
        self.remove_replica = method("RemoveReplica", raft_pb2.RemoveReplicaRequest,
                                     raft_pb2.RemoveReplicaResponse)
        self.status = method("Status", raft_pb2.NodeStatusRequest, raft_pb2.NodeStatusResponse)
        self.isolate = method("Isolate", raft_pb2.IsolateRequest, raft_pb2.IsolateResponse)
        self.change_replicas = method("ChangeReplicas", raft_pb2.ChangeReplicasRequest,
                                      raft_pb2.ChangeReplicasResponse)

    def close(self):
        self.channel.close()


def stop_process(proc):
    """SIGSTOPs a process and waits until every one of its threads is
    stopped: kill() returns before a running thread has taken the signal."""
    os.kill(proc.pid, signal.SIGSTOP)

    def all_threads_stopped():
        task_dir = "/proc/%d/task" % proc.pid
        states = []
        for tid in os.listdir(task_dir):
            with open(os.path.join(task_dir, tid, "stat")) as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])
        return all(state == "T" for state in states)

    wait_for(all_threads_stopped, "pid %d to stop" % proc.pid)


def process_cpu_seconds(pid):
    """User plus system CPU time a process has used, from /proc."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks
