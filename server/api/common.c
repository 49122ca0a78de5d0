/* capstan: helpers shared by the API handlers (see common.h). */
#include "api/common.h"

#include "model/model.h"
#include "util/buf.h"
#include "util/crypto.h"
#include "util/error.h"
#include "util/json.h"
#include "util/str.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int api_write_init(struct http_request *req, struct store_write *w)
{
    const char *key = http_header(req, "Idempotency-Key");
    const char *im = http_header(req, "If-Match");

    memset(w, 0, sizeof(*w));
    w->actor = req->principal.name;
    w->if_match = -1;
    if (key) {
        size_t n = strlen(key);
        bool ok = n >= 1 && n <= 255;
        for (size_t i = 0; ok && i < n; i++)
            ok = key[i] >= 0x21 && key[i] <= 0x7e;
        if (!ok)
            return cap_error_set_field(CAP_EMALFORMED, "Idempotency-Key",
                                       "Idempotency-Key must be 1 to 255 printable ASCII "
                                       "characters without spaces");
        w->idem_key = key;
        /* what makes "the same request": method, path and the exact body */
        struct cap_buf b = CAP_BUF_INIT(req->body.len + 2 * ROUTER_MAX_PATH);
        cap_buf_printf(&b, "%s %s\n", req->method, req->path);
        cap_buf_append(&b, cap_buf_str(&req->body), req->body.len);
        static _Thread_local char hash[65];
        cap_sha256_hex(hash, cap_buf_str(&b), b.len);
        cap_buf_free(&b);
        w->idem_hash = hash;
    }
    if (im && strcmp(im, "*") != 0) {
        long long gen;
        size_t n = strlen(im);
        char digits[24];
        if (n < 3 || n > 22 || im[0] != '"' || im[n - 1] != '"')
            return cap_error_set(CAP_EPRECONDITION,
                                 "If-Match must be the quoted generation from the ETag header");
        memcpy(digits, im + 1, n - 2);
        digits[n - 2] = '\0';
        if (cap_parse_long(&gen, digits, 0, 1LL << 53))
            return cap_error_set(CAP_EPRECONDITION,
                                 "If-Match must be the quoted generation from the ETag header");
        w->if_match = gen;
    }
    return 0;
}

int api_write_reply(struct http_request *req, const struct store_write *w, json_t *body)
{
    if (w->location[0])
        http_set_header(req, "Location", w->location);
    if (w->replayed)
        http_set_header(req, "Idempotent-Replayed", "true");
    return http_reply_json(req, w->status ? w->status : HTTP_ACCEPTED, body);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64val(char c)
{
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

/* Decodes base64url without padding into out (size bytes); returns the length or -1. */
static int b64url_decode(const char *in, char *out, size_t size)
{
    size_t n = strlen(in), o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val(in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= size)
                return -1;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    return (int)o;
}

int api_page(struct http_request *req, char kind, struct store_page *page)
{
    const char *limit = http_query(req, "limit");
    const char *cursor = http_query(req, "cursor");
    long long v;

    page->after = 0;
    page->next = 0;
    page->limit = API_LIMIT_DEFAULT;
    if (limit) {
        if (cap_parse_long(&v, limit, 1, API_LIMIT_MAX))
            return cap_error_set_field(CAP_EMALFORMED, "limit",
                                       "limit must be a whole number from 1 to %d", API_LIMIT_MAX);
        page->limit = (int)v;
    }
    if (cursor) {
        char raw[64];
        if (strlen(cursor) > 60 || b64url_decode(cursor, raw, sizeof(raw)) < 3 || raw[0] != kind ||
            raw[1] != ':' || cap_parse_long(&v, raw + 2, 1, 1LL << 62))
            return cap_error_set_field(CAP_EMALFORMED, "cursor",
                                       "cursor is not one this list gave out");
        page->after = v;
    }
    return 0;
}

int api_list_reply(struct http_request *req, char kind, const struct store_page *page,
                   const char *items)
{
    struct cap_buf b = CAP_BUF_INIT(strlen(items) + 128);
    char next[64] = "null";
    int rc;

    if (page->next > 0) {
        char raw[32], enc[48];
        int n = snprintf(raw, sizeof(raw), "%c:%lld", kind, page->next);
        cap_base64url(enc, (const unsigned char *)raw, (size_t)n);
        snprintf(next, sizeof(next), "\"%s\"", enc);
    }
    /* items is JSON text made by PostgreSQL (a list page): joined, not parsed again */
    if ((rc = cap_buf_printf(&b, "{\"items\":%s,\"nextCursor\":%s}", items, next)) == 0)
        rc = http_reply_text(req, HTTP_OK, "application/json; charset=utf-8", b.data, b.len);
    cap_buf_free(&b);
    return rc;
}

int api_flag(struct http_request *req, const char *name, bool *out)
{
    const char *v = http_query(req, name);
    *out = false;
    if (!v)
        return 0;
    if (strcmp(v, "true") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(v, "false") == 0)
        return 0;
    return cap_error_set_field(CAP_EMALFORMED, name, "%s must be true or false", name);
}

int api_enum_query(struct http_request *req, const char *name, const char *const *choices,
                   const char **out)
{
    const char *v = http_query(req, name);
    *out = NULL;
    if (!v)
        return 0;
    for (const char *const *c = choices; *c; c++) {
        if (strcmp(*c, v) == 0) {
            *out = *c;
            return 0;
        }
    }
    struct cap_buf b = CAP_BUF_INIT(512);
    for (const char *const *c = choices; *c; c++)
        cap_buf_printf(&b, "%s%s", c == choices ? "" : ", ", *c);
    cap_error_set_field(CAP_EMALFORMED, name, "%s must be one of %s", name, cap_buf_str(&b));
    cap_buf_free(&b);
    return CAP_EMALFORMED;
}

void api_etag(struct http_request *req, const json_t *obj)
{
    char etag[32];
    snprintf(etag, sizeof(etag), "\"%lld\"",
             (long long)json_integer_value(json_object_get(obj, "generation")));
    http_set_header(req, "ETag", etag);
}

int api_invalid(struct http_request *req, json_t *errors)
{
    size_t n = json_array_size(errors);
    json_decref(req->field_errors);
    req->field_errors = errors;
    cap_error_set(CAP_EINVALID, "%zu field%s %s invalid; see errors", n, n == 1 ? "" : "s",
                  n == 1 ? "is" : "are");
    return CAP_EINVALID;
}

int api_tenant_param(struct http_request *req, const char **out)
{
    *out = http_param(req, "tenant");
    if (!*out || !cap_is_dns_label(*out, MODEL_TENANT_NAME_MAX))
        return cap_error_set(CAP_ENOTFOUND, "tenant \"%.64s\" does not exist", *out ? *out : "");
    return 0;
}

int api_env_param(struct http_request *req, const char **out)
{
    *out = http_param(req, "env");
    if (!*out || !cap_is_dns_label(*out, MODEL_ENV_NAME_MAX))
        return cap_error_set(CAP_ENOTFOUND, "environment \"%.64s\" does not exist",
                             *out ? *out : "");
    return 0;
}

int api_patch(struct http_request *req, const struct api_patch_ops *ops, void *ctx, bool dry)
{
    json_t *spec = NULL, *new_spec = NULL, *errors = NULL, *body = NULL;
    struct store_write w;
    long long gen = 0;
    int rc;

    if ((rc = api_write_init(req, &w)) != 0)
        return rc;
    for (int attempt = 0; attempt < 5; attempt++) {
        json_decref(spec);
        json_decref(new_spec);
        json_decref(errors);
        spec = new_spec = NULL;
        errors = json_array();
        if ((rc = ops->load(ctx, &spec, &gen)) != 0)
            goto cleanup;
        if (w.if_match >= 0 && w.if_match != gen) {
            rc = cap_error_set(CAP_EPRECONDITION,
                               "the %s is at generation %lld, not %lld as If-Match says; read it "
                               "again",
                               ops->what, gen, w.if_match);
            goto cleanup;
        }
        if (ops->apply(ctx, spec, req->json, &new_spec, errors) != 0) {
            rc = api_invalid(req, errors);
            errors = NULL;
            goto cleanup;
        }
        if (dry) {
            rc = ops->dry_run(ctx, req, new_spec);
            goto cleanup;
        }
        rc = ops->store(ctx, gen, new_spec, &w, &body);
        if (rc != CAP_ERETRY)
            break;
    }
    if (rc == 0) {
        rc = api_write_reply(req, &w, body);
        body = NULL;
    }
cleanup:
    json_decref(spec);
    json_decref(new_spec);
    json_decref(errors);
    json_decref(body);
    return rc;
}
