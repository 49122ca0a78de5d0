/* capstan: the tree a round builds, on an in-memory git_index (no working tree).
 *
 * The index holds every file of the tree (stage 0, sorted by path). A put writes a blob into the
 * cache's object database and adds an entry, first removing whatever is in the way (a file where
 * a folder of the path is, or a folder where the file goes), so the index always describes a
 * valid tree. Writing the tree (git_index_write_tree_to) happens in gitops.c.
 *
 * While a round applies one change, the journal records each path the change touches as it was
 * before: the change altered the tree exactly when one of those paths differs now (so a change
 * that clears a folder and puts the same files back did not), and a failed change is undone by
 * putting them back. A round then writes one tree, not one per change. */
#include "gitops/internal.h"

#include "util/error.h"

#include <stdlib.h>
#include <string.h>

static int git_fail(const char *what)
{
    const git_error *e = git_error_last();
    return cap_error_set(CAP_ERROR, "%s: %s", what, e && e->message ? e->message : "unknown error");
}

/* Sets prefix to "dir/" ("" when dir is NULL or empty: the root), its length to *plen and *pos
 * to the index position of the first entry under it; false when there is none. dir is a
 * checked path. */
static bool dir_first(git_index *idx, const char *dir, char prefix[GITOPS_PATH_MAX + 2],
                      size_t *plen, size_t *pos)
{
    *plen = dir ? strlen(dir) : 0;
    *pos = 0;
    if (*plen > GITOPS_PATH_MAX)
        return false;
    if (*plen) {
        memcpy(prefix, dir, *plen);
        prefix[(*plen)++] = '/';
    }
    prefix[*plen] = '\0';
    return *plen == 0 || git_index_find_prefix(pos, idx, prefix) == 0;
}

/* --- the journal --- */

/* Records path as it is now, unless it was recorded since the journal began. */
static int mark(struct gitops_tree *t, const char *path)
{
    const git_index_entry *e;
    struct gitops_tree_mark *m;
    size_t i;

    if (!t->journal)
        return 0;
    for (i = 0; i < t->nmarks; i++)
        if (strcmp(t->marks[i].path, path) == 0)
            return 0;
    if (t->nmarks == t->capmarks) {
        size_t cap = t->capmarks ? t->capmarks * 2 : 16;
        struct gitops_tree_mark *grown = realloc(t->marks, cap * sizeof(*grown));
        if (!grown)
            return cap_error_set(CAP_ERROR, "out of memory");
        t->marks = grown;
        t->capmarks = cap;
    }
    m = &t->marks[t->nmarks];
    memset(m, 0, sizeof(*m));
    if (!(m->path = strdup(path)))
        return cap_error_set(CAP_ERROR, "out of memory");
    e = git_index_get_bypath(t->index, path, 0);
    if (e) {
        m->had = true;
        m->mode = e->mode;
        m->file_size = e->file_size;
        git_oid_cpy(&m->id, &e->id);
    }
    t->nmarks++;
    return 0;
}

/* Records every entry under dir/. */
static int mark_dir(struct gitops_tree *t, const char *dir)
{
    char prefix[GITOPS_PATH_MAX + 2];
    size_t plen, pos, count = git_index_entrycount(t->index), i;
    int rc = 0;

    if (!t->journal || !dir_first(t->index, dir, prefix, &plen, &pos))
        return 0;
    for (i = pos; i < count && rc == 0; i++) {
        const git_index_entry *e = git_index_get_byindex(t->index, i);
        if (!e || strncmp(e->path, prefix, plen) != 0)
            break;
        rc = mark(t, e->path);
    }
    return rc;
}

void gitops_tree_journal_begin(struct gitops_tree *t)
{
    gitops_tree_journal_end(t);
    t->journal = true;
}

bool gitops_tree_journal_changed(const struct gitops_tree *t)
{
    size_t i;
    for (i = 0; i < t->nmarks; i++) {
        const struct gitops_tree_mark *m = &t->marks[i];
        const git_index_entry *e = git_index_get_bypath(t->index, m->path, 0);
        if (!e != !m->had || (e && (e->mode != m->mode || !git_oid_equal(&e->id, &m->id))))
            return true;
    }
    return false;
}

int gitops_tree_journal_undo(struct gitops_tree *t)
{
    size_t i;

    /* what the change added goes first, so that nothing stands where an old entry returns */
    for (i = 0; i < t->nmarks; i++)
        if (!t->marks[i].had && git_index_get_bypath(t->index, t->marks[i].path, 0) &&
            git_index_remove(t->index, t->marks[i].path, 0) < 0)
            return git_fail("cannot restore the tree");
    for (i = 0; i < t->nmarks; i++) {
        const struct gitops_tree_mark *m = &t->marks[i];
        git_index_entry entry;
        if (!m->had)
            continue;
        memset(&entry, 0, sizeof(entry));
        entry.mode = m->mode;
        entry.id = m->id;
        entry.path = m->path;
        entry.file_size = m->file_size;
        if (git_index_add(t->index, &entry) < 0)
            return git_fail("cannot restore the tree");
    }
    return 0;
}

void gitops_tree_journal_end(struct gitops_tree *t)
{
    size_t i;
    for (i = 0; i < t->nmarks; i++)
        free(t->marks[i].path);
    free(t->marks);
    t->marks = NULL;
    t->nmarks = t->capmarks = 0;
    t->journal = false;
}

/* --- changes --- */

/* Removes every entry under dir/ (dir itself excluded). */
static int remove_dir(struct gitops_tree *t, const char *dir)
{
    int rc;
    if ((rc = mark_dir(t, dir)) != 0)
        return rc;
    if (git_index_remove_directory(t->index, dir, 0) < 0)
        return git_fail("cannot update the tree");
    return 0;
}

/* Removes file entries at each proper prefix of path ("a" and "a/b" for "a/b/c"). */
static int remove_parent_files(struct gitops_tree *t, const char *path)
{
    char buf[GITOPS_PATH_MAX + 1];
    size_t len = strlen(path), i;

    if (len > GITOPS_PATH_MAX)
        return cap_error_set(CAP_EINVALID, "path is too long");
    memcpy(buf, path, len + 1);
    for (i = 0; i < len; i++) {
        if (buf[i] != '/')
            continue;
        buf[i] = '\0';
        if (git_index_get_bypath(t->index, buf, 0)) {
            int rc = mark(t, buf);
            if (rc)
                return rc;
            if (git_index_remove(t->index, buf, 0) < 0)
                return git_fail("cannot update the tree");
        }
        buf[i] = '/';
    }
    return 0;
}

int gitops_tree_put(struct gitops_tree *t, const char *path, const char *content, size_t len)
{
    git_index_entry entry;
    git_oid id;
    int rc;

    if ((rc = gitops_path_check(path)) != 0)
        return rc;
    if (len > GITOPS_FILE_MAX)
        return cap_error_set(CAP_ETOOBIG, "file \"%s\" is over %u bytes", path, GITOPS_FILE_MAX);
    if (git_blob_create_from_buffer(&id, t->repo, len ? content : "", len) < 0)
        return git_fail("cannot write a file");
    if ((rc = remove_parent_files(t, path)) != 0 || (rc = remove_dir(t, path)) != 0 ||
        (rc = mark(t, path)) != 0)
        return rc;
    memset(&entry, 0, sizeof(entry));
    entry.mode = GIT_FILEMODE_BLOB;
    entry.id = id;
    entry.path = path;
    entry.file_size = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
    if (git_index_add(t->index, &entry) < 0)
        return git_fail("cannot update the tree");
    return 0;
}

int gitops_tree_delete(struct gitops_tree *t, const char *path)
{
    int rc;

    if ((rc = gitops_path_check(path)) != 0)
        return rc;
    if (git_index_get_bypath(t->index, path, 0)) {
        if ((rc = mark(t, path)) != 0)
            return rc;
        if (git_index_remove(t->index, path, 0) < 0)
            return git_fail("cannot update the tree");
        return 0;
    }
    return remove_dir(t, path);
}

int gitops_tree_apply(struct gitops_tree *t, const struct gitops_op *op)
{
    if (op->kind == GITOPS_PUT)
        return gitops_tree_put(t, op->path, op->content, op->len);
    if (op->kind == GITOPS_DELETE)
        return gitops_tree_delete(t, op->path);
    return cap_error_set(CAP_EINVALID, "unknown op kind %d", (int)op->kind);
}

int gitops_tree_read(struct gitops_tree *t, const char *path, char **out, size_t *out_len)
{
    const git_index_entry *e;
    git_blob *blob = NULL;
    git_object_size_t size;
    char *buf;
    int rc;

    *out = NULL;
    *out_len = 0;
    if ((rc = gitops_path_check(path)) != 0)
        return rc;
    e = git_index_get_bypath(t->index, path, 0);
    if (!e)
        return cap_error_set(CAP_ENOTFOUND, "no file \"%s\" in the tree", path);
    if (git_blob_lookup(&blob, t->repo, &e->id) < 0)
        return git_fail("cannot read a file");
    size = git_blob_rawsize(blob);
    if (size > GITOPS_FILE_MAX) {
        git_blob_free(blob);
        return cap_error_set(CAP_ETOOBIG, "file \"%s\" is over %u bytes", path, GITOPS_FILE_MAX);
    }
    buf = malloc((size_t)size + 1);
    if (!buf) {
        git_blob_free(blob);
        return cap_error_set(CAP_ERROR, "out of memory");
    }
    if (size)
        memcpy(buf, git_blob_rawcontent(blob), (size_t)size);
    buf[size] = '\0';
    git_blob_free(blob);
    *out = buf;
    *out_len = (size_t)size;
    return 0;
}

void gitops_names_free(char **names, size_t n)
{
    size_t i;
    if (!names)
        return;
    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int gitops_tree_list(struct gitops_tree *t, const char *dir, char ***out_names, size_t *out_n,
                     bool dirs_only)
{
    char prefix[GITOPS_PATH_MAX + 2];
    size_t plen, pos, count, i, n = 0, cap = 0;
    char **names = NULL, **grown;
    const char *last = NULL;
    int rc = 0;

    *out_names = NULL;
    *out_n = 0;
    if (dir && *dir && (rc = gitops_path_check(dir)) != 0)
        return rc;
    count = git_index_entrycount(t->index);
    if (!dir_first(t->index, dir, prefix, &plen, &pos))
        return 0; /* nothing under dir */
    for (i = pos; i < count; i++) {
        const git_index_entry *e = git_index_get_byindex(t->index, i);
        const char *rest, *slash;
        size_t nlen;
        if (!e || strncmp(e->path, prefix, plen) != 0)
            break;
        rest = e->path + plen;
        slash = strchr(rest, '/');
        if (dirs_only && !slash)
            continue;
        nlen = slash ? (size_t)(slash - rest) : strlen(rest);
        /* entries of one folder are adjacent, so a repeat is always the last name added */
        if (last && strlen(last) == nlen && strncmp(last, rest, nlen) == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            grown = realloc(names, cap * sizeof(*names));
            if (!grown) {
                rc = cap_error_set(CAP_ERROR, "out of memory");
                goto cleanup;
            }
            names = grown;
        }
        names[n] = strndup(rest, nlen);
        if (!names[n]) {
            rc = cap_error_set(CAP_ERROR, "out of memory");
            goto cleanup;
        }
        last = names[n++];
    }
    if (n > 1)
        qsort(names, n, sizeof(*names), name_cmp);
    *out_names = names;
    *out_n = n;
    names = NULL;
    n = 0;
cleanup:
    gitops_names_free(names, n);
    return rc;
}
