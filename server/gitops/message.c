/* capstan: validation of changes and the commit message format of the GitOps engine.
 *
 * Pure functions, no libgit2: op paths are checked so that no change can escape the tree or
 * touch Git's own files, and summaries and actors so that no value can add a line (and so forge
 * a trailer) to a commit message. */
#include "gitops/gitops.h"

#include "util/buf.h"
#include "util/crypto.h"
#include "util/error.h"
#include "util/str.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MESSAGE_MAX ((size_t)GITOPS_BATCH_MAX * (GITOPS_SUMMARY_MAX + GITOPS_ACTOR_MAX + 128) + 256)

int gitops_path_check(const char *path)
{
    const char *seg, *p;
    size_t len;

    if (!path || !*path)
        return cap_error_set(CAP_EINVALID, "path is empty");
    len = strlen(path);
    if (len > GITOPS_PATH_MAX)
        return cap_error_set(CAP_EINVALID, "path is longer than %d bytes", GITOPS_PATH_MAX);
    if (!cap_str_is_clean_utf8(path))
        return cap_error_set(CAP_EINVALID, "path holds a control character or invalid UTF-8");
    if (path[0] == '/')
        return cap_error_set(CAP_EINVALID, "path \"%s\" is absolute", path);
    if (strchr(path, '\\'))
        return cap_error_set(CAP_EINVALID, "path \"%s\" holds a backslash", path);
    seg = path;
    for (;;) {
        size_t n;
        p = strchr(seg, '/');
        n = p ? (size_t)(p - seg) : strlen(seg);
        if (n == 0)
            return cap_error_set(CAP_EINVALID, "path \"%s\" has an empty segment", path);
        if (n > GITOPS_SEGMENT_MAX)
            return cap_error_set(CAP_EINVALID, "path \"%s\" has a segment longer than %d bytes",
                                 path, GITOPS_SEGMENT_MAX);
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return cap_error_set(CAP_EINVALID, "path \"%s\" has a \".\" or \"..\" segment", path);
        if (n == 4 && strncasecmp(seg, ".git", 4) == 0)
            return cap_error_set(CAP_EINVALID, "path \"%s\" has a \".git\" segment", path);
        if (!p)
            break;
        seg = p + 1;
    }
    return 0;
}

/* True if s is 1..max bytes of clean UTF-8 without control characters. */
static bool text_ok(const char *s, size_t max)
{
    size_t n;
    if (!s)
        return false;
    n = strlen(s);
    return n > 0 && n <= max && cap_str_is_clean_utf8(s);
}

int gitops_change_check(const struct gitops_change *c)
{
    char field[64];
    size_t i;
    int rc;

    if (!c)
        return cap_error_set(CAP_EINVALID, "no change");
    if (!c->job_id || !cap_is_uuid(c->job_id))
        return cap_error_set_field(CAP_EINVALID, "job_id", "job id is not a UUID");
    if (!text_ok(c->summary, GITOPS_SUMMARY_MAX))
        return cap_error_set_field(CAP_EINVALID, "summary",
                                   "summary must be 1 to %d bytes of text on one line",
                                   GITOPS_SUMMARY_MAX);
    if (!text_ok(c->requested_by, GITOPS_ACTOR_MAX))
        return cap_error_set_field(CAP_EINVALID, "requested_by",
                                   "requested_by must be 1 to %d bytes of text on one line",
                                   GITOPS_ACTOR_MAX);
    if (c->nops > GITOPS_OPS_MAX)
        return cap_error_set_field(CAP_EINVALID, "ops", "more than %d ops in one change",
                                   GITOPS_OPS_MAX);
    if (c->nops && !c->ops)
        return cap_error_set_field(CAP_EINVALID, "ops", "ops is missing");
    for (i = 0; i < c->nops; i++) {
        const struct gitops_op *op = &c->ops[i];
        snprintf(field, sizeof(field), "ops[%zu].path", i);
        if ((rc = gitops_path_check(op->path)) != 0)
            return cap_error_set_field(rc, field, "%s", cap_error_message());
        snprintf(field, sizeof(field), "ops[%zu]", i);
        if (op->kind == GITOPS_PUT) {
            if (op->len > GITOPS_FILE_MAX)
                return cap_error_set_field(CAP_ETOOBIG, field, "file \"%s\" is over %u bytes",
                                           op->path, GITOPS_FILE_MAX);
            if (op->len && !op->content)
                return cap_error_set_field(CAP_EINVALID, field, "file \"%s\" has no content",
                                           op->path);
        } else if (op->kind != GITOPS_DELETE) {
            return cap_error_set_field(CAP_EINVALID, field, "unknown op kind %d", (int)op->kind);
        }
    }
    return 0;
}

int gitops_message_build(char **out, const struct gitops_change *const *changes, size_t n)
{
    struct cap_buf b = CAP_BUF_INIT(MESSAGE_MAX);
    size_t i;
    int rc = 0;

    *out = NULL;
    if (n > GITOPS_BATCH_MAX)
        return cap_error_set(CAP_ETOOBIG, "more than %d changes in one commit", GITOPS_BATCH_MAX);
    if (n == 0) {
        rc = cap_buf_puts(&b, "capstan: initialize repository\n");
    } else if (n == 1) {
        rc = cap_buf_printf(&b, "%s\n\n", changes[0]->summary);
    } else {
        rc = cap_buf_printf(&b, "capstan: %zu changes\n\n", n);
        for (i = 0; rc == 0 && i < n; i++)
            rc = cap_buf_printf(&b, "%s\n", changes[i]->summary);
        if (rc == 0)
            rc = cap_buf_putc(&b, '\n');
    }
    for (i = 0; rc == 0 && i < n; i++)
        rc = cap_buf_printf(&b, "Capstan-Job: %s\nCapstan-Requested-By: %s\n", changes[i]->job_id,
                            changes[i]->requested_by);
    if (rc) {
        cap_buf_free(&b);
        return rc;
    }
    *out = cap_buf_detach(&b);
    return *out ? 0 : cap_error_set(CAP_ERROR, "out of memory");
}
