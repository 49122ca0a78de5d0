/* capstan: authorization by role and tenant (see auth.h for the rules).
 *
 * Decided from the route's access bits, the path and, for job routes, the job's tenant; never
 * from the body, which has not been read yet. The 404 that hides another tenant's resource
 * carries the same message as the handler's 404 for a resource that does not exist. */
#include "api/auth.h"

#include "app.h"
#include "log/log.h"
#include "store/tokens.h"
#include "util/crypto.h"
#include "util/error.h"
#include "util/str.h"

#include <string.h>

static bool is_read(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

/* The tenant of the job in the path into req->tenant. CAP_ENOTFOUND when there is none. */
static int job_tenant(struct http_request *req)
{
    const char *id = http_param(req, "id");
    if (!id || !cap_is_uuid(id))
        return cap_error_set(CAP_ENOTFOUND, "job \"%.64s\" does not exist", id ? id : "");
    return store_job_tenant(capstan_app->pool, id, req->tenant, sizeof(req->tenant));
}

/* A 404 that hides another tenant's resource. */
static int hidden(struct http_request *req, const char *what, const char *name)
{
    req->denied = true;
    return cap_error_set(CAP_ENOTFOUND, "%s \"%.64s\" does not exist", what, name);
}

int api_authorize(struct http_request *req)
{
    const struct route *route = req->match.route;
    const struct http_principal *p = &req->principal;
    unsigned access = route->flags & AUTHZ_MASK;
    const char *path_tenant = http_param(req, "tenant");
    bool may;
    int rc;

    if (path_tenant)
        cap_strlcpy(req->tenant, path_tenant, sizeof(req->tenant));
    if (p->role == AUTH_ROLE_ADMIN) {
        /* only for the audit record of a change: which tenant a job belongs to */
        if ((access & AUTHZ_SCOPE_JOB) && !is_read(req->method) && job_tenant(req) != 0)
            req->tenant[0] = '\0';
        cap_error_clear();
        return 0;
    }
    if (p->role != AUTH_ROLE_TENANT_ADMIN && p->role != AUTH_ROLE_TENANT_VIEWER) {
        req->denied = true;
        return cap_error_set(CAP_EFORBIDDEN, "this token has no role");
    }
    /* first: is the resource the caller's tenant's at all? If not, it does not exist for them */
    if (path_tenant && strcmp(path_tenant, p->tenant) != 0)
        return hidden(req, "tenant", path_tenant);
    if (access & AUTHZ_SCOPE_JOB) {
        if ((rc = job_tenant(req)) != 0)
            return rc;
        if (strcmp(req->tenant, p->tenant) != 0) {
            const char *id = http_param(req, "id");
            cap_strlcpy(req->tenant, p->tenant, sizeof(req->tenant));
            return hidden(req, "job", id);
        }
    }
    if (!req->tenant[0])
        cap_strlcpy(req->tenant, p->tenant, sizeof(req->tenant));
    /* then: may the role do this on its own tenant? */
    may = (p->role == AUTH_ROLE_TENANT_ADMIN && (access & AUTHZ_BIT_TENANT_ADMIN)) ||
          (p->role == AUTH_ROLE_TENANT_VIEWER && (access & AUTHZ_BIT_TENANT_VIEWER));
    if (may && !(access & (AUTHZ_SCOPE_PATH | AUTHZ_SCOPE_JOB | AUTHZ_SCOPE_LIST))) {
        /* a route that lets tenant roles in must say where their tenant is: closed until then */
        log_error("route %s grants tenant roles without a scope; refusing", route->name);
        may = false;
    }
    if (may && (access & AUTHZ_SCOPE_PATH) && !path_tenant) {
        log_error("route %s is scoped by a {tenant} it does not have; refusing", route->name);
        may = false;
    }
    if (!may) {
        req->denied = true;
        return cap_error_set(CAP_EFORBIDDEN, "a %s token may not use %s %s",
                             auth_role_name(p->role), route->method, route->pattern);
    }
    cap_error_clear();
    return 0;
}
