/* Unit tests of the tree view the finalize hook sees (server/gitops/tree.c): put, read, list,
 * delete, that a put replaces whatever is in the way, and the journal a round uses to tell
 * whether a change altered the tree and to undo a failed one. On a throwaway local repository; no
 * network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gitops/internal.h"
#include "util/error.h"

struct fixture {
    char dir[64];
    git_repository *repo;
    struct gitops_tree t;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int rm_rf(const char *dir)
{
    return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    git_libgit2_init();
    snprintf(f->dir, sizeof(f->dir), "/tmp/capstan-tree-test-XXXXXX");
    if (!mkdtemp(f->dir) || git_repository_init(&f->repo, f->dir, 1) < 0 ||
        git_index_new(&f->t.index) < 0)
        return -1;
    f->t.repo = f->repo;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    gitops_tree_journal_end(&f->t);
    git_index_free(f->t.index);
    git_repository_free(f->repo);
    rm_rf(f->dir);
    free(f);
    git_libgit2_shutdown();
    return 0;
}

static void put(struct gitops_tree *t, const char *path, const char *text)
{
    assert_int_equal(gitops_tree_put(t, path, text, strlen(text)), 0);
}

static void assert_file(struct gitops_tree *t, const char *path, const char *text)
{
    char *got = NULL;
    size_t len = 0;
    assert_int_equal(gitops_tree_read(t, path, &got, &len), 0);
    assert_int_equal(len, strlen(text));
    assert_string_equal(got, text);
    free(got);
}

static void assert_list(struct gitops_tree *t, const char *dir, bool dirs_only, const char *want)
{
    char **names = NULL, got[512] = "";
    size_t n = 0;
    assert_int_equal(gitops_tree_list(t, dir, &names, &n, dirs_only), 0);
    for (size_t i = 0; i < n; i++) {
        size_t used = strlen(got);
        snprintf(got + used, sizeof(got) - used, "%s,", names[i]);
    }
    gitops_names_free(names, n);
    assert_string_equal(got, want);
}

static void test_put_read_list(void **state)
{
    struct fixture *f = *state;
    struct gitops_tree *t = &f->t;
    char *got = (char *)1;
    size_t len = 7;

    put(t, "tenants/b/x.yaml", "x");
    put(t, "tenants/a/y.yaml", "y");
    put(t, "tenants/a-b.yaml", "ab");
    put(t, "tenants/a.txt", "a");
    put(t, "tenants/a0/z", "z");
    put(t, "top", "");
    assert_file(t, "tenants/b/x.yaml", "x");
    assert_file(t, "top", "");
    assert_list(t, "tenants", false, "a,a-b.yaml,a.txt,a0,b,");
    assert_list(t, "tenants", true, "a,a0,b,");
    assert_list(t, "", false, "tenants,top,");
    assert_list(t, NULL, true, "tenants,");
    assert_list(t, "nothing/here", false, "");
    assert_list(t, "top", false, ""); /* a file is not a folder */
    assert_int_equal(gitops_tree_read(t, "tenants/a", &got, &len), CAP_ENOTFOUND);
    assert_null(got);
    assert_int_equal(len, 0);
    assert_int_equal(gitops_tree_read(t, "missing", &got, &len), CAP_ENOTFOUND);
    put(t, "tenants/b/x.yaml", "x2"); /* overwrite */
    assert_file(t, "tenants/b/x.yaml", "x2");
}

static void test_binary_content(void **state)
{
    struct fixture *f = *state;
    const char data[] = {'a', '\0', 'b', '\xff'};
    char *got = NULL;
    size_t len = 0;
    assert_int_equal(gitops_tree_put(&f->t, "bin", data, sizeof(data)), 0);
    assert_int_equal(gitops_tree_read(&f->t, "bin", &got, &len), 0);
    assert_int_equal(len, sizeof(data));
    assert_memory_equal(got, data, sizeof(data));
    free(got);
}

static void test_delete(void **state)
{
    struct fixture *f = *state;
    struct gitops_tree *t = &f->t;
    put(t, "a/b/c", "1");
    put(t, "a/b/d/e", "2");
    put(t, "a/bc", "3");
    put(t, "a/x", "4");
    assert_int_equal(gitops_tree_delete(t, "a/b"), 0); /* a folder, recursively */
    assert_list(t, "a", false, "bc,x,");
    assert_int_equal(gitops_tree_delete(t, "a/x"), 0); /* a file */
    assert_list(t, "a", false, "bc,");
    assert_int_equal(gitops_tree_delete(t, "no/such/thing"), 0); /* nothing there: fine */
    assert_int_equal(git_index_entrycount(t->index), 1);
}

static void test_put_replaces_what_is_in_the_way(void **state)
{
    struct fixture *f = *state;
    struct gitops_tree *t = &f->t;
    git_oid id;
    put(t, "a/b/c", "1");
    put(t, "a/b", "file now"); /* a file where a folder was */
    assert_list(t, "a", false, "b,");
    assert_file(t, "a/b", "file now");
    put(t, "a/b/c/d", "folder again"); /* a folder where a file was */
    assert_list(t, "a/b", false, "c,");
    assert_int_equal(git_index_entrycount(t->index), 1);
    /* the result is a tree git accepts */
    assert_int_equal(git_index_write_tree_to(&id, t->index, t->repo), 0);
}

static void test_bad_paths(void **state)
{
    struct fixture *f = *state;
    struct gitops_tree *t = &f->t;
    char **names = NULL, *got = NULL;
    size_t n = 0, len = 0;
    assert_int_equal(gitops_tree_put(t, "../x", "x", 1), CAP_EINVALID);
    assert_int_equal(gitops_tree_put(t, ".git/config", "x", 1), CAP_EINVALID);
    assert_int_equal(gitops_tree_delete(t, "/"), CAP_EINVALID);
    assert_int_equal(gitops_tree_read(t, "a//b", &got, &len), CAP_EINVALID);
    assert_int_equal(gitops_tree_list(t, "a/", &names, &n, false), CAP_EINVALID);
    assert_int_equal(gitops_tree_put(t, "big", "x", GITOPS_FILE_MAX + 1), CAP_ETOOBIG);
    assert_int_equal(git_index_entrycount(t->index), 0);
}

static git_oid tree_id(struct gitops_tree *t)
{
    git_oid id;
    assert_int_equal(git_index_write_tree_to(&id, t->index, t->repo), 0);
    return id;
}

/* A change that clears a folder and puts the same files back (a retried job) leaves the tree
 * as it was, and the journal says so; a change of one byte, a new file or a removed one is a
 * change. The verdict equals comparing the trees written before and after. */
static void test_journal_tells_whether_the_tree_changed(void **state)
{
    struct fixture *f = *state;
    struct gitops_tree *t = &f->t;
    git_oid before = {{0}}, after;

    put(t, "tenants/a/ns.yaml", "ns");
    put(t, "tenants/a/quota.yaml", "q");
    put(t, "tenants/kustomization.yaml", "- a\n");
    before = tree_id(t);

    gitops_tree_journal_begin(t);
    assert_false(gitops_tree_journal_changed(t));
    assert_int_equal(gitops_tree_delete(t, "tenants/a"), 0);
    assert_true(gitops_tree_journal_changed(t));
    put(t, "tenants/a/ns.yaml", "ns");
    put(t, "tenants/a/quota.yaml", "q");
    put(t, "tenants/kustomization.yaml", "- a\n");
    assert_false(gitops_tree_journal_changed(t));
    after = tree_id(t);
    assert_true(git_oid_equal(&before, &after));
    gitops_tree_journal_end(t);

    gitops_tree_journal_begin(t);
    put(t, "tenants/a/quota.yaml", "q2");
    assert_true(gitops_tree_journal_changed(t));
    gitops_tree_journal_end(t);

    gitops_tree_journal_begin(t);
    put(t, "tenants/b/ns.yaml", "nsb");
    assert_true(gitops_tree_journal_changed(t));
    gitops_tree_journal_end(t);

    gitops_tree_journal_begin(t);
    assert_int_equal(gitops_tree_delete(t, "tenants/b/ns.yaml"), 0);
    assert_true(gitops_tree_journal_changed(t));
    assert_int_equal(gitops_tree_delete(t, "no/such/thing"), 0);
    gitops_tree_journal_end(t);
    assert_false(t->journal);
    assert_null(t->marks);
}

/* Undo puts back exactly the tree the change started from, whatever it did: files replaced,
 * folders removed or turned into files, a file turned into a folder, new files. */
static void test_journal_undo_restores_the_tree(void **state)
{
    struct fixture *f = *state;
    struct gitops_tree *t = &f->t;
    git_oid before, after;

    put(t, "a/x", "1");
    put(t, "a/y", "2");
    put(t, "b", "file");
    put(t, "c/d/e", "3");
    before = tree_id(t);

    gitops_tree_journal_begin(t);
    put(t, "a", "a file where a folder was");
    put(t, "b/inner", "a folder where a file was");
    assert_int_equal(gitops_tree_delete(t, "c"), 0);
    put(t, "new/file", "4");
    put(t, "a", "written twice");
    assert_true(gitops_tree_journal_changed(t));
    assert_int_equal(gitops_tree_journal_undo(t), 0);
    assert_false(gitops_tree_journal_changed(t));
    gitops_tree_journal_end(t);

    after = tree_id(t);
    assert_true(git_oid_equal(&before, &after));
    assert_file(t, "a/x", "1");
    assert_file(t, "b", "file");
    assert_file(t, "c/d/e", "3");
    assert_list(t, "", false, "a,b,c,");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_read_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_replaces_what_is_in_the_way, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_tells_whether_the_tree_changed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_journal_undo_restores_the_tree, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
