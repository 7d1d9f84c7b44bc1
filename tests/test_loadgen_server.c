/* test_loadgen_server.c - build/ctrload against small misbehaving HTTP
 * servers run in this process (a thread each, on 127.0.0.1, a free port):
 *
 *   stall      answers at once but stalls 200 ms once a second: the
 *              open-loop corrected p99 must show the stall, the uncorrected
 *              p99 must not (coordinated omission, shown both ways)
 *   500s       every 4th request gets 500: status counts match the server's
 *   reset      every 3rd request is answered with a TCP reset
 *   close-mid  every 3rd response is cut off half way
 *   chunked    chunked responses parse
 *   close      every answer says "Connection: close": reconnects, no errors
 *   record     replay: the server sees the logged bodies, at the logged pace
 *   blackhole  reads but never answers: timeouts, and the run still ends
 * plus no server at all, https, malformed data: exit 2 with a clear message.
 *
 * ctrload runs as a child process with a time limit; its --json output is
 * read back with jansson. Traffic is to 127.0.0.1 only. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

extern char **environ;

/* ---- the test server -------------------------------------------------------- */

typedef struct {
    /* behaviour, set before start */
    uint64_t stall_every_ns, stall_ns;
    unsigned err500_every, reset_every, closemid_every;
    int chunked, blackhole, record, conn_close;
    /* state */
    int lfd, port, ep;
    volatile int stop;
    pthread_t th;
    uint64_t next_stall;
    /* counts, read after stop */
    uint64_t n_req, n_200, n_500, n_reset, n_closemid, n_stalls;
    char *bodies[64];
    uint64_t recv_ns[64];
    size_t n_bodies;
} srv_t;

typedef struct sconn {
    int fd;
    char *buf;
    size_t len, cap;
    struct sconn *prev, *next;   /* every open connection, freed at stop */
} sconn_t;

static sconn_t *all_conns;       /* one server thread at a time */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sconn_close(sconn_t *c, int rst)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        all_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (rst) {
        struct linger lg = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(c->fd);
    free(c->buf);
    free(c);
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd pf = {fd, POLLOUT, 0};
                poll(&pf, 1, 100);
                continue;
            }
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Handles every complete request in c's buffer; returns 0 if c was closed. */
static int serve(srv_t *s, sconn_t *c)
{
    for (;;) {
        char *end = c->len >= 4 ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (!end)
            return 1;
        size_t hlen = (size_t)(end - c->buf) + 4;
        size_t cl = 0;
        for (char *p = c->buf; p < end; p++)
            if ((p == c->buf || p[-1] == '\n') && !strncasecmp(p, "Content-Length:", 15))
                cl = strtoul(p + 15, NULL, 10);
        if (c->len < hlen + cl)
            return 1;
        uint64_t n = ++s->n_req;
        if (s->record && s->n_bodies < 64) {
            s->recv_ns[s->n_bodies] = now_ns();
            s->bodies[s->n_bodies] = strndup(c->buf + hlen, cl);
            s->n_bodies++;
        }
        memmove(c->buf, c->buf + hlen + cl, c->len - hlen - cl);
        c->len -= hlen + cl;
        if (s->blackhole)
            continue;
        if (s->reset_every && n % s->reset_every == 0) {
            s->n_reset++;
            sconn_close(c, 1);
            return 0;
        }
        if (s->closemid_every && n % s->closemid_every == 0) {
            static const char part[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789";
            send_all(c->fd, part, sizeof part - 1);
            s->n_closemid++;
            sconn_close(c, 0);
            return 0;
        }
        int is500 = s->err500_every && n % s->err500_every == 0;
        char resp[512];
        int rl;
        if (is500) {
            s->n_500++;
            static const char eb[] = "{\"error\":{\"code\":\"test\",\"message\":\"boom\"}}\n";
            rl = snprintf(resp, sizeof resp,
                          "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\n\r\n%s", sizeof eb - 1, eb);
        } else if (s->chunked) {
            s->n_200++;
            rl = snprintf(resp, sizeof resp,
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "7\r\n{\"score\r\n5;x=y\r\ns\":[0\r\n4\r\n.5]}\r\n0\r\nX-T: 1\r\n\r\n");
        } else {
            s->n_200++;
            rl = snprintf(resp, sizeof resp,
                          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n%s\r\n"
                          "{\"scores\":[0.5]}\n", s->conn_close ? "Connection: close\r\n" : "");
        }
        send_all(c->fd, resp, (size_t)rl);
        if (s->conn_close) {
            sconn_close(c, 0);
            return 0;
        }
    }
}

static void *srv_main(void *arg)
{
    srv_t *s = arg;
    struct epoll_event evs[64];
    s->next_stall = now_ns() + s->stall_every_ns;
    while (!s->stop) {
        if (s->stall_ns && now_ns() >= s->next_stall) {
            struct timespec ts = {0, (long)s->stall_ns};
            nanosleep(&ts, NULL);
            s->n_stalls++;
            s->next_stall += s->stall_every_ns;
        }
        int n = epoll_wait(s->ep, evs, 64, 5);
        for (int i = 0; i < n; i++) {
            if (!evs[i].data.ptr) {
                for (;;) {
                    int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    sconn_t *c = calloc(1, sizeof *c);
                    c->fd = fd;
                    c->next = all_conns;
                    if (all_conns)
                        all_conns->prev = c;
                    all_conns = c;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            sconn_t *c = evs[i].data.ptr;
            for (;;) {
                if (c->cap - c->len < 4096) {
                    c->cap = c->cap ? c->cap * 2 : 16384;
                    c->buf = realloc(c->buf, c->cap);
                }
                ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
                if (r > 0) {
                    c->len += (size_t)r;
                    continue;
                }
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                    break;
                sconn_close(c, 0);                  /* EOF or error */
                c = NULL;
                break;
            }
            if (c)
                serve(s, c);
        }
    }
    return NULL;
}

static int srv_start(srv_t *s)
{
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(s->lfd, (struct sockaddr *)&a, sizeof a) || listen(s->lfd, 512) ||
        getsockname(s->lfd, (struct sockaddr *)&a, &al))
        return -1;
    s->port = ntohs(a.sin_port);
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &ev);
    return pthread_create(&s->th, NULL, srv_main, s);
}

static void srv_stop(srv_t *s)
{
    s->stop = 1;
    pthread_join(s->th, NULL);
    while (all_conns)
        sconn_close(all_conns, 0);
    close(s->lfd);
    close(s->ep);
}

static void srv_free(srv_t *s)
{
    for (size_t i = 0; i < s->n_bodies; i++)
        free(s->bodies[i]);
}

/* ---- running ctrload ---------------------------------------------------------- */

static char ctrload[512];
static const char *dir;

/* Runs ctrload with args (NULL-terminated), output to log; kills it after
 * limit_s. Returns its exit status, -1 if killed. *secs: wall time. */
static int run_ctrload(const char *log, double limit_s, double *secs, ...)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = ctrload;
    va_list ap;
    va_start(ap, secs);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 62)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    uint64_t t0 = now_ns();
    int rc = posix_spawn(&pid, ctrload, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) {
        fprintf(stderr, "spawn %s: %s\n", ctrload, strerror(rc));
        return -1;
    }
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if ((double)(now_ns() - t0) / 1e9 > limit_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fprintf(stderr, "ctrload ran over %.0f s: killed\n", limit_s);
            if (secs)
                *secs = (double)(now_ns() - t0) / 1e9;
            return -1;
        }
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    if (secs)
        *secs = (double)(now_ns() - t0) / 1e9;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void show_log(const char *log)
{
    FILE *f = fopen(log, "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f))
        fprintf(stderr, "    | %s", line);
    fclose(f);
}

static int log_has(const char *log, const char *needle)
{
    FILE *f = fopen(log, "r");
    if (!f)
        return 0;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return strstr(buf, needle) != NULL;
}

static json_t *load_json(const char *path)
{
    json_error_t je;
    json_t *v = json_load_file(path, 0, &je);
    CHECKF(v != NULL, "%s: %s", path, je.text);
    return v;
}

/* j["a"]["b"] as a number (integer or real); -1 if absent. */
static double jnum(json_t *j, const char *a, const char *b)
{
    json_t *x = json_object_get(j, a);
    if (b)
        x = json_object_get(x, b);
    return x ? json_number_value(x) : -1;
}

static double jlat(json_t *j, const char *which, const char *p)
{
    return json_number_value(json_object_get(json_object_get(json_object_get(j, "latency_ms"), which), p));
}

static void url_of(const srv_t *s, char *out, size_t n)
{
    snprintf(out, n, "http://127.0.0.1:%d", s->port);
}

/* ---- the tests ------------------------------------------------------------------ */

static void test_stall(void)
{
    srv_t s;
    memset(&s, 0, sizeof s);
    s.stall_every_ns = 1000000000ull;
    s.stall_ns = 200000000ull;
    CHECK(srv_start(&s) == 0);
    char url[64], js[512], log[512];
    url_of(&s, url, sizeof url);
    snprintf(js, sizeof js, "%s/stall.json", dir);
    snprintf(log, sizeof log, "%s/stall.log", dir);
    double secs;
    int rc = run_ctrload(log, 20, &secs, "--url", url, "--rate", "400", "--connections", "2",
                         "--duration", "3s", "--warmup", "0", "--timeout", "2s", "--json", js, NULL);
    srv_stop(&s);
    CHECKF(rc == 0, "ctrload exit %d", rc);
    json_t *j = rc == 0 ? load_json(js) : NULL;
    if (!j) {
        show_log(log);
        return;
    }
    double c99 = jlat(j, "corrected", "p99"), u99 = jlat(j, "uncorrected", "p99");
    double cmax = jlat(j, "corrected", "max"), umax = jlat(j, "uncorrected", "max");
    double sched = jnum(j, "requests", "scheduled"), ok = jnum(j, "requests", "ok");
    printf("stall: %llu stalls of 200 ms; corrected p99 %.1f ms (max %.1f), uncorrected p99 %.2f ms "
           "(max %.1f); %g of %g answered 2xx; %.1f s\n",
           (unsigned long long)s.n_stalls, c99, cmax, u99, umax, ok, sched, secs);
    CHECK(s.n_stalls >= 2);
    CHECKF(c99 >= 100, "corrected p99 %.1f ms does not show the 200 ms stalls", c99);
    CHECKF(u99 < 50, "uncorrected p99 %.1f ms shows the stall; only a few requests met it", u99);
    CHECKF(cmax >= 150, "corrected max %.1f ms", cmax);
    CHECK(sched == 1200 && ok >= 0.95 * sched);
    CHECK(jnum(j, "client", "waited_for_connection") > 0);
    json_decref(j);
    srv_free(&s);
}

/* Closed loop against a server misbehaving every k-th request; returns the
 * JSON (caller frees) after checking that the run ended in time. */
static json_t *run_against(srv_t *s, const char *name, const char *mode_flag, const char *mode_val)
{
    CHECK(srv_start(s) == 0);
    char url[64], js[512], log[512];
    url_of(s, url, sizeof url);
    snprintf(js, sizeof js, "%s/%s.json", dir, name);
    snprintf(log, sizeof log, "%s/%s.log", dir, name);
    double secs;
    int rc = run_ctrload(log, 20, &secs, "--url", url, mode_flag, mode_val, "--duration", "1s",
                         "--warmup", "0", "--timeout", "1s", "--json", js, NULL);
    srv_stop(s);
    CHECKF(rc == 0, "%s: ctrload exit %d", name, rc);
    CHECKF(secs < 4, "%s: ran %.1f s", name, secs);
    json_t *j = rc == 0 ? load_json(js) : NULL;
    if (!j)
        show_log(log);
    return j;
}

static double jstatus(json_t *j, const char *code)
{
    json_t *x = json_object_get(json_object_get(j, "status"), code);
    return x ? json_number_value(x) : 0;
}

static void test_errors(void)
{
    srv_t s;
    memset(&s, 0, sizeof s);
    s.err500_every = 4;
    json_t *j = run_against(&s, "err500", "--concurrency", "2");
    if (j) {
        printf("500s: server answered %llu x 200, %llu x 500; ctrload counted %g x 200, %g x 500\n",
               (unsigned long long)s.n_200, (unsigned long long)s.n_500, jstatus(j, "200"), jstatus(j, "500"));
        CHECK(s.n_500 > 10);
        CHECK(jstatus(j, "200") == (double)s.n_200 && jstatus(j, "500") == (double)s.n_500);
        CHECK(jnum(j, "requests", "failed") == 0);
        CHECK(jnum(j, "requests", "completed") == (double)s.n_req);
        json_t *fe = json_object_get(j, "first_error");
        CHECK(fe && json_integer_value(json_object_get(fe, "status")) == 500 &&
              strstr(json_string_value(json_object_get(fe, "body")), "boom"));
        json_decref(j);
    }
    srv_free(&s);

    memset(&s, 0, sizeof s);
    s.reset_every = 3;
    j = run_against(&s, "reset", "--concurrency", "2");
    if (j) {
        double resets = jnum(j, "errors", "reset") + jnum(j, "errors", "closed_before_response");
        printf("resets: server reset %llu, answered %llu; ctrload counted %g reset, %g x 200\n",
               (unsigned long long)s.n_reset, (unsigned long long)s.n_200, resets, jstatus(j, "200"));
        CHECK(s.n_reset > 10);
        CHECK(resets == (double)s.n_reset);
        CHECK(jstatus(j, "200") == (double)s.n_200);
        CHECK(jnum(j, "requests", "failed") == (double)s.n_reset);
        json_decref(j);
    }
    srv_free(&s);

    memset(&s, 0, sizeof s);
    s.closemid_every = 3;
    j = run_against(&s, "closemid", "--concurrency", "2");
    if (j) {
        printf("close mid-response: server cut %llu; ctrload counted %g\n", (unsigned long long)s.n_closemid,
               jnum(j, "errors", "closed_mid_response"));
        CHECK(s.n_closemid > 10);
        CHECK(jnum(j, "errors", "closed_mid_response") == (double)s.n_closemid);
        CHECK(jstatus(j, "200") == (double)s.n_200);
        json_decref(j);
    }
    srv_free(&s);

    memset(&s, 0, sizeof s);
    s.chunked = 1;
    j = run_against(&s, "chunked", "--rate", "300");
    if (j) {
        CHECK(jnum(j, "requests", "ok") == jnum(j, "requests", "scheduled") && s.n_200 >= 290);
        CHECK(jnum(j, "errors", "protocol") == 0 && jnum(j, "requests", "failed") == 0);
        json_decref(j);
    }
    srv_free(&s);

    memset(&s, 0, sizeof s);
    s.conn_close = 1;
    j = run_against(&s, "connclose", "--rate", "300");
    if (j) {
        printf("Connection: close: %llu answers, ctrload reconnected %g times\n", (unsigned long long)s.n_200,
               jnum(j, "errors", "server_closed_keepalive"));
        CHECK(jnum(j, "requests", "ok") == jnum(j, "requests", "scheduled") && s.n_200 >= 290);
        CHECK(jnum(j, "requests", "failed") == 0);
        CHECK(jnum(j, "errors", "server_closed_keepalive") == (double)s.n_200);
        json_decref(j);
    }
    srv_free(&s);
}

static void test_blackhole(void)
{
    srv_t s;
    memset(&s, 0, sizeof s);
    s.blackhole = 1;
    CHECK(srv_start(&s) == 0);
    char url[64], js[512], log[512];
    url_of(&s, url, sizeof url);
    snprintf(js, sizeof js, "%s/blackhole.json", dir);
    snprintf(log, sizeof log, "%s/blackhole.log", dir);
    double secs;
    int rc = run_ctrload(log, 20, &secs, "--url", url, "--rate", "50", "--connections", "4",
                         "--duration", "1s", "--warmup", "0", "--timeout", "300ms", "--json", js, NULL);
    srv_stop(&s);
    CHECKF(rc == 0, "ctrload exit %d", rc);
    json_t *j = rc == 0 ? load_json(js) : NULL;
    if (j) {
        double to = jnum(j, "errors", "timeout"), un = jnum(j, "errors", "unfinished"),
               us = jnum(j, "errors", "unsent");
        printf("blackhole: %g timeouts, %g unfinished, %g unsent of %g scheduled; ended after %.2f s\n", to,
               un, us, jnum(j, "requests", "scheduled"), secs);
        CHECK(to >= 4 && jnum(j, "requests", "completed") == 0);
        CHECK(to + un + us == jnum(j, "requests", "scheduled"));
        CHECK(secs < 3.0);                            /* duration 1 s + grace 0.3 s */
        json_decref(j);
    } else {
        show_log(log);
    }
    srv_free(&s);
}

static void test_replay(void)
{
    srv_t s;
    memset(&s, 0, sizeof s);
    s.record = 1;
    CHECK(srv_start(&s) == 0);
    char url[64], js[512], log[512], jl[512];
    url_of(&s, url, sizeof url);
    snprintf(js, sizeof js, "%s/replay.json", dir);
    snprintf(log, sizeof log, "%s/replay.log", dir);
    snprintf(jl, sizeof jl, "%s/requests.jsonl", dir);
    static const char *want[4] = {
        "{\"request_id\":\"a\",\"examples\":[{\"I1\":1,\"C1\":\"68fd1e64\"}]}",
        "{\"request_id\":\"b\",\"context\":{\"C2\":\"80e26c9b\"},\"examples\":[{\"I2\":2.5},{\"I3\":-1,\"C3\":\"fb936136\"}]}",
        "{\"request_id\":\"c\",\"examples\":[{\"C26\":\"ffffffff\",\"I13\":0}]}",
        "{\"request_id\":\"d\",\"examples\":[{}]}",
    };
    FILE *f = fopen(jl, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    uint64_t base = 1700000000000000000ull;
    fprintf(f, "{\"t_ns\":%llu,%s\n", (unsigned long long)base, want[0] + 1);
    fprintf(f, "{\"t_ns\":%llu,\"body\":%s}\n", (unsigned long long)(base + 100000000), want[1]);
    fprintf(f, "%s,\"t_ns\":%llu}\n", "{\"request_id\":\"c\",\"examples\":[{\"C26\":\"ffffffff\",\"I13\":0}]",
            (unsigned long long)(base + 200000000));
    fprintf(f, "{\"t_ns\":%llu,%s\n", (unsigned long long)(base + 300000000), want[3] + 1);
    fclose(f);
    double secs;
    int rc = run_ctrload(log, 20, &secs, "--url", url, "--replay", jl, "--json", js, NULL);
    srv_stop(&s);
    CHECKF(rc == 0, "ctrload exit %d", rc);
    if (rc)
        show_log(log);
    CHECKF(s.n_bodies == 4, "server got %zu requests, want 4", s.n_bodies);
    for (size_t i = 0; i < s.n_bodies && i < 4; i++) {
        json_error_t je;
        json_t *got = json_loads(s.bodies[i], 0, &je), *exp = json_loads(want[i], 0, &je);
        CHECKF(got && exp && json_equal(got, exp), "request %zu: got %s, want %s", i, s.bodies[i], want[i]);
        json_decref(got);
        json_decref(exp);
    }
    if (s.n_bodies == 4) {
        for (int i = 1; i < 4; i++) {
            double gap = (double)(s.recv_ns[i] - s.recv_ns[i - 1]) / 1e6;
            CHECKF(gap > 70 && gap < 200, "gap %d: %.1f ms, logged 100 ms", i, gap);
        }
        printf("replay: 4 logged requests arrived with gaps %.1f, %.1f, %.1f ms (logged: 100 ms)\n",
               (double)(s.recv_ns[1] - s.recv_ns[0]) / 1e6, (double)(s.recv_ns[2] - s.recv_ns[1]) / 1e6,
               (double)(s.recv_ns[3] - s.recv_ns[2]) / 1e6);
    }
    srv_free(&s);

    /* --rate: each logged request once, at that pace. */
    memset(&s, 0, sizeof s);
    s.record = 1;
    CHECK(srv_start(&s) == 0);
    url_of(&s, url, sizeof url);
    rc = run_ctrload(log, 20, &secs, "--url", url, "--replay", jl, "--rate", "200", "--json", js, NULL);
    srv_stop(&s);
    CHECK(rc == 0 && s.n_bodies == 4 && secs < 3);
    for (size_t i = 0; i < s.n_bodies && i < 4; i++) {
        json_error_t je;
        json_t *got = json_loads(s.bodies[i], 0, &je), *exp = json_loads(want[i], 0, &je);
        CHECK(got && exp && json_equal(got, exp));
        json_decref(got);
        json_decref(exp);
    }
    srv_free(&s);

    /* No pacing of its own and no --rate: refused. */
    f = fopen(jl, "w");
    if (f) {
        fprintf(f, "%s\n", want[0]);
        fclose(f);
    }
    rc = run_ctrload(log, 10, &secs, "--url", "http://127.0.0.1:9", "--replay", jl, NULL);
    CHECK(rc == 2 && log_has(log, "t_ns"));
    f = fopen(jl, "w");
    if (f) {
        fprintf(f, "%s\nnot json\n", want[0]);
        fclose(f);
    }
    rc = run_ctrload(log, 10, &secs, "--url", "http://127.0.0.1:9", "--replay", jl, "--rate", "10", NULL);
    CHECK(rc == 2 && log_has(log, "requests.jsonl:2"));
}

static void test_bad_input(void)
{
    char log[512], data[512];
    snprintf(log, sizeof log, "%s/bad.log", dir);
    double secs;
    /* A port nobody listens on: refused at once, exit 2, never a hang. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    int rc = run_ctrload(log, 20, &secs, "--url", url, "--rate", "100", "--duration", "5s", NULL);
    CHECKF(rc == 2 && secs < 3 && log_has(log, "Connection refused"), "unreachable: exit %d after %.1f s", rc,
           secs);
    rc = run_ctrload(log, 10, &secs, "--url", "https://127.0.0.1:1", "--rate", "1", NULL);
    CHECK(rc == 2 && log_has(log, "only http://"));
    rc = run_ctrload(log, 10, &secs, "--url", url, NULL);
    CHECK(rc == 2 && log_has(log, "--rate"));
    rc = run_ctrload(log, 10, &secs, "--url", url, "--rate", "10", "--bogus", NULL);
    CHECK(rc == 2 && log_has(log, "unknown flag \"--bogus\""));
    rc = run_ctrload(log, 10, &secs, "--url", url, "--concurrency", "4", "--connections", "2", NULL);
    CHECK(rc == 2);
    snprintf(data, sizeof data, "%s/bad.tsv", dir);
    FILE *f = fopen(data, "w");
    if (f) {
        fprintf(f, "1\t2\tnot enough fields\n");
        fclose(f);
    }
    rc = run_ctrload(log, 10, &secs, "--url", url, "--rate", "10", "--data", data, NULL);
    CHECK(rc == 2 && log_has(log, "bad.tsv:1"));
    rc = run_ctrload(log, 10, &secs, "--help", NULL);
    CHECK(rc == 0 && log_has(log, "coordinated omission") && log_has(log, "--synthetic-cats zipf|uniform"));
    rc = run_ctrload(log, 10, &secs, "--url", url, "--rate", "10", "--synthetic-cats", "random", NULL);
    CHECK(rc == 2 && log_has(log, "expected zipf, uniform"));
    rc = run_ctrload(log, 10, &secs, "--url", url, "--rate", "10", "--data", data, "--synthetic-cats", "uniform", NULL);
    CHECK(rc == 2 && log_has(log, "--synthetic-cats"));
    rc = run_ctrload(log, 10, &secs, "--url", url, "--print-request", "--synthetic-cats=uniform", NULL);
    CHECK(rc == 0 && log_has(log, "\"C1\":\""));
}

/* Removes this test's scratch directory and its files. */
static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tmpdir(void)
{
    nftw(test_tmpdir(), rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    const char *b = getenv("B") ? getenv("B") : "build";
    snprintf(ctrload, sizeof ctrload, "%s/ctrload", b);
    test_require_program(ctrload); /* not built: a failure, not a skip */
    signal(SIGPIPE, SIG_IGN);
    dir = test_tmpdir();
    test_bad_input();
    test_errors();
    test_blackhole();
    test_replay();
    test_stall();
    rm_tmpdir();
    return test_main_end();
}
