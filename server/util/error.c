/* capstan: per-thread last error (see error.h). */
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local int last_code;
static _Thread_local char last_message[CAP_ERROR_MESSAGE_MAX];
static _Thread_local char last_field[CAP_ERROR_FIELD_MAX];

__attribute__((format(printf, 1, 0))) static void set_message(const char *fmt, va_list ap)
{
    if (vsnprintf(last_message, sizeof(last_message), fmt, ap) < 0)
        last_message[0] = '\0';
}

int cap_error_set(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_message(fmt, ap);
    va_end(ap);
    last_code = code;
    last_field[0] = '\0';
    return code;
}

int cap_error_set_field(int code, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_message(fmt, ap);
    va_end(ap);
    last_code = code;
    snprintf(last_field, sizeof(last_field), "%s", field ? field : "");
    return code;
}

int cap_error_wrap(const char *fmt, ...)
{
    char prefix[CAP_ERROR_MESSAGE_MAX];
    char old[CAP_ERROR_MESSAGE_MAX];
    va_list ap;

    va_start(ap, fmt);
    if (vsnprintf(prefix, sizeof(prefix), fmt, ap) < 0)
        prefix[0] = '\0';
    va_end(ap);
    memcpy(old, last_message, sizeof(old));
    if (snprintf(last_message, sizeof(last_message), "%s: %s", prefix, old) < 0)
        last_message[0] = '\0';
    return last_code ? last_code : CAP_ERROR;
}

int cap_error_code(void)
{
    return last_code;
}

const char *cap_error_message(void)
{
    return last_message;
}

const char *cap_error_field(void)
{
    return last_field[0] ? last_field : NULL;
}

void cap_error_clear(void)
{
    last_code = 0;
    last_message[0] = '\0';
    last_field[0] = '\0';
}

const char *cap_error_name(int code)
{
    switch (code) {
    case CAP_OK:
        return "ok";
    case CAP_EINVALID:
        return "invalid";
    case CAP_EMALFORMED:
        return "malformed";
    case CAP_ENOTFOUND:
        return "not found";
    case CAP_ECONFLICT:
        return "conflict";
    case CAP_EPRECONDITION:
        return "precondition failed";
    case CAP_ETOOBIG:
        return "too big";
    case CAP_EMEDIATYPE:
        return "unsupported media type";
    case CAP_EUNAUTHORIZED:
        return "unauthorized";
    case CAP_EFORBIDDEN:
        return "forbidden";
    case CAP_ERATELIMIT:
        return "rate limited";
    case CAP_EUNAVAILABLE:
        return "unavailable";
    case CAP_ETIMEOUT:
        return "timeout";
    case CAP_EMETHOD:
        return "method not allowed";
    case CAP_ERETRY:
        return "retry";
    default:
        return "internal error";
    }
}
