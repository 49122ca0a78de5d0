/* capstan: GET /api/v1/audit: the audit log, newest first (admins only). Entries are written
 * by api_audit_request (auth.c) through the store's background writer. */
#include "store/audit.h"
#include "api/api.h"
#include "api/common.h"
#include "app.h"
#include "util/error.h"
#include "util/str.h"

#include <stdlib.h>
#include <string.h>

int api_audit_list(struct http_request *req)
{
    static const char *const q[] = {"tenant", "actor", "limit", "cursor", NULL};
    const char *tenant = http_query(req, "tenant"), *actor = http_query(req, "actor");
    struct store_page page;
    char *items = NULL;
    int rc;

    if ((rc = http_query_only(req, q)) != 0 || (rc = api_page(req, 'a', &page)) != 0)
        return rc;
    if (tenant && !cap_is_dns_label(tenant, 63))
        return cap_error_set_field(CAP_EMALFORMED, "tenant", "tenant must be a tenant name");
    if (actor && (!*actor || strlen(actor) > 256 || !cap_str_is_clean_utf8(actor)))
        return cap_error_set_field(CAP_EMALFORMED, "actor", "actor must be a token name");
    if ((rc = store_audit_list(capstan_app->pool, tenant, actor, &page, &items)) != 0)
        return rc;
    rc = api_list_reply(req, 'a', &page, items);
    free(items);
    return rc;
}
