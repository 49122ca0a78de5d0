/* capstan: GET /openapi.json, the OpenAPI description (openapi/openapi.yaml, embedded in the
 * binary) as JSON. Converted once, on first use. */
#include "api/api.h"
#include "log/log.h"
#include "util/embedded.h"
#include "util/error.h"
#include "util/yaml.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char *openapi_json; /* set once, then read-only */

static void convert(void)
{
    json_t *doc = NULL;
    const struct embedded_file *f = &embedded_openapi[0];
    if (!f->name || cap_yaml_to_json(&doc, f->data, f->len, 64) != 0) {
        log_error("the embedded OpenAPI description cannot be read: %s", cap_error_message());
        return;
    }
    openapi_json = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(doc);
}

int api_openapi(struct http_request *req)
{
    pthread_once(&once, convert);
    if (!openapi_json)
        return cap_error_set(CAP_ERROR, "the OpenAPI description is not available");
    return http_reply_text(req, HTTP_OK, "application/json; charset=utf-8", openapi_json,
                           strlen(openapi_json));
}
