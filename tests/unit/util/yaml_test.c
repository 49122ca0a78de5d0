/* Unit tests of the strict YAML reader (server/util/yaml.c): types of the YAML 1.2 core
 * schema, what it refuses (aliases, anchors, duplicate keys, non-scalar keys, deep nesting,
 * several documents, size) and that it never crashes on truncated or odd input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/json.h"
#include "util/yaml.h"

/* Parses s and returns its compact JSON (caller frees), or NULL on error. */
static char *conv(const char *s, size_t depth)
{
    json_t *v = NULL;
    char *out;
    if (cap_yaml_to_json(&v, s, strlen(s), depth) != 0) {
        assert_null(v);
        return NULL;
    }
    out = cap_json_dump(v);
    json_decref(v);
    return out;
}

static void assert_conv(const char *yaml, const char *json)
{
    char *got = conv(yaml, 32);
    if (!got)
        fail_msg("parse of %s failed: %s", yaml, cap_error_message());
    if (strcmp(got, json) != 0)
        fail_msg("%s gave %s, want %s", yaml, got, json);
    free(got);
}

static void assert_rejects(const char *yaml, size_t depth, int code, const char *msg_part)
{
    json_t *v = (json_t *)0x1;
    int rc = cap_yaml_to_json(&v, yaml, strlen(yaml), depth);
    if (rc != code)
        fail_msg("%s gave %d (%s), want %d", yaml, rc, cap_error_message(), code);
    assert_null(v);
    if (msg_part && !strstr(cap_error_message(), msg_part))
        fail_msg("message \"%s\" lacks \"%s\"", cap_error_message(), msg_part);
}

static void test_types(void **state)
{
    (void)state;
    assert_conv("a: 1\nb: -7\nc: +3\nd: 0o17\ne: 0x1F\n",
                "{\"a\":1,\"b\":-7,\"c\":3,\"d\":15,\"e\":31}");
    assert_conv("a: 1.5\nb: -.5\nc: 1e3\nd: 2.\n", "{\"a\":1.5,\"b\":-0.5,\"c\":1000.0,\"d\":2.0}");
    assert_conv("a: true\nb: False\nc: TRUE\nd: yes\ne: on\n",
                "{\"a\":true,\"b\":false,\"c\":true,\"d\":\"yes\",\"e\":\"on\"}");
    assert_conv("a: ~\nb: null\nc:\nd: NULL\ne: nil\n",
                "{\"a\":null,\"b\":null,\"c\":null,\"d\":null,\"e\":\"nil\"}");
    /* Quoted and block scalars stay strings. */
    assert_conv("a: \"1\"\nb: 'true'\nc: |\n  12\nd: \"\"\n",
                "{\"a\":\"1\",\"b\":\"true\",\"c\":\"12\\n\",\"d\":\"\"}");
    /* Not numbers in the core schema. */
    assert_conv("a: 1_000\nb: 0b11\nc: 12:30\nd: 1.2.3\ne: 0x\nf: .\ng: -x\n",
                "{\"a\":\"1_000\",\"b\":\"0b11\",\"c\":\"12:30\",\"d\":\"1.2.3\",\"e\":\"0x\","
                "\"f\":\".\",\"g\":\"-x\"}");
    assert_conv("- a\n- [1, {b: c}]\n- {}\n- []\n", "[\"a\",[1,{\"b\":\"c\"}],{},[]]");
    assert_conv("plain", "\"plain\"");
    assert_conv("", "null");
    assert_conv("--- \n...\n", "null");
    assert_conv("# only a comment\n", "null");
    assert_conv("k: \"caf\\u00e9 \\t\"\n", "{\"k\":\"caf\xc3\xa9 \\t\"}");
    /* Keys are strings whatever they look like. */
    assert_conv("1: a\ntrue: b\nnull: c\n", "{\"1\":\"a\",\"null\":\"c\",\"true\":\"b\"}");
    /* Explicit tags. */
    assert_conv("a: !!str 12\nb: !!int \"12\"\nc: !!float 3\nd: !!bool true\ne: !!null ''\n",
                "{\"a\":\"12\",\"b\":12,\"c\":3.0,\"d\":true,\"e\":null}");
    assert_conv("a: ! 12\n", "{\"a\":\"12\"}");
    /* A realistic manifest. */
    assert_conv("apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n  labels: {app: web}\n"
                "data:\n  value: aGVsbG8=\n",
                "{\"apiVersion\":\"v1\",\"data\":{\"value\":\"aGVsbG8=\"},\"kind\":\"Secret\","
                "\"metadata\":{\"labels\":{\"app\":\"web\"},\"name\":\"x\"}}");
}

static void test_integer_limits(void **state)
{
    (void)state;
    assert_conv("a: 9223372036854775807\nb: -9223372036854775808\n",
                "{\"a\":9223372036854775807,\"b\":-9223372036854775808}");
    assert_rejects("a: 9223372036854775808\n", 8, CAP_EMALFORMED, "integer out of range");
    assert_rejects("a: 0xFFFFFFFFFFFFFFFFF\n", 8, CAP_EMALFORMED, "integer out of range");
    assert_rejects("a: 1e999\n", 8, CAP_EMALFORMED, "out of range");
    assert_rejects("a: .inf\n", 8, CAP_EMALFORMED, "NaN");
    assert_rejects("a: -.Inf\n", 8, CAP_EMALFORMED, "NaN");
    assert_rejects("a: .nan\n", 8, CAP_EMALFORMED, "NaN");
    assert_conv("a: '.nan'\n", "{\"a\":\".nan\"}");
}

static void test_rejects(void **state)
{
    (void)state;
    assert_rejects("a: &x 1\nb: *x\n", 8, CAP_EMALFORMED, "anchors are not allowed");
    assert_rejects("a: [*x]\n", 8, CAP_EMALFORMED, NULL);
    assert_rejects("a: &x [1]\n", 8, CAP_EMALFORMED, "anchors");
    assert_rejects("a: 1\na: 2\n", 8, CAP_EMALFORMED, "duplicate key \"a\" at line 2, column 4");
    assert_rejects("{a: 1, a: 1}", 8, CAP_EMALFORMED, "duplicate key");
    assert_rejects("? [a]\n: 1\n", 8, CAP_EMALFORMED, "key must be a scalar");
    assert_rejects("? {a: b}\n: 1\n", 8, CAP_EMALFORMED, "key must be a scalar");
    assert_rejects("!!int a: 1\n", 8, CAP_EMALFORMED, "key must be a string");
    assert_rejects("a: !!int x\n", 8, CAP_EMALFORMED, "!!int");
    assert_rejects("a: !!bool 1\n", 8, CAP_EMALFORMED, "!!bool");
    assert_rejects("a: !custom x\n", 8, CAP_EMALFORMED, "unsupported tag");
    assert_rejects("a: !!set {x}\n", 8, CAP_EMALFORMED, "unsupported tag");
    assert_rejects("a: 1\n---\nb: 2\n", 8, CAP_EMALFORMED, "more than one YAML document");
    assert_rejects("a: \"x\\0y\"\n", 8, CAP_EMALFORMED, "NUL");
    assert_rejects("a: [1, 2\n", 8, CAP_EMALFORMED, "line");
    assert_rejects("a: b: c\n", 8, CAP_EMALFORMED, "line 1");
    assert_rejects("\tk: v\n", 8, CAP_EMALFORMED, NULL);
    /* A message never quotes a value. */
    assert_rejects("a: !!int s3cr3t-value\n", 8, CAP_EMALFORMED, NULL);
    assert_null(strstr(cap_error_message(), "s3cr3t"));
}

static void test_depth(void **state)
{
    char buf[512];
    (void)state;
    assert_conv("a: {b: [1]}", "{\"a\":{\"b\":[1]}}");
    assert_rejects("a: {b: [1]}", 2, CAP_EMALFORMED, "nesting too deep");
    assert_rejects("[1]", 0, CAP_EMALFORMED, "nesting too deep");
    assert_conv("1", "1");
    memset(buf, '[', 200);
    buf[200] = '\0';
    assert_rejects(buf, 64, CAP_EMALFORMED, "nesting too deep");
    /* Deep but within the limit. */
    for (int i = 0; i < 50; i++) {
        buf[i] = '[';
        buf[50 + i] = ']';
    }
    buf[100] = '\0';
    json_t *v = NULL;
    assert_int_equal(cap_yaml_to_json(&v, buf, 100, 50), 0);
    json_decref(v);
    assert_rejects(buf, 49, CAP_EMALFORMED, "nesting too deep");
}

static void test_size_and_billion_laughs(void **state)
{
    const char *laughs = "a: &a [\"lol\",\"lol\"]\nb: &b [*a,*a,*a]\nc: &c [*b,*b,*b]\n";
    char *big;
    size_t n = CAP_YAML_MAX_BYTES + 1;
    json_t *v = NULL;
    (void)state;
    assert_rejects(laughs, 8, CAP_EMALFORMED, "anchors are not allowed");
    big = malloc(n);
    assert_non_null(big);
    memset(big, 'a', n);
    assert_int_equal(cap_yaml_to_json(&v, big, n, 8), CAP_ETOOBIG);
    assert_null(v);
    free(big);
}

/* Every prefix of a set of documents, and some odd bytes: no crash, and either a value or
 * an error with a message. */
static void test_never_crashes(void **state)
{
    static const char *docs[] = {
        "apiVersion: v1\nclusters:\n- cluster:\n    server: https://x\n  name: c\n",
        "a: [1, {b: \"c\\u00e9\", d: 'e''f'}, |\n  text\n]\n",
        "? complex\n: value\n- x\n",
        "a: &x 1\n",
        "\xef\xbb\xbf"
        "a: 1\n",
        "\xff\xfe"
        "a\0:\0 \0"
        "1\0",
        "a: \"\\xff\\ud800\"\n",
        "\x80\x81: 1\n",
        "%YAML 1.2\n%TAG ! tag:x,2000:\n--- !a\nx: 1\n",
    };
    (void)state;
    for (size_t d = 0; d < sizeof(docs) / sizeof(docs[0]); d++) {
        size_t len = strlen(docs[d]);
        if (d == 5)
            len = 10;
        for (size_t i = 0; i <= len; i++) {
            json_t *v = NULL;
            int rc = cap_yaml_to_json(&v, docs[d], i, 8);
            if (rc == 0) {
                assert_non_null(v);
                json_decref(v);
            } else {
                assert_null(v);
                assert_true(cap_error_message()[0] != '\0');
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_integer_limits),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_size_and_billion_laughs),
        cmocka_unit_test(test_never_crashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
