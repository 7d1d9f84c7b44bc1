/* check.c - `ctrd --check URL` (see check.h). */
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

static int fail(int status, const char *url, const char *why)
{
    fprintf(stderr, "ctrd --check %s: %s\n", url, why);
    return status;
}

/* Milliseconds left until deadline (monotonic ns), at least 0. */
static int left_ms(uint64_t deadline)
{
    uint64_t now = ctr__mono_ns();
    return now >= deadline ? 0 : (int)((deadline - now) / 1000000u) + 1;
}

int ctr__check_url(const char *url, int timeout_ms)
{
    char host[256], port[8] = "80", why[320];
    const char *p;
    if (!strncasecmp(url, "https://", 8))
        return fail(2, url, "https is not supported by the probe; check the plain-HTTP port or use curl");
    if (strncasecmp(url, "http://", 7))
        return fail(2, url, "the URL must start with http://");
    p = url + 7;
    size_t hl;
    if (*p == '[') {                         /* [v6]:port */
        const char *e = strchr(p, ']');
        if (!e)
            return fail(2, url, "unterminated [IPv6] host");
        hl = (size_t)(e - p - 1);
        if (hl == 0 || hl >= sizeof host)
            return fail(2, url, "bad host");
        memcpy(host, p + 1, hl);
        p = e + 1;
    } else {
        hl = strcspn(p, ":/");
        if (hl == 0 || hl >= sizeof host)
            return fail(2, url, "bad host");
        memcpy(host, p, hl);
        p += hl;
    }
    host[hl] = '\0';
    if (*p == ':') {
        size_t pl = strcspn(p + 1, "/");
        if (pl == 0 || pl >= sizeof port || strspn(p + 1, "0123456789") < pl)
            return fail(2, url, "bad port");
        memcpy(port, p + 1, pl);
        port[pl] = '\0';
        p += 1 + pl;
    }
    const char *path = *p ? p : "/";
    if (*path != '/' || strpbrk(path, " \r\n"))
        return fail(2, url, "bad path");

    uint64_t deadline = ctr__mono_ns() + (uint64_t)timeout_ms * 1000000u;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai)
        return fail(1, url, gai_strerror(gai));
    int fd = -1, connected = 0;
    for (struct addrinfo *ai = res; ai && !connected; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            connected = 1;
            break;
        }
        if (errno == EINPROGRESS) {
            struct pollfd pf = {fd, POLLOUT, 0};
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            if (poll(&pf, 1, left_ms(deadline)) == 1 &&
                !getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) && soerr == 0) {
                connected = 1;
                break;
            }
            errno = soerr ? soerr : ETIMEDOUT;
        }
        snprintf(why, sizeof why, "connect: %s", strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (!connected)
        return fail(1, url, fd < 0 && why[0] ? why : "cannot connect");

    char req[1024];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s:%s\r\nUser-Agent: ctrd-check\r\nConnection: close\r\n\r\n",
                     path, host, port);
    if (n < 0 || (size_t)n >= sizeof req) {
        close(fd);
        return fail(2, url, "URL too long");
    }
    size_t sent = 0;
    while (sent < (size_t)n) {
        ssize_t w = send(fd, req + sent, (size_t)n - sent, MSG_NOSIGNAL);
        if (w > 0) {
            sent += (size_t)w;
            continue;
        }
        struct pollfd pf = {fd, POLLOUT, 0};
        if ((w < 0 && errno != EAGAIN) || poll(&pf, 1, left_ms(deadline)) != 1) {
            close(fd);
            return fail(1, url, "send failed or timed out");
        }
    }
    char resp[64];
    size_t got = 0;
    while (got < sizeof resp - 1) {
        ssize_t r = recv(fd, resp + got, sizeof resp - 1 - got, 0);
        if (r > 0) {
            got += (size_t)r;
            if (memchr(resp, '\n', got))
                break;
            continue;
        }
        if (r == 0)
            break;
        struct pollfd pf = {fd, POLLIN, 0};
        if (errno != EAGAIN || poll(&pf, 1, left_ms(deadline)) != 1) {
            close(fd);
            return fail(1, url, "no answer in time");
        }
    }
    close(fd);
    resp[got] = '\0';
    int code = 0;
    if (sscanf(resp, "HTTP/%*d.%*d %d", &code) != 1) {
        return fail(1, url, "not an HTTP answer");
    }
    if (code != 200) {
        snprintf(why, sizeof why, "answered %d", code);
        return fail(1, url, why);
    }
    return 0;
}
