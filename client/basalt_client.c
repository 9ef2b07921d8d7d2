/* basalt_client: unary KV calls with endpoint failover. */
#include "client/basalt_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "runtime/error.h"
#include "runtime/parse.h"

struct basalt_client {
    rpc_channel *channels[BASALT_ENDPOINTS_MAX];
    int count;
    int current; /* the endpoint that answered last */
    int64_t timeout_ms;
};

static int basalt_add_endpoint(basalt_client *c, const char *start, size_t len, char *why,
                               size_t why_size) {
    char target[256];

    if (len == 0) {
        snprintf(why, why_size, "empty endpoint in the list");
        return BS_ERR_INVALID_ARGUMENT;
    }
    if (len >= sizeof(target)) {
        snprintf(why, why_size, "endpoint longer than %zu bytes", sizeof(target) - 1);
        return BS_ERR_INVALID_ARGUMENT;
    }
    if (c->count == BASALT_ENDPOINTS_MAX) {
        snprintf(why, why_size, "more than %d endpoints", BASALT_ENDPOINTS_MAX);
        return BS_ERR_INVALID_ARGUMENT;
    }
    memcpy(target, start, len);
    target[len] = '\0';
    if (!parse_host_port(target, 1)) {
        snprintf(why, why_size, "endpoint '%s' is not HOST:PORT with a port from 1 to 65535",
                 target);
        return BS_ERR_INVALID_ARGUMENT;
    }
    c->channels[c->count] = rpc_channel_open(target);
    if (c->channels[c->count] == NULL) {
        snprintf(why, why_size, "out of memory");
        return BS_ERR_NOMEM;
    }
    c->count++;
    return 0;
}

basalt_client *basalt_client_open(const char *endpoints, int64_t timeout_ms, char *why,
                                  size_t why_size) {
    basalt_client *c = calloc(1, sizeof(*c));
    const char *p = endpoints;

    if (c == NULL) {
        snprintf(why, why_size, "out of memory");
        return NULL;
    }
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : BASALT_TIMEOUT_MS_DEFAULT;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (basalt_add_endpoint(c, p, len, why, why_size) != 0) {
            basalt_client_close(c);
            return NULL;
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return c;
}

void basalt_client_close(basalt_client *c) {
    if (c == NULL)
        return;
    for (int i = 0; i < c->count; i++)
        rpc_channel_close(c->channels[i]);
    free(c);
}

/* One call, moving on to the next endpoint while the current one is
 * unreachable. */
static int basalt_call(basalt_client *c, const char *method, const ProtobufCMessage *request,
                       const ProtobufCMessageDescriptor *response_desc, ProtobufCMessage **response,
                       rpc_status *status) {
    int rc = BS_ERR_UNAVAILABLE;

    for (int tries = 0; tries < c->count; tries++) {
        int i = (c->current + tries) % c->count;
        rc = rpc_unary(c->channels[i], method, request, response_desc, c->timeout_ms, response,
                       status);
        if (rc != BS_ERR_UNAVAILABLE) {
            c->current = i;
            break;
        }
    }
    return rc;
}

rpc_channel *basalt_client_channel(basalt_client *c) {
    return c->channels[c->current];
}

int basalt_client_call(basalt_client *c, const char *method, const ProtobufCMessage *request,
                       const ProtobufCMessageDescriptor *response_desc, ProtobufCMessage **response,
                       rpc_status *status) {
    return basalt_call(c, method, request, response_desc, response, status);
}

int basalt_put(basalt_client *c, const void *key, size_t key_len, const void *value,
               size_t value_len, rpc_status *status) {
    Basalt__V1__PutRequest req = BASALT__V1__PUT_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;

    req.key.data = (uint8_t *)key;
    req.key.len = key_len;
    req.value.data = (uint8_t *)value;
    req.value.len = value_len;
    int rc = basalt_call(c, "/basalt.v1.KV/Put", &req.base, &basalt__v1__put_response__descriptor,
                         &resp, status);
    basalt_response_free(resp);
    return rc;
}

int basalt_get(basalt_client *c, const void *key, size_t key_len, Basalt__V1__Consistency level,
               Basalt__V1__GetResponse **response, rpc_status *status) {
    Basalt__V1__GetRequest req = BASALT__V1__GET_REQUEST__INIT;

    req.key.data = (uint8_t *)key;
    req.key.len = key_len;
    req.consistency = level;
    return basalt_call(c, "/basalt.v1.KV/Get", &req.base, &basalt__v1__get_response__descriptor,
                       (ProtobufCMessage **)response, status);
}

int basalt_delete(basalt_client *c, const void *key, size_t key_len, bool *deleted,
                  rpc_status *status) {
    Basalt__V1__DeleteRequest req = BASALT__V1__DELETE_REQUEST__INIT;
    Basalt__V1__DeleteResponse *resp = NULL;

    req.key.data = (uint8_t *)key;
    req.key.len = key_len;
    int rc =
        basalt_call(c, "/basalt.v1.KV/Delete", &req.base, &basalt__v1__delete_response__descriptor,
                    (ProtobufCMessage **)&resp, status);
    *deleted = rc == 0 && resp->deleted;
    basalt_response_free(resp);
    return rc;
}

int basalt_scan(basalt_client *c, const Basalt__V1__ScanRequest *request,
                Basalt__V1__ScanResponse **response, rpc_status *status) {
    return basalt_call(c, "/basalt.v1.KV/Scan", &request->base,
                       &basalt__v1__scan_response__descriptor, (ProtobufCMessage **)response,
                       status);
}

int basalt_health(basalt_client *c, rpc_status *status) {
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    Grpc__Health__V1__HealthCheckResponse *resp = NULL;

    int rc = basalt_call(c, "/grpc.health.v1.Health/Check", &req.base,
                         &grpc__health__v1__health_check_response__descriptor,
                         (ProtobufCMessage **)&resp, status);
    if (rc == 0 &&
        resp->status != GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING) {
        status->code = GRPC_STATUS_UNAVAILABLE;
        snprintf(status->message, sizeof(status->message), "not serving (health status %d)",
                 (int)resp->status);
        rc = BS_ERR_UNAVAILABLE;
    }
    basalt_response_free(resp);
    return rc;
}

void basalt_response_free(void *response) {
    if (response != NULL)
        protobuf_c_message_free_unpacked(response, NULL);
}
