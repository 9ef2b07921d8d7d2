"""cluster_test: three real kvnode processes on loopback replicating shards
with Raft, driven through the public API and the internal NodeAdmin service.

Covers: writes landing on every replica, strong reads seeing the latest
write, typed not-leader errors with the leader's address, failover after
kill -9 of a leader without losing an acknowledged write, a partitioned
follower serving a stale eventual read while the leader serves the newest,
and 64 shards on the same nodes sharing fsyncs while an idle node stays cheap.
"""

import concurrent.futures
import os
import shutil
import signal
import tempfile
import threading
import time
import unittest

import grpc

from testlib import (  # noqa: E402
    Admin, Client, Node, kv_pb2, not_ready, process_cpu_seconds, raft_pb2, shard_pb2,
    stop_process, wait_for)

NODES = 3
# A new leader must be in place this soon after the old one dies (election
# timeouts are 1-2 s).
FAILOVER_DEADLINE_S = 15
EVENTUAL = kv_pb2.CONSISTENCY_EVENTUAL
STRONG = kv_pb2.CONSISTENCY_STRONG


class Cluster:
    """NODES kvnodes that know each other's addresses."""

    def __init__(self, root, extra_args=()):
        self.nodes = {}
        self.admins = {}  # endpoint -> Admin, reused across calls
        self.descriptors = {}
        for node_id in range(1, NODES + 1):
            node = Node(os.path.join(root, "node%d" % node_id), node_id=node_id, bootstrap=False)
            node.extra_args += list(extra_args)
            self.nodes[node_id] = node.start()
        self.announce()

    def announce(self):
        """Tells every node where every node is (again after a restart)."""
        req = raft_pb2.UpdateNodesRequest(nodes=[
            raft_pb2.NodeAddress(node_id=i, address=n.endpoint)
            for i, n in self.nodes.items() if n.proc.poll() is None])
        for node in self.running():
            self.admin(node).update_nodes(req, timeout=10)

    def admin(self, node):
        if node.endpoint not in self.admins:
            self.admins[node.endpoint] = Admin(node.endpoint)
        return self.admins[node.endpoint]

    def running(self):
        return [n for n in self.nodes.values() if n.proc.poll() is None]

    def create_shard(self, shard_id, start=b"", end=b""):
        desc = shard_pb2.ShardDescriptor(id=shard_id, start=start, end=end, replicas=[
            shard_pb2.ReplicaDescriptor(node_id=i, replica_id=shard_id * 100 + i)
            for i in self.nodes])
        self.descriptors[shard_id] = desc
        # As the router makes a new shard: its first replicas start alike
        # with a log at the same point, so they can elect a leader.
        for node in self.running():
            self.create_replica(node, shard_id, bootstrap=True)

    def create_replica(self, node, shard_id, bootstrap=False):
        """bootstrap False: an empty replica, which waits for a snapshot."""
        self.admin(node).create_replica(
            raft_pb2.CreateReplicaRequest(descriptor=self.descriptors[shard_id],
                                          bootstrap=bootstrap), timeout=10)

    def status(self, node):
        return self.admin(node).status(raft_pb2.NodeStatusRequest(), timeout=10)

    def leaders(self):
        """shard id -> the node leading it now, for every shard with a leader."""
        found = {}
        for node in self.running():
            try:
                st = self.status(node)
            except grpc.RpcError:
                continue
            for r in st.replicas:
                if r.is_leader:
                    found[r.descriptor.id] = node
        return found

    def leader_of(self, shard_id):
        """The node leading shard_id now, or None."""
        return self.leaders().get(shard_id)

    def wait_leader(self, shard_id, deadline_s=FAILOVER_DEADLINE_S):
        return wait_for(lambda: self.leader_of(shard_id), "a leader of shard %d" % shard_id,
                        deadline_s)

    def wait_all_leaders(self, shards, deadline_s=FAILOVER_DEADLINE_S):
        return wait_for(lambda: (lambda m: m if all(s in m for s in shards) else None)(
            self.leaders()), "leaders of %d shards" % len(shards), deadline_s)

    def stop(self):
        for admin in self.admins.values():
            admin.close()
        for node in self.nodes.values():
            if node.proc.poll() is None:
                os.kill(node.proc.pid, signal.SIGCONT)
            node.stop(signal.SIGKILL)


def eventual_value(node, key):
    """The node's own value of key; None when missing or when the node holds
    no data for it yet."""
    client = Client(node.endpoint)
    try:
        got = client.get(key, EVENTUAL)
        return got.value if got.found else None
    except grpc.RpcError as e:
        if not_ready(e):
            return None
        raise
    finally:
        client.close()


class ClusterTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="cluster-test-", dir=os.environ.get("TEST_TMPDIR"))
        self.cluster = Cluster(self.dir)
        self.cluster.create_shard(1)
        self.leader = self.cluster.wait_leader(1)

    def tearDown(self):
        self.cluster.stop()
        # RocksDB preallocates tens of MB per store: leave no trace.
        shutil.rmtree(self.dir, ignore_errors=True)

    def followers(self):
        return [n for n in self.cluster.running() if n is not self.leader]

    def test_writes_reach_every_replica_and_strong_reads_see_the_latest(self):
        client = Client(self.leader.endpoint)
        client.put(b"k", b"v1")
        for node in self.cluster.running():
            wait_for(lambda: eventual_value(node, b"k") == b"v1",
                     "v1 on node %d" % node.node_id)
        client.put(b"k", b"v2")
        got = client.get(b"k", STRONG)
        self.assertEqual(got.value, b"v2")
        self.assertEqual(got.info.shard_id, 1)
        self.assertEqual(got.info.node_id, self.leader.node_id)
        self.assertGreaterEqual(got.info.applied_index, 3)
        self.assertTrue(client.delete(b"k").deleted)
        self.assertFalse(client.get(b"k").found)
        client.close()

    def test_follower_refuses_writes_and_strong_reads_naming_the_leader(self):
        follower = self.followers()[0]
        client = Client(follower.endpoint)
        for call in (lambda: client.put(b"k", b"v"), lambda: client.get(b"k", STRONG)):
            with self.assertRaises(grpc.RpcError) as caught:
                call()
            self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE)
            trailers = dict(caught.exception.trailing_metadata())
            self.assertEqual(trailers["basalt-error"], "not-leader")
            self.assertEqual(trailers["basalt-leader-node"], str(self.leader.node_id))
            self.assertEqual(trailers["basalt-leader-address"], self.leader.endpoint)
            self.assertIn("not the leader", caught.exception.details())
        # An eventual read is served right there.
        self.assertFalse(client.get(b"k", EVENTUAL).found)
        client.close()

    def test_leader_kill_9_fails_over_without_losing_acknowledged_writes(self):
        acked, stop = {}, threading.Event()

        def writer():
            i = 0
            while not stop.is_set():
                key, value = b"w%05d" % i, b"v%d" % i
                leader = self.cluster.leader_of(1)
                if leader is None:
                    continue
                client = Client(leader.endpoint)
                try:
                    client.put(key, value)
                    acked[key] = value
                    i += 1
                except grpc.RpcError:
                    pass  # not acknowledged: may or may not be there
                finally:
                    client.close()

        thread = threading.Thread(target=writer)
        thread.start()
        wait_for(lambda: len(acked) >= 20, "20 acknowledged writes")
        old = self.leader
        old.stop(signal.SIGKILL)
        new = self.cluster.wait_leader(1)
        self.assertIsNot(new, old)
        count = len(acked)
        wait_for(lambda: len(acked) >= count + 20, "20 writes under the new leader")
        stop.set()
        thread.join()

        # The old leader comes back (on a new port) and catches up from the log.
        old.start()
        self.cluster.announce()
        last_key = max(acked)
        wait_for(lambda: eventual_value(old, last_key) == acked[last_key],
                 "the restarted node to catch up")
        client = Client(self.cluster.wait_leader(1).endpoint)
        for key, value in acked.items():
            self.assertEqual(client.get(key, STRONG).value, value, key)
            self.assertEqual(eventual_value(old, key), value, key)
        client.close()

    def test_partitioned_follower_serves_stale_eventual_reads(self):
        follower = self.followers()[0]
        client = Client(self.leader.endpoint)
        client.put(b"k", b"old")
        wait_for(lambda: eventual_value(follower, b"k") == b"old", "old on the follower")

        admin = self.cluster.admin(follower)
        admin.isolate(raft_pb2.IsolateRequest(isolated=True), timeout=10)
        client.put(b"k", b"new")  # commits on the leader and the other follower
        self.assertEqual(client.get(b"k", STRONG).value, b"new")
        self.assertEqual(eventual_value(follower, b"k"), b"old")

        admin.isolate(raft_pb2.IsolateRequest(isolated=False), timeout=10)
        wait_for(lambda: eventual_value(follower, b"k") == b"new", "the follower to catch up")
        client.close()

    def test_a_replica_that_applied_nothing_refuses_eventual_reads(self):
        # A fresh cluster where only node 1 has its replica of shard 2: it
        # never gets a leader nor applies anything, as a replica waiting for
        # its first snapshot. It must not answer as if the shard were empty.
        self.cluster.stop()
        os.mkdir(os.path.join(self.dir, "lone"))
        self.cluster = Cluster(os.path.join(self.dir, "lone"))
        self.cluster.descriptors[2] = shard_pb2.ShardDescriptor(id=2, replicas=[
            shard_pb2.ReplicaDescriptor(node_id=i, replica_id=200 + i) for i in (1, 2, 3)])
        lone = self.cluster.nodes[1]
        self.cluster.create_replica(lone, 2)
        client = Client(lone.endpoint)
        for call in (lambda: client.get(b"k", EVENTUAL),
                     lambda: client.scan(b"", b"", consistency=EVENTUAL)):
            with self.assertRaises(grpc.RpcError) as caught:
                call()
            self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE)
            self.assertIn("holds no data yet", caught.exception.details())
            self.assertIn(("basalt-error", "not-ready"), caught.exception.trailing_metadata())
        client.close()

    def test_a_voter_that_lost_its_data_does_not_vote_until_it_has_a_snapshot(self):
        # The write below is committed by the leader and `wiped` alone. If
        # `wiped`, empty again, voted for `behind`, which never had the write,
        # the shard would elect a leader without it and lose it for good.
        behind, wiped = self.followers()
        behind.stop(signal.SIGKILL)
        client = Client(self.leader.endpoint)
        client.put(b"acked", b"by two of three")
        client.close()
        self.leader.stop(signal.SIGKILL)
        wiped.stop(signal.SIGKILL)
        shutil.rmtree(wiped.data_dir)
        wiped.start()
        behind.start()
        self.cluster.announce()
        self.cluster.create_replica(wiped, 1)
        wait_for(lambda: "holds no data yet, so it does not vote" in wiped.log(),
                 "the empty replica to refuse a vote")
        self.assertIsNone(self.cluster.leader_of(1))
        self.leader.start()
        self.cluster.announce()
        leader = self.cluster.wait_leader(1)
        client = Client(leader.endpoint)
        self.assertEqual(client.get(b"acked", STRONG).value, b"by two of three")
        client.close()
        wait_for(lambda: eventual_value(wiped, b"acked") == b"by two of three",
                 "the empty replica to catch up by snapshot")

    def test_write_to_a_cut_off_leader_reports_unknown_outcome(self):
        admin = self.cluster.admin(self.leader)
        admin.isolate(raft_pb2.IsolateRequest(isolated=True), timeout=10)
        client = Client(self.leader.endpoint)
        # Its deadline passes first: the client learns the outcome is unknown.
        with self.assertRaises(grpc.RpcError) as caught:
            client.calls["Put"](kv_pb2.PutRequest(key=b"k", value=b"v"), timeout=0.5)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        # With time to spare, the leader steps down (it hears no quorum), and
        # the write waits on: it may still commit under the next leader. Its
        # deadline ends it, unknown, never a clean failure.
        with self.assertRaises(grpc.RpcError) as caught:
            client.calls["Put"](kv_pb2.PutRequest(key=b"k2", value=b"v"), timeout=4)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertFalse(self.cluster.status(self.leader).replicas[0].is_leader)
        admin.isolate(raft_pb2.IsolateRequest(isolated=False), timeout=10)
        client.close()

    def test_peer_moving_many_times_keeps_one_stream(self):
        # A restarted peer comes back on a new port and is announced again;
        # more moves than the node has stream slots must not break anything.
        other = self.followers()[0]
        admin = self.cluster.admin(self.leader)
        for port in range(20000, 20100):
            admin.update_nodes(raft_pb2.UpdateNodesRequest(nodes=[raft_pb2.NodeAddress(
                node_id=other.node_id, address="127.0.0.1:%d" % port)]), timeout=10)
        self.cluster.announce()
        client = Client(self.cluster.wait_leader(1).endpoint)
        client.put(b"after-moves", b"1")
        wait_for(lambda: eventual_value(other, b"after-moves") == b"1", "replication to the peer")
        client.close()

    def test_remove_replica_deletes_its_data_and_state(self):
        client = Client(self.leader.endpoint)
        client.put(b"gone", b"soon")
        client.close()
        for node in self.cluster.running():
            self.cluster.admin(node).remove_replica(raft_pb2.RemoveReplicaRequest(shard_id=1),
                                                    timeout=10)
        for node in self.cluster.running():
            self.assertEqual(len(self.cluster.status(node).replicas), 0)
            c = Client(node.endpoint)
            with self.assertRaises(grpc.RpcError) as caught:
                c.get(b"gone", EVENTUAL)
            self.assertEqual(caught.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
            c.close()
        # A new shard over the same keys starts empty: nothing of the old one
        # survived, in data or in raft state, even across a restart.
        node = self.cluster.running()[0]
        node.stop()
        node.start()
        self.cluster.announce()
        self.assertEqual(len(self.cluster.status(node).replicas), 0)
        with self.assertRaises(grpc.RpcError) as caught:
            self.cluster.admin(node).remove_replica(raft_pb2.RemoveReplicaRequest(shard_id=1),
                                                    timeout=10)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.cluster.create_shard(2)
        leader = self.cluster.wait_leader(2)
        c = Client(leader.endpoint)
        self.assertFalse(c.get(b"gone", STRONG).found)
        c.close()

    def replica_of(self, node):
        return next(r for r in self.cluster.descriptors[1].replicas
                    if self.cluster.nodes[r.node_id] is node)

    def change(self, node, conf_ver, *changes):
        return self.cluster.admin(node).change_replicas(raft_pb2.ChangeReplicasRequest(
            shard_id=1, conf_ver=conf_ver, changes=[
                raft_pb2.ReplicaChange(type=t, replica=r) for t, r in changes]), timeout=10)

    def test_membership_changes_are_checked_and_the_descriptor_follows(self):
        ADD_LEARNER, REMOVE = raft_pb2.REPLICA_CHANGE_ADD_LEARNER, raft_pb2.REPLICA_CHANGE_REMOVE
        leader = self.replica_of(self.leader)
        follower_node = self.followers()[0]
        follower = self.replica_of(follower_node)
        fresh = shard_pb2.ReplicaDescriptor(node_id=9, replica_id=999)
        for node, conf_ver, changes, code, why in [
                (self.leader, 7, [(REMOVE, follower)], grpc.StatusCode.FAILED_PRECONDITION,
                 "plan it again"),
                (self.leader, 0, [(REMOVE, leader)], grpc.StatusCode.INVALID_ARGUMENT,
                 "transfer leadership first"),
                (self.leader, 0, [(ADD_LEARNER, shard_pb2.ReplicaDescriptor(
                    node_id=follower.node_id, replica_id=998))],
                 grpc.StatusCode.INVALID_ARGUMENT, "already holds"),
                (self.leader, 0, [(ADD_LEARNER, fresh), (REMOVE, fresh)],
                 grpc.StatusCode.INVALID_ARGUMENT, "not a member"),
                (self.leader, 0, [], grpc.StatusCode.INVALID_ARGUMENT, "1 to 16 changes"),
                (follower_node, 0, [(REMOVE, follower)], grpc.StatusCode.UNAVAILABLE,
                 "not the leader")]:
            with self.assertRaises(grpc.RpcError) as caught:
                self.change(node, conf_ver, *changes)
            self.assertEqual(caught.exception.code(), code, why)
            self.assertIn(why, caught.exception.details())
        for node in self.cluster.running():
            self.assertEqual(self.cluster.status(node).replicas[0].descriptor.conf_ver, 0)
        # A learner joins and a follower leaves: two entries each (enter and
        # leave the joint membership), and every replica's descriptor says so.
        added = self.change(self.leader, 0, (ADD_LEARNER, fresh)).descriptor
        self.assertEqual(added.conf_ver, 2)
        self.assertIn((9, 999, shard_pb2.REPLICA_ROLE_LEARNER),
                      [(r.node_id, r.replica_id, r.role) for r in added.replicas])
        left = self.change(self.leader, 2, (REMOVE, follower), (REMOVE, fresh)).descriptor
        self.assertEqual(left.conf_ver, 4)
        self.assertEqual(sorted(r.replica_id for r in left.replicas),
                         sorted(r.replica_id for r in self.cluster.descriptors[1].replicas
                                if r.replica_id != follower.replica_id))
        others = [n for n in self.cluster.running() if n is not follower_node]
        wait_for(lambda: all(self.cluster.status(n).replicas[0].descriptor == left
                             for n in others), "every member to apply the change")
        client = Client(self.leader.endpoint)
        client.put(b"after", b"two voters")
        self.assertEqual(client.get(b"after", STRONG).value, b"two voters")
        client.close()

    def test_stopped_follower_does_not_stop_writes(self):
        follower = self.followers()[0]
        stop_process(follower.proc)
        client = Client(self.leader.endpoint)
        client.put(b"while-stopped", b"1")
        self.assertEqual(client.get(b"while-stopped", STRONG).value, b"1")
        os.kill(follower.proc.pid, signal.SIGCONT)
        wait_for(lambda: eventual_value(follower, b"while-stopped") == b"1",
                 "the resumed follower to catch up")
        client.close()


class SnapshotTest(unittest.TestCase):
    """Logs compacted after 20 entries, so a replica that lost its data can
    only come back from a snapshot."""

    KEYS = 200

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="snapshot-test-", dir=os.environ.get("TEST_TMPDIR"))
        self.cluster = Cluster(self.dir, ["--raft-log-max-entries", "20"])
        self.cluster.create_shard(1)

    def tearDown(self):
        self.cluster.stop()
        # RocksDB preallocates tens of MB per store: leave no trace.
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_follower_with_wiped_data_rejoins_by_snapshot(self):
        leader = self.cluster.wait_leader(1)
        first_index = self.cluster.status(leader).replicas[0].first_index
        client = Client(leader.endpoint)
        for i in range(self.KEYS):
            client.put(b"k%04d" % i, b"v%d" % i)
        client.close()
        victim = next(n for n in self.cluster.running() if n is not leader)
        last = b"k%04d" % (self.KEYS - 1)
        wait_for(lambda: eventual_value(victim, last) == b"v%d" % (self.KEYS - 1),
                 "the follower to hold every key")
        # The leader compacts its log once every replica has the entries.
        wait_for(lambda: self.cluster.status(leader).replicas[0].first_index > first_index,
                 "the leader to compact its log")

        victim.stop(signal.SIGKILL)
        shutil.rmtree(victim.data_dir)
        victim.start()
        self.cluster.announce()
        self.cluster.create_replica(victim, 1)
        wait_for(lambda: eventual_value(victim, last) == b"v%d" % (self.KEYS - 1),
                 "the wiped follower to catch up by snapshot")
        client = Client(victim.endpoint)
        got = client.scan(b"k", b"l", limit=1000, consistency=EVENTUAL)
        self.assertEqual([kv.key for kv in got.kvs], [b"k%04d" % i for i in range(self.KEYS)])
        client.close()
        self.assertIn("installed a snapshot", victim.log())

        # And it keeps up by log afterwards.
        client = Client(self.cluster.wait_leader(1).endpoint)
        client.put(b"after", b"snapshot")
        client.close()
        wait_for(lambda: eventual_value(victim, b"after") == b"snapshot", "replication after")


class ManyShardsTest(unittest.TestCase):
    SHARDS = 64
    WRITES_PER_SHARD = 10

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="shards-test-", dir=os.environ.get("TEST_TMPDIR"))
        self.cluster = Cluster(self.dir)
        # Shard s owns ["s%02d", "s%02d" of s+1); the last one runs to the end.
        for s in range(self.SHARDS):
            end = b"s%02d" % (s + 1) if s + 1 < self.SHARDS else b""
            self.cluster.create_shard(s + 1, b"s%02d" % s, end)

    def tearDown(self):
        self.cluster.stop()
        # RocksDB preallocates tens of MB per store: leave no trace.
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_writes_to_many_shards_share_fsyncs_and_idle_nodes_are_cheap(self):
        leaders = self.cluster.wait_all_leaders(range(1, self.SHARDS + 1))
        before = {n.node_id: self.cluster.status(n) for n in self.cluster.running()}

        def write_shard(s):
            client = Client(leaders[s].endpoint)
            for i in range(self.WRITES_PER_SHARD):
                client.put(b"s%02d/%d" % (s - 1, i), b"v")
            client.close()

        with concurrent.futures.ThreadPoolExecutor(max_workers=self.SHARDS) as pool:
            list(pool.map(write_shard, range(1, self.SHARDS + 1)))

        after = {n.node_id: self.cluster.status(n) for n in self.cluster.running()}
        syncs = sum(after[i].raft_sync_writes - before[i].raft_sync_writes for i in after)
        entries = sum(after[i].raft_entries_persisted - before[i].raft_entries_persisted
                      for i in after)
        # Every write is an entry on three nodes; each node's loop writes the
        # entries of all its groups in one synced write per iteration.
        self.assertGreaterEqual(entries, 3 * self.SHARDS * self.WRITES_PER_SHARD)
        print("64 shards: %d entries persisted in %d synced writes (%.1f per fsync)"
              % (entries, syncs, entries / max(syncs, 1)))
        self.assertGreater(entries, 2 * syncs)

        # Idle: measured over a few seconds, a node with 64 groups (ticks and
        # heartbeats only) stays well under a tenth of a core.
        node = self.cluster.running()[0]
        cpu0, t0 = process_cpu_seconds(node.proc.pid), time.monotonic()
        time.sleep(3)  # a measurement window, not a synchronisation
        used = (process_cpu_seconds(node.proc.pid) - cpu0) / (time.monotonic() - t0)
        print("idle node with 64 replicas: %.1f%% of a core" % (100 * used))
        self.assertLess(used, 0.10)


if __name__ == "__main__":
    unittest.main(verbosity=2)
