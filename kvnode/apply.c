/* apply: committed entries into the state machine.
 *
 * Every replica applies the same entries in the same order, into the node's
 * apply batch, together with its new applied index: the batch is written
 * atomically, so data and applied index never disagree, even after a crash.
 * Deletes read the batch itself to learn whether the key existed, so a put
 * and a delete of one key applied in one batch are seen in order.
 */
#include <stdio.h>
#include <stdlib.h>

#include "basalt/v1/raft.pb-c.h"
#include "kvnode/node.h"
#include "runtime/log.h"

/* Applies one command; *existed says, for a delete, if the key was there. */
static node_applied_result node_apply_command(node *n, node_replica *r, const raft_entry *e,
                                              bool *existed) {
    Basalt__V1__KvCommand *cmd = basalt__v1__kv_command__unpack(NULL, e->len, e->data);
    node_applied_result result = NODE_APPLIED_DONE;

    *existed = false;
    if (cmd == NULL) {
        /* Every replica skips it alike; it was proposed by a buggy leader. */
        log_error("shard %llu: committed entry %llu is not a command; skipped",
                  (unsigned long long)r->shard_id, (unsigned long long)e->index);
        return result;
    }
    if (cmd->op == BASALT__V1__KV_COMMAND__OP__OP_SPLIT) {
        result = node_apply_split(n, r, cmd, e->index);
    } else if (!node_desc_contains(r->desc, cmd->key.data, cmd->key.len)) {
        /* Proposed before a split that gave the key to another shard: every
         * replica skips it, and its writer may send it there. */
        result = NODE_APPLIED_KEY_MOVED;
    } else if (cmd->op == BASALT__V1__KV_COMMAND__OP__OP_PUT) {
        r->bytes_put += cmd->key.len + cmd->value.len;
        kvs_batch_put(n->apply_batch, KVS_CF_DATA, cmd->key.data, cmd->key.len, cmd->value.data,
                      cmd->value.len);
    } else if (cmd->op == BASALT__V1__KV_COMMAND__OP__OP_DELETE) {
        char *old = NULL;
        size_t len;
        kvs_batch_get(n->apply_batch, KVS_CF_DATA, cmd->key.data, cmd->key.len, existed, &old,
                      &len);
        free(old);
        if (*existed)
            kvs_batch_delete(n->apply_batch, KVS_CF_DATA, cmd->key.data, cmd->key.len);
    }
    basalt__v1__kv_command__free_unpacked(cmd, NULL);
    return result;
}

/* The pending write proposed at e's index, if it is still waiting. */
static node_pending_write *node_pending_at(node_replica *r, raft_index_t index) {
    for (size_t i = 0; i < r->n_writes; i++) {
        if (r->writes[i].index == index)
            return &r->writes[i];
        if (r->writes[i].index > index)
            break;
    }
    return NULL;
}

void node_apply_committed(node *n, node_replica *r) {
    const raft_ready *rd = &r->rd;

    for (size_t i = 0; i < rd->n_committed; i++) {
        const raft_entry *e = &rd->committed[i];
        node_applied_result result = NODE_APPLIED_DONE;
        bool existed = false;

        if (e->type == RAFT_ENTRY_CONF_CHANGE)
            result = node_apply_conf_change(n, r, e);
        else if (e->len > 0)
            result = node_apply_command(n, r, e, &existed);

        node_pending_write *w = node_pending_at(r, e->index);
        if (w != NULL && w->term == e->term) {
            w->applied = true;
            w->existed = existed;
            w->result = result;
        } else if (w != NULL) {
            w->superseded = true;
        }
    }
    if (rd->n_committed > 0)
        rlog_stage_applied(r->log, n->apply_batch, rd->committed[rd->n_committed - 1].index);
}
