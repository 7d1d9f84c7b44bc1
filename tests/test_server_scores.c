/* test_server_scores.c - end to end: scores over HTTP are bit for bit what
 * the engine computes offline, whatever the batch around them.
 *
 * Starts the real $B/ctrd (default kernel: the widest SIMD path here) on
 * 127.0.0.1 with --port 0 and a long --max-delay-us, so concurrent
 * requests are batched together, and sends random examples (dense values
 * of every shape, hex / integer / escaped / UTF-8 categoricals, missing
 * values):
 *   - each example alone,
 *   - all of them in one request,
 *   - from 8 threads at once, in random mixed subsets;
 * every score must parse back (strtof) to exactly the bits that
 * ctr_features_* + ctr_forward with the *scalar* kernel give for that
 * example alone, and every score text must equal the solo text. /metrics
 * must show that multi-example batches really happened. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctr/common.h"
#include "ctr/features.h"
#include "ctr/forward.h"
#include "ctr/kernels.h"
#include "ctr/model.h"
#include "testutil.h"

#define N_EX 160
#define N_DENSE 13
#define N_CAT 26
#define N_THREADS 8
#define REQS_PER_THREAD 40

/* One example: its JSON object text and its expected score. */
typedef struct {
    char json[2048];
    float expect;
    char solo_text[32];
} example_t;

static example_t ex[N_EX];
static pid_t server_pid;
static int server_port;

/* ---- tiny HTTP client --------------------------------------------------- */

/* POST (body != NULL) or GET path; returns the status, body in *out (malloc). */
static int http(const char *method, const char *path, const char *body, char **out)
{
    *out = NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)server_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
        close(fd);
        return -1;
    }
    size_t blen = body ? strlen(body) : 0;
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      method, path, blen);
    size_t tot = (size_t)hl + blen, sent = 0;
    char *req = malloc(tot);
    memcpy(req, head, (size_t)hl);
    if (blen)
        memcpy(req + hl, body, blen);
    while (sent < tot) {
        ssize_t w = send(fd, req + sent, tot - sent, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        sent += (size_t)w;
    }
    free(req);
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    int status = -1;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        status = -1;
    char *b = strstr(buf, "\r\n\r\n");
    *out = strdup(b ? b + 4 : "");
    free(buf);
    return status;
}

/* Splits the "scores":[...] array of body into texts; returns the count. */
static size_t score_texts(const char *body, char texts[][32], size_t max)
{
    const char *p = strstr(body, "\"scores\":[");
    if (!p)
        return 0;
    p += 10;
    size_t n = 0;
    while (*p && *p != ']' && n < max) {
        size_t l = strcspn(p, ",]");
        if (l >= 32)
            return 0;
        memcpy(texts[n], p, l);
        texts[n][l] = '\0';
        n++;
        p += l;
        if (*p == ',')
            p++;
    }
    return n;
}

/* ---- server process ----------------------------------------------------- */

static void stop_server(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
        server_pid = 0;
    }
}

static int start_server(const char *ctrd, const char *model, const char *logpath)
{
    server_pid = fork();
    if (server_pid < 0)
        return -1;
    if (server_pid == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        execl(ctrd, ctrd, "--model", model, "--host", "127.0.0.1", "--port", "0",
              "--threads", "2", "--max-delay-us", "3000", "--max-batch", "64", (char *)NULL);
        _exit(127);
    }
    atexit(stop_server);
    for (int i = 0; i < 200; i++) {   /* <= 10 s */
        FILE *f = fopen(logpath, "r");
        char line[4096];
        while (f && fgets(line, sizeof line, f)) {
            char *p = strstr(line, "\"msg\":\"listening\"");
            char *q = p ? strstr(p, "\"port\":") : NULL;
            if (q)
                server_port = atoi(q + 7);
        }
        if (f)
            fclose(f);
        if (server_port > 0)
            return 0;
        if (waitpid(server_pid, NULL, WNOHANG) == server_pid) {
            server_pid = 0;
            return -1;
        }
        usleep(50000);
    }
    return -1;
}

/* ---- examples and their expected scores --------------------------------- */

static const char *const hexd = "0123456789abcdef";

static void make_examples(const ctr_model_def_t *def)
{
    test_rng_t rng = {0x5eed1234abcdull};
    const ctr_kernel_t *scalar = ctr_kernel_get(CTR_KERNEL_SCALAR);
    ctr_scratch_t *s;
    CHECK(ctr_scratch_new(def, 1, &s, NULL, 0) == 0);
    for (size_t i = 0; i < N_EX; i++) {
        float dense[N_DENSE];
        uint32_t rows[N_CAT];
        char *o = ex[i].json;
        size_t cap = sizeof ex[i].json, len = 0;
        len += (size_t)snprintf(o + len, cap - len, "{");
        int first = 1;
        for (size_t j = 0; j < N_DENSE; j++) {
            uint64_t r = test_rng_next(&rng);
            int kind = (int)(r % 8);
            double v = 0;
            char num[64];
            num[0] = '\0';
            switch (kind) {
            case 0: break;                                        /* absent */
            case 1: snprintf(num, sizeof num, "null"); break;     /* null */
            case 2: v = (double)(int64_t)(r >> 40) - 8000000.0; snprintf(num, sizeof num, "%.0f", v); break;
            case 3: v = (double)test_rng_uniform(&rng, -3, 3) * 1.0000001; snprintf(num, sizeof num, "%.17g", v); break;
            case 4: v = 1e30 * (double)test_rng_uniform(&rng, 0, 1); snprintf(num, sizeof num, "%.17g", v); break;
            case 5: v = 0.1; snprintf(num, sizeof num, "0.1"); break;
            case 6: v = 12345.678e-3; snprintf(num, sizeof num, "12345.678e-3"); break;
            default: v = -0.0; snprintf(num, sizeof num, "-0.0"); break;
            }
            if (kind >= 2 && !(strtod(num, NULL) == v))
                v = strtod(num, NULL);
            dense[j] = kind >= 2 ? ctr_features_dense(&def->dense[j], v) : ctr_features_dense_missing(&def->dense[j]);
            if (kind == 0)
                continue;
            len += (size_t)snprintf(o + len, cap - len, "%s\"%s\":%s", first ? "" : ",", def->dense[j].name, num);
            first = 0;
        }
        for (size_t j = 0; j < N_CAT; j++) {
            const ctr_cat_def_t *c = &def->cat[j];
            uint64_t r = test_rng_next(&rng);
            int kind = (int)(r % 6);
            char raw[80], js[200];
            size_t rl = 0;
            switch (kind) {
            case 0: rows[j] = CTR_MISSING_ROW; continue;            /* absent */
            case 1:
                rows[j] = CTR_MISSING_ROW;
                snprintf(js, sizeof js, "null");
                break;
            case 2: {                                               /* integer */
                int64_t v = (int64_t)(r >> 20) - ((int64_t)1 << 43);
                rows[j] = ctr_features_cat_row_int(c, v);
                snprintf(js, sizeof js, "%lld", (long long)v);
                break;
            }
            case 3:                                                 /* escapes */
                rl = (size_t)snprintf(raw, sizeof raw, "q\"b\\s/%c\xc3\xa9", hexd[r >> 60]);
                rows[j] = ctr_features_cat_row(c, raw, rl);
                snprintf(js, sizeof js, "\"q\\\"b\\\\s\\/%c\\u00e9\"", hexd[r >> 60]);
                break;
            default:                                                /* hex id */
                for (int k = 0; k < 8; k++)
                    raw[rl++] = hexd[(r >> (4 * k + 8)) & 15];
                raw[rl] = '\0';
                rows[j] = ctr_features_cat_row(c, raw, rl);
                snprintf(js, sizeof js, "\"%s\"", raw);
            }
            len += (size_t)snprintf(o + len, cap - len, "%s\"%s\":%s", first ? "" : ",", c->name, js);
            first = 0;
        }
        snprintf(o + len, cap - len, "}");
        CHECK(ctr_forward(def, scalar, 1, dense, rows, &ex[i].expect, NULL, s) == 0);
    }
    ctr_scratch_free(s);
}

static int bits_equal(float a, float b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

/* ---- concurrent mixed batches ------------------------------------------- */

/* Failures are counted per thread and checked in main: CHECK is not
 * thread-safe. */
static size_t client_failures[N_THREADS];

#define TFAIL(...)                                                         \
    do {                                                                   \
        client_failures[t]++;                                              \
        fprintf(stderr, __VA_ARGS__);                                      \
        fputc('\n', stderr);                                               \
    } while (0)

static void *client(void *arg)
{
    uintptr_t t = (uintptr_t)arg;
    test_rng_t rng = {0x77aa0000ull + t};
    static const size_t cap = 8 * 2100 + 64;
    char *body = malloc(cap);
    for (int k = 0; k < REQS_PER_THREAD; k++) {
        size_t n = 1 + test_rng_next(&rng) % 8, idx[8], len = 0;
        len += (size_t)snprintf(body + len, cap - len, "{\"examples\":[");
        for (size_t i = 0; i < n; i++) {
            idx[i] = test_rng_next(&rng) % N_EX;
            len += (size_t)snprintf(body + len, cap - len, "%s%s", i ? "," : "", ex[idx[i]].json);
        }
        snprintf(body + len, cap - len, "]}");
        char *out;
        int st = http("POST", "/v1/score", body, &out);
        char texts[8][32];
        size_t got = st == 200 ? score_texts(out, texts, 8) : 0;
        if (st != 200 || got != n)
            TFAIL("thread %zu request %d: status %d, %zu scores: %.200s", (size_t)t, k, st, got,
                  out ? out : "");
        for (size_t i = 0; i < got && i < n; i++) {
            if (strcmp(texts[i], ex[idx[i]].solo_text))
                TFAIL("example %zu in a batch: \"%s\" vs alone \"%s\"", idx[i], texts[i],
                      ex[idx[i]].solo_text);
            if (!bits_equal(strtof(texts[i], NULL), ex[idx[i]].expect))
                TFAIL("example %zu in a batch: %s vs offline %.9g", idx[i], texts[i],
                      (double)ex[idx[i]].expect);
        }
        free(out);
    }
    free(body);
    return NULL;
}

int main(void)
{
    const char *b = getenv("B");
    char ctrd[512], model[512], logpath[512];
    snprintf(ctrd, sizeof ctrd, "%s/ctrd", b && *b ? b : "build");
    if (access(ctrd, X_OK))
        SKIP("%s is not built", ctrd);
    signal(SIGPIPE, SIG_IGN);
    snprintf(model, sizeof model, "%s/scores.ctrm", test_tmpdir());
    snprintf(logpath, sizeof logpath, "%s/ctrd.log", test_tmpdir());
    uint32_t hidden[] = {48, 24};
    CHECK(test_make_model(model, 7, N_DENSE, N_CAT, 997, 8, hidden, 2, CTR_ACT_SMELU, 0.75f) == 0);
    ctr_model_t *m = NULL;
    char err[256];
    if (ctr_model_open(model, &m, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const ctr_model_def_t *def = ctr_model_def(m);
    CTR_ASSERT(def->n_dense == N_DENSE && def->n_cat == N_CAT);
    make_examples(def);

    if (start_server(ctrd, model, logpath)) {
        fprintf(stderr, "ctrd did not start; its log is %s\n", logpath);
        return 1;
    }
    printf("ctrd on port %d\n", server_port);

    /* Alone. */
    char body[2300], *out;
    for (size_t i = 0; i < N_EX; i++) {
        int bl = snprintf(body, sizeof body, "{\"examples\":[%s]}", ex[i].json);
        CTR_ASSERT(bl > 0 && (size_t)bl < sizeof body);
        int st = http("POST", "/v1/score", body, &out);
        char texts[1][32];
        size_t got = st == 200 ? score_texts(out, texts, 1) : 0;
        CHECKF(st == 200 && got == 1, "example %zu alone: status %d: %.300s", i, st, out ? out : "");
        if (got == 1) {
            strcpy(ex[i].solo_text, texts[0]);
            CHECKF(bits_equal(strtof(texts[0], NULL), ex[i].expect),
                   "example %zu alone: %s over HTTP vs %.9g offline (%s)", i, texts[0],
                   (double)ex[i].expect, ex[i].json);
        }
        free(out);
    }

    /* All in one request. */
    size_t cap = N_EX * 2100 + 64, len = 0;
    char *all = malloc(cap);
    len += (size_t)snprintf(all + len, cap - len, "{\"examples\":[");
    for (size_t i = 0; i < N_EX; i++)
        len += (size_t)snprintf(all + len, cap - len, "%s%s", i ? "," : "", ex[i].json);
    snprintf(all + len, cap - len, "]}");
    int st = http("POST", "/v1/score", all, &out);
    static char texts[N_EX][32];
    size_t got = st == 200 ? score_texts(out, texts, N_EX) : 0;
    CHECKF(got == N_EX, "all %d in one request: status %d, %zu scores", N_EX, st, got);
    for (size_t i = 0; i < got; i++)
        CHECKF(!strcmp(texts[i], ex[i].solo_text), "example %zu in one request: %s vs alone %s", i,
               texts[i], ex[i].solo_text);
    free(out);
    free(all);

    /* Concurrent mixed batches. */
    pthread_t th[N_THREADS];
    for (uintptr_t t = 0; t < N_THREADS; t++)
        pthread_create(&th[t], NULL, client, (void *)t);
    for (int t = 0; t < N_THREADS; t++) {
        pthread_join(th[t], NULL);
        CHECKF(client_failures[t] == 0, "client thread %d: %zu failures", t, client_failures[t]);
    }

    /* Batches of more than one example happened. */
    st = http("GET", "/metrics", NULL, &out);
    CHECK(st == 200);
    /* The one model's series: ...{model="NAME",le="1"} N and ..._count{model="NAME"} N. */
    const char *p1 = out ? strstr(out, "ctrd_batch_size_examples_bucket{model=") : NULL;
    p1 = p1 ? strstr(p1, ",le=\"1\"} ") : NULL;
    const char *pc = out ? strstr(out, "ctrd_batch_size_examples_count{model=") : NULL;
    pc = pc ? strstr(pc, "} ") : NULL;
    long le1 = p1 ? atol(p1 + strlen(",le=\"1\"} ")) : -1;
    long cnt = pc ? atol(pc + 2) : -1;
    printf("batches: %ld, of them single-example: %ld\n", cnt, le1);
    CHECKF(cnt > le1 && le1 >= 0, "no multi-example batch seen (%ld batches, %ld of size 1)", cnt, le1);
    free(out);

    kill(server_pid, SIGTERM);
    int ws = 0, exited = 0;
    for (int i = 0; i < 300 && !(exited = waitpid(server_pid, &ws, WNOHANG) == server_pid); i++)
        usleep(100000);
    CHECKF(exited && WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "ctrd did not exit 0 on SIGTERM (status 0x%x)", ws);
    if (exited)
        server_pid = 0;
    ctr_model_close(m);
    int rc = test_main_end();
    if (rc == 0) {               /* keep the files of a failed run */
        unlink(model);
        unlink(logpath);
        rmdir(test_tmpdir());
    }
    return rc;
}
