"""kvnode_test: a real kvnode process on loopback, driven by kvctl and by a
Python gRPC client that knows only proto/basalt/v1/kv.proto.

Covers binary keys and values, empty values, every limit with its status code,
scan order and limits, health checks, clean stop on SIGTERM, and durability of
acknowledged writes across kill -9.
"""

import base64
import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

import grpc

from testlib import (  # noqa: E402
    KVCTL, KVNODE, Client, Node, health_pb2, kv_pb2, kvctl,
    KEY_BYTES_MAX, VALUE_BYTES_MAX, SCAN_LIMIT_MAX, SCAN_LIMIT_DEFAULT)


class KvnodeTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="kvnode-test-", dir=os.environ.get("TEST_TMPDIR"))
        self.node = Node(os.path.join(self.dir, "data")).start()
        self.client = Client(self.node.endpoint)

    def tearDown(self):
        self.client.close()
        self.node.stop(signal.SIGKILL)
        # RocksDB preallocates tens of MB per store: leave no trace.
        shutil.rmtree(self.dir, ignore_errors=True)

    def assert_status(self, code, fn, *args, contains=None):
        with self.assertRaises(grpc.RpcError) as caught:
            fn(*args)
        self.assertEqual(caught.exception.code(), code, caught.exception.details())
        if contains:
            self.assertIn(contains, caught.exception.details())

    def assert_still_serving(self):
        self.client.put(b"alive", b"yes")
        self.assertEqual(self.client.get(b"alive").value, b"yes")

    # ---- kvctl ----

    def test_kvctl_put_then_get_prints_value(self):
        self.assertEqual(kvctl(self.node.endpoint, "put", "a", "1").returncode, 0)
        out = kvctl(self.node.endpoint, "get", "a")
        self.assertEqual((out.returncode, out.stdout), (0, b"1\n"))

    def test_kvctl_missing_key_exits_1_with_nothing_on_stdout(self):
        out = kvctl(self.node.endpoint, "get", "missing")
        self.assertEqual(out.returncode, 1)
        self.assertEqual(out.stdout, b"")
        self.assertIn(b"key not found", out.stderr)

    def test_kvctl_usage_error_exits_2(self):
        self.assertEqual(kvctl(self.node.endpoint, "put").returncode, 2)
        self.assertEqual(kvctl(self.node.endpoint, "put", "k", "v", "extra").returncode, 2)
        self.assertEqual(kvctl(self.node.endpoint, "frobnicate").returncode, 2)
        out = kvctl(self.node.endpoint, "get", "k", "--consistency", "weak")
        self.assertEqual(out.returncode, 2)
        self.assertEqual(kvctl(self.node.endpoint, "put", "k", "v", "--limit", "3").returncode, 2)

    def test_kvctl_server_error_exits_3_with_message(self):
        out = kvctl(self.node.endpoint, "put", "k" * (KEY_BYTES_MAX + 1), "v")
        self.assertEqual(out.returncode, 3)
        self.assertIn(b"INVALID_ARGUMENT", out.stderr)
        self.assertIn(b"over the limit", out.stderr)
        out = kvctl(self.node.endpoint, "scan", "a", "--limit", str(SCAN_LIMIT_MAX + 1))
        self.assertEqual(out.returncode, 3)
        self.assertIn(b"scan limit", out.stderr)

    def test_kvctl_unreachable_endpoint_exits_3(self):
        out = subprocess.run([KVCTL, "--endpoints", "127.0.0.1:1", "get", "a"], capture_output=True)
        self.assertEqual(out.returncode, 3)
        self.assertIn(b"UNAVAILABLE", out.stderr)

    def test_kvctl_json_output_is_base64(self):
        kvctl(self.node.endpoint, "put", "k1", "v1")
        kvctl(self.node.endpoint, "put", "k2", "")
        got = json.loads(kvctl(self.node.endpoint, "--output", "json", "get", "k1").stdout)
        self.assertEqual(base64.b64decode(got["key"]), b"k1")
        self.assertEqual(base64.b64decode(got["value"]), b"v1")
        self.assertIn("applied_index", got["info"])
        scan = json.loads(kvctl(self.node.endpoint, "scan", "k", "--output", "json").stdout)
        self.assertEqual([base64.b64decode(p["key"]) for p in scan["kvs"]], [b"k1", b"k2"])
        self.assertEqual(base64.b64decode(scan["kvs"][1]["value"]), b"")
        self.assertFalse(scan["more"])
        deleted = json.loads(kvctl(self.node.endpoint, "--output", "json", "del", "k1").stdout)
        self.assertEqual(deleted, {"deleted": True})

    def test_kvctl_scan_and_del(self):
        for k in ["b", "a", "c"]:
            kvctl(self.node.endpoint, "put", k, k.upper())
        out = kvctl(self.node.endpoint, "scan", "a", "c")
        self.assertEqual(out.stdout, b"a\tA\nb\tB\n")
        out = kvctl(self.node.endpoint, "scan", "", "--limit", "1")
        self.assertEqual(out.stdout, b"a\tA\n")
        self.assertIn(b"more", out.stderr)
        self.assertEqual(kvctl(self.node.endpoint, "del", "a").stdout, b"1\n")
        self.assertEqual(kvctl(self.node.endpoint, "del", "a").stdout, b"0\n")

    def test_kvctl_put_reads_value_from_stdin(self):
        value = bytes(range(256)) * 1000  # binary, and too long for a command line
        out = subprocess.run([KVCTL, "--endpoints", self.node.endpoint, "put", "blob"],
                             input=value, capture_output=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(self.client.get(b"blob").value, value)
        out = subprocess.run([KVCTL, "--endpoints", self.node.endpoint, "put", "huge"],
                             input=b"x" * (VALUE_BYTES_MAX + 10), capture_output=True)
        self.assertEqual(out.returncode, 3)
        self.assertIn(b"value", out.stderr)
        self.assertFalse(self.client.get(b"huge").found)

    def test_kvctl_scan_after_continues_a_page(self):
        for k in ["s1", "s2", "s3"]:
            kvctl(self.node.endpoint, "put", k, "v")
        out = kvctl(self.node.endpoint, "scan", "s", "--limit", "2")
        self.assertEqual(out.stdout, b"s1\tv\ns2\tv\n")
        self.assertIn(b"--after", out.stderr)
        out = kvctl(self.node.endpoint, "scan", "--after", "s2")
        self.assertEqual(out.stdout, b"s3\tv\n")

    def test_kvctl_bad_endpoint_is_usage_error(self):
        for endpoint in ["127.0.0.1:99999", "127.0.0.1", "127.0.0.1:1,,127.0.0.1:2"]:
            out = subprocess.run([KVCTL, "--endpoints", endpoint, "get", "a"], capture_output=True)
            self.assertEqual(out.returncode, 2, endpoint)

    def test_kvctl_help_on_every_command(self):
        for cmd in ["put", "get", "del", "scan", "health"]:
            out = subprocess.run([KVCTL, cmd, "--help"], capture_output=True)
            self.assertEqual(out.returncode, 0, cmd)
            self.assertIn(b"usage: kvctl", out.stdout)

    # ---- the API from Python ----

    def test_binary_keys_and_values_round_trip(self):
        key = b"\x00k\xff\x00"
        value = bytes(range(256))
        self.client.put(key, value)
        got = self.client.get(key)
        self.assertTrue(got.found)
        self.assertEqual(got.value, value)
        self.assertFalse(self.client.get(b"\x00k\xff").found)

    def test_empty_value_is_found(self):
        self.client.put(b"empty", b"")
        got = self.client.get(b"empty", kv_pb2.CONSISTENCY_EVENTUAL)
        self.assertTrue(got.found)
        self.assertEqual(got.value, b"")

    def test_delete_says_whether_key_existed(self):
        self.client.put(b"d", b"1")
        self.assertTrue(self.client.delete(b"d").deleted)
        self.assertFalse(self.client.delete(b"d").deleted)
        self.assertFalse(self.client.get(b"d").found)

    def test_key_limits(self):
        code = grpc.StatusCode.INVALID_ARGUMENT
        self.assert_status(code, self.client.put, b"", b"v", contains="empty")
        self.assert_status(code, self.client.get, b"")
        self.assert_status(code, self.client.delete, b"")
        self.client.put(b"k" * KEY_BYTES_MAX, b"v")
        self.assertTrue(self.client.get(b"k" * KEY_BYTES_MAX).found)
        too_long = b"k" * (KEY_BYTES_MAX + 1)
        self.assert_status(code, self.client.put, too_long, b"v", contains="4097")
        self.assert_status(code, self.client.get, too_long)
        self.assert_status(code, self.client.delete, too_long)
        self.assertFalse(self.client.scan(start=b"k" * 4000).kvs[0].key == too_long)
        self.assert_still_serving()

    def test_value_limits(self):
        self.client.put(b"big", b"v" * VALUE_BYTES_MAX)
        self.assertEqual(len(self.client.get(b"big").value), VALUE_BYTES_MAX)
        self.assert_status(grpc.StatusCode.INVALID_ARGUMENT, self.client.put, b"big2",
                           b"v" * (VALUE_BYTES_MAX + 1), contains="value")
        self.assertFalse(self.client.get(b"big2").found)
        self.assert_still_serving()

    def test_scan_limits(self):
        code = grpc.StatusCode.INVALID_ARGUMENT
        self.assert_status(code, self.client.scan, b"", b"", SCAN_LIMIT_MAX + 1, contains="limit")
        self.assert_status(code, self.client.scan, b"b", b"a", contains="start")
        self.assert_status(code, self.client.scan, b"x" * (KEY_BYTES_MAX + 2))
        self.assertEqual(len(self.client.scan(limit=SCAN_LIMIT_MAX).kvs), 0)
        self.assert_still_serving()

    def test_scan_limit_zero_means_default(self):
        # Writes in parallel: each is durable on its own, and they share fsyncs.
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda i: self.client.put(b"n%05d" % i, b"v"),
                          range(SCAN_LIMIT_DEFAULT + 5)))
        got = self.client.scan(start=b"n")
        self.assertEqual(len(got.kvs), SCAN_LIMIT_DEFAULT)
        self.assertTrue(got.more)
        rest = self.client.scan(start=got.kvs[-1].key + b"\x00")
        self.assertEqual(len(rest.kvs), 5)
        self.assertFalse(rest.more)

    def test_unknown_consistency_is_invalid(self):
        self.assert_status(grpc.StatusCode.INVALID_ARGUMENT, self.client.get, b"k", 9,
                           contains="consistency")
        self.assert_status(grpc.StatusCode.INVALID_ARGUMENT, self.client.scan, b"", b"", 0, 5)

    def test_malformed_and_truncated_messages_are_invalid(self):
        code = grpc.StatusCode.INVALID_ARGUMENT
        # Field 1 declares 100 bytes of key but only 3 follow.
        self.assert_status(code, self.client.raw, "Put", b"\x0a\x64abc", contains="malformed")
        # A varint that never ends.
        self.assert_status(code, self.client.raw, "Get", b"\x10\xff\xff\xff", contains="malformed")
        # Wire type of field 1 is varint instead of bytes.
        self.assert_status(code, self.client.raw, "Delete", b"\x08\x01")
        self.assert_still_serving()

    def test_unknown_method_is_unimplemented(self):
        call = self.client.channel.unary_unary("/basalt.v1.KV/Frobnicate")
        self.assert_status(grpc.StatusCode.UNIMPLEMENTED, call, b"")

    def test_scan_pages_past_keys_of_maximum_length(self):
        for c in b"abc":
            self.client.put(b"p" + bytes([c]) * (KEY_BYTES_MAX - 1), b"v")
        seen, start = [], b"p"
        while True:
            page = self.client.scan(start=start, end=b"q", limit=1)
            seen += [kv.key[1:2] for kv in page.kvs]
            if not page.more:
                break
            start = page.kvs[-1].key + b"\x00"
        self.assertEqual(seen, [b"a", b"b", b"c"])

    def test_scan_is_ordered_bytewise_with_bounds(self):
        keys = [b"\xff", b"a\x00", b"a", b"B", b"ab", b"\x00", b"a\xff"]
        for k in keys:
            self.client.put(k, b"v:" + k)
        got = self.client.scan()
        self.assertEqual([kv.key for kv in got.kvs], sorted(keys))
        self.assertEqual([kv.value for kv in got.kvs], [b"v:" + k for k in sorted(keys)])
        # End is exclusive, and 0xff sorts after every other byte.
        got = self.client.scan(start=b"a", end=b"b")
        self.assertEqual([kv.key for kv in got.kvs], [b"a", b"a\x00", b"ab", b"a\xff"])
        got = self.client.scan(start=b"a\x00", end=b"ab")
        self.assertEqual([kv.key for kv in got.kvs], [b"a\x00"])
        got = self.client.scan(start=b"a", limit=2, consistency=kv_pb2.CONSISTENCY_EVENTUAL)
        self.assertEqual([kv.key for kv in got.kvs], [b"a", b"a\x00"])
        self.assertTrue(got.more)

    def test_health_check(self):
        for service in ["", "basalt.v1.KV"]:
            resp = self.client.health(health_pb2.HealthCheckRequest(service=service), timeout=10)
            self.assertEqual(resp.status, health_pb2.HealthCheckResponse.SERVING)
        self.assert_status(grpc.StatusCode.NOT_FOUND, self.client.health,
                           health_pb2.HealthCheckRequest(service="no.Such"))

    # ---- process life ----

    def test_sigterm_stops_cleanly_and_data_remains(self):
        self.client.put(b"kept", b"1")
        self.assertEqual(self.node.stop(signal.SIGTERM), 0)
        self.assertIn("kvnode stopped", self.node.log())
        self.node.start()
        self.client = Client(self.node.endpoint)
        self.assertEqual(self.client.get(b"kept").value, b"1")

    def test_acknowledged_writes_survive_kill_9(self):
        acked = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            def write(i):
                key, value = b"dur%04d" % i, os.urandom(64)
                self.client.put(key, value)
                return key, value
            for key, value in pool.map(write, range(400)):
                acked[key] = value
        self.client.close()
        self.node.stop(signal.SIGKILL)
        self.node.start()
        self.client = Client(self.node.endpoint)
        for key, value in acked.items():
            self.assertEqual(self.client.get(key).value, value, key)

    def test_writes_refused_when_disk_reserve_reached(self):
        self.client.put(b"before", b"1")
        self.client.close()
        self.node.stop()
        # No disk here has 512 TiB free: every write now eats into the reserve.
        self.node.extra_args += ["--disk-reserve-mb", str(1 << 29)]
        self.node.start()
        self.client = Client(self.node.endpoint)
        self.assert_status(grpc.StatusCode.RESOURCE_EXHAUSTED, self.client.put, b"after", b"2",
                           contains="disk")
        self.assertEqual(self.client.get(b"before").value, b"1")
        self.assertFalse(self.client.get(b"after").found)

    def test_bad_kvnode_flags_exit_2(self):
        for args in (["--listen", "127.0.0.1:99999"], ["--listen", "nowhere"],
                     ["--rpc-threads", "4294967297"], ["--rpc-threads", "0"],
                     ["--disk-reserve-mb", "-1"], ["--log-level", "loud"], ["extra"]):
            out = subprocess.run([KVNODE, "--data-dir", os.path.join(self.dir, "unused")] + args,
                                 capture_output=True)
            self.assertEqual(out.returncode, 2, args)

    def test_second_node_on_same_data_dir_fails_to_start(self):
        other = Node(self.node.data_dir)
        with self.assertRaises(AssertionError) as caught:
            other.start()
        self.assertIn("cannot open the store", str(caught.exception))
        self.assert_still_serving()


if __name__ == "__main__":
    print("python:", sys.executable, sys.version.split()[0])
    unittest.main(verbosity=2)
