/* capstan: authentication of API requests, rate limits and the audit record (see auth.h).
 *
 * Credentials: `Authorization: Bearer <token>`. The bootstrap admin token is compared in
 * constant time with the configured (or generated) one; an API token ("cap_" and 43 base64url
 * characters, 256 random bits) is looked up by its SHA-256 in the database on every request,
 * so revocation and expiry take effect at once in every process, and the stored hash is
 * compared in constant time too. Nothing here logs a token or puts one into an error.
 *
 * State: set once by api_auth_start before serving, read-only afterwards except for the rate
 * limiters and the audit writer, which lock inside. */
#include "api/auth.h"

#include "http/ratelimit.h"
#include "log/log.h"
#include "store/audit.h"
#include "store/tokens.h"
#include "util/crypto.h"
#include "util/error.h"
#include "util/json.h"
#include "util/str.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOKEN_PREFIX       "cap_"
#define TOKEN_RANDOM_CHARS 43 /* 32 bytes in base64url without padding */
_Static_assert(AUTH_TOKEN_SIZE == sizeof(TOKEN_PREFIX) + TOKEN_RANDOM_CHARS, "token size");
#define BEARER_MAX      512
#define AUDIT_QUEUE_MAX 10000
#define RATE_KEYS_MAX   100000

static struct {
    struct store_pool *pool;
    char *admin_token;
    struct http_ratelimit *per_token;
    struct http_ratelimit *per_address;
    struct store_audit *audit;
} auth;

static const char *const role_names[] = {NULL, "admin", "tenant-admin", "tenant-viewer"};

const char *auth_role_name(int role)
{
    return role > 0 && role < 4 ? role_names[role] : NULL;
}

int auth_role_parse(const char *name)
{
    for (int i = 1; name && i < 4; i++)
        if (strcmp(role_names[i], name) == 0)
            return i;
    return AUTH_ROLE_NONE;
}

/* ---- the bootstrap admin token ---- */

int auth_token_generate(char out[AUTH_TOKEN_SIZE])
{
    unsigned char raw[32];
    char enc[4 * ((sizeof(raw) + 2) / 3) + 1];
    size_t n = strlen(TOKEN_PREFIX);
    if (cap_random_bytes(raw, sizeof(raw)))
        return cap_error_set(CAP_ERROR, "cannot make random bytes");
    memcpy(out, TOKEN_PREFIX, n);
    cap_base64url(enc, raw, sizeof(raw)); /* 43 characters and a NUL */
    memcpy(out + n, enc, TOKEN_RANDOM_CHARS);
    out[n + TOKEN_RANDOM_CHARS] = '\0';
    explicit_bzero(raw, sizeof(raw));
    explicit_bzero(enc, sizeof(enc));
    return 0;
}

/* Reads the token file at path, which must be a regular file of ours that only we can read. */
static int read_token_file(const char *path, char **out)
{
    char buf[1024];
    struct stat st;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    int rc = 0;

    if (fd < 0)
        return cap_error_set(CAP_EINVALID, "cannot read \"%s\": %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = cap_error_set(CAP_EINVALID, "\"%s\" is not a regular file", path);
        goto cleanup;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
        rc = cap_error_set(CAP_EINVALID,
                           "\"%s\" may be read by other users; make it readable only by its owner "
                           "(chmod 600) or remove it to make a new token",
                           path);
        goto cleanup;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    if (n < 0) {
        rc = cap_error_set(CAP_EINVALID, "cannot read \"%s\": %s", path, strerror(errno));
        goto cleanup;
    }
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    if (n < 16 || !cap_str_is_clean_utf8(buf)) {
        rc = cap_error_set(CAP_EINVALID, "\"%s\" does not hold a token of at least 16 characters",
                           path);
        goto cleanup;
    }
    *out = strdup(buf);
    if (!*out)
        rc = cap_error_set(CAP_ERROR, "out of memory");
cleanup:
    explicit_bzero(buf, sizeof(buf));
    close(fd);
    return rc;
}

/* Writes a new token into a private temporary file and links it to path, so that a reader
 * never sees a half-written file and only one of several processes starting at once wins. */
static int make_token_file(const char *path, bool *made)
{
    char tmp[1100], token[AUTH_TOKEN_SIZE + 1];
    int fd, rc = 0;

    *made = false;
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= sizeof(tmp))
        return cap_error_set(CAP_EINVALID, "CAPSTAN_DATA_DIR is too long");
    if (auth_token_generate(token))
        return CAP_ERROR;
    size_t len = strlen(token);
    token[len++] = '\n';
    fd = mkstemp(tmp); /* mode 0600 */
    if (fd < 0) {
        rc = cap_error_set(CAP_EINVALID, "cannot write in \"%s\": %s", tmp, strerror(errno));
        goto cleanup;
    }
    if (write(fd, token, len) != (ssize_t)len || fsync(fd) != 0) {
        rc = cap_error_set(CAP_EINVALID, "cannot write \"%s\": %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto cleanup;
    }
    close(fd);
    if (link(tmp, path) == 0)
        *made = true;
    else if (errno != EEXIST)
        rc = cap_error_set(CAP_EINVALID, "cannot create \"%s\": %s", path, strerror(errno));
    unlink(tmp);
cleanup:
    explicit_bzero(token, sizeof(token));
    return rc;
}

static int bootstrap_token(const struct api_auth_options *o)
{
    char path[1100];
    bool made = false;
    int rc;

    if (o->admin_token) {
        auth.admin_token = strdup(o->admin_token);
        return auth.admin_token ? 0 : cap_error_set(CAP_ERROR, "out of memory");
    }
    if ((size_t)snprintf(path, sizeof(path), "%s/admin-token", o->data_dir) >= sizeof(path))
        return cap_error_set(CAP_EINVALID, "CAPSTAN_DATA_DIR is too long");
    if (access(path, F_OK) != 0 && (rc = make_token_file(path, &made)) != 0)
        return rc;
    if ((rc = read_token_file(path, &auth.admin_token)) != 0)
        return rc;
    log_add_secret(auth.admin_token);
    log_write(LOG_INFO, json_pack("{s:s}", "path", path),
              made ? "CAPSTAN_ADMIN_TOKEN is not set: made a bootstrap admin token in %s "
                     "(readable only by this user)"
                   : "CAPSTAN_ADMIN_TOKEN is not set: using the bootstrap admin token in %s",
              path);
    return 0;
}

int api_auth_start(const struct api_auth_options *o, struct store_pool *pool)
{
    int rc;

    api_auth_stop(0);
    auth.pool = pool;
    if ((rc = bootstrap_token(o)) != 0)
        goto fail;
    if (o->rate > 0 &&
        (rc = http_ratelimit_create(&auth.per_token, o->rate, o->burst, RATE_KEYS_MAX)) != 0)
        goto fail;
    if (o->anon_rate > 0 && (rc = http_ratelimit_create(&auth.per_address, o->anon_rate,
                                                        2.0 * o->anon_rate, RATE_KEYS_MAX)) != 0)
        goto fail;
    if (pool &&
        (rc = store_audit_start(&auth.audit, pool, o->audit_retention_ms, AUDIT_QUEUE_MAX)) != 0)
        goto fail;
    return 0;
fail:
    api_auth_stop(0);
    return rc;
}

void api_auth_stop(long long deadline_ms)
{
    store_audit_stop(auth.audit, deadline_ms);
    http_ratelimit_free(auth.per_token);
    http_ratelimit_free(auth.per_address);
    if (auth.admin_token) {
        explicit_bzero(auth.admin_token, strlen(auth.admin_token));
        free(auth.admin_token);
    }
    memset(&auth, 0, sizeof(auth));
}

/* ---- authentication ---- */

/* True if s has the shape of an API token. */
static bool api_token_shape(const char *s)
{
    size_t n = strlen(TOKEN_PREFIX);
    if (strncmp(s, TOKEN_PREFIX, n) != 0 || strlen(s + n) != TOKEN_RANDOM_CHARS)
        return false;
    for (s += n; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* Fills req->principal from the Authorization header. CAP_EUNAUTHORIZED, CAP_EUNAVAILABLE. */
static int identify(struct http_request *req)
{
    const char *h = http_header(req, "Authorization");
    struct http_principal *p = &req->principal;
    struct store_token_auth t;
    char hash[65];
    const char *token;
    int rc;

    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return cap_error_set(CAP_EUNAUTHORIZED, "send a bearer token in the Authorization header");
    token = h + 7;
    while (*token == ' ')
        token++;
    if (!*token || strlen(token) > BEARER_MAX)
        return cap_error_set(CAP_EUNAUTHORIZED, "the bearer token is not valid");
    if (auth.admin_token && cap_secure_streq(token, auth.admin_token)) {
        cap_strlcpy(p->name, "admin", sizeof(p->name));
        cap_strlcpy(p->id, "bootstrap", sizeof(p->id));
        p->role = AUTH_ROLE_ADMIN;
        p->tenant[0] = '\0';
        return 0;
    }
    if (!api_token_shape(token) || !auth.pool)
        return cap_error_set(CAP_EUNAUTHORIZED, "the bearer token is not valid");
    cap_sha256_hex(hash, token, strlen(token));
    if ((rc = store_token_auth(auth.pool, hash, &t)) != 0) {
        if (rc == CAP_EUNAUTHORIZED)
            cap_error_set(CAP_EUNAUTHORIZED,
                          "the bearer token is not valid (unknown, expired or revoked)");
        return rc;
    }
    if (!cap_secure_streq(t.hash, hash) || auth_role_parse(t.role) == AUTH_ROLE_NONE)
        return cap_error_set(CAP_EUNAUTHORIZED, "the bearer token is not valid");
    cap_strlcpy(p->name, t.name, sizeof(p->name));
    cap_strlcpy(p->id, t.id, sizeof(p->id));
    p->role = auth_role_parse(t.role);
    cap_strlcpy(p->tenant, t.tenant, sizeof(p->tenant));
    return 0;
}

/* The rate-limit key of a client address: the address, or its /64 for IPv6 (one host often
 * has a whole /64). */
static void address_key(char out[HTTP_RATELIMIT_KEY_MAX], const char *remote)
{
    struct in6_addr a6;
    if (strchr(remote, ':') && inet_pton(AF_INET6, remote, &a6) == 1) {
        memset(a6.s6_addr + 8, 0, 8);
        if (inet_ntop(AF_INET6, &a6, out, HTTP_RATELIMIT_KEY_MAX))
            return;
    }
    cap_strlcpy(out, remote, HTTP_RATELIMIT_KEY_MAX);
}

static int too_many(struct http_request *req, unsigned retry, const char *who)
{
    char v[16];
    snprintf(v, sizeof(v), "%u", retry);
    http_set_header(req, "Retry-After", v);
    return cap_error_set(CAP_ERATELIMIT, "too many requests %s; try again in %u s", who, retry);
}

int api_authenticate(struct http_request *req)
{
    unsigned retry = 1;
    int rc = identify(req);

    if (rc == CAP_EUNAUTHORIZED) {
        char key[HTTP_RATELIMIT_KEY_MAX];
        memset(&req->principal, 0, sizeof(req->principal));
        address_key(key, req->remote);
        if (auth.per_address && !http_ratelimit_take(auth.per_address, key, &retry))
            return too_many(req, retry, "without valid credentials from this address");
        /* identify set the message; the limiter does not touch it */
        req->denied = true;
        return CAP_EUNAUTHORIZED;
    }
    if (rc)
        return rc;
    if (auth.per_token && !http_ratelimit_take(auth.per_token, req->principal.id, &retry))
        return too_many(req, retry, "with this token");
    return api_authorize(req);
}

const char *api_auth_list_scope(const struct http_request *req)
{
    return req->principal.role == AUTH_ROLE_ADMIN ? NULL : req->principal.tenant;
}

/* ---- the audit record ---- */

static bool is_change(const char *method)
{
    return strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0 ||
           strcmp(method, "DELETE") == 0 || strcmp(method, "PUT") == 0;
}

void api_audit_request(const struct http_request *req)
{
    const struct route *route = req->match.route;
    const struct http_principal *p = &req->principal;
    const char *tenant = req->tenant[0] ? req->tenant : p->tenant[0] ? p->tenant : NULL;
    const char *name = NULL, *result;
    char time[32], target[ROUTER_MAX_PATH + 80];
    bool denied = req->denied || req->status == 401 || req->status == 403;

    /* 429s are not recorded: a flood would fill the log (the access log counts them) */
    if (!route || req->status == 429 || (!is_change(req->method) && !denied))
        return;
    if (req->json && !denied && strcmp(route->name, "tenants.create") == 0)
        name = cap_json_get_str(req->json, "name");
    else if (req->json && !denied && strcmp(route->name, "environments.create") == 0)
        name = cap_json_get_str(req->json, "name");
    if (name && !cap_is_dns_label(name, 63))
        name = NULL;
    if (!tenant && req->json && strcmp(route->name, "tokens.create") == 0) {
        tenant = cap_json_get_str(req->json, "tenant");
        if (tenant && !cap_is_dns_label(tenant, 63))
            tenant = NULL;
    }
    if (!tenant && name && strcmp(route->name, "tenants.create") == 0)
        tenant = name;
    snprintf(target, sizeof(target), "%s%s%s",
             strncmp(req->path, "/api/v1/", 8) == 0 ? req->path + 8 : req->path, name ? "/" : "",
             name ? name : "");
    result = denied ? "denied" : req->status >= 200 && req->status < 300 ? "allowed" : "failed";
    cap_format_rfc3339(time, cap_now_ms());
    json_t *e =
        json_pack("{s:s,s:o,s:o,s:o,s:o,s:s,s:o,s:s,s:o,s:i,s:s,s:s,s:s}", "time", time, "actor",
                  p->role ? cap_json_str(p->name) : json_null(), "tokenId",
                  p->role ? cap_json_str(p->id) : json_null(), "role",
                  p->role ? cap_json_str(auth_role_name(p->role)) : json_null(), "tenant",
                  cap_json_str(tenant), "action", route->name, "target", cap_json_str(target),
                  "method", req->method, "path", cap_json_str(req->path), "status", req->status,
                  "result", result, "requestId", req->request_id, "remote", req->remote);
    store_audit_add(auth.audit, e);
}

bool api_audit_flush(long long deadline_ms)
{
    return store_audit_flush(auth.audit, deadline_ms);
}
