/* Unit tests of the GitOps engine's validation and commit message format (server/gitops/message.c):
 * which op paths are refused, which change fields are refused (and named), and the exact
 * message and trailers, checked again with libgit2's own trailer parser. No network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gitops/gitops.h"
#include "util/error.h"

#define JOB1 "6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab"
#define JOB2 "00000000-0000-4000-8000-000000000002"
#define JOB3 "ABCDEF01-2345-4678-9ABC-DEF012345678"

static void test_good_paths(void **state)
{
    static const char *good[] = {"a",
                                 "a/b.yaml",
                                 "tenants/team-a/environments/dev/cluster.yaml",
                                 ".gitignore",
                                 "a/.github/workflows/x.yml",
                                 "...",
                                 "a/..b/c..",
                                 "x.git",
                                 "\xc3\xa4/\xe2\x82\xac.yaml",
                                 "with space/and-dash_underscore"};
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(gitops_path_check(good[i]), 0);
}

static void test_bad_paths(void **state)
{
    char longpath[GITOPS_PATH_MAX + 2], longseg[GITOPS_SEGMENT_MAX + 2];
    static const char *bad[] = {"",     "/a",     "a/",     "a//b",          ".",
                                "..",   "a/..",   "../a",   "a/../b",        "a/./b",
                                ".git", ".GIT/x", "a/.Git", "a/.git/config", "a\\b",
                                "a\nb", "a\tb",   "\x7f",   "\xff\xfe",      "a/\xc3"};
    (void)state;
    assert_int_equal(gitops_path_check(NULL), CAP_EINVALID);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(gitops_path_check(bad[i]), CAP_EINVALID);
        assert_true(strlen(cap_error_message()) > 0);
    }
    memset(longpath, 'a', sizeof(longpath));
    for (size_t i = 100; i < sizeof(longpath) - 1; i += 100)
        longpath[i] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    assert_int_equal(gitops_path_check(longpath), CAP_EINVALID);
    longpath[GITOPS_PATH_MAX] = '\0';
    assert_int_equal(gitops_path_check(longpath), 0);
    memset(longseg, 'b', sizeof(longseg));
    longseg[sizeof(longseg) - 1] = '\0';
    assert_int_equal(gitops_path_check(longseg), CAP_EINVALID);
    longseg[GITOPS_SEGMENT_MAX] = '\0';
    assert_int_equal(gitops_path_check(longseg), 0);
}

static struct gitops_change make(const char *job, const char *summary, const char *actor,
                                 const struct gitops_op *ops, size_t n)
{
    struct gitops_change c = {job, summary, actor, ops, n};
    return c;
}

static void test_change_check(void **state)
{
    struct gitops_op ops[2] = {{GITOPS_PUT, "a/b.yaml", "x", 1}, {GITOPS_DELETE, "c", NULL, 0}};
    struct gitops_change c;
    char summary[GITOPS_SUMMARY_MAX + 2];
    (void)state;

    c = make(JOB1, "environment.create team-a/dev", "alice@example.com", ops, 2);
    assert_int_equal(gitops_change_check(&c), 0);
    c = make(JOB3, "s", "a", NULL, 0); /* upper-case uuid, no ops */
    assert_int_equal(gitops_change_check(&c), 0);

    c = make("not-a-uuid", "s", "a", ops, 2);
    assert_int_equal(gitops_change_check(&c), CAP_EINVALID);
    assert_string_equal(cap_error_field(), "job_id");
    c = make(NULL, "s", "a", ops, 2);
    assert_int_equal(gitops_change_check(&c), CAP_EINVALID);

    c = make(JOB1, "", "a", ops, 2);
    assert_int_equal(gitops_change_check(&c), CAP_EINVALID);
    assert_string_equal(cap_error_field(), "summary");
    c = make(JOB1, "x\nCapstan-Job: " JOB2, "a", ops, 2);
    assert_int_equal(gitops_change_check(&c), CAP_EINVALID);
    assert_string_equal(cap_error_field(), "summary");
    memset(summary, 's', sizeof(summary));
    summary[sizeof(summary) - 1] = '\0';
    c = make(JOB1, summary, "a", ops, 2);
    assert_int_equal(gitops_change_check(&c), CAP_EINVALID);

    c = make(JOB1, "s", "eve\r\nCapstan-Job: x", ops, 2);
    assert_int_equal(gitops_change_check(&c), CAP_EINVALID);
    assert_string_equal(cap_error_field(), "requested_by");
    c = make(JOB1, "s", NULL, ops, 2);
    assert_int_equal(gitops_change_check(&c), CAP_EINVALID);
    assert_string_equal(cap_error_field(), "requested_by");

    ops[1].path = "../up";
    c = make(JOB1, "s", "a", ops, 2);
    assert_int_equal(gitops_change_check(&c), CAP_EINVALID);
    assert_string_equal(cap_error_field(), "ops[1].path");
    ops[1].path = "c";

    ops[0].len = GITOPS_FILE_MAX + 1;
    assert_int_equal(gitops_change_check(&c), CAP_ETOOBIG);
    assert_string_equal(cap_error_field(), "ops[0]");
    ops[0].len = 1;
    ops[0].content = NULL;
    assert_int_equal(gitops_change_check(&c), CAP_EINVALID);
    ops[0].len = 0; /* an empty file needs no content */
    assert_int_equal(gitops_change_check(&c), 0);

    ops[1].kind = (enum gitops_op_kind)7;
    assert_int_equal(gitops_change_check(&c), CAP_EINVALID);
    assert_string_equal(cap_error_field(), "ops[1]");
    assert_int_equal(gitops_change_check(NULL), CAP_EINVALID);
}

/* The trailers libgit2 (like git interpret-trailers) finds in msg, as "k=v;" pairs. */
static void trailers_of(const char *msg, char *out, size_t size)
{
    git_message_trailer_array arr = {0};
    out[0] = '\0';
    assert_int_equal(git_message_trailers(&arr, msg), 0);
    for (size_t i = 0; i < arr.count; i++) {
        size_t used = strlen(out);
        snprintf(out + used, size - used, "%s=%s;", arr.trailers[i].key, arr.trailers[i].value);
    }
    git_message_trailer_array_free(&arr);
}

static void test_message_one_change(void **state)
{
    struct gitops_change c =
        make(JOB1, "environment.create team-a/dev", "alice@example.com", NULL, 0);
    const struct gitops_change *list[1] = {&c};
    char *msg = NULL, tr[512];
    (void)state;
    assert_int_equal(gitops_message_build(&msg, list, 1), 0);
    assert_string_equal(msg, "environment.create team-a/dev\n\n"
                             "Capstan-Job: " JOB1 "\n"
                             "Capstan-Requested-By: alice@example.com\n");
    trailers_of(msg, tr, sizeof(tr));
    assert_string_equal(tr, "Capstan-Job=" JOB1 ";Capstan-Requested-By=alice@example.com;");
    free(msg);
}

static void test_message_several_changes(void **state)
{
    struct gitops_change a =
        make(JOB1, "environment.create team-a/dev", "alice@example.com", NULL, 0);
    struct gitops_change b = make(JOB2, "tenant.delete team-b", "system:token:ci", NULL, 0);
    struct gitops_change c = make(JOB3, "environment.update team-a/prod", "bob", NULL, 0);
    const struct gitops_change *list[3] = {&a, &b, &c};
    char *msg = NULL, tr[1024];
    (void)state;
    assert_int_equal(gitops_message_build(&msg, list, 3), 0);
    assert_string_equal(msg, "capstan: 3 changes\n\n"
                             "environment.create team-a/dev\n"
                             "tenant.delete team-b\n"
                             "environment.update team-a/prod\n\n"
                             "Capstan-Job: " JOB1 "\n"
                             "Capstan-Requested-By: alice@example.com\n"
                             "Capstan-Job: " JOB2 "\n"
                             "Capstan-Requested-By: system:token:ci\n"
                             "Capstan-Job: " JOB3 "\n"
                             "Capstan-Requested-By: bob\n");
    trailers_of(msg, tr, sizeof(tr));
    assert_string_equal(tr, "Capstan-Job=" JOB1 ";Capstan-Requested-By=alice@example.com;"
                            "Capstan-Job=" JOB2 ";Capstan-Requested-By=system:token:ci;"
                            "Capstan-Job=" JOB3 ";Capstan-Requested-By=bob;");
    free(msg);
}

static void test_message_edges(void **state)
{
    struct gitops_change a = make(JOB1, "s", "a", NULL, 0);
    const struct gitops_change *list[GITOPS_BATCH_MAX + 1];
    char *msg = NULL;
    (void)state;
    assert_int_equal(gitops_message_build(&msg, NULL, 0), 0);
    assert_string_equal(msg, "capstan: initialize repository\n");
    free(msg);
    for (size_t i = 0; i <= GITOPS_BATCH_MAX; i++)
        list[i] = &a;
    assert_int_equal(gitops_message_build(&msg, list, GITOPS_BATCH_MAX), 0);
    assert_non_null(strstr(msg, "capstan: 64 changes\n"));
    free(msg);
    msg = (char *)1;
    assert_int_equal(gitops_message_build(&msg, list, GITOPS_BATCH_MAX + 1), CAP_ETOOBIG);
    assert_null(msg);
}

static int setup(void **state)
{
    (void)state;
    return git_libgit2_init() < 0;
}

static int teardown(void **state)
{
    (void)state;
    git_libgit2_shutdown();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_paths),
        cmocka_unit_test(test_bad_paths),
        cmocka_unit_test(test_change_check),
        cmocka_unit_test(test_message_one_change),
        cmocka_unit_test(test_message_several_changes),
        cmocka_unit_test(test_message_edges),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
