/* capstan: small file-system helpers (see fs.h). */
#include "util/fs.h"

#include "util/error.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

int cap_mkdirs(const char *path, mode_t mode)
{
    char buf[4096];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(buf))
        return cap_error_set(CAP_EINVALID, "path \"%.80s\" is empty or too long", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, c ? 0755 : mode) != 0 && errno != EEXIST)
            return cap_error_set(CAP_ERROR, "cannot create folder \"%s\": %s", buf,
                                 strerror(errno));
        buf[i] = c;
    }
    return 0;
}
