/* capstan: authentication of API requests.
 * Until API tokens exist, the bootstrap admin token (CAPSTAN_ADMIN_TOKEN) is the only
 * credential; it is compared in constant time. */
#include "api/api.h"
#include "app.h"
#include "util/crypto.h"
#include "util/error.h"
#include "util/str.h"

#include <string.h>
#include <strings.h>

int api_authenticate(struct http_request *req)
{
    const char *h = http_header(req, "Authorization");
    const char *token;

    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return cap_error_set(CAP_EUNAUTHORIZED, "send a bearer token in the Authorization header");
    token = h + 7;
    while (*token == ' ')
        token++;
    if (!capstan_app->cfg->admin_token || !cap_secure_streq(token, capstan_app->cfg->admin_token))
        return cap_error_set(CAP_EUNAUTHORIZED, "the bearer token is not valid");
    cap_strlcpy(req->principal.name, "admin", sizeof(req->principal.name));
    cap_strlcpy(req->principal.id, "bootstrap", sizeof(req->principal.id));
    req->principal.role = 1;
    return 0;
}
