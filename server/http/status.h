/* capstan: error code -> HTTP status and problem type (RFC 9457). */
#ifndef CAPSTAN_HTTP_STATUS_H
#define CAPSTAN_HTTP_STATUS_H

#define HTTP_PROBLEM_TYPE_PREFIX "urn:capstan:problem:"

struct http_problem {
    int code;          /* CAP_E* */
    int status;        /* HTTP status */
    const char *slug;  /* appended to HTTP_PROBLEM_TYPE_PREFIX for "type" */
    const char *title; /* "title" */
};

/* The problem of code; unknown codes map to 500 internal-error. Borrowed, static. */
const struct http_problem *http_problem_of(int code);
int http_status_of(int code);

#endif
