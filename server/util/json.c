/* capstan: small jansson helpers (see json.h). */
#include "util/json.h"

#include "util/buf.h"
#include "util/str.h"

#include <stdlib.h>
#include <string.h>

json_t *cap_json_str(const char *s)
{
    json_t *v;
    if (!s)
        return json_null();
    v = json_string(s);
    if (v)
        return v;
    /* Not valid UTF-8: copy valid sequences, replace each bad byte. */
    struct cap_buf b = CAP_BUF_INIT(strlen(s) * 3 + 1);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = 0;
        if (*p < 0x80)
            n = 1;
        else if ((*p & 0xe0) == 0xc0)
            n = 2;
        else if ((*p & 0xf0) == 0xe0)
            n = 3;
        else if ((*p & 0xf8) == 0xf0)
            n = 4;
        if (n > 1) {
            char tmp[5] = {0};
            size_t i;
            for (i = 0; i < n && p[i]; i++)
                tmp[i] = (char)p[i];
            json_t *probe = (i == n) ? json_stringn(tmp, n) : NULL;
            if (!probe)
                n = 0;
            json_decref(probe);
        }
        if (n == 0) {
            cap_buf_puts(&b, "\xef\xbf\xbd");
            p++;
        } else {
            cap_buf_append(&b, p, n);
            p += n;
        }
    }
    v = json_string(cap_buf_str(&b));
    cap_buf_free(&b);
    return v ? v : json_string("");
}

char *cap_json_dump(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

const char *cap_json_get_str(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}
