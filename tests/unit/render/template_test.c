/* Unit tests of the typed template substitution (server/render/template.c): quoting of hostile
 * values, integer variables, placement rules and the errors that name variable and template. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "render/template.h"
#include "render/yaml.h"
#include "util/error.h"

static struct render_vars vars;

static int setup(void **state)
{
    (void)state;
    memset(&vars, 0, sizeof(vars));
    assert_int_equal(render_vars_set_str(&vars, "NAME", "team-a-dev"), 0);
    assert_int_equal(render_vars_set_int(&vars, "REPLICAS", 3), 0);
    assert_int_equal(render_vars_set_missing(&vars, "GCP_PROJECT", "set CAPSTAN_GCP_PROJECT"), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    render_vars_free(&vars);
    return 0;
}

/* Expands t; returns the text (caller frees) or NULL with the error kept. */
static char *expand(const char *t, int *rc)
{
    char *out = NULL;
    size_t len = 0;
    *rc = render_template_expand(&out, &len, "cluster-test.yaml", t, strlen(t), &vars);
    if (*rc == 0)
        assert_int_equal(len, strlen(out));
    return out;
}

static void expect_ok(const char *t, const char *want)
{
    int rc;
    char *got = expand(t, &rc);
    if (rc)
        print_error("%s\n", cap_error_message());
    assert_int_equal(rc, 0);
    assert_string_equal(got, want);
    free(got);
}

/* Expansion fails with CAP_EINVALID and a message holding every one of the given words. */
static void expect_error(const char *t, const char *w1, const char *w2, const char *w3)
{
    int rc;
    char *got = expand(t, &rc);
    assert_null(got);
    assert_int_equal(rc, CAP_EINVALID);
    if ((w1 && !strstr(cap_error_message(), w1)) || (w2 && !strstr(cap_error_message(), w2)) ||
        (w3 && !strstr(cap_error_message(), w3))) {
        print_error("message: %s\n", cap_error_message());
        fail();
    }
}

static void test_basic(void **state)
{
    (void)state;
    expect_ok("metadata:\n  name: ${NAME}\nspec:\n  replicas: ${REPLICAS}\n",
              "metadata:\n  name: \"team-a-dev\"\nspec:\n  replicas: 3\n");
    expect_ok("list:\n- ${NAME}\n- - ${REPLICAS}\n", "list:\n- \"team-a-dev\"\n- - 3\n");
    expect_ok("flow: [${NAME}, ${REPLICAS}]\nmap: {a: ${NAME}, b: ${REPLICAS}}\n",
              "flow: [\"team-a-dev\", 3]\nmap: {a: \"team-a-dev\", b: 3}\n");
    expect_ok("v: ${NAME} # trailing comment\n", "v: \"team-a-dev\" # trailing comment\n");
    expect_ok("block: |\n  ${NAME}\n", "block: |\n  \"team-a-dev\"\n");
    expect_ok("cost: $5 and $${LITERAL}\nname: ${NAME}",
              "cost: $5 and ${LITERAL}\nname: \"team-a-dev\"");
    expect_ok("no variables at all\n", "no variables at all\n");
    expect_ok("x: ${NAME}", "x: \"team-a-dev\""); /* at the very end, no newline */
    expect_ok("name: '{{ ds.meta_data.local_hostname }}'\n",
              "name: '{{ ds.meta_data.local_hostname }}'\n");
}

static void test_hostile_values_stay_values(void **state)
{
    static const char *const hostile[] = {
        "x\nkind: Secret",     "a: b", "{x: y}",      "\"quoted\"",
        "---\napiVersion: v1", "# c",  "back\\slash", "\xe2\x80\xa8sep",
        "\xc3\x89quipe",       "",     "${NAME}",     NULL};
    (void)state;
    for (size_t i = 0; hostile[i]; i++) {
        const char *t = "apiVersion: v1\nmetadata:\n  name: ${NAME}\n  labels: {a: ${NAME}}\n"
                        "items:\n- ${NAME}\n";
        json_t *docs = NULL, *d;
        char *got;
        int rc;
        assert_int_equal(render_vars_set_str(&vars, "NAME", hostile[i]), 0);
        got = expand(t, &rc);
        assert_int_equal(rc, 0);
        assert_int_equal(render_yaml_parse(&docs, got, strlen(got), "t"), 0);
        assert_int_equal(json_array_size(docs), 1);
        d = json_array_get(docs, 0);
        assert_int_equal(json_object_size(d), 3);
        assert_string_equal(json_string_value(json_object_get(d, "apiVersion")), "v1");
        assert_int_equal(json_object_size(json_object_get(d, "metadata")), 2);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(d, "metadata"), "name")), hostile[i]);
        assert_string_equal(json_string_value(json_object_get(
                                json_object_get(json_object_get(d, "metadata"), "labels"), "a")),
                            hostile[i]);
        assert_int_equal(json_array_size(json_object_get(d, "items")), 1);
        assert_string_equal(json_string_value(json_array_get(json_object_get(d, "items"), 0)),
                            hostile[i]);
        json_decref(docs);
        free(got);
    }
}

static void test_unknown_and_missing(void **state)
{
    (void)state;
    expect_error("a: ${NOPE}\n", "${NOPE}", "\"cluster-test.yaml\"", "unknown");
    expect_error("a: 1\nb: 2\nc: ${GCP_PROJECT}\n", "${GCP_PROJECT}", "\"cluster-test.yaml\"",
                 "set CAPSTAN_GCP_PROJECT");
    expect_error("a: 1\nb: 2\nc: ${GCP_PROJECT}\n", "line 3", "no value", NULL);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    expect_error("a: ${NAME\nb: c}\n", "unterminated", "\"cluster-test.yaml\"", "line 1");
    expect_error("a: ${NAME", "unterminated", NULL, NULL);
    expect_error("a: ${name}\n", "invalid variable name", "\"name\"", "\"cluster-test.yaml\"");
    expect_error("a: ${X:=default}\n", "invalid variable name", NULL, NULL);
    expect_error("a: ${}\n", "invalid variable name", NULL, NULL);
}

static void test_placement(void **state)
{
    (void)state;
    expect_error("${NAME}: value\n", "${NAME}", "mapping key", "\"cluster-test.yaml\"");
    expect_error("m: {${NAME}: 1}\n", "${NAME}", "mapping key", NULL);
    expect_error("? ${NAME}\n: 1\n", "${NAME}", "mapping key", NULL);
    expect_error("a: \"${NAME}\"\n", "${NAME}", "quotes", NULL);
    expect_error("a: '${NAME}'\n", "${NAME}", "quotes", NULL);
    expect_error("a: \"x ${NAME} y\"\n", "${NAME}", "quotes", NULL);
    expect_error("a: ${NAME}-control-plane\n", "${NAME}", "stand alone", NULL);
    expect_error("a: prefix-${NAME}\n", "${NAME}", "stand alone", NULL);
    expect_error("a: ${NAME}${NAME}\n", "${NAME}", "stand alone", NULL);
    expect_error("# uses ${NAME}\n", "${NAME}", "comment", NULL);
    expect_error("a: 1 # ${NAME}\n", "${NAME}", "comment", NULL);
    expect_error("a:${NAME}\n", "${NAME}", "stand alone", NULL);
    expect_error("a, ${NAME}\n", "${NAME}", "stand alone", NULL); /* ',' outside a flow */
    expect_error("x - ${NAME}\n", "${NAME}", "stand alone", NULL);
}

static void test_vars_table(void **state)
{
    const struct render_var *v;
    (void)state;
    assert_int_equal(render_vars_set_int(&vars, "NEG", -1), CAP_EINVALID);
    assert_int_equal(render_vars_set_str(&vars, "lower", "x"), CAP_EINVALID);
    assert_int_equal(render_vars_set_str(&vars, "1X", "x"), CAP_EINVALID);
    assert_int_equal(render_vars_set_str(&vars, "BAD_UTF8", "\xff"), CAP_EINVALID);
    /* setting again replaces, also across types */
    assert_int_equal(render_vars_set_str(&vars, "REPLICAS", "three"), 0);
    v = render_vars_get(&vars, "REPLICAS");
    assert_non_null(v);
    assert_int_equal(v->type, RENDER_VAR_STRING);
    assert_string_equal(v->str, "three");
    assert_null(render_vars_get(&vars, "NOPE"));
    expect_ok("r: ${REPLICAS}\n", "r: \"three\"\n");
}

static void test_bad_template_text(void **state)
{
    char *out = NULL;
    (void)state;
    assert_int_equal(render_template_expand(&out, NULL, "t.yaml", "a: \xff\n", 5, &vars),
                     CAP_EINVALID);
    assert_non_null(strstr(cap_error_message(), "UTF-8"));
    assert_int_equal(render_template_expand(&out, NULL, "t.yaml", "a: b\0c", 6, &vars),
                     CAP_EINVALID);
    assert_null(out);
}

static void test_deterministic(void **state)
{
    const char *t = "a: ${NAME}\nb: ${REPLICAS}\n";
    int rc1, rc2;
    char *x, *y;
    (void)state;
    x = expand(t, &rc1);
    y = expand(t, &rc2);
    assert_int_equal(rc1 | rc2, 0);
    assert_string_equal(x, y);
    free(x);
    free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_values_stay_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_and_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_placement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vars_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_template_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deterministic, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
