/* capstan: GET /metrics, the Prometheus text exposition format 0.0.4 (public, like /healthz:
 * it carries counts and durations only, never names, ids or secrets; see metrics/catalog.h),
 * and the HTTP server's completion hook that counts every request by route name. */
#include "api/api.h"
#include "metrics/catalog.h"
#include "util/error.h"

#define METRICS_BODY_MAX (8u << 20)

int api_metrics(struct http_request *req)
{
    struct cap_buf b = CAP_BUF_INIT(METRICS_BODY_MAX);
    struct metrics_registry *r = metrics_global();
    int rc;

    if (!r)
        return cap_error_set(CAP_ERROR, "the metrics registry is missing");
    if ((rc = metrics_render(r, &b)) == 0)
        rc = http_reply_text(req, HTTP_OK, METRICS_CONTENT_TYPE, cap_buf_str(&b), b.len);
    cap_buf_free(&b);
    return rc;
}

void api_metrics_on_complete(const struct http_request *req, double seconds)
{
    metrics_http_request(req->match.route ? req->match.route->name : NULL, req->method, req->status,
                         seconds);
}
