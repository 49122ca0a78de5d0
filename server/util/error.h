/* capstan: error codes and the per-thread last error.
 *
 * A function that can fail returns 0, one of the negative CAP_E* codes below, or CAP_ERROR.
 * Where it fails it sets the thread's last error: the code, a message for users (PostgreSQL
 * message style: lower case, no final period, no secrets) and optionally the offending field.
 * Only the HTTP layer turns codes into statuses. */
#ifndef CAPSTAN_UTIL_ERROR_H
#define CAPSTAN_UTIL_ERROR_H

enum cap_error_code {
    CAP_OK = 0,
    CAP_ERROR = -1,         /* internal failure, not the caller's fault */
    CAP_EINVALID = -2,      /* input fails validation (422) */
    CAP_EMALFORMED = -3,    /* input cannot be parsed (400) */
    CAP_ENOTFOUND = -4,     /* no such resource (404) */
    CAP_ECONFLICT = -5,     /* exists already or wrong state (409) */
    CAP_EPRECONDITION = -6, /* If-Match does not match (412) */
    CAP_ETOOBIG = -7,       /* over a size limit (413) */
    CAP_EMEDIATYPE = -8,    /* wrong content type (415) */
    CAP_EUNAUTHORIZED = -9, /* no or bad credentials (401) */
    CAP_EFORBIDDEN = -10,   /* authenticated, not allowed (403) */
    CAP_ERATELIMIT = -11,   /* too many requests (429) */
    CAP_EUNAVAILABLE = -12, /* a peer (database, Git, Kubernetes) unreachable; retry later (503) */
    CAP_ETIMEOUT = -13,     /* a deadline passed; retryable */
    CAP_EMETHOD = -14,      /* method not allowed on this route (405) */
    CAP_ERETRY = -15,       /* transient failure, retry with backoff */
};

#define CAP_ERROR_MESSAGE_MAX 512
#define CAP_ERROR_FIELD_MAX   128

/* Sets the thread's last error; fmt is printf-like. Returns code so callers can write
 * `return cap_error_set(CAP_EINVALID, "...")`. */
int cap_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like cap_error_set, and records the field (JSON path such as "owners[0]") at fault. */
int cap_error_set_field(int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the current message with "prefix: ", keeping code and field. Returns the code. */
int cap_error_wrap(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int cap_error_code(void);
/* Borrowed; valid until the next cap_error_* call on this thread. Never NULL. */
const char *cap_error_message(void);
/* Borrowed; NULL when no field was recorded. */
const char *cap_error_field(void);
void cap_error_clear(void);

/* A short lower-case name of a code ("not found"), for logs and titles. */
const char *cap_error_name(int code);

#endif
