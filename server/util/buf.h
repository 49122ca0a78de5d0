/* capstan: growable byte buffers with a maximum set when they are made.
 *
 * A cap_buf always keeps its data NUL-terminated (when data is not NULL) so it can be used as a
 * string. Appending past `max` fails with CAP_ETOOBIG and leaves the buffer unchanged. */
#ifndef CAPSTAN_UTIL_BUF_H
#define CAPSTAN_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct cap_buf {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
    size_t max; /* the most bytes the buffer may hold (without the NUL) */
};

#define CAP_BUF_INIT(maxbytes)                                                                     \
    {                                                                                              \
        NULL, 0, 0, (maxbytes)                                                                     \
    }

void cap_buf_init(struct cap_buf *b, size_t max);
int cap_buf_append(struct cap_buf *b, const void *data, size_t len);
int cap_buf_puts(struct cap_buf *b, const char *s);
int cap_buf_putc(struct cap_buf *b, char c);
int cap_buf_printf(struct cap_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cap_buf_vprintf(struct cap_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Returns the contents as a string ("" when empty); borrowed. */
const char *cap_buf_str(const struct cap_buf *b);
/* Hands the data to the caller (free() it; never NULL on success) and resets the buffer. */
char *cap_buf_detach(struct cap_buf *b);
void cap_buf_reset(struct cap_buf *b);
void cap_buf_free(struct cap_buf *b);

#endif
