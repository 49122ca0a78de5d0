/* capstan: the security settings of the HTTP server, from the configuration: request limits,
 * TLS and the authentication and audit hooks (see auth.h).
 *
 * The TLS certificate and key are read from their files at start (the key's bytes are wiped
 * when the server stops); libmicrohttpd serves them with GnuTLS, TLS 1.2 and 1.3 only. */
#include "api/auth.h"

#include "log/log.h"
#include "util/buf.h"
#include "util/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEM_MAX (1u << 20)

static struct {
    char *cert;
    char *key;
} tls;

/* Reads the PEM file at path into *out (NUL-terminated). */
static int read_pem(const char *setting, const char *path, char **out)
{
    struct cap_buf b = CAP_BUF_INIT(PEM_MAX);
    char chunk[4096];
    size_t n;
    int rc = 0;
    FILE *f = fopen(path, "rb");

    if (!f)
        return cap_error_set(CAP_EINVALID, "invalid %s: cannot read \"%s\"", setting, path);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (cap_buf_append(&b, chunk, n) != 0) {
            rc = cap_error_set(CAP_EINVALID, "invalid %s: \"%s\" is larger than 1 MiB", setting,
                               path);
            break;
        }
    }
    fclose(f);
    explicit_bzero(chunk, sizeof(chunk));
    if (rc == 0 && !strstr(cap_buf_str(&b), "-----BEGIN "))
        rc = cap_error_set(CAP_EINVALID, "invalid %s: \"%s\" is not a PEM file", setting, path);
    if (rc) {
        if (b.data)
            explicit_bzero(b.data, b.cap);
        cap_buf_free(&b);
        return rc;
    }
    *out = cap_buf_detach(&b);
    return 0;
}

static void tls_free(void)
{
    if (tls.key)
        explicit_bzero(tls.key, strlen(tls.key));
    free(tls.key);
    free(tls.cert);
    tls.key = tls.cert = NULL;
}

int api_security_start(struct http_server_options *ho, const struct cap_config *cfg,
                       struct store_pool *pool)
{
    struct api_auth_options ao = {0};
    int rc;

    ho->connection_timeout_s = (unsigned)((cfg->request_timeout_ms + 999) / 1000);
    ho->header_limit = cfg->max_headers;
    ho->per_ip_connections = (unsigned)cfg->max_client_connections;
    ho->authenticate = api_authenticate;
    ho->audit = api_audit_request;
    if (cfg->tls_cert) {
        if ((rc = read_pem("CAPSTAN_TLS_CERT", cfg->tls_cert, &tls.cert)) != 0 ||
            (rc = read_pem("CAPSTAN_TLS_KEY", cfg->tls_key, &tls.key)) != 0) {
            tls_free();
            return rc;
        }
        ho->tls_cert_pem = tls.cert;
        ho->tls_key_pem = tls.key;
        ho->tls_key_password = cfg->tls_key_password;
        log_info("serving HTTPS with the certificate in %s", cfg->tls_cert);
    }
    ao.admin_token = cfg->admin_token;
    ao.data_dir = cfg->data_dir;
    ao.rate = cfg->rate_limit;
    ao.burst = cfg->rate_burst;
    ao.anon_rate = cfg->anon_rate_limit;
    ao.audit_retention_ms = cfg->audit_retention_ms;
    if ((rc = api_auth_start(&ao, pool)) != 0)
        tls_free();
    return rc;
}

void api_security_stop(long long deadline_ms)
{
    api_auth_stop(deadline_ms);
    tls_free();
}
