/* Unit tests of the YAML quoting, emitter and reader (server/render/yaml.c). Hostile strings
 * are written and read back with libyaml to show they stay one value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "render/yaml.h"
#include "util/buf.h"
#include "util/error.h"

static const char *const hostile[] = {
    "plain",
    "",
    "say \"hi\"",
    "back\\slash\\",
    "x\nkind: Secret",
    "a: b",
    "{x: y}",
    "[1, 2]",
    "# not a comment",
    "---",
    "...\n---\napiVersion: v1",
    "'single'",
    "tab\there\r\n",
    "ctl\x01\x02\x1b\x1f",
    "line\xe2\x80\xa8sep\xe2\x80\xa9para",
    "bom\xef\xbb\xbf",
    "\xc3\x89quipe \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x9a\x80",
    "&anchor *alias !tag %directive @at `tick`",
    "yes",
    "null",
    "123",
    "0x1F",
    "1:20",
    "  leading and trailing  ",
    "- item",
    "? key",
    "| block",
    "> folded",
    "key: value # comment",
    "\\x41 \\u0041 \\n",
    NULL,
};

static char *quote(const char *s)
{
    struct cap_buf b = CAP_BUF_INIT(4096);
    assert_int_equal(render_yaml_quote(&b, s, strlen(s)), 0);
    return cap_buf_detach(&b);
}

static void test_quote_escapes(void **state)
{
    char *q;
    (void)state;
    q = quote("abc");
    assert_string_equal(q, "\"abc\"");
    free(q);
    q = quote("a\"b\\c");
    assert_string_equal(q, "\"a\\\"b\\\\c\"");
    free(q);
    q = quote("l1\nl2\tt\r\x01\x1b");
    assert_string_equal(q, "\"l1\\nl2\\tt\\r\\x01\\x1B\"");
    free(q);
    /* line and paragraph separators and BOM are escaped; other Unicode is kept */
    q = quote("\xe2\x80\xa8|\xe2\x80\xa9|\xef\xbb\xbf|\xc3\xa9|\xf0\x9f\x9a\x80|\xc2\xa0");
    assert_string_equal(q, "\"\\u2028|\\u2029|\\uFEFF|\xc3\xa9|\xf0\x9f\x9a\x80|\xc2\xa0\"");
    free(q);
}

static void test_quote_embedded_nul(void **state)
{
    struct cap_buf b = CAP_BUF_INIT(64);
    (void)state;
    assert_int_equal(render_yaml_quote(&b, "a\0b", 3), 0);
    assert_string_equal(cap_buf_str(&b), "\"a\\0b\"");
    cap_buf_free(&b);
}

static void test_quote_rejects_invalid_utf8(void **state)
{
    static const char *const bad[] = {
        "\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x80", NULL};
    (void)state;
    for (size_t i = 0; bad[i]; i++) {
        struct cap_buf b = CAP_BUF_INIT(64);
        assert_int_equal(cap_buf_puts(&b, "keep"), 0);
        assert_int_equal(render_yaml_quote(&b, bad[i], strlen(bad[i])), CAP_EINVALID);
        assert_string_equal(cap_buf_str(&b), "keep"); /* nothing appended */
        cap_buf_free(&b);
    }
}

/* Characters kustomize cannot write back are refused, escaped or not. */
static void test_unportable_refused(void **state)
{
    static const char *const bad[] = {"\x7f",         "a\xc2\x80",    "\xc2\x85", "\xc2\x9f",
                                      "\xef\xbf\xbe", "\xef\xbf\xbf", NULL};
    (void)state;
    for (size_t i = 0; bad[i]; i++) {
        struct cap_buf b = CAP_BUF_INIT(64);
        assert_int_equal(render_yaml_check_text(bad[i], strlen(bad[i])), CAP_EINVALID);
        assert_non_null(strstr(cap_error_message(), "U+"));
        assert_int_equal(render_yaml_quote(&b, bad[i], strlen(bad[i])), CAP_EINVALID);
        assert_int_equal(b.len, 0);
        cap_buf_free(&b);
    }
    {
        const char *ok = "tab\tctl\x01\xc2\xa0\xf0\x9f\x9a\x80";
        assert_int_equal(render_yaml_check_text(ok, strlen(ok)), 0);
    }
}

static void test_quote_for_message(void **state)
{
    struct cap_buf b = CAP_BUF_INIT(256);
    (void)state;
    render_yaml_quote_for_message(&b, "a\nb\xff", 100);
    assert_string_equal(cap_buf_str(&b), "\"a\\nb\\xFF\"");
    cap_buf_reset(&b);
    render_yaml_quote_for_message(&b, "abcdef", 3);
    assert_string_equal(cap_buf_str(&b), "\"abc\"...");
    cap_buf_free(&b);
}

/* Every hostile string written as a value (and as a key) reads back as exactly that string,
 * alone in its mapping. */
static void test_roundtrip_hostile(void **state)
{
    (void)state;
    for (size_t i = 0; hostile[i]; i++) {
        struct cap_buf b = CAP_BUF_INIT(1 << 16);
        json_t *doc = json_pack("{s:s,s:{s:s},s:[s,i]}", "value", hostile[i], "nested", hostile[i],
                                "after", "list", hostile[i], 7);
        json_t *docs = NULL, *back;
        assert_non_null(doc);
        assert_int_equal(render_yaml_emit(&b, doc), 0);
        assert_int_equal(render_yaml_parse(&docs, b.data, b.len, "test"), 0);
        assert_int_equal(json_array_size(docs), 1);
        back = json_array_get(docs, 0);
        if (!json_equal(back, doc)) {
            char *d = json_dumps(back, 0);
            print_error("string %zu: %s -> %s\n", i, b.data, d);
            free(d);
            fail();
        }
        json_decref(docs);
        json_decref(doc);
        cap_buf_free(&b);
    }
}

static void test_emit_format(void **state)
{
    struct cap_buf b = CAP_BUF_INIT(4096);
    json_t *doc =
        json_pack("{s:s,s:{s:s,s:{s:s}},s:[s,{s:s,s:[s]},[]],s:{},s:i,s:b,s:n}", "apiVersion", "v1",
                  "metadata", "name", "x", "labels", "app.kubernetes.io/name", "y", "list", "a",
                  "k", "v", "inner", "z", "empty", "count", 3, "flag", 1, "none");
    (void)state;
    assert_int_equal(render_yaml_emit(&b, doc), 0);
    assert_string_equal(cap_buf_str(&b), "apiVersion: \"v1\"\n"
                                         "metadata:\n"
                                         "  name: \"x\"\n"
                                         "  labels:\n"
                                         "    app.kubernetes.io/name: \"y\"\n"
                                         "list:\n"
                                         "- \"a\"\n"
                                         "- k: \"v\"\n"
                                         "  inner:\n"
                                         "  - \"z\"\n"
                                         "- []\n"
                                         "empty: {}\n"
                                         "count: 3\n"
                                         "flag: true\n"
                                         "none: null\n");
    json_decref(doc);
    cap_buf_free(&b);
}

static void test_emit_keys(void **state)
{
    struct cap_buf b = CAP_BUF_INIT(4096);
    json_t *doc = json_pack("{s:s,s:s,s:s,s:s,s:s}", "yes", "1", "On", "2", "1234", "3", "a: b",
                            "4", "cost-center", "5");
    (void)state;
    assert_int_equal(render_yaml_emit(&b, doc), 0);
    assert_string_equal(cap_buf_str(&b), "\"yes\": \"1\"\n\"On\": \"2\"\n\"1234\": \"3\"\n"
                                         "\"a: b\": \"4\"\ncost-center: \"5\"\n");
    json_decref(doc);
    cap_buf_free(&b);
}

static void test_emit_refuses(void **state)
{
    struct cap_buf b = CAP_BUF_INIT(4096);
    json_t *real = json_pack("{s:f}", "x", 1.5);
    json_t *arr = json_pack("[s]", "x");
    (void)state;
    assert_int_equal(render_yaml_emit(&b, real), CAP_EINVALID);
    assert_int_equal(render_yaml_emit(&b, arr), CAP_EINVALID);
    json_decref(real);
    json_decref(arr);
    cap_buf_free(&b);
}

static void test_stream(void **state)
{
    struct cap_buf b = CAP_BUF_INIT(4096);
    json_t *docs = json_pack("[{s:s},{s:i}]", "a", "1", "b", 2), *back = NULL;
    (void)state;
    assert_int_equal(render_yaml_emit_stream(&b, docs), 0);
    assert_string_equal(cap_buf_str(&b), "a: \"1\"\n---\nb: 2\n");
    assert_int_equal(render_yaml_parse(&back, b.data, b.len, "t"), 0);
    assert_true(json_equal(back, docs));
    json_decref(back);
    json_decref(docs);
    cap_buf_free(&b);
}

static void test_parse_types_and_refusals(void **state)
{
    json_t *docs = NULL;
    const char *ok = "a: 3\nb: \"3\"\nc: true\nd:\ne: ~\nf: v1.30\ng: -7\nh: 007\n";
    (void)state;
    assert_int_equal(render_yaml_parse(&docs, ok, strlen(ok), "t"), 0);
    {
        json_t *d = json_array_get(docs, 0);
        assert_int_equal(json_integer_value(json_object_get(d, "a")), 3);
        assert_string_equal(json_string_value(json_object_get(d, "b")), "3");
        assert_true(json_is_true(json_object_get(d, "c")));
        assert_true(json_is_null(json_object_get(d, "d")));
        assert_true(json_is_null(json_object_get(d, "e")));
        assert_string_equal(json_string_value(json_object_get(d, "f")), "v1.30");
        assert_int_equal(json_integer_value(json_object_get(d, "g")), -7);
        assert_string_equal(json_string_value(json_object_get(d, "h")), "007");
    }
    json_decref(docs);

    assert_int_equal(render_yaml_parse(&docs, "a: &x 1\nb: *x\n", 14, "t"), CAP_EINVALID);
    assert_null(docs);
    assert_non_null(strstr(cap_error_message(), "anchor"));
    assert_int_equal(render_yaml_parse(&docs, "a: 1\na: 2\n", 10, "t"), CAP_EINVALID);
    assert_non_null(strstr(cap_error_message(), "duplicate key"));
    assert_int_equal(render_yaml_parse(&docs, "a: [\n", 5, "t"), CAP_EINVALID);
    assert_non_null(strstr(cap_error_message(), "not valid YAML"));
    assert_int_equal(render_yaml_parse(&docs, "? [a]\n: 1\n", 10, "t"), CAP_EINVALID);
}

static void test_parse_depth_limit(void **state)
{
    char text[400];
    json_t *docs = NULL;
    size_t n = 0;
    (void)state;
    for (int i = 0; i < RENDER_YAML_MAX_DEPTH + 5; i++)
        text[n++] = '[';
    for (int i = 0; i < RENDER_YAML_MAX_DEPTH + 5; i++)
        text[n++] = ']';
    text[n] = '\0';
    assert_int_equal(render_yaml_parse(&docs, text, n, "t"), CAP_EINVALID);
    assert_non_null(strstr(cap_error_message(), "too deep"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote_escapes),
        cmocka_unit_test(test_quote_embedded_nul),
        cmocka_unit_test(test_quote_rejects_invalid_utf8),
        cmocka_unit_test(test_unportable_refused),
        cmocka_unit_test(test_quote_for_message),
        cmocka_unit_test(test_roundtrip_hostile),
        cmocka_unit_test(test_emit_format),
        cmocka_unit_test(test_emit_keys),
        cmocka_unit_test(test_emit_refuses),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_parse_types_and_refusals),
        cmocka_unit_test(test_parse_depth_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
