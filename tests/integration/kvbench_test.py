"""kvbench_test: short kvbench runs (seconds; nothing about speed is
asserted) against a real Basalt cluster and a real etcd member: every
workload runs without a failed operation, what it loads is really stored,
and bad flags or an unreachable target are reported, not hidden."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import unittest

from router_test import STRONG  # noqa: E402
from testlib import RUNFILES, wait_for  # noqa: E402
from split_test import SplitCase, scan_all  # noqa: E402

KVBENCH = os.path.join(RUNFILES, "tools/kvbench/kvbench")
ETCD = "/usr/bin/etcd"
ETCDCTL = "/usr/bin/etcdctl"
SEED = int(os.environ.get("KVBENCH_TEST_SEED", "20261204"))


def kvbench(target, *args):
    """Runs kvbench with JSON output; (exit code, parsed report, stderr)."""
    out = subprocess.run(
        [KVBENCH, "--target", target, "--output", "json", "--seed", str(SEED)] + list(args),
        capture_output=True, timeout=120)
    report = json.loads(out.stdout) if out.stdout.strip() else None
    return out.returncode, report, out.stderr.decode()


def phase(report, name):
    return next(p for p in report["phases"] if p["phase"] == name)


class KvbenchChecks:
    """What every target must show; self.target is its URL."""

    def run_ok(self, *args):
        rc, report, err = kvbench(self.target, *args)
        self.assertEqual(rc, 0, err)
        for p in report["phases"]:
            self.assertEqual(p["errors"], 0, json.dumps(p))
        return report

    def test_workload_a_loads_then_runs_its_mix(self):
        report = self.run_ok("--workload", "a", "--records", "300", "--operations", "600",
                             "--clients", "16", "--value-bytes", "100")
        load, run = phase(report, "load"), phase(report, "run")
        self.assertEqual(load["operations"], 300)
        self.assertEqual(load["ops"]["insert"]["count"], 300)
        self.assertEqual(run["operations"], 600)
        ops = run["ops"]
        self.assertEqual(ops["read"]["count"] + ops["update"]["count"], 600)
        self.assertGreater(ops["read"]["count"], 0)
        self.assertGreater(ops["update"]["count"], 0)
        # Every record was loaded, so every read found one.
        self.assertEqual(ops["read"]["not_found"], 0)
        lat = ops["read"]["latency_us"]
        self.assertTrue(0 < lat["min"] <= lat["p50"] <= lat["p99"] <= lat["max"], lat)
        # What was loaded is stored: 300 distinct records of 100 bytes.
        self.assertEqual(self.stored_records(), (300, 100))

    def test_inserting_scanning_and_read_modify_write_workloads(self):
        self.run_ok("--workload", "c", "--records", "200", "--operations", "1",
                    "--value-bytes", "10")
        for workload in ("d", "e", "f"):
            report = self.run_ok("--workload", workload, "--records", "200", "--phase", "run",
                                 "--operations", "300", "--clients", "8", "--value-bytes", "10")
            ops = phase(report, "run")["ops"]
            self.assertEqual(sum(o["count"] for o in ops.values()), 300, workload)
            for kind in ("read", "scan", "read-modify-write"):
                if kind in ops:
                    self.assertEqual(ops[kind]["not_found"], 0, (workload, kind))
        # d and e inserted new records past the 200 loaded ones.
        count, _ = self.stored_records()
        self.assertGreater(count, 200)

    def test_eventual_gets_and_sequential_puts(self):
        self.run_ok("--workload", "put", "--sequential-keys", "--records", "50",
                    "--operations", "50", "--clients", "1", "--value-bytes", "10")
        # The puts wrote records 0..49, in order, once each.
        self.assertEqual(self.stored_records(), (50, 10))
        strong = self.run_ok("--workload", "get", "--sequential-keys", "--records", "50",
                             "--phase", "run", "--operations", "200", "--clients", "8")
        self.assertEqual(phase(strong, "run")["ops"]["read"]["not_found"], 0)

        # An eventual read may lag, but every replica catches up.
        def eventual_reads_find_everything():
            report = self.run_ok("--workload", "get", "--consistency", "eventual",
                                 "--sequential-keys", "--records", "50", "--phase", "run",
                                 "--operations", "200", "--clients", "8")
            self.assertEqual(report["consistency"], "eventual")
            return phase(report, "run")["ops"]["read"]["not_found"] == 0
        wait_for(eventual_reads_find_everything, "eventual reads to find every record")

    def test_a_rate_spreads_the_operations(self):
        report = self.run_ok("--workload", "put", "--operations", "40", "--rate", "100",
                             "--clients", "4", "--value-bytes", "10")
        # 40 operations at 100 a second cannot end much before 0.4 s.
        self.assertGreaterEqual(phase(report, "run")["seconds"], 0.35)


class BasaltTest(KvbenchChecks, SplitCase):
    ROUTER_ARGS = ("--split-size-mb", "0", "--split-qps", "0")

    def setUp(self):
        super().setUp()
        # Records spread over three shards, as they would be on a real cluster.
        self.split("1", "user8")
        self.split("1", "user4")
        self.target = "basalt://" + self.router.endpoint

    def stored_records(self):
        pairs = [(k, v) for k, v in scan_all(self.client, b"user", b"uses", STRONG)]
        sizes = set(len(v) for _, v in pairs)
        return len(pairs), (sizes.pop() if len(sizes) == 1 else sizes)

    def test_bad_flags_and_an_unreachable_target(self):
        for args, words in ((["--workload", "z"], "--workload takes one of"),
                            (["--clients", "0"], "from 1 to 4096"),
                            (["--bogus"], "--bogus")):
            rc, report, err = kvbench(self.target, *args)
            self.assertEqual((rc, report), (2, None), err)
            self.assertIn(words, err)
        rc, report, err = kvbench("redis://127.0.0.1:1")
        self.assertEqual(rc, 2)
        self.assertIn("basalt://HOST:PORT", err)
        rc, report, err = kvbench("basalt://127.0.0.1:99999")
        self.assertEqual(rc, 2)
        # Nothing listens on port 1: every operation fails, and says so.
        rc, report, err = kvbench("basalt://127.0.0.1:1", "--workload", "put", "--operations",
                                  "5", "--clients", "1", "--timeout", "2s")
        self.assertEqual(rc, 1, err)
        ops = phase(report, "run")["ops"]["update"]
        self.assertEqual(ops["errors"], 5)
        self.assertEqual(ops["errors_by_status"], {"UNAVAILABLE": 5})
        self.assertNotEqual(ops["error_sample"], "")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EtcdTest(KvbenchChecks, unittest.TestCase):
    """One etcd member (Debian's etcd-server, which tools/basalt test
    installs) on loopback ports."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="kvbench-etcd-", dir=os.environ.get("TEST_TMPDIR"))
        client, peer = free_port(), free_port()
        self.endpoint = "127.0.0.1:%d" % client
        self.log = open(os.path.join(self.dir, "etcd.log"), "w")
        self.proc = subprocess.Popen(
            [ETCD, "--name", "e1", "--data-dir", os.path.join(self.dir, "data"),
             "--listen-client-urls", "http://" + self.endpoint,
             "--advertise-client-urls", "http://" + self.endpoint,
             "--listen-peer-urls", "http://127.0.0.1:%d" % peer,
             "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % peer,
             "--initial-cluster", "e1=http://127.0.0.1:%d" % peer],
            stdout=self.log, stderr=self.log)
        wait_for(self.healthy, "etcd to serve")
        self.target = "etcd://" + self.endpoint

    def tearDown(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def etcdctl(self, *args):
        return subprocess.run([ETCDCTL, "--endpoints", self.endpoint] + list(args),
                              capture_output=True, env=dict(os.environ, ETCDCTL_API="3"),
                              timeout=30)

    def healthy(self):
        self.assertIsNone(self.proc.poll(), "etcd exited; see its log")
        return self.etcdctl("endpoint", "health").returncode == 0

    def stored_records(self):
        out = self.etcdctl("get", "user", "--prefix", "--write-out", "json")
        self.assertEqual(out.returncode, 0, out.stderr)
        kvs = json.loads(out.stdout).get("kvs", [])
        # etcdctl's JSON has values in base64: 4 characters per 3 bytes.
        sizes = set(len(kv["value"]) * 3 // 4 - kv["value"].count("=") for kv in kvs)
        return len(kvs), (sizes.pop() if len(sizes) == 1 else sizes)


if __name__ == "__main__":
    unittest.main()
