"""router_test: a router and three kvnodes started with --router, as a user
runs them: the router hands out node ids, bootstraps shard 1 once three nodes
are up, and forwards the public API to the right node, retrying by itself."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import unittest

import grpc

from testlib import (  # noqa: E402
    KVNODE, RUNFILES, Client, Node, kv_pb2, kvctl, load_module, stop_process, wait_for,
    MESSAGES_DIR)

ROUTER = os.path.join(RUNFILES, "router/router")
admin_pb2 = load_module("admin_pb2", os.path.join(MESSAGES_DIR, "basalt/v1/admin_pb2.py"))
EVENTUAL = kv_pb2.CONSISTENCY_EVENTUAL
STRONG = kv_pb2.CONSISTENCY_STRONG


class Router(Node):
    """The router process; it logs its port like a kvnode does, and comes
    back on the same port after a restart (clients and nodes know it)."""

    def start(self):
        log = open(self.log_path, "a")
        offset = log.tell()
        listen = "127.0.0.1:%d" % (self.port or 0)
        self.proc = subprocess.Popen(
            [ROUTER, "--listen", listen, "--data-dir", self.data_dir,
             "--node-down-after-ms", "3000"] + self.extra_args, stderr=log, stdout=log)
        log.close()
        self.port = self._wait_for_port(offset)
        return self


def list_shards(endpoint):
    channel = grpc.insecure_channel(endpoint)
    call = channel.unary_unary(
        "/basalt.v1.Admin/ListShards",
        request_serializer=admin_pb2.ListShardsRequest.SerializeToString,
        response_deserializer=admin_pb2.ListShardsResponse.FromString)
    try:
        return call(admin_pb2.ListShardsRequest(), timeout=10).shards
    finally:
        channel.close()


def cluster_status(endpoint):
    channel = grpc.insecure_channel(endpoint)
    call = channel.unary_unary(
        "/basalt.v1.Admin/ClusterStatus",
        request_serializer=admin_pb2.ClusterStatusRequest.SerializeToString,
        response_deserializer=admin_pb2.ClusterStatusResponse.FromString)
    try:
        return call(admin_pb2.ClusterStatusRequest(), timeout=10)
    finally:
        channel.close()


class ClusterCase(unittest.TestCase):
    """A router and three kvnodes registered with it, shard 1 led."""

    # The router's zone and each node's; "" is no label.
    ROUTER_ZONE = ""
    NODE_ZONES = ("", "", "")
    # More flags for the router and for every node.
    ROUTER_ARGS = ()
    NODE_ARGS = ()

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="router-test-", dir=os.environ.get("TEST_TMPDIR"))
        self.router = Router(os.path.join(self.dir, "router"), bootstrap=False)
        self.router.extra_args = list(self.ROUTER_ARGS)
        self.router.extra_args += ["--zone", self.ROUTER_ZONE] if self.ROUTER_ZONE else []
        self.router.start()
        self.nodes = []
        for i, zone in enumerate(self.NODE_ZONES):
            node = Node(os.path.join(self.dir, "node%d" % i), bootstrap=False)
            node.extra_args = ["--router", self.router.endpoint] + list(self.NODE_ARGS)
            node.extra_args += ["--zone", zone] if zone else []
            self.nodes.append(node.start())
        wait_for(self.shard_has_leader, "shard 1 to be created and get a leader")
        self.client = Client(self.router.endpoint)

    def tearDown(self):
        self.client.close()
        for p in self.nodes + [self.router]:
            p.stop(signal.SIGKILL)
        # RocksDB preallocates tens of MB per store: leave no trace.
        shutil.rmtree(self.dir, ignore_errors=True)

    def shard_has_leader(self):
        try:
            shards = list_shards(self.router.endpoint)
        except grpc.RpcError:
            return False
        return len(shards) == 1 and shards[0].leader_node_id != 0

    def eventual_readers(self, key, reads):
        seen = set()
        for _ in range(reads):
            got = self.client.get(key, EVENTUAL)
            self.assertNotEqual(got.info.node_id, 0)
            seen.add(got.info.node_id)
        return seen

    def node_id_of(self, node):
        for n in cluster_status(self.router.endpoint).nodes:
            if n.address == node.endpoint:
                return n.id
        return None


class RouterTest(ClusterCase):

    def test_bootstrap_and_requests_through_the_router(self):
        status = cluster_status(self.router.endpoint)
        self.assertEqual(len(status.nodes), 3)
        self.assertEqual(status.shards, 1)
        self.assertEqual(sorted(n.id for n in status.nodes), [1, 2, 3])
        self.client.put(b"k", b"v")
        self.assertEqual(self.client.get(b"k", STRONG).value, b"v")
        self.assertTrue(self.client.delete(b"k").deleted)
        for i in range(50):
            self.client.put(b"s%03d" % i, b"v")
        got = self.client.scan(b"s", b"t", limit=20)
        self.assertEqual([kv.key for kv in got.kvs], [b"s%03d" % i for i in range(20)])
        self.assertTrue(got.more)
        # Bad input is refused by the router itself.
        with self.assertRaises(grpc.RpcError) as caught:
            self.client.put(b"", b"v")
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    def test_kvctl_status_and_shards(self):
        out = kvctl(self.router.endpoint, "--output", "json", "status")
        self.assertEqual(out.returncode, 0, out.stderr)
        status = json.loads(out.stdout)
        self.assertEqual(status["shards"], 1)
        self.assertEqual(sorted(n["state"] for n in status["nodes"]), ["up", "up", "up"])
        self.assertEqual(sum(n["leaders"] for n in status["nodes"]), 1)
        out = kvctl(self.router.endpoint, "--output", "json", "shards")
        shards = json.loads(out.stdout)["shards"]
        self.assertEqual(len(shards), 1)
        self.assertEqual((shards[0]["id"], shards[0]["start"], shards[0]["end"]), (1, "", ""))
        self.assertEqual(len(shards[0]["replicas"]), 3)
        self.assertIn(shards[0]["leader"], [r["node_id"] for r in shards[0]["replicas"]])
        table = kvctl(self.router.endpoint, "shards").stdout.decode()
        self.assertIn("LEADER", table)
        # A node that dies shows as down once it missed its heartbeats.
        self.nodes[0].stop(signal.SIGKILL)
        wait_for(lambda: "down" in [n["state"] for n in json.loads(
            kvctl(self.router.endpoint, "--output", "json", "status").stdout)["nodes"]],
            "the killed node to show as down")

    def test_eventual_reads_are_spread_over_followers(self):
        self.client.put(b"spread", b"1")
        seen = self.eventual_readers(b"spread", 60)
        self.assertGreater(len(seen), 1)
        # The leader keeps its capacity for writes while followers are up.
        self.assertNotIn(list_shards(self.router.endpoint)[0].leader_node_id, seen)

    def test_eventual_reads_go_around_a_stopped_follower(self):
        self.client.put(b"paused", b"1")
        wait_for(lambda: len(self.eventual_readers(b"paused", 4)) == 2, "both followers serving")
        leader = list_shards(self.router.endpoint)[0].leader_node_id
        stopped = next(n for n in self.nodes if self.node_id_of(n) != leader)
        stopped_id = self.node_id_of(stopped)
        stop_process(stopped.proc)
        # Before the router marks it down, reads that go to it give up on it
        # after their attempt's share of the deadline and ask another replica.
        for _ in range(4):
            got = self.client.get(b"paused", EVENTUAL)
            self.assertNotEqual(got.info.node_id, stopped_id)
        stopped.proc.send_signal(signal.SIGCONT)

    def test_leader_kill_9_writes_go_on_through_the_router(self):
        acked, stop = {}, threading.Event()

        def writer():
            client = Client(self.router.endpoint)
            i = 0
            while not stop.is_set():
                key = b"w%05d" % i
                try:
                    client.put(key, b"v%d" % i)
                    acked[key] = b"v%d" % i
                    i += 1
                except grpc.RpcError as e:
                    # Only an unknown outcome may reach the client.
                    assert "unknown" in e.details() or \
                        e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e.details()
            client.close()

        thread = threading.Thread(target=writer)
        thread.start()
        wait_for(lambda: len(acked) >= 20, "20 writes")
        leader_id = list_shards(self.router.endpoint)[0].leader_node_id
        victim = next(n for n in self.nodes if self.node_id_of(n) == leader_id)
        victim.stop(signal.SIGKILL)
        count = len(acked)
        wait_for(lambda: len(acked) >= count + 20, "20 writes after the leader died", 30)
        stop.set()
        thread.join()
        for key, value in acked.items():
            self.assertEqual(self.client.get(key, STRONG).value, value, key)
        # The operator sees the dead node down, leading nothing (one leader in
        # all), and up again once restarted.
        wait_for(lambda: self.kvctl_nodes()[leader_id]["state"] == "down",
                 "the old leader shown down")
        nodes = self.kvctl_nodes()
        self.assertEqual(nodes[leader_id]["leaders"], 0)
        self.assertEqual(sum(n["leaders"] for n in nodes.values()), 1)
        victim.start()
        wait_for(lambda: self.kvctl_nodes()[leader_id]["state"] == "up", "the old leader shown up")

    def kvctl_nodes(self):
        out = kvctl(self.router.endpoint, "--output", "json", "status")
        self.assertEqual(out.returncode, 0, out.stderr)
        return {n["id"]: n for n in json.loads(out.stdout)["nodes"]}

    def test_kvctl_import_100k_keys_read_back_strong_and_eventual(self):
        count = 100000
        path = os.path.join(self.dir, "import.tsv")
        with open(path, "w") as f:
            for i in range(count):
                f.write("imp%06d\tvalue-%d\n" % (i, i))
        out = kvctl(self.router.endpoint, "import", path)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(b"100000 keys loaded, 0 failed", out.stdout + out.stderr)
        expected = [(b"imp%06d" % i, b"value-%d" % i) for i in range(count)]
        self.assertEqual(self.scan_all(b"imp", b"imq", STRONG), expected)
        # An eventual read may lag the leader by a few entries; it catches up.
        wait_for(lambda: self.scan_all(b"imp", b"imq", EVENTUAL) == expected,
                 "eventual scans to return every imported key")

    def test_kvctl_import_skips_malformed_lines_and_keeps_the_rest(self):
        path = os.path.join(self.dir, "mixed.tsv")
        with open(path, "w") as f:
            f.write("good1\tone\nno tab here\n\tempty key\n\ngood2\ttwo\r\n")
        out = kvctl(self.router.endpoint, "import", path)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn(b"line 2", out.stderr)
        self.assertIn(b"line 3", out.stderr)
        self.assertIn(b"2 keys loaded, 0 failed, 2 malformed lines skipped",
                      out.stdout + out.stderr)
        self.assertEqual(self.scan_all(b"good", b"goof", STRONG),
                         [(b"good1", b"one"), (b"good2", b"two")])
        out = kvctl(self.router.endpoint, "--output", "json", "import", path)
        self.assertEqual(json.loads(out.stdout), {"loaded": 2, "failed": 0, "malformed": 2})
        # A missing file is an error before anything is sent.
        out = kvctl(self.router.endpoint, "import", os.path.join(self.dir, "absent.tsv"))
        self.assertNotEqual(out.returncode, 0)
        self.assertIn(b"absent.tsv: No such file or directory", out.stderr)

    def scan_all(self, start, end, consistency):
        pairs = []
        while True:
            got = self.client.scan(start, end, limit=10000, consistency=consistency)
            pairs.extend((kv.key, kv.value) for kv in got.kvs)
            if not got.more:
                return pairs
            start = got.kvs[-1].key + b"\x00"

    def test_router_kill_9_and_restart_under_load(self):
        acked, failed, stop = {}, [], threading.Event()

        def writer():
            client = Client(self.router.endpoint)
            i = 0
            while not stop.is_set():
                key = b"r%05d" % i
                try:
                    client.put(key, b"v")
                    acked[key] = b"v"
                except grpc.RpcError as e:
                    failed.append(e.code())
                i += 1
            client.close()

        thread = threading.Thread(target=writer)
        thread.start()
        wait_for(lambda: len(acked) >= 20, "20 writes")
        self.router.stop(signal.SIGKILL)
        count = len(acked)
        self.router.start()  # same port, same data directory
        # Nodes heartbeat again, the map comes back, and the client carries on
        # through the same endpoint without being told anything.
        wait_for(lambda: len(acked) >= count + 20, "20 writes through the restarted router", 30)
        stop.set()
        thread.join()
        for key in acked:
            self.assertEqual(self.client.get(key, STRONG).value, b"v", key)
        # While the router was down its clients saw it unreachable, nothing else.
        self.assertTrue(all(code == grpc.StatusCode.UNAVAILABLE for code in failed), failed)


class ZoneTest(ClusterCase):
    """A router in zone "east", a follower in east and one in west: eventual
    reads go to the follower in east only."""

    ROUTER_ZONE = "east"
    NODE_ZONES = ("east", "east", "west")

    def test_eventual_reads_prefer_followers_in_the_routers_zone(self):
        self.client.put(b"zoned", b"1")
        leader = list_shards(self.router.endpoint)[0].leader_node_id
        if self.zones()[leader] == "west":
            # Whatever the election chose, the test needs one follower in
            # each zone: an east follower comes back labelled west.
            node = next(n for n in self.nodes if self.node_id_of(n) not in (leader, None))
            node_id = self.node_id_of(node)
            print("leader %d is in west: node %d restarts in west" % (leader, node_id))
            node.stop()
            node.extra_args[-1] = "west"
            node.start()
            wait_for(lambda: self.zones().get(node_id) == "west" and self.node_id_of(node),
                     "the node's new zone and address at the router")
        zones = self.zones()
        followers = {n: z for n, z in zones.items() if n != leader}
        self.assertEqual(sorted(followers.values()), ["east", "west"])
        east_follower = next(n for n, z in followers.items() if z == "east")
        self.assertEqual(self.eventual_readers(b"zoned", 40), {east_follower})

    def zones(self):
        return {n.id: n.zone for n in cluster_status(self.router.endpoint).nodes}


class StartupTest(unittest.TestCase):
    """Processes that cannot start say why, and stop when told to."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="router-start-", dir=os.environ.get("TEST_TMPDIR"))

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_router_refuses_a_port_over_65535(self):
        out = subprocess.run([ROUTER, "--listen", "127.0.0.1:99999", "--data-dir", self.dir],
                             capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 2)
        self.assertIn(b"port from 0 to 65535", out.stderr)

    def test_kvnode_waiting_for_a_router_stops_on_sigterm(self):
        log_path = os.path.join(self.dir, "kvnode.log")
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                [KVNODE, "--listen", "127.0.0.1:0", "--data-dir", os.path.join(self.dir, "n"),
                 "--router", "127.0.0.1:1"], stdout=log, stderr=log)
        try:
            wait_for(lambda: "retrying" in Node.read_file(log_path), "a registration retry")
            proc.send_signal(signal.SIGTERM)
            # Well under the 60 attempts a second apart it would otherwise make.
            self.assertEqual(proc.wait(timeout=10), 0)
        finally:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    unittest.main(verbosity=2)
