/* capstan: the one table that turns error codes into HTTP statuses and problem types. */
#include "http/status.h"

#include "util/error.h"

#include <stddef.h>

static const struct http_problem problems[] = {
    {CAP_EMALFORMED, 400, "bad-request", "Bad Request"},
    {CAP_EUNAUTHORIZED, 401, "unauthorized", "Unauthorized"},
    {CAP_EFORBIDDEN, 403, "forbidden", "Forbidden"},
    {CAP_ENOTFOUND, 404, "not-found", "Not Found"},
    {CAP_EMETHOD, 405, "method-not-allowed", "Method Not Allowed"},
    {CAP_ECONFLICT, 409, "conflict", "Conflict"},
    {CAP_EPRECONDITION, 412, "precondition-failed", "Precondition Failed"},
    {CAP_ETOOBIG, 413, "content-too-large", "Content Too Large"},
    {CAP_EMEDIATYPE, 415, "unsupported-media-type", "Unsupported Media Type"},
    {CAP_EINVALID, 422, "validation-failed", "Unprocessable Content"},
    {CAP_ERATELIMIT, 429, "too-many-requests", "Too Many Requests"},
    {CAP_EUNAVAILABLE, 503, "service-unavailable", "Service Unavailable"},
    {CAP_ETIMEOUT, 503, "service-unavailable", "Service Unavailable"},
    {CAP_ERETRY, 503, "service-unavailable", "Service Unavailable"},
    {CAP_ERROR, 500, "internal-error", "Internal Server Error"},
};

const struct http_problem *http_problem_of(int code)
{
    for (size_t i = 0; i < sizeof(problems) / sizeof(problems[0]); i++)
        if (problems[i].code == code)
            return &problems[i];
    return &problems[sizeof(problems) / sizeof(problems[0]) - 1];
}

int http_status_of(int code)
{
    return http_problem_of(code)->status;
}
