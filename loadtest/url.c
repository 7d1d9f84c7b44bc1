/* url.c - the --url parser (see url.h). */
#include "url.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctr/common.h"

/* A non-negative decimal number (strtoull's syntax, minus sign refused). */
static int parse_port(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || errno)
        return -1;
    *out = v;
    return 0;
}

int ctr__url_parse(const char *s, ctr__url_t *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    if (!strncasecmp(s, "https://", 8))
        return ctr_error(err, errlen, CTR_EUNSUPPORTED,
                         "--url %s: only http:// is supported (ctrload does not speak TLS)", s);
    if (strncasecmp(s, "http://", 7))
        return ctr_error(err, errlen, CTR_EINVAL, "--url %s: expected http://HOST[:PORT][/PATH]", s);
    const char *a = s + 7;
    size_t alen = strcspn(a, "/?#");
    const char *rest = a + alen;
    if (!alen || alen >= sizeof u->authority)
        return ctr_error(err, errlen, CTR_EINVAL, "--url %s: no host", s);
    memcpy(u->authority, a, alen);
    if (memchr(a, '@', alen))
        return ctr_error(err, errlen, CTR_EINVAL, "--url %s: user info in URLs is not supported", s);
    const char *hs = a, *he, *pp = NULL;
    if (*a == '[') {
        const char *rb = memchr(a, ']', alen);
        if (!rb)
            return ctr_error(err, errlen, CTR_EINVAL, "--url %s: unterminated [IPv6] host", s);
        hs = a + 1;
        he = rb;
        if (rb + 1 < a + alen) {
            if (rb[1] != ':')
                return ctr_error(err, errlen, CTR_EINVAL, "--url %s: bad port", s);
            pp = rb + 2;
        }
    } else {
        const char *colon = memchr(a, ':', alen);
        he = colon ? colon : a + alen;
        if (colon)
            pp = colon + 1;
    }
    if (he == hs || (size_t)(he - hs) >= sizeof u->host)
        return ctr_error(err, errlen, CTR_EINVAL, "--url %s: no host", s);
    memcpy(u->host, hs, (size_t)(he - hs));
    if (pp) {
        size_t plen = (size_t)(a + alen - pp);
        char tmp[8];
        uint64_t port;
        if (!plen || plen >= sizeof tmp)
            return ctr_error(err, errlen, CTR_EINVAL, "--url %s: bad port", s);
        memcpy(tmp, pp, plen);
        tmp[plen] = 0;
        if (parse_port(tmp, &port) || port < 1 || port > 65535)
            return ctr_error(err, errlen, CTR_EINVAL, "--url %s: bad port \"%s\"", s, tmp);
        snprintf(u->port, sizeof u->port, "%u", (unsigned)port);
    } else {
        strcpy(u->port, "80");
    }
    if (*rest == '#')
        rest = "";
    if (strlen(rest) + 1 >= sizeof u->path)
        return ctr_error(err, errlen, CTR_EINVAL, "--url: path too long");
    if (*rest == '?') {
        u->path[0] = '/';
        memcpy(u->path + 1, rest, strlen(rest) + 1);
    } else if (strcmp(rest, "/") != 0) {
        snprintf(u->path, sizeof u->path, "%s", rest);
        char *hash = strchr(u->path, '#');
        if (hash)
            *hash = 0;
    }
    for (const char *p = u->path; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return ctr_error(err, errlen, CTR_EINVAL, "--url %s: spaces or control characters in the path", s);
    return 0;
}
