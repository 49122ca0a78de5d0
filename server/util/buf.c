/* capstan: bounded growable buffers (see buf.h). */
#include "util/buf.h"

#include "util/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cap_buf_init(struct cap_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

static int reserve(struct cap_buf *b, size_t extra)
{
    size_t need, ncap;
    char *p;

    if (extra > b->max || b->len > b->max - extra)
        return cap_error_set(CAP_ETOOBIG, "more than %zu bytes", b->max);
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    ncap = b->cap ? b->cap : 64;
    while (ncap < need)
        ncap *= 2;
    p = realloc(b->data, ncap);
    if (!p)
        return cap_error_set(CAP_ERROR, "out of memory");
    b->data = p;
    b->cap = ncap;
    return 0;
}

int cap_buf_append(struct cap_buf *b, const void *data, size_t len)
{
    int rc = reserve(b, len);
    if (rc)
        return rc;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int cap_buf_puts(struct cap_buf *b, const char *s)
{
    return cap_buf_append(b, s, strlen(s));
}

int cap_buf_putc(struct cap_buf *b, char c)
{
    return cap_buf_append(b, &c, 1);
}

int cap_buf_vprintf(struct cap_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n, rc;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return cap_error_set(CAP_ERROR, "formatting failed");
    rc = reserve(b, (size_t)n);
    if (rc)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int cap_buf_printf(struct cap_buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;
    va_start(ap, fmt);
    rc = cap_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

const char *cap_buf_str(const struct cap_buf *b)
{
    return b->data ? b->data : "";
}

char *cap_buf_detach(struct cap_buf *b)
{
    char *p = b->data;
    if (!p)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

void cap_buf_reset(struct cap_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void cap_buf_free(struct cap_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}
