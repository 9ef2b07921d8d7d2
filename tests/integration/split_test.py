"""split_test: shards split online, by `kvctl split` and by the router's
splitter, while clients write, read and scan through the router and see no
error; lagging replicas (stopped, or catching up by snapshot) end up with both
halves and the same data."""

import json
import os
import random
import signal
import threading
import unittest

import grpc

from router_test import EVENTUAL, STRONG, ClusterCase, cluster_status, list_shards
from testlib import Admin, Client, kvctl, not_ready, raft_pb2, stop_process, wait_for

# Keys the load uses: k000000 .. k099999, each written once.
KEY_SPACE = 100000


def load_key(i):
    # Spread over the key space, so every shard gets writes.
    return b"k%06d" % ((i * 7919) % KEY_SPACE)


class Load:
    """A writer, a reader and a scanner through the router. Every error they
    see is kept: a split must cost clients nothing."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.acked = {}
        self.errors = []
        self.reads = 0
        self.scans = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=f) for f in
                        (self.write, self.read, self.scan)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()

    def run(self, what, step):
        client = Client(self.endpoint)
        while not self.stop.is_set():
            try:
                step(client)
            except grpc.RpcError as e:
                self.errors.append((what, e.code(), e.details()))
            except AssertionError as e:
                self.errors.append((what, "wrong answer", str(e)))
        client.close()

    def write(self):
        counter = iter(range(KEY_SPACE))

        def step(client):
            i = next(counter)
            key, value = load_key(i), b"v%d" % i
            client.put(key, value)
            self.acked[key] = value
        self.run("put", step)

    def read(self):
        rng = random.Random(1)

        def step(client):
            if not self.acked:
                return
            key = rng.choice(list(self.acked))
            got = client.get(key, STRONG)
            assert got.found and got.value == self.acked[key], (key, got)
            self.reads += 1
        self.run("get", step)

    def scan(self):
        def step(client):
            before = dict(self.acked)
            pairs = scan_all(client, b"k", b"l", STRONG)
            keys = [k for k, _ in pairs]
            assert keys == sorted(set(keys)), "a scan returned keys out of order or twice"
            missing = set(before) - set(keys)
            assert not missing, "a scan missed %d acknowledged keys" % len(missing)
            self.scans += 1
        self.run("scan", step)


def scan_all(client, start, end, consistency):
    pairs = []
    while True:
        got = client.scan(start, end, limit=1000, consistency=consistency)
        pairs.extend((kv.key, kv.value) for kv in got.kvs)
        if not got.more:
            return pairs
        if not got.next_start:
            raise AssertionError("a scan says there is more but not where it goes on")
        start = got.next_start


def shard_of(endpoint, key):
    for s in list_shards(endpoint):
        d = s.descriptor
        if d.start <= key and (not d.end or key < d.end):
            return d
    raise AssertionError("no shard holds %r" % key)


class SplitCase(ClusterCase):

    def split(self, *args):
        out = kvctl(self.router.endpoint, "--output", "json", "split", *args)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)["shards"]

    def check_everything_there(self, load):
        self.assertEqual(load.errors, [])
        for key, value in load.acked.items():
            self.assertEqual(self.client.get(key, STRONG).value, value, key)
        pairs = scan_all(self.client, b"", b"", STRONG)
        self.assertEqual([k for k, _ in pairs], sorted(set(k for k, _ in pairs)))
        got = dict(pairs)
        for key, value in load.acked.items():
            self.assertEqual(got.get(key), value, key)

    def shards_cover_everything(self, shards):
        """The shards' ranges tile the keyspace: no gap, no overlap."""
        ranges = sorted((s.descriptor.start, s.descriptor.end) for s in shards)
        self.assertEqual(ranges[0][0], b"")
        self.assertEqual(ranges[-1][1], b"")
        for (_, end), (start, _) in zip(ranges, ranges[1:]):
            self.assertEqual(end, start)


class ManualSplitTest(SplitCase):
    ROUTER_ARGS = ("--split-size-mb", "0", "--split-qps", "0")

    def test_ten_splits_in_a_row_under_load(self):
        with Load(self.router.endpoint) as load:
            wait_for(lambda: len(load.acked) >= 200, "200 writes before splitting")
            for n in range(10):
                if n % 3 == 2:
                    # No key: the leader picks the middle of the shard by size.
                    d = shard_of(self.router.endpoint, b"k050000")
                    left, right = self.split(str(d.id))
                else:
                    key = b"k%06d" % (5000 + 9000 * n)
                    d = shard_of(self.router.endpoint, key)
                    left, right = self.split(str(d.id), key.decode())
                    self.assertEqual(right["start"], json_bytes(key))
                self.assertEqual(left["id"], d.id)
                self.assertEqual(left["version"], d.version + 1)
                self.assertEqual(right["version"], d.version + 1)
                self.assertEqual(left["end"], right["start"])
                before = len(load.acked)
                wait_for(lambda: len(load.acked) >= before + 20, "writes after a split")
            wait_for(lambda: load.scans >= 3 and load.reads >= 100, "scans and reads")
        shards = list_shards(self.router.endpoint)
        self.assertEqual(len(shards), 11)
        self.shards_cover_everything(shards)
        self.check_everything_there(load)
        out = kvctl(self.router.endpoint, "shards")
        self.assertEqual(len(out.stdout.splitlines()), 12, out.stdout)  # a header and 11 rows

    def test_bad_splits_are_refused_and_change_nothing(self):
        for i in range(10):
            self.client.put(b"b%d" % i, b"x")
        self.split("1", "m")
        before = list_shards(self.router.endpoint)
        cases = [
            (("1", "q"), b"inside shard 1's range"),   # shard 1 is ["", m)
            (("2", "m"), b"after its start key"),        # shard 2 starts at m
            (("2", "a"), b"inside shard 2's range"),
            (("99",), b"no shard 99"),
            (("0",), b"a shard id"),
            (("x",), b"a shard id"),
            (("2", ""), b"must not be empty"),
            (("2", "k" * 4097), b"at most 4096 bytes"),
        ]
        for args, why in cases:
            out = kvctl(self.router.endpoint, "split", *args)
            self.assertNotEqual(out.returncode, 0, args)
            self.assertIn(why, out.stderr, args)
        # A shard with one key has no middle to split at.
        self.split("1", "b5")
        out = kvctl(self.router.endpoint, "split", "2")
        self.assertEqual(out.returncode, 3, out.stderr)
        self.assertIn(b"too few keys", out.stderr)
        after = list_shards(self.router.endpoint)
        self.assertEqual(len(after), 3)
        unchanged = [s for s in before if s.descriptor.id == 2]
        self.assertEqual([s.descriptor for s in after if s.descriptor.id == 2],
                         [s.descriptor for s in unchanged])


def json_bytes(b):
    import base64
    return base64.b64encode(b).decode()


class AutomaticSplitTest(SplitCase):
    ROUTER_ARGS = ("--split-size-mb", "1")

    def test_import_grows_the_shard_count_by_itself(self):
        count, value = 24000, "x" * 250  # about 6 MB
        path = os.path.join(self.dir, "import.tsv")
        with open(path, "w") as f:
            for i in range(count):
                f.write("imp%06d\t%s%d\n" % (i, value, i))
        with Load(self.router.endpoint) as load:
            out = kvctl(self.router.endpoint, "--timeout", "30s", "import", path)
            self.assertEqual(out.returncode, 0, out.stderr)
            wait_for(lambda: len(list_shards(self.router.endpoint)) >= 4,
                     "the splitter to make at least 4 shards", 60)
        self.assertEqual(load.errors, [])
        shards = list_shards(self.router.endpoint)
        self.shards_cover_everything(shards)
        pairs = scan_all(self.client, b"imp", b"imq", STRONG)
        self.assertEqual(pairs, [(b"imp%06d" % i, (value + str(i)).encode())
                                 for i in range(count)])
        self.check_everything_there(load)


class LoadSplitTest(SplitCase):
    ROUTER_ARGS = ("--split-size-mb", "0", "--split-qps", "50")

    def test_a_busy_shard_splits_by_itself(self):
        with Load(self.router.endpoint) as load:
            # Over 50 requests a second for the 10 s window: split.
            wait_for(lambda: len(list_shards(self.router.endpoint)) >= 2,
                     "the splitter to split the busy shard", 60)
            self.assertIn("splitting shard 1", self.router.log())
        self.shards_cover_everything(list_shards(self.router.endpoint))
        self.check_everything_there(load)


class LeaderBalanceTest(SplitCase):
    ROUTER_ARGS = ("--split-size-mb", "0", "--split-qps", "0")

    def leaders_per_node(self):
        return sorted(n.leaders for n in cluster_status(self.router.endpoint).nodes)

    def test_leaders_spread_by_themselves_and_hand_over_on_request(self):
        with Load(self.router.endpoint) as load:
            for n in range(8):
                # Every split leaves both halves led by the same node.
                key = b"k%06d" % (10000 * (n + 1))
                self.split(str(shard_of(self.router.endpoint, key).id), key.decode())
            wait_for(lambda: self.leaders_per_node() == [3, 3, 3],
                     "the balancer to spread 9 leaders over 3 nodes", 60)
            # By hand: shard 1 to another node, which then leads it.
            shard = list_shards(self.router.endpoint)[0]
            to = next(r.node_id for r in shard.descriptor.replicas
                      if r.node_id != shard.leader_node_id)
            out = kvctl(self.router.endpoint, "--output", "json", "transfer-leader",
                        str(shard.descriptor.id), str(to))
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(json.loads(out.stdout)["shard"]["leader"], to)
            before = len(load.acked)
            wait_for(lambda: len(load.acked) >= before + 50, "writes after the hand-overs")
        # The hand-overs cost the clients nothing.
        self.check_everything_there(load)
        for args, code, why in [(("99", "1"), 3, b"no such shard"),
                                (("1", "99"), 3, b"no such node"),
                                (("1", "x"), 2, b"ids"),
                                (("1",), 2, b"takes SHARD_ID NODE_ID")]:
            out = kvctl(self.router.endpoint, "transfer-leader", *args)
            self.assertEqual(out.returncode, code, (args, out.stderr))
            self.assertIn(why, out.stderr)


class LaggingReplicaTest(SplitCase):
    ROUTER_ARGS = ("--split-size-mb", "0", "--split-qps", "0")
    NODE_ARGS = ("--raft-log-max-entries", "50")

    def follower(self):
        leader_node = list_shards(self.router.endpoint)[0].leader_node_id
        return next(node for node in self.nodes if self.node_id_of(node) != leader_node)

    def write_both_sides(self, prefix, count, size=10):
        for i in range(count):
            for side in (b"a", b"t"):
                self.client.put(side + prefix + b"%04d" % i, b"v" * size)

    def assert_same_as_the_router(self, node):
        """The node hosts every shard with the router's descriptor, and holds
        the same pairs in each (read there, eventually, until it has caught
        up)."""
        admin = Admin(node.endpoint)
        direct = Client(node.endpoint)
        try:
            def caught_up():
                status = admin.status(raft_pb2.NodeStatusRequest(), timeout=10)
                mine = sorted((r.descriptor.SerializeToString(deterministic=True)
                               for r in status.replicas))
                want = sorted(s.descriptor.SerializeToString(deterministic=True)
                              for s in list_shards(self.router.endpoint))
                if mine != want:
                    return False
                for s in list_shards(self.router.endpoint):
                    d = s.descriptor
                    theirs = scan_all(self.client, d.start, d.end, STRONG)
                    try:
                        if scan_all(direct, d.start, d.end, EVENTUAL) != theirs:
                            return False
                    except grpc.RpcError as e:
                        if not_ready(e):
                            return False  # its replica waits for a snapshot
                        raise
                return True
            wait_for(caught_up, "the lagging node to hold both shards and their data", 60)
        finally:
            admin.close()
            direct.close()

    def test_a_stopped_follower_applies_the_split_when_it_resumes(self):
        self.write_both_sides(b"before", 20)
        follower = self.follower()
        stop_process(follower.proc)
        try:
            left, right = self.split("1", "m")
            self.write_both_sides(b"after", 20)
        finally:
            follower.proc.send_signal(signal.SIGCONT)
        self.assertEqual(len(list_shards(self.router.endpoint)), 2)
        self.assert_same_as_the_router(follower)
        self.assertIn("shard 1 split at index", follower.log())

    def leader(self):
        leader_node = list_shards(self.router.endpoint)[0].leader_node_id
        return next(node for node in self.nodes if self.node_id_of(node) == leader_node)

    def last_index(self, node, shard_id):
        admin = Admin(node.endpoint)
        try:
            status = admin.status(raft_pb2.NodeStatusRequest(), timeout=10)
            return next(r.last_index for r in status.replicas if r.descriptor.id == shard_id)
        finally:
            admin.close()

    def wait_for_compaction(self, node, shard_id, past):
        """Waits until node's log of shard_id starts after index `past`."""
        admin = Admin(node.endpoint)

        def compacted():
            status = admin.status(raft_pb2.NodeStatusRequest(), timeout=10)
            return any(r.descriptor.id == shard_id and r.first_index > past + 1
                       for r in status.replicas)
        wait_for(compacted, "the leader to compact the log of shard %d" % shard_id)
        admin.close()

    def test_split_while_a_snapshot_goes_to_a_lagging_follower(self):
        follower, leader = self.follower(), self.leader()
        had = self.last_index(follower, 1)
        stop_process(follower.proc)
        try:
            # Far past 4 x 50 entries: the leader drops what the follower
            # lacks, so it will need a snapshot (a few MB, sent in chunks).
            self.write_both_sides(b"bulk", 200, size=10000)
            self.wait_for_compaction(leader, 1, had)
        finally:
            follower.proc.send_signal(signal.SIGCONT)
        self.split("1", "m")
        self.write_both_sides(b"after", 20)
        self.assert_same_as_the_router(follower)
        self.assertIn("received a snapshot", follower.log())

    def test_a_follower_that_missed_the_split_gets_the_new_shard_by_snapshot(self):
        follower, leader = self.follower(), self.leader()
        admin = Admin(follower.endpoint)
        # Cut off from its peers (a SIGSTOP would not do: the entries sent
        # meanwhile wait in its socket and arrive on resume).
        admin.isolate(raft_pb2.IsolateRequest(isolated=True), timeout=10)
        try:
            self.split("1", "m")
            split_at = self.last_index(leader, 1)
            # The split entry goes from the leader's log: the follower will
            # get shard 1 as it is after the split, and never apply it.
            self.write_both_sides(b"bulk", 200)
            self.wait_for_compaction(leader, 1, split_at)
        finally:
            admin.isolate(raft_pb2.IsolateRequest(isolated=False), timeout=10)
            admin.close()
        # The router sees the follower lack its replica of shard 2 and makes
        # an empty one there, which shard 2's leader fills.
        self.assert_same_as_the_router(follower)
        self.assertNotIn("shard 1 split at index", follower.log())
        self.assertIn("lacked its replica of shard 2", self.router.log())


if __name__ == "__main__":
    unittest.main()
