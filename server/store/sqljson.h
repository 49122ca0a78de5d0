/* capstan: SQL fragments that build the API's JSON shapes of rows (internal to store/). */
#ifndef CAPSTAN_STORE_SQLJSON_H
#define CAPSTAN_STORE_SQLJSON_H

/* RFC 3339 UTC with milliseconds, or NULL */
#define SQL_TS(col) "to_char((" col ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* now() as RFC 3339 text */
#define SQL_NOW_TS SQL_TS("now()")

#define SQL_TENANT_JSON(t)                                                                         \
    "(jsonb_build_object('name', " t ".name) || " t ".spec || jsonb_build_object("                 \
    "'state', " t ".state, 'platformRepository', " t ".platform_repository, "                      \
    "'generation', " t ".generation, 'observedGeneration', " t ".observed_generation, "            \
    "'createdAt', " SQL_TS(t ".created_at") ", 'updatedAt', " SQL_TS(t ".updated_at") "))"

#define SQL_ENV_JSON(e)                                                                            \
    "(" e ".spec || jsonb_build_object('tenant', " e ".tenant, "                                   \
    "'expiresAt', " SQL_TS(                                                                        \
        e ".expires_at") ", 'state', " e ".state, "                                                \
                         "'cluster', jsonb_build_object('name', " e ".tenant || '-' || " e         \
                         ".name, "                                                                 \
                         "'namespace', 'tenant-' || " e ".tenant, 'phase', " e ".cluster_phase), " \
                         "'gitCommit', " e ".git_commit, 'generation', " e ".generation, "         \
                         "'observedGeneration', " e ".observed_generation, "                       \
                         "'createdAt', " SQL_TS(e ".created_at") ", 'updatedAt', " SQL_TS(         \
                             e ".updated_at") "))"

#define SQL_JOB_JSON(j)                                                                            \
    "jsonb_build_object('id', " j ".id, 'kind', " j ".kind, 'tenant', " j ".tenant, "              \
    "'environment', " j ".environment, 'state', " j ".state, 'attempt', " j ".attempt, "           \
    "'maxAttempts', " j ".max_attempts, 'runAfter', " SQL_TS(                                      \
        j                                                                                          \
        ".run_after") ", "                                                                         \
                      "'steps', " j ".steps, 'error', " j ".error, 'result', " j ".result, "       \
                      "'requestedBy', " j ".requested_by, 'createdAt', " SQL_TS(                   \
                          j                                                                        \
                          ".created_at") ", "                                                      \
                                         "'startedAt', " SQL_TS(                                   \
                                             j                                                     \
                                             ".started_at") ", 'finishedAt', " SQL_TS(j            \
                                                                                      ".finished_" \
                                                                                      "at") ")"

#endif
