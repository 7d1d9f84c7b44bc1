/* check.h - `ctrd --check URL`: a tiny HTTP/1.0 GET over a plain socket,
 * for container health checks (slim images have no curl). */
#ifndef CTR_SERVER_CHECK_H
#define CTR_SERVER_CHECK_H

/* Returns the process exit status: 0 if URL answered 200 within
 * timeout_ms, 1 otherwise (a line on stderr says why), 2 for a URL this
 * probe cannot fetch (https, bad syntax). */
int ctr__check_url(const char *url, int timeout_ms);

#endif
