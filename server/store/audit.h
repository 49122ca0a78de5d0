/* capstan: the audit log in PostgreSQL, written by a background thread.
 *
 * Requests hand their entries to store_audit_add, which never blocks on the database: entries
 * wait in a bounded queue that one writer thread stores in batches (one INSERT per batch).
 * While the database is unreachable the writer keeps its batch and tries again with backoff;
 * when the queue is full, a new entry is written to the log instead (level warn, message
 * "audit entry not stored", with every field) and counted as dropped, so the trail survives
 * in the logs. At stop the writer stores what it can within the deadline and logs the rest
 * the same way. Entries older than the retention are deleted in the background.
 *
 * An entry is a JSON object with the members time (RFC 3339), actor, tokenId, role, tenant
 * (each a string or null), action, target, method, path, status (integer), result, requestId
 * and remote. It never holds bodies or credentials. Thread-safe. */
#ifndef CAPSTAN_STORE_AUDIT_H
#define CAPSTAN_STORE_AUDIT_H

#include "store/resources.h"
#include "store/store.h"

#include <jansson.h>
#include <stddef.h>

struct store_audit;

/* Starts the writer. retention_ms 0 keeps entries forever. max_queue bounds the entries that
 * wait (at least 1). *out is the caller's to stop with store_audit_stop. */
int store_audit_start(struct store_audit **out, struct store_pool *pool, long long retention_ms,
                      size_t max_queue);

/* Queues entry (new reference, stolen); never waits for the database. a may be NULL (the entry
 * is then only logged). */
void store_audit_add(struct store_audit *a, json_t *entry);

/* Waits until every entry queued before the call is stored or deadline_ms passed; true if
 * stored (tests and shutdown). */
bool store_audit_flush(struct store_audit *a, long long deadline_ms);

/* Stores what it can within deadline_ms, logs the rest, stops the writer and frees a. */
void store_audit_stop(struct store_audit *a, long long deadline_ms);

/* Entries waiting, and counters since the start (metrics). */
void store_audit_stats(struct store_audit *a, size_t *queued, unsigned long long *written,
                       unsigned long long *dropped);

/* A page of entries, newest first; tenant and actor (NULL: any) filter. */
int store_audit_list(struct store_pool *p, const char *tenant, const char *actor,
                     struct store_page *page, char **items);

#endif
