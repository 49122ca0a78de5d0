/* capstan: the TCP stream libgit2 uses for http, https (under its TLS) and ssh, with deadlines.
 *
 * libgit2 1.5 has no network timeouts: a silent peer blocks a fetch forever. So capstan registers
 * its own GIT_STREAM_STANDARD stream: a non-blocking socket whose connect, reads and writes wait
 * with poll() until the calling thread's deadline (set by gitnet_deadline_set before each
 * fetch or push). libgit2 runs a network operation on the calling thread, so a thread-local
 * deadline reaches every stream the operation makes.
 *
 * Invariant: the struct starts like libgit2's internal git_socket_stream (parent, host, port,
 * socket), because libgit2's ssh transport hands `->s` to libssh2 (the same layout holds from
 * libgit2 1.5 to 1.9). Sends use MSG_NOSIGNAL, so a peer that goes away cannot raise SIGPIPE. */
#include "gitops/internal.h"

#include "util/str.h"

#include <errno.h>
#include <fcntl.h>
#include <git2/sys/stream.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#if LIBGIT2_VER_MAJOR != 1 || LIBGIT2_VER_MINOR < 5 || LIBGIT2_VER_MINOR > 9
#error "check that struct deadline_stream still matches libgit2's git_socket_stream"
#endif

struct deadline_stream {
    git_stream parent;
    char *host;
    char *port;
    int s;
};

static _Thread_local int64_t deadline_ms; /* monotonic; 0: none */
static _Thread_local bool timed_out;

void gitnet_deadline_set(long long timeout_ms)
{
    deadline_ms = timeout_ms > 0 ? cap_mono_ms() + timeout_ms : 0;
    timed_out = false;
}

bool gitnet_deadline_passed(void)
{
    if (deadline_ms && cap_mono_ms() >= deadline_ms)
        timed_out = true;
    return timed_out;
}

bool gitnet_timed_out(void)
{
    return timed_out;
}

/* Waits until fd is ready for events or the deadline passes (then sets a libgit2 error). */
static int wait_fd(struct deadline_stream *st, short events)
{
    for (;;) {
        struct pollfd p = {.fd = st->s, .events = events};
        int tmo = -1, rc;
        if (deadline_ms) {
            int64_t left = deadline_ms - cap_mono_ms();
            if (left <= 0) {
                timed_out = true;
                git_error_set(GIT_ERROR_NET, "timed out talking to %s", st->host);
                return -1;
            }
            tmo = left > INT_MAX ? INT_MAX : (int)left;
        }
        rc = poll(&p, 1, tmo);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0) {
            git_error_set(GIT_ERROR_OS, "poll failed: %s", strerror(errno));
            return -1;
        }
        if (rc > 0)
            return 0;
    }
}

static int try_connect(struct deadline_stream *st, const struct addrinfo *ai, int *out_errno)
{
    int fd, err = 0;
    socklen_t len = sizeof(err);

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        *out_errno = errno;
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            *out_errno = errno;
            close(fd);
            return -1;
        }
        st->s = fd;
        if (wait_fd(st, POLLOUT) != 0) {
            st->s = -1;
            close(fd);
            *out_errno = ETIMEDOUT;
            return -1;
        }
        st->s = -1;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err) {
            *out_errno = err;
            close(fd);
            return -1;
        }
    }
    st->s = fd;
    return 0;
}

static int stream_connect(git_stream *stream)
{
    struct deadline_stream *st = (struct deadline_stream *)stream;
    struct addrinfo hints = {0}, *res = NULL, *ai;
    int rc, err = 0;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(st->host, st->port, &hints, &res);
    if (rc != 0) {
        git_error_set(GIT_ERROR_NET, "failed to resolve address for %s: %s", st->host,
                      gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        if (try_connect(st, ai, &err) == 0)
            break;
        if (timed_out)
            break;
    }
    freeaddrinfo(res);
    if (st->s < 0) {
        if (timed_out)
            git_error_set(GIT_ERROR_NET, "timed out connecting to %s", st->host);
        else
            git_error_set(GIT_ERROR_NET, "failed to connect to %s: %s", st->host, strerror(err));
        return -1;
    }
    return 0;
}

static ssize_t stream_read(git_stream *stream, void *data, size_t len)
{
    struct deadline_stream *st = (struct deadline_stream *)stream;
    for (;;) {
        ssize_t n;
        if (wait_fd(st, POLLIN) != 0)
            return -1;
        n = recv(st->s, data, len, 0);
        if (n >= 0)
            return n;
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
            continue;
        git_error_set(GIT_ERROR_NET, "read from %s failed: %s", st->host, strerror(errno));
        return -1;
    }
}

static ssize_t stream_write(git_stream *stream, const char *data, size_t len, int flags)
{
    struct deadline_stream *st = (struct deadline_stream *)stream;
    (void)flags;
    for (;;) {
        ssize_t n;
        if (wait_fd(st, POLLOUT) != 0)
            return -1;
        n = send(st->s, data, len, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
            continue;
        git_error_set(GIT_ERROR_NET, "write to %s failed: %s", st->host, strerror(errno));
        return -1;
    }
}

static int stream_close(git_stream *stream)
{
    struct deadline_stream *st = (struct deadline_stream *)stream;
    if (st->s >= 0)
        close(st->s);
    st->s = -1;
    return 0;
}

static void stream_free(git_stream *stream)
{
    struct deadline_stream *st = (struct deadline_stream *)stream;
    if (!st)
        return;
    if (st->s >= 0)
        close(st->s);
    free(st->host);
    free(st->port);
    free(st);
}

static int stream_new(git_stream **out, const char *host, const char *port)
{
    struct deadline_stream *st = calloc(1, sizeof(*st));
    if (!st) {
        git_error_set_oom();
        return -1;
    }
    st->s = -1;
    st->host = strdup(host);
    st->port = strdup(port);
    if (!st->host || !st->port) {
        stream_free(&st->parent);
        git_error_set_oom();
        return -1;
    }
    st->parent.version = GIT_STREAM_VERSION;
    st->parent.encrypted = 0;
    st->parent.proxy_support = 0;
    st->parent.connect = stream_connect;
    st->parent.read = stream_read;
    st->parent.write = stream_write;
    st->parent.close = stream_close;
    st->parent.free = stream_free;
    *out = &st->parent;
    return 0;
}

int gitops_stream_register(void)
{
    git_stream_registration reg = {GIT_STREAM_VERSION, stream_new, NULL};
    return git_stream_register(GIT_STREAM_STANDARD, &reg);
}
