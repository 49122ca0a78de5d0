/* capstan: kubeconfig and in-cluster configuration (see kube.h).
 *
 * A kubeconfig is outside input. It is read as YAML through cap_yaml_to_json (no anchors,
 * bounded depth and size), then only the chosen context, its cluster and its user are looked
 * at; each field is type-checked, bounded and validated. Fields that would make capstan run a
 * program (exec, auth-provider), send credentials elsewhere (proxy-url, impersonation) or
 * weaken TLS (insecure-skip-tls-verify unless allowed, tls-server-name) are refused with a
 * message that names the field. No message ever quotes a credential. */
#include "kube/internal.h"

#include "util/error.h"
#include "util/json.h"
#include "util/str.h"
#include "util/yaml.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KUBECONFIG_MAX_DEPTH 16
#define NAME_MAX_LEN         253
#define FIELD_BUF            512 /* a field path being built; cap_error_set_field shortens it */

static void wipe_free(void *p, size_t n)
{
    if (p) {
        explicit_bzero(p, n);
        free(p);
    }
}

void kube_config_free(struct kube_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->server);
    free(cfg->context);
    free(cfg->ns);
    free(cfg->ca);
    free(cfg->cert);
    wipe_free(cfg->key, cfg->key_len);
    if (cfg->token)
        wipe_free(cfg->token, strlen(cfg->token));
    free(cfg->token_file);
    free(cfg);
}

int kube_read_file(unsigned char **out, size_t *len, const char *path, size_t max, const char *what)
{
    FILE *f = NULL;
    unsigned char *data = NULL;
    size_t n = 0;
    int rc = 0;

    struct stat st;
    int fd;

    *out = NULL;
    *len = 0;
    /* Non-blocking open and a regular-file check: a path in a kubeconfig must not make
     * capstan wait on a FIFO or read a device. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        return cap_error_set(e == ENOENT ? CAP_ENOTFOUND : CAP_EINVALID,
                             "cannot read the %s \"%.200s\": %s", what, path, strerror(e));
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return cap_error_set(CAP_EINVALID, "the %s \"%.200s\" is not a regular file", what, path);
    }
    f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return cap_error_set(CAP_ERROR, "out of memory");
    }
    data = malloc(max + 2);
    if (!data) {
        rc = cap_error_set(CAP_ERROR, "out of memory");
        goto cleanup;
    }
    n = fread(data, 1, max + 1, f);
    if (ferror(f)) {
        rc = cap_error_set(CAP_EINVALID, "cannot read the %s \"%.200s\"", what, path);
        goto cleanup;
    }
    if (n > max) {
        rc = cap_error_set(CAP_ETOOBIG, "the %s \"%.200s\" is larger than %zu bytes", what, path,
                           max);
        goto cleanup;
    }
    data[n] = '\0';
    *out = data;
    *len = n;
    data = NULL;

cleanup:
    if (data)
        wipe_free(data, max + 2);
    fclose(f);
    return rc;
}

int kube_check_token(char *token, const char *field)
{
    size_t n = strlen(token);
    while (n > 0 && (token[n - 1] == '\n' || token[n - 1] == '\r' || token[n - 1] == ' ' ||
                     token[n - 1] == '\t'))
        token[--n] = '\0';
    if (n == 0)
        return cap_error_set_field(CAP_EINVALID, field, "the bearer token is empty");
    if (n > KUBE_TOKEN_MAX_BYTES)
        return cap_error_set_field(CAP_ETOOBIG, field, "the bearer token is longer than %u bytes",
                                   KUBE_TOKEN_MAX_BYTES);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)token[i];
        if (ch <= 0x20 || ch >= 0x7f)
            return cap_error_set_field(CAP_EINVALID, field,
                                       "the bearer token holds characters that are not allowed");
    }
    return 0;
}

/* Strict standard base64 (RFC 4648 section 4) with padding; no white space. */
static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

static int b64_decode(unsigned char **out, size_t *out_len, const char *in, size_t max,
                      const char *field)
{
    size_t n = strlen(in), o = 0;
    unsigned char *buf;

    *out = NULL;
    *out_len = 0;
    if (n == 0 || n % 4 != 0)
        return cap_error_set_field(CAP_EINVALID, field, "not valid base64");
    if (n / 4 * 3 > max)
        return cap_error_set_field(CAP_ETOOBIG, field, "longer than %zu bytes once decoded", max);
    buf = malloc(n / 4 * 3 + 1);
    if (!buf)
        return cap_error_set(CAP_ERROR, "out of memory");
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char ch = (unsigned char)in[i + k];
            if (ch == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            v[k] = pad ? -1 : b64_value(ch);
            if (v[k] < 0) {
                wipe_free(buf, n / 4 * 3 + 1);
                return cap_error_set_field(CAP_EINVALID, field, "not valid base64");
            }
        }
        unsigned int w = ((unsigned)v[0] << 18) | ((unsigned)v[1] << 12) | ((unsigned)v[2] << 6) |
                         (unsigned)v[3];
        buf[o++] = (unsigned char)(w >> 16);
        if (pad < 2)
            buf[o++] = (unsigned char)(w >> 8);
        if (pad < 1)
            buf[o++] = (unsigned char)w;
    }
    buf[o] = '\0';
    *out = buf;
    *out_len = o;
    return 0;
}

static bool mem_has(const unsigned char *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(p + i, needle, k) == 0)
            return true;
    return false;
}

/* Joins base_dir and a relative path into a new string; absolute paths are copied. */
static int resolve_path(char **out, const char *base_dir, const char *path)
{
    char *p;
    size_t n;

    if (path[0] == '/' || !base_dir || !*base_dir) {
        p = strdup(path);
    } else {
        n = strlen(base_dir) + strlen(path) + 2;
        p = malloc(n);
        if (p)
            snprintf(p, n, "%s/%s", base_dir, path);
    }
    *out = p;
    return p ? 0 : cap_error_set(CAP_ERROR, "out of memory");
}

/* Looks up member key of o: absent -> *out NULL; present but not a string -> error. */
static int get_str(const char **out, const json_t *o, const char *key, const char *where)
{
    json_t *v = json_object_get(o, key);
    char field[FIELD_BUF];

    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    snprintf(field, sizeof(field), "%s.%s", where, key);
    if (!json_is_string(v))
        return cap_error_set_field(CAP_EINVALID, field, "%s must be a string", field);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return cap_error_set_field(CAP_EINVALID, field, "%s holds a NUL character", field);
    *out = json_string_value(v);
    return 0;
}

/* Finds the entry of list `section` whose name is `name`; *where gets "section[i].inner".
 * *out is the entry's `inner` mapping, or NULL when it is empty ("user:" with nothing under
 * it); jansson reads NULL as an object without members. */
static int find_named(json_t **out, char *where, size_t where_size, const json_t *root,
                      const char *section, const char *name, const char *inner)
{
    json_t *list = json_object_get(root, section);
    json_t *found = NULL;
    bool seen = false;
    size_t i;
    json_t *e;

    *out = NULL;
    if (list && !json_is_array(list) && !json_is_null(list))
        return cap_error_set_field(CAP_EINVALID, section, "%s must be a list", section);
    json_array_foreach(list, i, e)
    {
        const char *n = json_is_object(e) ? cap_json_get_str(e, "name") : NULL;
        if (!n || strcmp(n, name) != 0)
            continue;
        if (seen)
            return cap_error_set_field(CAP_EINVALID, section,
                                       "%s \"%.100s\" is defined more than once", inner, name);
        seen = true;
        found = json_object_get(e, inner);
        if (json_is_null(found))
            found = NULL;
        snprintf(where, where_size, "%s[%zu].%s", section, i, inner);
        if (found && !json_is_object(found))
            return cap_error_set_field(CAP_EINVALID, where, "%s must be a mapping", where);
    }
    if (!seen)
        return cap_error_set_field(CAP_EINVALID, section, "%s \"%.100s\" is not in the kubeconfig",
                                   inner, name);
    *out = found;
    return 0;
}

/* Checks and copies a server URL: https://host[:port][/path], no user info, query or
 * fragment, no white space; http:// only when allowed. The copy has no trailing slash. */
static int check_server(char **out, const char *url, bool allow_http, const char *field)
{
    const char *rest, *p;
    size_t n = strlen(url), hostlen = 0;
    char *copy;

    *out = NULL;
    if (n == 0)
        return cap_error_set_field(CAP_EINVALID, field, "the cluster has no server URL");
    if (n > KUBE_SERVER_MAX_BYTES)
        return cap_error_set_field(CAP_ETOOBIG, field, "the server URL is longer than %u bytes",
                                   KUBE_SERVER_MAX_BYTES);
    if (strncmp(url, "https://", 8) == 0) {
        rest = url + 8;
    } else if (strncmp(url, "http://", 7) == 0) {
        if (!allow_http)
            return cap_error_set_field(CAP_EINVALID, field,
                                       "the server URL must use https (http is not allowed)");
        rest = url + 7;
    } else {
        return cap_error_set_field(CAP_EINVALID, field, "the server URL must start with https://");
    }
    for (p = url; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= 0x20 || ch >= 0x7f || ch == '?' || ch == '#' || ch == '\\')
            return cap_error_set_field(
                CAP_EINVALID, field,
                "the server URL holds a character that is not allowed (white space, ?, # or \\)");
    }
    while (rest[hostlen] && rest[hostlen] != '/')
        hostlen++;
    if (memchr(rest, '@', hostlen))
        return cap_error_set_field(CAP_EINVALID, field,
                                   "the server URL must not hold user information");
    if (hostlen == 0 || rest[0] == ':')
        return cap_error_set_field(CAP_EINVALID, field, "the server URL has no host");
    {
        /* The port, if any, after the last ':' outside brackets. */
        const char *h = rest, *end = rest + hostlen, *colon = NULL;
        if (*h == '[') {
            const char *close = memchr(h, ']', hostlen);
            if (!close || close == h + 1)
                return cap_error_set_field(CAP_EINVALID, field, "the server URL has a bad host");
            colon = (close + 1 < end) ? close + 1 : NULL;
            if (colon && *colon != ':')
                return cap_error_set_field(CAP_EINVALID, field, "the server URL has a bad host");
        } else {
            colon = memchr(h, ':', hostlen);
        }
        if (colon) {
            long port = 0;
            const char *d = colon + 1;
            if (d == end)
                return cap_error_set_field(CAP_EINVALID, field, "the server URL has a bad port");
            for (; d < end; d++) {
                if (*d < '0' || *d > '9' || port > 65535)
                    return cap_error_set_field(CAP_EINVALID, field,
                                               "the server URL has a bad port");
                port = port * 10 + (*d - '0');
            }
            if (port < 1 || port > 65535)
                return cap_error_set_field(CAP_EINVALID, field, "the server URL has a bad port");
        }
    }
    copy = strdup(url);
    if (!copy)
        return cap_error_set(CAP_ERROR, "out of memory");
    n = strlen(copy);
    while (n > 0 && copy[n - 1] == '/' && copy + n > copy + (size_t)(rest - url) + hostlen)
        copy[--n] = '\0';
    *out = copy;
    return 0;
}

enum pem_kind { PEM_CA, PEM_CERT, PEM_KEY };

/* Loads PEM bytes from a -data field (base64) or a file field; at most one may be set. */
static int load_pem(unsigned char **out, size_t *len, const json_t *o, const char *where,
                    const char *file_key, const char *data_key, enum pem_kind kind,
                    const char *base_dir)
{
    static const char *what[] = {"certificate authority", "client certificate", "client key"};
    const char *file = NULL, *data = NULL;
    char field[FIELD_BUF];
    char *path = NULL;
    int rc;

    *out = NULL;
    *len = 0;
    if ((rc = get_str(&file, o, file_key, where)) || (rc = get_str(&data, o, data_key, where)))
        return rc;
    if (file && !*file)
        file = NULL;
    if (data && !*data)
        data = NULL;
    if (file && data) {
        snprintf(field, sizeof(field), "%s.%s", where, data_key);
        return cap_error_set_field(CAP_EINVALID, field, "%s and %s are both set", data_key,
                                   file_key);
    }
    if (data) {
        snprintf(field, sizeof(field), "%s.%s", where, data_key);
        rc = b64_decode(out, len, data, KUBE_PEM_MAX_BYTES, field);
    } else if (file) {
        snprintf(field, sizeof(field), "%s.%s", where, file_key);
        if ((rc = resolve_path(&path, base_dir, file)) == 0)
            rc = kube_read_file(out, len, path, KUBE_PEM_MAX_BYTES, what[kind]);
        if (rc) {
            char msg[CAP_ERROR_MESSAGE_MAX];
            cap_strlcpy(msg, cap_error_message(), sizeof(msg));
            cap_error_set_field(rc, field, "%s", msg);
        }
        free(path);
    } else {
        return 0;
    }
    if (rc)
        return rc;
    if ((kind == PEM_KEY && !mem_has(*out, *len, "PRIVATE KEY-----")) ||
        (kind != PEM_KEY && !mem_has(*out, *len, "-----BEGIN CERTIFICATE-----"))) {
        if (kind == PEM_KEY)
            wipe_free(*out, *len);
        else
            free(*out);
        *out = NULL;
        *len = 0;
        return cap_error_set_field(CAP_EINVALID, field, "the %s is not in PEM format", what[kind]);
    }
    return 0;
}

/* Refuses members of o that capstan must not act on. */
static int refuse_fields(const json_t *o, const char *where, const char *const *keys,
                         const char *const *why)
{
    char field[FIELD_BUF];
    for (size_t i = 0; keys[i]; i++) {
        json_t *v = json_object_get(o, keys[i]);
        if (!v || json_is_null(v) || (json_is_string(v) && !*json_string_value(v)) ||
            (json_is_array(v) && json_array_size(v) == 0) ||
            (json_is_object(v) && json_object_size(v) == 0))
            continue;
        snprintf(field, sizeof(field), "%s.%s", where, keys[i]);
        return cap_error_set_field(CAP_EINVALID, field, "%s is not supported: %s", keys[i], why[i]);
    }
    return 0;
}

static int read_cluster(struct kube_config *cfg, const json_t *cl, const char *where,
                        const struct kube_config_options *opt)
{
    static const char *const refused[] = {"proxy-url", "tls-server-name", NULL};
    static const char *const why[] = {
        "capstan connects to the server directly",
        "the server certificate must be valid for the server URL's host",
    };
    const char *server = NULL;
    char field[FIELD_BUF];
    json_t *insecure;
    int rc;

    if ((rc = refuse_fields(cl, where, refused, why)))
        return rc;
    if ((rc = get_str(&server, cl, "server", where)))
        return rc;
    snprintf(field, sizeof(field), "%s.server", where);
    if ((rc = check_server(&cfg->server, server ? server : "", opt->allow_http, field)))
        return rc;
    insecure = json_object_get(cl, "insecure-skip-tls-verify");
    snprintf(field, sizeof(field), "%s.insecure-skip-tls-verify", where);
    if (insecure && !json_is_boolean(insecure) && !json_is_null(insecure))
        return cap_error_set_field(CAP_EINVALID, field, "%s must be true or false", field);
    if (json_is_true(insecure)) {
        if (!opt->allow_insecure)
            return cap_error_set_field(CAP_EINVALID, field,
                                       "insecure-skip-tls-verify is refused: the server's "
                                       "certificate must be verified");
        cfg->insecure = true;
    }
    if ((rc = load_pem(&cfg->ca, &cfg->ca_len, cl, where, "certificate-authority",
                       "certificate-authority-data", PEM_CA, opt->base_dir)))
        return rc;
    if (cfg->insecure && cfg->ca)
        return cap_error_set_field(CAP_EINVALID, field,
                                   "insecure-skip-tls-verify cannot be used with a certificate "
                                   "authority");
    return 0;
}

static int read_user(struct kube_config *cfg, const json_t *u, const char *where,
                     const struct kube_config_options *opt)
{
    static const char *const refused[] = {
        "exec",   "auth-provider", "username",      "password", "as",
        "as-uid", "as-groups",     "as-user-extra", NULL,
    };
    static const char *const why[] = {
        "credential plugins are not run; use a token, a token file or a client certificate",
        "auth providers are not supported; use a token, a token file or a client certificate",
        "basic authentication was removed from Kubernetes",
        "basic authentication was removed from Kubernetes",
        "impersonation is not supported",
        "impersonation is not supported",
        "impersonation is not supported",
        "impersonation is not supported",
    };
    const char *token = NULL, *token_file = NULL;
    char field[FIELD_BUF];
    int rc;

    if ((rc = refuse_fields(u, where, refused, why)))
        return rc;
    if ((rc = load_pem(&cfg->cert, &cfg->cert_len, u, where, "client-certificate",
                       "client-certificate-data", PEM_CERT, opt->base_dir)))
        return rc;
    if ((rc = load_pem(&cfg->key, &cfg->key_len, u, where, "client-key", "client-key-data", PEM_KEY,
                       opt->base_dir)))
        return rc;
    if (!cfg->cert != !cfg->key) {
        snprintf(field, sizeof(field), "%s.%s", where,
                 cfg->cert ? "client-key" : "client-certificate");
        return cap_error_set_field(CAP_EINVALID, field,
                                   "a client certificate needs a client key and the other way "
                                   "round");
    }
    if ((rc = get_str(&token, u, "token", where)) ||
        (rc = get_str(&token_file, u, "tokenFile", where)))
        return rc;
    if (token_file && *token_file) {
        /* As client-go does, the file wins over a static token. */
        snprintf(field, sizeof(field), "%s.tokenFile", where);
        if ((rc = resolve_path(&cfg->token_file, opt->base_dir, token_file)))
            return rc;
    } else if (token && *token) {
        snprintf(field, sizeof(field), "%s.token", where);
        cfg->token = strdup(token);
        if (!cfg->token)
            return cap_error_set(CAP_ERROR, "out of memory");
        if ((rc = kube_check_token(cfg->token, field)))
            return rc;
    }
    return 0;
}

int kube_config_parse(struct kube_config **out, const char *text, size_t len,
                      const struct kube_config_options *opt)
{
    static const struct kube_config_options defaults = {0};
    struct kube_config *cfg = NULL;
    json_t *root = NULL, *ctx, *cl = NULL, *u = NULL;
    const char *ctx_name, *cl_name = NULL, *user_name = NULL, *ns = NULL, *kind = NULL;
    char where[CAP_ERROR_FIELD_MAX];
    int rc;

    *out = NULL;
    if (!opt)
        opt = &defaults;
    if (len > KUBE_CONFIG_MAX_BYTES)
        return cap_error_set(CAP_ETOOBIG, "the kubeconfig is larger than %u bytes",
                             KUBE_CONFIG_MAX_BYTES);
    rc = cap_yaml_to_json(&root, text, len, KUBECONFIG_MAX_DEPTH);
    if (rc) {
        cap_error_wrap("the kubeconfig is not valid YAML");
        goto cleanup;
    }
    if (!json_is_object(root)) {
        rc = cap_error_set(CAP_EINVALID, "the kubeconfig must be a mapping");
        goto cleanup;
    }
    if ((rc = get_str(&kind, root, "kind", "kubeconfig")))
        goto cleanup;
    if (kind && strcmp(kind, "Config") != 0) {
        rc = cap_error_set_field(CAP_EINVALID, "kind", "the kubeconfig's kind must be Config");
        goto cleanup;
    }
    cfg = calloc(1, sizeof(*cfg));
    if (!cfg) {
        rc = cap_error_set(CAP_ERROR, "out of memory");
        goto cleanup;
    }
    ctx_name = opt->context;
    if (!ctx_name) {
        json_t *cur = json_object_get(root, "current-context");
        ctx_name = json_is_string(cur) ? json_string_value(cur) : NULL;
        if (!ctx_name || !*ctx_name) {
            rc = cap_error_set_field(CAP_EINVALID, "current-context",
                                     "the kubeconfig has no current-context and none was chosen");
            goto cleanup;
        }
    }
    if (strlen(ctx_name) > NAME_MAX_LEN) {
        rc = cap_error_set_field(CAP_EINVALID, "current-context", "the context name is too long");
        goto cleanup;
    }
    if ((rc = find_named(&ctx, where, sizeof(where), root, "contexts", ctx_name, "context")))
        goto cleanup;
    if ((rc = get_str(&cl_name, ctx, "cluster", where)) ||
        (rc = get_str(&user_name, ctx, "user", where)) ||
        (rc = get_str(&ns, ctx, "namespace", where)))
        goto cleanup;
    if (!cl_name || !*cl_name) {
        rc = cap_error_set_field(CAP_EINVALID, where, "context \"%.100s\" names no cluster",
                                 ctx_name);
        goto cleanup;
    }
    if (ns && *ns && !cap_is_dns_label(ns, 63)) {
        char field[FIELD_BUF];
        snprintf(field, sizeof(field), "%s.namespace", where);
        rc = cap_error_set_field(CAP_EINVALID, field, "the namespace is not a DNS-1123 label");
        goto cleanup;
    }
    cfg->context = strdup(ctx_name);
    cfg->ns = strdup(ns && *ns ? ns : "default");
    if (!cfg->context || !cfg->ns) {
        rc = cap_error_set(CAP_ERROR, "out of memory");
        goto cleanup;
    }
    if ((rc = find_named(&cl, where, sizeof(where), root, "clusters", cl_name, "cluster")))
        goto cleanup;
    if ((rc = read_cluster(cfg, cl, where, opt)))
        goto cleanup;
    if (user_name && *user_name) {
        if ((rc = find_named(&u, where, sizeof(where), root, "users", user_name, "user")))
            goto cleanup;
        if ((rc = read_user(cfg, u, where, opt)))
            goto cleanup;
    }
    *out = cfg;
    cfg = NULL;

cleanup:
    kube_config_free(cfg);
    json_decref(root);
    return rc;
}

int kube_config_load_file(struct kube_config **out, const char *path,
                          const struct kube_config_options *opt)
{
    struct kube_config_options o = {0};
    unsigned char *text = NULL;
    size_t len = 0;
    char *dir = NULL;
    int rc;

    *out = NULL;
    if (opt)
        o = *opt;
    rc = kube_read_file(&text, &len, path, KUBE_CONFIG_MAX_BYTES, "kubeconfig");
    if (rc)
        goto cleanup;
    if (!o.base_dir) {
        const char *slash = strrchr(path, '/');
        dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
        if (!dir) {
            rc = cap_error_set(CAP_ERROR, "out of memory");
            goto cleanup;
        }
        o.base_dir = dir;
    }
    rc = kube_config_parse(out, (const char *)text, len, &o);

cleanup:
    if (text)
        wipe_free(text, len);
    free(dir);
    return rc;
}

static int join_path(char **out, const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    *out = malloc(n);
    if (!*out)
        return cap_error_set(CAP_ERROR, "out of memory");
    snprintf(*out, n, "%s/%s", dir, name);
    return 0;
}

int kube_config_in_cluster(struct kube_config **out, const struct kube_incluster_options *opt)
{
    static const struct kube_incluster_options defaults = {0};
    struct kube_config *cfg = NULL;
    const char *host, *port, *dir;
    char *path = NULL, url[KUBE_SERVER_MAX_BYTES];
    unsigned char *ns = NULL;
    size_t ns_len = 0;
    long long portnum;
    struct stat st;
    int rc = 0;

    *out = NULL;
    if (!opt)
        opt = &defaults;
    host = opt->host ? opt->host : getenv("KUBERNETES_SERVICE_HOST");
    port = opt->port ? opt->port : getenv("KUBERNETES_SERVICE_PORT");
    dir = opt->sa_dir ? opt->sa_dir : KUBE_SA_DIR;
    if (!host || !*host || !port || !*port)
        return cap_error_set(CAP_ENOTFOUND, "not running in a kubernetes cluster: "
                                            "KUBERNETES_SERVICE_HOST or _PORT is not set");
    if (strlen(host) > 255)
        return cap_error_set(CAP_EINVALID, "KUBERNETES_SERVICE_HOST is too long");
    for (const char *p = host; *p; p++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == ':';
        if (!ok)
            return cap_error_set(CAP_EINVALID, "KUBERNETES_SERVICE_HOST is not a host name or "
                                               "IP address");
    }
    if (cap_parse_long(&portnum, port, 1, 65535))
        return cap_error_set(CAP_EINVALID, "KUBERNETES_SERVICE_PORT is not a port number");
    if (strchr(host, ':'))
        snprintf(url, sizeof(url), "https://[%s]:%lld", host, portnum);
    else
        snprintf(url, sizeof(url), "https://%s:%lld", host, portnum);

    cfg = calloc(1, sizeof(*cfg));
    if (!cfg)
        return cap_error_set(CAP_ERROR, "out of memory");
    cfg->server = strdup(url);
    if (!cfg->server) {
        rc = cap_error_set(CAP_ERROR, "out of memory");
        goto cleanup;
    }
    if ((rc = join_path(&cfg->token_file, dir, "token")))
        goto cleanup;
    if (stat(cfg->token_file, &st) != 0) {
        rc =
            cap_error_set(CAP_ENOTFOUND, "no service account token at \"%.200s\"", cfg->token_file);
        goto cleanup;
    }
    if ((rc = join_path(&path, dir, "ca.crt")))
        goto cleanup;
    if ((rc = kube_read_file(&cfg->ca, &cfg->ca_len, path, KUBE_PEM_MAX_BYTES,
                             "service account CA")))
        goto cleanup;
    if (!mem_has(cfg->ca, cfg->ca_len, "-----BEGIN CERTIFICATE-----")) {
        rc = cap_error_set(CAP_EINVALID, "the service account CA \"%.200s\" is not in PEM format",
                           path);
        goto cleanup;
    }
    free(path);
    path = NULL;
    if ((rc = join_path(&path, dir, "namespace")))
        goto cleanup;
    if (kube_read_file(&ns, &ns_len, path, 256, "service account namespace") == 0) {
        char *s = (char *)ns;
        while (ns_len > 0 && (s[ns_len - 1] == '\n' || s[ns_len - 1] == ' '))
            s[--ns_len] = '\0';
        if (!cap_is_dns_label(s, 63)) {
            rc = cap_error_set(CAP_EINVALID,
                               "the service account namespace file \"%.200s\" "
                               "does not hold a DNS-1123 label",
                               path);
            goto cleanup;
        }
        cfg->ns = s;
        ns = NULL;
    } else {
        cap_error_clear();
        cfg->ns = strdup("default");
        if (!cfg->ns) {
            rc = cap_error_set(CAP_ERROR, "out of memory");
            goto cleanup;
        }
    }
    *out = cfg;
    cfg = NULL;

cleanup:
    free(ns);
    free(path);
    kube_config_free(cfg);
    return rc;
}
