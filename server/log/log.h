/* capstan: logging. One JSON object per line on stderr (time, level, msg, requestId, jobId,
 * tenant and any extra fields), or a human format when stderr is a terminal.
 *
 * The level is checked before anything is formatted. Every registered secret is replaced by
 * "[redacted]" in every line, whatever the call site wrote. Thread-safe. */
#ifndef CAPSTAN_LOG_LOG_H
#define CAPSTAN_LOG_LOG_H

#include <jansson.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3, LOG_OFF = 4 };
enum log_format { LOG_FORMAT_AUTO = 0, LOG_FORMAT_JSON = 1, LOG_FORMAT_TEXT = 2 };

extern int log_min_level;

/* Parses "debug", "info", "warn", "error" or "off"; -1 when unknown. */
int log_level_parse(const char *s);
void log_init(int level, int format);

/* Writes one line at level; `fields` (new reference, may be NULL) adds keys to the object. */
void log_write(int level, json_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_AT(lvl, fields, ...)                                                                   \
    do {                                                                                           \
        if ((lvl) >= log_min_level)                                                                \
            log_write((lvl), (fields), __VA_ARGS__);                                               \
    } while (0)
#define log_debug(...) LOG_AT(LOG_DEBUG, NULL, __VA_ARGS__)
#define log_info(...)  LOG_AT(LOG_INFO, NULL, __VA_ARGS__)
#define log_warn(...)  LOG_AT(LOG_WARN, NULL, __VA_ARGS__)
#define log_error(...) LOG_AT(LOG_ERROR, NULL, __VA_ARGS__)

/* The calling thread's context, added to each of its lines; NULL clears a part. Copied. */
void log_context_set(const char *request_id, const char *job_id, const char *tenant);
void log_context_clear(void);

/* Registers a secret value (copied) to be redacted from every line; values shorter than 6
 * characters are ignored (they would redact ordinary words). */
void log_add_secret(const char *secret);
/* Forgets every registered secret (tests). */
void log_clear_secrets(void);

/* Replaces every registered secret in s (in place; the result is never longer). */
void log_redact(char *s);

#endif
