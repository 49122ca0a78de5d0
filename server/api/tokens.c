/* capstan: /api/v1/tokens: make, list and revoke API tokens (admins only).
 *
 * The plain token exists only in the 201 answer that makes it: it is generated here, only its
 * SHA-256 is stored, and the buffer is wiped. Idempotency-Key is refused on POST (400): a
 * replayed answer would have to keep the plain token. */
#include "store/tokens.h"
#include "api/api.h"
#include "api/auth.h"
#include "api/common.h"
#include "app.h"
#include "model/model.h"
#include "util/crypto.h"
#include "util/error.h"
#include "util/json.h"
#include "util/str.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Number of UTF-8 characters in s (s is valid UTF-8). */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Parses an RFC 3339 date-time ("2026-01-02T03:04:05Z", fractions and offsets allowed) into
 * milliseconds since the epoch. */
static int parse_rfc3339(const char *s, long long *out_ms)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
    long long frac_ms = 0;
    const char *p;
    struct tm tm;

    if (strlen(s) < 20 || strlen(s) > 40 || digits(s, 4, &y) || s[4] != '-' ||
        digits(s + 5, 2, &mo) || s[7] != '-' || digits(s + 8, 2, &d) ||
        (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &h) || s[13] != ':' ||
        digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &sec))
        return -1;
    p = s + 19;
    if (*p == '.') {
        int n = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, n++)
            if (n < 3)
                frac_ms = frac_ms * 10 + (*p - '0');
        if (n == 0)
            return -1;
        for (; n < 3; n++)
            frac_ms *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        p += 6;
    } else {
        return -1;
    }
    if (*p || y < 1970 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60)
        return -1;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap))
        return -1;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec == 60 ? 59 : sec;
    long long t = (long long)timegm(&tm);
    t -= (long long)sign * (oh * 3600 + om * 60);
    *out_ms = t * 1000 + frac_ms;
    return 0;
}

/* Validates a create body, appending to errors. */
static void check_create(const json_t *in, json_t *errors, const char **name, const char **role,
                         const char **tenant, long long *expires_ms)
{
    static const char *const fields[] = {"name", "role", "tenant", "expiresAt", NULL};
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)in, key, v)
    {
        bool known = false;
        for (const char *const *f = fields; *f; f++)
            known = known || strcmp(*f, key) == 0;
        if (!known)
            model_error(errors, key, "unknown field");
    }
    v = json_object_get(in, "name");
    if (!v)
        model_error(errors, "name", "name is required");
    else if (!json_is_string(v) || !cap_str_is_clean_utf8(json_string_value(v)) ||
             strlen(json_string_value(v)) != json_string_length(v) ||
             utf8_chars(json_string_value(v)) < 1 ||
             utf8_chars(json_string_value(v)) > STORE_TOKEN_NAME_MAX)
        model_error(errors, "name", "name must be 1 to %d printable characters",
                    STORE_TOKEN_NAME_MAX);
    else
        *name = json_string_value(v);

    v = json_object_get(in, "role");
    *role = json_is_string(v) ? json_string_value(v) : NULL;
    if (!v)
        model_error(errors, "role", "role is required");
    else if (auth_role_parse(*role) == AUTH_ROLE_NONE) {
        model_error(errors, "role", "role must be one of admin, tenant-admin, tenant-viewer");
        *role = NULL;
    }

    v = json_object_get(in, "tenant");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || !cap_is_dns_label(json_string_value(v), MODEL_TENANT_NAME_MAX))
            model_error(errors, "tenant", "tenant must be a tenant name");
        else if (*role && auth_role_parse(*role) == AUTH_ROLE_ADMIN)
            model_error(errors, "tenant",
                        "an admin token is not bound to a tenant; leave tenant "
                        "out");
        else
            *tenant = json_string_value(v);
    } else if (*role && auth_role_parse(*role) != AUTH_ROLE_ADMIN) {
        model_error(errors, "tenant", "a %s token needs the tenant it is bound to", *role);
    }

    v = json_object_get(in, "expiresAt");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || parse_rfc3339(json_string_value(v), expires_ms) != 0)
            model_error(errors, "expiresAt",
                        "expiresAt must be an RFC 3339 time such as 2030-01-02T03:04:05Z");
        else if (*expires_ms <= cap_now_ms())
            model_error(errors, "expiresAt", "expiresAt must be in the future");
    }
}

int api_tokens_create(struct http_request *req)
{
    json_t *errors = json_array(), *tok = NULL;
    const char *name = NULL, *role = NULL, *tenant = NULL;
    long long expires_ms = 0;
    char id[37], token[AUTH_TOKEN_SIZE], hash[65];
    int rc;

    token[0] = '\0';
    if ((rc = http_query_only(req, (const char *const[]){NULL})) != 0)
        goto cleanup;
    if (http_header(req, "Idempotency-Key")) {
        rc = cap_error_set_field(CAP_EMALFORMED, "Idempotency-Key",
                                 "Idempotency-Key is not accepted when making tokens: a replayed "
                                 "answer would have to keep the token; send the request without "
                                 "it");
        goto cleanup;
    }
    check_create(req->json, errors, &name, &role, &tenant, &expires_ms);
    if (json_array_size(errors) > 0) {
        rc = api_invalid(req, errors);
        errors = NULL;
        goto cleanup;
    }
    if ((rc = cap_uuid_v4(id)) != 0 || (rc = auth_token_generate(token)) != 0)
        goto cleanup;
    cap_sha256_hex(hash, token, strlen(token));
    rc = store_token_create(capstan_app->pool, id, name, role, tenant, hash, expires_ms,
                            req->principal.name, &tok);
    if (rc)
        goto cleanup;
    json_object_set_new(tok, "token", json_string(token));
    rc = http_reply_json(req, HTTP_CREATED, tok);
    tok = NULL;
cleanup:
    explicit_bzero(token, sizeof(token));
    json_decref(errors);
    json_decref(tok);
    return rc;
}

int api_tokens_list(struct http_request *req)
{
    static const char *const q[] = {"limit", "cursor", NULL};
    struct store_page page;
    char *items = NULL;
    int rc;

    if ((rc = http_query_only(req, q)) != 0 || (rc = api_page(req, 'k', &page)) != 0)
        return rc;
    if ((rc = store_token_list(capstan_app->pool, &page, &items)) != 0)
        return rc;
    rc = api_list_reply(req, 'k', &page, items);
    free(items);
    return rc;
}

int api_tokens_revoke(struct http_request *req)
{
    const char *id = http_param(req, "id");
    int rc;

    if ((rc = http_query_only(req, (const char *const[]){NULL})) != 0)
        return rc;
    if (id && strcmp(id, "bootstrap") == 0)
        return cap_error_set(CAP_ENOTFOUND,
                             "the bootstrap admin token is not an API token: it comes from the "
                             "configuration (CAPSTAN_ADMIN_TOKEN or the admin-token file); change "
                             "it there");
    if (!id || !cap_is_uuid(id))
        return cap_error_set(CAP_ENOTFOUND, "token \"%.64s\" does not exist", id ? id : "");
    if ((rc = store_token_revoke(capstan_app->pool, id)) != 0)
        return rc;
    return http_reply_empty(req, HTTP_NO_CONTENT);
}
