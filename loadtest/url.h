/* url.h - the --url argument: http://HOST[:PORT][/PATH][?QUERY].
 *
 * http:// only (ctrload does not speak TLS); HOST is a name, an IPv4
 * literal or a bracketed IPv6 literal; PORT defaults to 80; user info is
 * refused. A path (with its query) replaces the protocol's endpoint; a
 * fragment is dropped. The path may hold no spaces or control characters,
 * since it goes into the request line as it is. */
#ifndef CTR_LOADTEST_URL_H
#define CTR_LOADTEST_URL_H

#include <stddef.h>

typedef struct {
    char host[256];           /* for getaddrinfo, without brackets */
    char port[8];             /* decimal, "80" by default */
    char authority[300];      /* HOST[:PORT] as given: the Host header */
    char path[1024];          /* "" = the protocol's endpoint */
} ctr__url_t;

/* Fills *u from s. Returns 0, or a negative CTR_E* code with a sentence
 * naming the URL in err. */
int ctr__url_parse(const char *s, ctr__url_t *u, char *err, size_t errlen);

#endif
