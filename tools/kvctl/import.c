/* import: kvctl import FILE — loads `key<TAB>value` lines (FILE, or - for
 * stdin) with many puts in flight at once (asynchronous calls), shows
 * progress on a terminal, skips malformed lines with their line number, and
 * reports keys loaded and failures at the end. */
#include "tools/kvctl/import.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "basalt/v1/kv.pb-c.h"
#include "runtime/kv_limits.h"
#include "runtime/rpc_async.h"
#include "tools/kvctl/output.h"

/* Puts in flight at once. */
#define IMPORT_WINDOW 128
/* Failures reported one by one, at most; the rest are only counted. */
#define IMPORT_FAILURES_SHOWN 10

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t room;
    int in_flight;
    uint64_t loaded;
    uint64_t failed;
    uint64_t shown;
} import_state;

typedef struct {
    import_state *st;
    uint64_t line;
    uint8_t *buf; /* key and value, owned */
} import_put;

static void import_done(void *ctx, int rc, ProtobufCMessage *response, const rpc_status *status,
                        const rpc_trailers *trailers) {
    import_put *p = ctx;
    import_state *st = p->st;
    (void)trailers;

    if (response)
        protobuf_c_message_free_unpacked(response, NULL);
    pthread_mutex_lock(&st->lock);
    if (rc == 0) {
        st->loaded++;
    } else {
        st->failed++;
        if (st->shown++ < IMPORT_FAILURES_SHOWN)
            fprintf(stderr, "kvctl import: line %llu: %s: %s\n", (unsigned long long)p->line,
                    rpc_status_name(status->code), status->message);
    }
    st->in_flight--;
    pthread_cond_signal(&st->room);
    pthread_mutex_unlock(&st->lock);
    free(p->buf);
    free(p);
}

/* Splits a line at its first TAB; returns false (and says why) when it
 * cannot be a pair. */
static bool import_parse(char *line, size_t len, uint64_t number, char **value, size_t *key_len,
                         size_t *value_len) {
    char *tab;

    if (len > 0 && line[len - 1] == '\n')
        line[--len] = '\0';
    if (len > 0 && line[len - 1] == '\r') /* a file with CRLF line ends */
        line[--len] = '\0';
    tab = memchr(line, '\t', len);
    if (tab == NULL) {
        fprintf(stderr, "kvctl import: line %llu: no TAB between key and value; skipped\n",
                (unsigned long long)number);
        return false;
    }
    *key_len = (size_t)(tab - line);
    if (*key_len == 0 || *key_len > KV_KEY_BYTES_MAX) {
        fprintf(stderr, "kvctl import: line %llu: the key must be 1 to %d bytes; skipped\n",
                (unsigned long long)number, KV_KEY_BYTES_MAX);
        return false;
    }
    *value = tab + 1;
    *value_len = len - *key_len - 1;
    return true;
}

static void import_progress(import_state *st, bool final) {
    pthread_mutex_lock(&st->lock);
    fprintf(stderr, "\rkvctl import: %llu keys loaded, %llu failed%s",
            (unsigned long long)st->loaded, (unsigned long long)st->failed, final ? "\n" : "");
    pthread_mutex_unlock(&st->lock);
}

int kvctl_import(basalt_client *client, const kvctl_args *a) {
    const char *path = a->positionals[0];
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    int open_errno = errno;
    rpc_async_pool *pool;
    import_state st = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0};
    bool tty = isatty(STDERR_FILENO);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    uint64_t number = 0, skipped = 0;
    bool read_failed = false;
    time_t last = time(NULL);

    if (in == NULL) {
        fprintf(stderr, "kvctl import: cannot open %s: %s\n", path, strerror(open_errno));
        return KVCTL_EXIT_FAILED;
    }
    pool = rpc_async_pool_create();
    while ((len = getline(&line, &cap, in)) >= 0) {
        char *value;
        size_t key_len, value_len;
        number++;
        if (len == 1 && line[0] == '\n')
            continue; /* blank lines separate nothing and load nothing */
        if (!import_parse(line, (size_t)len, number, &value, &key_len, &value_len)) {
            skipped++;
            continue;
        }
        import_put *p = calloc(1, sizeof(*p));
        p->st = &st;
        p->line = number;
        p->buf = malloc(key_len + value_len + 1);
        memcpy(p->buf, line, key_len);
        memcpy(p->buf + key_len, value, value_len);

        pthread_mutex_lock(&st.lock);
        while (st.in_flight >= IMPORT_WINDOW)
            pthread_cond_wait(&st.room, &st.lock);
        st.in_flight++;
        pthread_mutex_unlock(&st.lock);

        Basalt__V1__PutRequest req = BASALT__V1__PUT_REQUEST__INIT;
        req.key = (ProtobufCBinaryData){key_len, p->buf};
        req.value = (ProtobufCBinaryData){value_len, p->buf + key_len};
        rpc_async_unary(pool, basalt_client_channel(client), "/basalt.v1.KV/Put", &req.base,
                        &basalt__v1__put_response__descriptor, a->timeout_ms, import_done, p);
        if (tty && time(NULL) != last) {
            last = time(NULL);
            import_progress(&st, false);
        }
    }
    free(line);
    if (ferror(in)) {
        fprintf(stderr, "kvctl import: reading %s stopped after line %llu: %s\n", path,
                (unsigned long long)number, strerror(errno));
        read_failed = true; /* the rest of the input was not loaded */
    }
    if (in != stdin)
        fclose(in);
    rpc_async_pool_destroy(pool); /* waits for every put */
    if (tty)
        import_progress(&st, true);
    if (st.failed > IMPORT_FAILURES_SHOWN)
        fprintf(stderr, "kvctl import: %llu more failed lines not shown\n",
                (unsigned long long)(st.failed - IMPORT_FAILURES_SHOWN));
    if (a->output == KVCTL_OUTPUT_JSON)
        output_json(json_pack("{s:I,s:I,s:I}", "loaded", (json_int_t)st.loaded, "failed",
                              (json_int_t)st.failed, "malformed", (json_int_t)skipped));
    else
        printf("%llu keys loaded, %llu failed, %llu malformed lines skipped\n",
               (unsigned long long)st.loaded, (unsigned long long)st.failed,
               (unsigned long long)skipped);
    /* Anything not loaded makes the exit code say so; puts are idempotent,
     * so running the same import again is safe. */
    return st.failed > 0 || skipped > 0 || read_failed ? KVCTL_EXIT_FAILED : KVCTL_EXIT_OK;
}
