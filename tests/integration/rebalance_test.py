"""rebalance_test: replicas move between nodes, online, through Raft
membership changes: new nodes take a fair share by themselves, a drained node
ends empty, a dead node's replicas are made again elsewhere, zones spread, and
a move cut short by a router restart is rolled back. Clients writing, reading
and scanning through the router meanwhile see no error and lose nothing."""

import json
import os
import signal
import subprocess
import unittest

from router_test import cluster_status, list_shards
from split_test import Load, SplitCase, shard_of
from testlib import KVCTL, Admin, Node, kvctl, raft_pb2, wait_for

LEARNER = 1  # ReplicaRole.REPLICA_ROLE_LEARNER
NO_AUTOMATIC_SPLITS = ("--split-size-mb", "0", "--split-qps", "0")


class RebalanceCase(SplitCase):
    ROUTER_ARGS = NO_AUTOMATIC_SPLITS

    def add_node(self, zone=""):
        node = Node(os.path.join(self.dir, "node%d" % len(self.nodes)), bootstrap=False)
        node.extra_args = ["--router", self.router.endpoint] + (["--zone", zone] if zone else [])
        self.nodes.append(node.start())
        wait_for(lambda: self.node_id_of(node) is not None, "the new node to register")
        return node

    def make_shards(self, count):
        """Splits shard 1's keyspace into `count` shards, evenly over the
        load's keys."""
        for n in range(1, count):
            key = b"k%06d" % (100000 * n // count)
            self.split(str(shard_of(self.router.endpoint, key).id), key.decode())
        self.assertEqual(len(list_shards(self.router.endpoint)), count)

    def up_nodes(self):
        return [n for n in cluster_status(self.router.endpoint).nodes if n.state == 1]

    def spread(self, field):
        counts = [getattr(n, field) for n in self.up_nodes()]
        return max(counts) - min(counts)

    def settled(self, replicas=3, nodes_up=None):
        """Every shard has `replicas` voters and no learner, on up nodes (and,
        when given, exactly `nodes_up` nodes are up). One look at the nodes
        serves both checks: a node going down between two looks would pass
        for up in one and down in the other."""
        up = {n.id for n in self.up_nodes()}
        if nodes_up is not None and len(up) != nodes_up:
            return False
        for s in list_shards(self.router.endpoint):
            reps = s.descriptor.replicas
            if len(reps) != replicas or any(r.role == LEARNER for r in reps):
                return False
            if any(r.node_id not in up for r in reps) or s.leader_node_id == 0:
                return False
        return True

    def node_holds(self, node):
        """The (shard id, replica id) pairs a node itself reports."""
        admin = Admin(node.endpoint)
        try:
            status = admin.status(raft_pb2.NodeStatusRequest(), timeout=10)
            return {(r.descriptor.id, r.replica_id) for r in status.replicas}
        finally:
            admin.close()

    def kvctl_json(self, *args):
        out = kvctl(self.router.endpoint, "--output", "json", *args)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)

    def kvctl_fails(self, args, code, why):
        out = kvctl(self.router.endpoint, *args)
        self.assertEqual(out.returncode, code, (args, out.stdout, out.stderr))
        self.assertIn(why, out.stderr, args)


class ScaleOutTest(RebalanceCase):

    def test_two_new_nodes_take_their_share_under_load(self):
        with Load(self.router.endpoint) as load:
            self.make_shards(16)
            self.add_node()
            self.add_node()

            def balanced():
                return (self.settled(nodes_up=5) and self.spread("replicas") <= 1 and
                        self.spread("leaders") <= 1)
            wait_for(balanced, "48 replicas and 16 leaders to spread over 5 nodes", 180)
            before = len(load.acked)
            wait_for(lambda: len(load.acked) >= before + 50, "writes after the moves")
        self.check_everything_there(load)
        status = self.kvctl_json("schedule", "status")
        self.assertTrue(status["enabled"])
        self.assertEqual(status["running"], [])
        self.assertIn("balanced", status["note"])
        self.assertTrue(all(m["ok"] for m in status["recent"]), status["recent"])
        # The nodes hold what the map says, and nothing more: every old
        # replica was deleted from the node it left.
        for node in self.nodes:
            node_id = self.node_id_of(node)
            mapped = {(s.descriptor.id, r.replica_id) for s in list_shards(self.router.endpoint)
                      for r in s.descriptor.replicas if r.node_id == node_id}
            wait_for(lambda: self.node_holds(node) == mapped,
                     "node %d to hold just its replicas" % node_id)


class DrainTest(RebalanceCase):

    def test_a_drained_node_ends_empty_and_is_removed(self):
        self.add_node()
        drained = self.nodes[0]
        drained_id = self.node_id_of(drained)
        # An operator's drain runs with the scheduler off.
        self.assertEqual(self.kvctl_json("schedule", "off"), {"enabled": False})
        # Four nodes with three replicas a shard: one cannot drain two.
        with Load(self.router.endpoint) as load:
            self.make_shards(6)
            out = subprocess.run([KVCTL, "--endpoints", self.router.endpoint, "node", "drain",
                                  str(drained_id)], capture_output=True)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn(b"drained", out.stdout)
            before = len(load.acked)
            wait_for(lambda: len(load.acked) >= before + 50, "writes after the drain")
        self.check_everything_there(load)
        node = next(n for n in cluster_status(self.router.endpoint).nodes if n.id == drained_id)
        self.assertEqual((node.replicas, node.leaders, node.admin_state), (0, 0, 2))
        self.assertTrue(self.settled())
        wait_for(lambda: self.node_holds(drained) == set(), "the drained node to delete its data")
        # A drain can be ended; the node is active again, and (the scheduler
        # being off) stays empty until drained again, at once.
        self.assertEqual(self.kvctl_json("node", "activate", str(drained_id))["admin_state"],
                         "active")
        self.assertEqual(self.kvctl_json("node", "drain", str(drained_id))["admin_state"],
                         "drained")
        self.kvctl_fails(("node", "activate", "99"), 3, b"no node 99")
        self.kvctl_fails(("node", "drain", str(self.node_id_of(self.nodes[1]))), 3,
                         b"only 2 other node(s)")
        self.kvctl_fails(("node", "remove", str(self.node_id_of(self.nodes[1]))), 3,
                         b"drain it first")
        self.kvctl_fails(("node", "drain", "99"), 3, b"no node 99")
        self.kvctl_fails(("node", "drain", "x"), 2, b"NODE_ID must be an id")
        self.kvctl_fails(("node", "evict", "1"), 2, b"drain, activate or remove")
        self.assertEqual(self.kvctl_json("node", "remove", str(drained_id))["removed"], True)
        self.assertNotIn(drained_id, [n.id for n in cluster_status(self.router.endpoint).nodes])
        # A removed node may not come back under its old id: refused, it
        # stops rather than serve its stale data.
        drained.stop()
        drained.start()
        wait_for(lambda: drained.proc.poll() is not None, "the removed node to stop")
        self.assertEqual(drained.proc.returncode, 3, drained.log())
        self.assertIn("was removed from the cluster", drained.log())
        self.assertNotIn(drained_id, [n.id for n in cluster_status(self.router.endpoint).nodes])


class DeadNodeTest(RebalanceCase):
    ROUTER_ARGS = NO_AUTOMATIC_SPLITS + ("--down-after", "2s")

    def test_a_dead_nodes_replicas_are_made_again_elsewhere(self):
        self.add_node()
        self.make_shards(6)
        for i in range(300):
            self.client.put(b"d%06d" % (i * 331), b"v%d" % i)
        # The node holding the most replicas dies.
        holding = {n.id: n.replicas for n in cluster_status(self.router.endpoint).nodes}
        dead = max(self.nodes, key=lambda n: holding[self.node_id_of(n)])
        dead_id = self.node_id_of(dead)
        stale = self.node_holds(dead)
        self.assertGreater(len(stale), 0)
        dead.stop(signal.SIGKILL)
        with Load(self.router.endpoint) as load:
            wait_for(lambda: self.settled(nodes_up=3),
                     "every shard to have 3 replicas on the live nodes", 120)
            before = len(load.acked)
            wait_for(lambda: len(load.acked) >= before + 50, "writes after the repair")
        self.check_everything_there(load)
        for i in range(300):
            self.assertEqual(self.client.get(b"d%06d" % (i * 331)).value, b"v%d" % i)
        # Back from the dead: its stale replicas are deleted, never voters
        # again; whatever it holds later is new (new replica ids).
        dead.start()
        wait_for(lambda: not (self.node_holds(dead) & stale), "the stale replicas to be deleted",
                 60)
        for s in list_shards(self.router.endpoint):
            for r in s.descriptor.replicas:
                self.assertNotIn((s.descriptor.id, r.replica_id), stale)
        wait_for(lambda: self.settled(nodes_up=4),
                 "the cluster to settle with the node back", 120)


class ZoneTest(RebalanceCase):
    NODE_ZONES = ("a", "a", "b")

    def zones_of(self, shard, zone_of):
        return {zone_of[r.node_id] for r in shard.descriptor.replicas}

    def test_every_shard_ends_up_in_three_zones(self):
        self.make_shards(6)
        self.add_node("c")
        self.add_node("c")
        zone_of = {n.id: n.zone for n in cluster_status(self.router.endpoint).nodes}

        def spread():
            shards = list_shards(self.router.endpoint)
            return self.settled() and all(self.zones_of(s, zone_of) == {"a", "b", "c"}
                                          for s in shards)
        wait_for(spread, "every shard to span zones a, b and c", 120)

        # The lone node of zone b must hold every shard, so the cluster can
        # never be balanced within 1; nodes sharing a zone still even out.
        def zone_mates_even():
            counts = {}
            for n in cluster_status(self.router.endpoint).nodes:
                counts.setdefault(n.zone, []).append(n.replicas)
            return all(max(c) - min(c) <= 1 for c in counts.values())
        wait_for(zone_mates_even, "nodes sharing a zone to hold as many replicas", 120)
        # Balance never trades the spread away.
        wait_for(lambda: self.kvctl_json("schedule", "status")["running"] == [],
                 "the scheduler to settle", 60)
        self.assertTrue(spread())
        self.assertTrue(zone_mates_even())


class InterruptedMoveTest(RebalanceCase):

    def test_a_move_cut_short_by_a_router_restart_is_rolled_back(self):
        target = self.add_node()
        target_id = self.node_id_of(target)
        self.assertEqual(self.kvctl_json("schedule", "off"), {"enabled": False})
        self.assertFalse(self.kvctl_json("schedule", "status")["enabled"])
        for i in range(100):
            self.client.put(b"k%06d" % i, b"v%d" % i)
        shard = list_shards(self.router.endpoint)[0].descriptor
        source = shard.replicas[0].node_id
        # The target drops Raft traffic: its learner never gets a snapshot.
        admin = Admin(target.endpoint)
        admin.isolate(raft_pb2.IsolateRequest(isolated=True), timeout=10)
        move = subprocess.Popen([KVCTL, "--endpoints", self.router.endpoint, "move",
                                 str(shard.id), str(source), str(target_id)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: any("snapshot" in m["step"] for m in
                                 self.kvctl_json("schedule", "status")["running"]),
                     "the move to wait for its learner")
            self.router.stop(signal.SIGKILL)
        finally:
            move.communicate()
        self.assertNotEqual(move.returncode, 0)
        self.router.start()
        admin.isolate(raft_pb2.IsolateRequest(isolated=False), timeout=10)
        admin.close()

        def rolled_back():
            s = list_shards(self.router.endpoint)
            return (len(s) == 1 and s[0].descriptor.conf_ver > shard.conf_ver and
                    self.settled() and target_id not in
                    [r.node_id for r in s[0].descriptor.replicas])
        wait_for(rolled_back, "the learner to be removed", 60)
        wait_for(lambda: self.node_holds(target) == set(), "the target to delete its replica")
        # Scheduling stays off across the restart; a move by hand works.
        self.assertFalse(self.kvctl_json("schedule", "status")["enabled"])
        moved = self.kvctl_json("move", str(shard.id), str(source), str(target_id))["shard"]
        self.assertEqual(sorted(r["node_id"] for r in moved["replicas"]),
                         sorted({r.node_id for r in shard.replicas} - {source} | {target_id}))
        self.assertTrue(all(r["role"] == "voter" for r in moved["replicas"]))
        for i in range(100):
            self.assertEqual(self.client.get(b"k%06d" % i).value, b"v%d" % i)
        status = self.kvctl_json("schedule", "status")
        self.assertEqual(status["recent"][0]["outcome"], "done")
        self.assertEqual(status["recent"][0]["reason"], "asked by an operator")
        # Bad moves are refused and change nothing.
        conf_ver = list_shards(self.router.endpoint)[0].descriptor.conf_ver
        for args, code, why in [
                (("1", str(target_id), str(target_id)), 3, b"same node"),
                (("1", str(source), str(target_id)), 3, b"holds no replica"),
                (("1", str(target_id), str(moved["replicas"][0]["node_id"])), 3,
                 b"already holds"),
                (("99", "1", "2"), 3, b"no such shard"),
                (("1", str(target_id), "99"), 3, b"no such target"),
                (("1", "x", "2"), 2, b"FROM_NODE must be an id"),
                (("1", "2"), 2, b"takes SHARD_ID FROM_NODE TO_NODE")]:
            self.kvctl_fails(("move",) + args, code, why)
        self.assertEqual(list_shards(self.router.endpoint)[0].descriptor.conf_ver, conf_ver)
        self.kvctl_fails(("schedule", "maybe"), 2, b"on, off or status")
        self.assertEqual(self.kvctl_json("schedule", "on"), {"enabled": True})


if __name__ == "__main__":
    unittest.main()
