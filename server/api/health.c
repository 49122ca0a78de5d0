/* capstan: /healthz (the process is up) and /readyz (database reachable, migrations current). */
#include "api/api.h"
#include "app.h"
#include "store/migrate.h"
#include "util/embedded.h"
#include "util/error.h"

int api_healthz(struct http_request *req)
{
    return http_reply_json(req, HTTP_OK, json_pack("{s:s}", "status", "ok"));
}

int api_readyz(struct http_request *req)
{
    struct store_conn *c = NULL;
    bool current = false;
    int rc;

    if ((rc = store_acquire(capstan_app->pool, &c)) != 0)
        return cap_error_set(CAP_EUNAVAILABLE, "the database is unreachable");
    rc = store_migrations_current(c, embedded_migrations, &current);
    store_release(c);
    if (rc)
        return cap_error_set(CAP_EUNAVAILABLE, "the database is unreachable");
    if (!current)
        return cap_error_set(CAP_EUNAVAILABLE, "the database schema is not current; run "
                                               "capstan migrate");
    return http_reply_json(
        req, HTTP_OK,
        json_pack("{s:s,s:s,s:s}", "status", "ready", "database", "ok", "migrations", "current"));
}
