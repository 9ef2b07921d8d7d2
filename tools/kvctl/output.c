/* output: JSON (jansson) and raw output for kvctl. */
#include "tools/kvctl/output.h"

#include <stdio.h>
#include <stdlib.h>

#include <openssl/evp.h>

json_t *output_base64(const uint8_t *data, size_t len) {
    /* EVP_EncodeBlock writes 4 bytes per 3 (rounded up) and a NUL. */
    char *text = malloc(4 * ((len + 2) / 3) + 1);
    json_t *s;

    if (text == NULL)
        return NULL;
    EVP_EncodeBlock((unsigned char *)text, data, (int)len);
    s = json_string(text);
    free(text);
    return s;
}

json_t *output_read_info(const Basalt__V1__ReadInfo *info) {
    Basalt__V1__ReadInfo zero = BASALT__V1__READ_INFO__INIT;

    if (info == NULL)
        info = &zero;
    return json_pack("{s:I,s:I,s:I}", "shard_id", (json_int_t)info->shard_id, "node_id",
                     (json_int_t)info->node_id, "applied_index", (json_int_t)info->applied_index);
}

int output_json(json_t *obj) {
    int rc;

    if (obj == NULL)
        return -1;
    rc = json_dumpf(obj, stdout, JSON_COMPACT);
    json_decref(obj);
    if (rc != 0)
        return -1;
    return fputc('\n', stdout) == EOF ? -1 : 0;
}

void output_bytes(const uint8_t *data, size_t len, const char *end) {
    fwrite(data, 1, len, stdout);
    fputs(end, stdout);
}
