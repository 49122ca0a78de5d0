/* capstan: who may call what. Authentication (bearer tokens), rate limits, authorization by
 * role and tenant, and the audit record of each request.
 *
 * Roles: admin (everything), tenant-admin and tenant-viewer (bound to one tenant). A route
 * declares who may call it in the access bits of its flags (ROUTE_ACCESS, below); a route
 * that declares nothing is for admins only, so a new route is closed until it says otherwise.
 * A tenant role that asks for another tenant's resource gets 404, exactly as for a resource
 * that does not exist, so names do not leak; what its role may not do on its own tenant is
 * 403. Authorization happens before the body is read or validated.
 *
 * Order for every non-public route: credentials (401) -> rate limit (429: per token, or per
 * client address without valid credentials) -> role and tenant (403/404) -> the handler. */
#ifndef CAPSTAN_API_AUTH_H
#define CAPSTAN_API_AUTH_H

#include "config/config.h"
#include "http/http.h"
#include "store/store.h"

#include <stdbool.h>

enum auth_role {
    AUTH_ROLE_NONE = 0,
    AUTH_ROLE_ADMIN = 1,
    AUTH_ROLE_TENANT_ADMIN = 2,
    AUTH_ROLE_TENANT_VIEWER = 3,
};

/* Access bits of a route's flags (bits 8 and up; the HTTP layer passes them through).
 *   who:   AUTHZ_BIT_TENANT_ADMIN, AUTHZ_BIT_TENANT_VIEWER (admins may always)
 *   scope: where a tenant role's tenant is found: the {tenant} path parameter, the tenant of
 *          the job {id}, or a list that the handler restricts to the caller's tenant.
 * Use the combinations below in routes.c. */
enum {
    AUTHZ_BIT_TENANT_ADMIN = 1 << 8,
    AUTHZ_BIT_TENANT_VIEWER = 1 << 9,
    AUTHZ_SCOPE_PATH = 1 << 10, /* the {tenant} path parameter */
    AUTHZ_SCOPE_JOB = 1 << 11,  /* the tenant of the job {id} */
    AUTHZ_SCOPE_LIST = 1 << 12, /* a list; the handler shows only the caller's tenant */
};
#define AUTHZ_MASK 0xff00u

/* Admins only (also what a route without access bits means). */
#define AUTHZ_ADMIN 0u
/* Any role of the {tenant} in the path: reads. */
#define AUTHZ_TENANT_VIEWER (AUTHZ_BIT_TENANT_ADMIN | AUTHZ_BIT_TENANT_VIEWER | AUTHZ_SCOPE_PATH)
/* admin and tenant-admin of the {tenant} in the path: changes, and secrets such as
 * kubeconfigs. */
#define AUTHZ_TENANT_ADMIN (AUTHZ_BIT_TENANT_ADMIN | AUTHZ_SCOPE_PATH)
/* Any role of the job's tenant / admin and tenant-admin of the job's tenant. */
#define AUTHZ_JOB_VIEWER (AUTHZ_BIT_TENANT_ADMIN | AUTHZ_BIT_TENANT_VIEWER | AUTHZ_SCOPE_JOB)
#define AUTHZ_JOB_ADMIN  (AUTHZ_BIT_TENANT_ADMIN | AUTHZ_SCOPE_JOB)
/* Any role; tenant roles see only their tenant's items. */
#define AUTHZ_LIST (AUTHZ_BIT_TENANT_ADMIN | AUTHZ_BIT_TENANT_VIEWER | AUTHZ_SCOPE_LIST)

/* An API token: "cap_" and 43 base64url characters (256 random bits), with its NUL. */
#define AUTH_TOKEN_SIZE 48

/* Makes a new random token into out. CAP_ERROR when no randomness is available. */
int auth_token_generate(char out[AUTH_TOKEN_SIZE]);

/* The role's name ("admin", "tenant-admin", "tenant-viewer"), NULL for AUTH_ROLE_NONE. */
const char *auth_role_name(int role);
/* The role of a name, or AUTH_ROLE_NONE. */
int auth_role_parse(const char *name);

/* What authentication needs, read from the configuration. */
struct api_auth_options {
    const char *admin_token; /* CAPSTAN_ADMIN_TOKEN, or NULL to use (or make) the token file */
    const char *data_dir;    /* where the generated admin token is kept */
    int rate;                /* requests per second per token (0: no limit) */
    int burst;
    int anon_rate;                /* per second per client address without valid credentials */
    long long audit_retention_ms; /* 0: keep forever */
};

/* Prepares authentication: the bootstrap admin token (configured, or read from
 * <data_dir>/admin-token, or made there on first start with mode 0600; its path, never its
 * value, is logged), the rate limiters and the audit writer. Call once before serving;
 * api_auth_stop undoes it. Errors: CAP_EINVALID (the token file cannot be made or read, or is
 * readable by others), CAP_ERROR. */
int api_auth_start(const struct api_auth_options *opt, struct store_pool *pool);
/* Stores the audit entries still queued (within deadline_ms) and frees everything. */
void api_auth_stop(long long deadline_ms);

/* The http_server_options.authenticate hook: credentials, rate limit and authorization of a
 * request for a non-public route. Returns 0 or a CAP_E* code with the last error set; fills
 * req->principal. Thread-safe. */
int api_authenticate(struct http_request *req);

/* The http_server_options.audit hook: queues the audit entry of a finished request if it
 * changed something (POST, PATCH, DELETE) or was refused (401, 403, or a 404 that hides
 * another tenant). Never blocks on the database. Thread-safe. */
void api_audit_request(const struct http_request *req);

/* Waits up to deadline_ms until queued audit entries are stored (tests, shutdown). */
bool api_audit_flush(long long deadline_ms);

/* security.c: everything above plus the server's limits and TLS, from the configuration:
 * fills the limits, TLS material and hooks of *ho, and starts authentication (api_auth_start).
 * CAP_EINVALID names the setting at fault (a TLS file that cannot be read). Undo with
 * api_security_stop after the HTTP server stopped. */
int api_security_start(struct http_server_options *ho, const struct cap_config *cfg,
                       struct store_pool *pool);
void api_security_stop(long long deadline_ms);

/* authz.c: decides whether req->principal may use req's route, before the body is read.
 * 0, CAP_EFORBIDDEN (the role may not, 403), CAP_ENOTFOUND (another tenant's resource, 404;
 * req->denied is set), or CAP_EUNAVAILABLE. Sets req->tenant when the request is about one. */
int api_authorize(struct http_request *req);

/* The tenant a list must be restricted to: NULL for admins (no restriction), else the
 * caller's tenant. */
const char *api_auth_list_scope(const struct http_request *req);

#endif
