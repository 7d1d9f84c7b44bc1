/* decode_v2.c - the KServe v2 / Open Inference Protocol infer body:
 * {"id", "inputs", "outputs", "parameters"} (docs/DECODER.md "v2"). Each
 * input object is read key by key; its "data" is first only validated and
 * counted (ctr__json_skip_value), and once the object closes and name,
 * datatype and shape check out, the arena is allocated for the batch and
 * the elements are converted in row-major order (v2_data). */
#include <stdint.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/features.h"
#include "decode_int.h"
#include "json_scan.h"

enum { IN_DENSE = 0, IN_SPARSE = 1 };
enum { DT_OTHER = 0, DT_FP32, DT_BYTES, DT_INT64 };

typedef struct {
    int has_name, has_dt, has_shape, has_data, has_params;
    char name[24];
    size_t name_len;
    char dt[16];
    size_t dt_len;
    size_t rank;
    uint64_t dims[2];
    const uchar *data;
    size_t leaves;
} v2_input_t;

typedef struct {
    int done[2];
    size_t b;     /* examples, once the first input is decoded */
} v2_state_t;

/* A short string value (name, datatype) into buf; longer ones are kept
 * truncated, with *len the full length, so they compare unequal. */
static const uchar *short_string(ctr__dec_t *d, const uchar *p, char *buf, size_t cap, size_t *len,
                                 const char *what, long idx)
{
    if (*p != '"')
        return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", -1, NULL, 0, "%s[%ld]: expected a string",
                            what, idx);
    return ctr__json_scan_string(&d->sc, p + 1, buf, cap, len);
}

static int str_is(const char *s, size_t len, size_t cap, const char *word)
{
    return len <= cap && ctr__dec_key_is(s, len, word);
}

/* The tensor's elements, flattened in row-major order. */
static const uchar *v2_data(ctr__dec_t *d, const v2_input_t *in, int which, int dt)
{
    const uchar *p = in->data, *end = d->sc.end;
    size_t n = which == IN_DENSE ? d->nd : d->nc, k = 0, depth = 0;
    for (;;) {
        p = ctr__json_ws(p, end);
        CTR_ASSERT(p < end); /* validated by ctr__json_skip_value */
        uchar c = *p;
        if (c == '[') {
            depth++;
            p++;
            continue;
        }
        if (c == ',') {
            p++;
            continue;
        }
        if (c == ']') {
            p++;
            if (--depth == 0)
                return p;
            continue;
        }
        size_t i = k / n, j = k % n;
        ctr__dec_slots_t s = ctr__dec_example_slots(d, i);
        k++;
        if (which == IN_DENSE) {
            p = ctr__dec_dense_value(d, p, j, &s, (long)i);
        } else if (c == 'n' && ctr__json_lit(p, end, "null", 4)) {
            ctr__dec_cat_missing(&s, j);
            p += 4;
        } else if (dt == DT_BYTES && c == '"') {
            p = ctr__dec_cat_string(d, p, j, &s, (long)i, 1);
        } else if (dt == DT_INT64 && ctr__json_is_num_start(c)) {
            p = ctr__dec_cat_int(d, p, j, &s, (long)i);
        } else {
            const char *name = d->def->cat[j].name;
            return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", (long)i, name, strlen(name),
                                "input \"sparse\" (%s): element [%zu][%zu] (feature \"%s\") "
                                "must be %s or null",
                                dt == DT_BYTES ? "BYTES" : "INT64", i, j, name,
                                dt == DT_BYTES ? "a string" : "an integer");
        }
        if (!p)
            return NULL;
    }
}

/* Checks an input once its object is closed, then decodes its data. */
static const uchar *v2_input_close(ctr__dec_t *d, v2_state_t *st, const v2_input_t *in, long idx,
                                   const uchar *p)
{
    if (!in->has_name)
        return ctr__dec_sem(d, CTR_EINVAL, "missing_field", -1, NULL, 0,
                            "inputs[%ld] has no \"name\"", idx);
    int which;
    if (str_is(in->name, in->name_len, sizeof(in->name), "dense"))
        which = IN_DENSE;
    else if (str_is(in->name, in->name_len, sizeof(in->name), "sparse"))
        which = IN_SPARSE;
    else
        return ctr__dec_sem(d, CTR_EINVAL, "unknown_input", -1, NULL, 0,
                            "inputs[%ld]: unknown input \"%.*s\" (expected \"dense\" and "
                            "\"sparse\")",
                            idx,
                            (int)(in->name_len < sizeof(in->name) ? in->name_len
                                                                  : sizeof(in->name)),
                            in->name);
    const char *iname = which == IN_DENSE ? "dense" : "sparse";
    if (st->done[which])
        return ctr__dec_sem(d, CTR_EINVAL, "duplicate_input", -1, NULL, 0,
                            "input \"%s\" appears twice", iname);
    if (!in->has_dt || !in->has_shape || !in->has_data)
        return ctr__dec_sem(d, CTR_EINVAL, "missing_field", -1, NULL, 0,
                            "input \"%s\" has no \"%s\"", iname,
                            !in->has_dt ? "datatype" : !in->has_shape ? "shape" : "data");
    int dt = DT_OTHER;
    if (str_is(in->dt, in->dt_len, sizeof(in->dt), "FP32"))
        dt = DT_FP32;
    else if (str_is(in->dt, in->dt_len, sizeof(in->dt), "BYTES"))
        dt = DT_BYTES;
    else if (str_is(in->dt, in->dt_len, sizeof(in->dt), "INT64"))
        dt = DT_INT64;
    if (which == IN_DENSE ? dt != DT_FP32 : dt != DT_BYTES && dt != DT_INT64)
        return ctr__dec_sem(d, CTR_EINVAL, "bad_datatype", -1, NULL, 0,
                            "input \"%s\": datatype must be %s", iname,
                            which == IN_DENSE ? "FP32" : "BYTES or INT64");
    size_t n = which == IN_DENSE ? d->nd : d->nc;
    if (in->rank != 2)
        return ctr__dec_sem(d, CTR_EINVAL, "bad_shape", -1, NULL, 0,
                            "input \"%s\": shape must be [batch, %zu], got %zu dimensions", iname,
                            n, in->rank);
    if (in->dims[1] != n)
        return ctr__dec_sem(d, CTR_EINVAL, "bad_shape", -1, NULL, 0,
                            "input \"%s\": shape [%llu, %llu], the model has %zu %s features",
                            iname, (unsigned long long)in->dims[0], (unsigned long long)in->dims[1],
                            n, iname);
    if (in->dims[0] == 0)
        return ctr__dec_sem(d, CTR_EINVAL, "bad_shape", -1, NULL, 0, "input \"%s\": batch size 0",
                            iname);
    if (in->dims[0] > d->max_examples)
        return ctr__dec_sem(d, CTR_ETOOBIG, "too_many_examples", -1, NULL, 0,
                            "input \"%s\": batch of %llu examples, at most %zu allowed", iname,
                            (unsigned long long)in->dims[0], d->max_examples);
    size_t b = (size_t)in->dims[0];
    if (st->b && b != st->b)
        return ctr__dec_sem(d, CTR_EINVAL, "bad_shape", -1, NULL, 0,
                            "input \"%s\": batch %zu differs from the other input's %zu", iname, b,
                            st->b);
    if (in->leaves != b * n)
        return ctr__dec_sem(d, CTR_EINVAL, "bad_shape", -1, NULL, 0,
                            "input \"%s\": shape [%zu, %zu] needs %zu elements, data has %zu",
                            iname, b, n, b * n, in->leaves);
    if (!st->b) {
        if (ctr__dec_arena_alloc(d, b, 0))
            return NULL;
        st->b = b;
        d->req->n = b;
    }
    if (n && !v2_data(d, in, which, dt))
        return NULL;
    st->done[which] = 1;
    return p;
}

static const uchar *v2_shape(ctr__dec_t *d, const uchar *p, v2_input_t *in, long idx)
{
    const uchar *end = d->sc.end;
    if (*p != '[')
        return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", -1, NULL, 0,
                            "inputs[%ld]: \"shape\" must be an array", idx);
    p = ctr__json_ws(p + 1, end);
    if (p < end && *p == ']')
        return p + 1;
    for (;;) {
        ctr__json_num_t num;
        if (p >= end || !ctr__json_is_num_start(*p))
            return ctr__dec_sem(d, CTR_EINVAL, "bad_shape", -1, NULL, 0,
                                "inputs[%ld]: \"shape\" must hold non-negative integers", idx);
        const uchar *q = ctr__json_scan_number(&d->sc, p, 0, &num);
        if (!q)
            return NULL;
        if (!num.int_ok || num.i < 0)
            return ctr__dec_sem(d, CTR_EINVAL, "bad_shape", -1, NULL, 0,
                                "inputs[%ld]: \"shape\" must hold non-negative integers", idx);
        if (in->rank < 2)
            in->dims[in->rank] = (uint64_t)num.i;
        in->rank++;
        p = ctr__json_ws(q, end);
        if (p < end && *p == ',') {
            p = ctr__json_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == ']')
            return p + 1;
        return SYN(d, p, "expected ',' or ']' after an array element");
    }
}

static const uchar *v2_input(ctr__dec_t *d, v2_state_t *st, const uchar *p, long idx)
{
    const uchar *end = d->sc.end;
    v2_input_t in;
    char kbuf[CTR__DEC_KEY_CAP];
    memset(&in, 0, sizeof(in));
    p = ctr__json_ws(p + 1, end);
    if (p < end && *p == '}')
        return v2_input_close(d, st, &in, idx, p + 1);
    for (;;) {
        const char *k;
        size_t klen;
        int *seen;
        if (p >= end || *p != '"')
            return SYN(d, p, "expected a string key");
        p = ctr__dec_key(d, p, kbuf, &k, &klen);
        if (!p)
            return NULL;
        if (ctr__dec_key_is(k, klen, "name"))
            seen = &in.has_name;
        else if (ctr__dec_key_is(k, klen, "datatype"))
            seen = &in.has_dt;
        else if (ctr__dec_key_is(k, klen, "shape"))
            seen = &in.has_shape;
        else if (ctr__dec_key_is(k, klen, "data"))
            seen = &in.has_data;
        else if (ctr__dec_key_is(k, klen, "parameters"))
            seen = &in.has_params;
        else
            return ctr__dec_sem(d, CTR_EINVAL, "unknown_field", -1, NULL, 0,
                                "inputs[%ld]: unknown field \"%.*s\"", idx,
                                (int)(klen < 64 ? klen : 64), k);
        if (*seen)
            return ctr__dec_sem(d, CTR_EINVAL, "duplicate_key", -1, NULL, 0,
                                "inputs[%ld]: \"%.*s\" appears twice", idx, (int)klen, k);
        *seen = 1;
        p = ctr__json_ws(p, end);
        if (p >= end || *p != ':')
            return SYN(d, p, "expected ':' after an object key");
        p = ctr__json_ws(p + 1, end);
        if (p >= end)
            return SYN(d, p, "unexpected end of body, expected a value");
        if (seen == &in.has_name) {
            p = short_string(d, p, in.name, sizeof(in.name), &in.name_len, "inputs", idx);
        } else if (seen == &in.has_dt) {
            p = short_string(d, p, in.dt, sizeof(in.dt), &in.dt_len, "inputs", idx);
        } else if (seen == &in.has_shape) {
            p = v2_shape(d, p, &in, idx);
        } else if (seen == &in.has_data) {
            if (*p != '[')
                return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", -1, NULL, 0,
                                    "inputs[%ld]: \"data\" must be an array", idx);
            in.data = p;
            p = ctr__json_skip_value(&d->sc, p, 3, &in.leaves);
        } else {
            if (*p != '{')
                return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", -1, NULL, 0,
                                    "inputs[%ld]: \"parameters\" must be an object", idx);
            p = ctr__json_skip_value(&d->sc, p, 3, NULL);
        }
        if (!p)
            return NULL;
        p = ctr__json_ws(p, end);
        if (p < end && *p == ',') {
            p = ctr__json_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}')
            return v2_input_close(d, st, &in, idx, p + 1);
        return SYN(d, p, "expected ',' or '}' after an object member");
    }
}

static const uchar *v2_output(ctr__dec_t *d, const uchar *p, long idx)
{
    const uchar *end = d->sc.end;
    int has_name = 0, has_params = 0;
    char name[16], kbuf[CTR__DEC_KEY_CAP];
    size_t name_len = 0;
    p = ctr__json_ws(p + 1, end);
    if (p < end && *p == '}') {
        p++;
        goto close;
    }
    for (;;) {
        const char *k;
        size_t klen;
        int *seen;
        if (p >= end || *p != '"')
            return SYN(d, p, "expected a string key");
        p = ctr__dec_key(d, p, kbuf, &k, &klen);
        if (!p)
            return NULL;
        if (ctr__dec_key_is(k, klen, "name"))
            seen = &has_name;
        else if (ctr__dec_key_is(k, klen, "parameters"))
            seen = &has_params;
        else
            return ctr__dec_sem(d, CTR_EINVAL, "unknown_field", -1, NULL, 0,
                                "outputs[%ld]: unknown field \"%.*s\"", idx,
                                (int)(klen < 64 ? klen : 64), k);
        if (*seen)
            return ctr__dec_sem(d, CTR_EINVAL, "duplicate_key", -1, NULL, 0,
                                "outputs[%ld]: \"%.*s\" appears twice", idx, (int)klen, k);
        *seen = 1;
        p = ctr__json_ws(p, end);
        if (p >= end || *p != ':')
            return SYN(d, p, "expected ':' after an object key");
        p = ctr__json_ws(p + 1, end);
        if (p >= end)
            return SYN(d, p, "unexpected end of body, expected a value");
        if (seen == &has_name) {
            p = short_string(d, p, name, sizeof(name), &name_len, "outputs", idx);
        } else {
            if (*p != '{')
                return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", -1, NULL, 0,
                                    "outputs[%ld]: \"parameters\" must be an object", idx);
            p = ctr__json_skip_value(&d->sc, p, 3, NULL);
        }
        if (!p)
            return NULL;
        p = ctr__json_ws(p, end);
        if (p < end && *p == ',') {
            p = ctr__json_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}') {
            p++;
            break;
        }
        return SYN(d, p, "expected ',' or '}' after an object member");
    }
close:
    if (!has_name)
        return ctr__dec_sem(d, CTR_EINVAL, "missing_field", -1, NULL, 0,
                            "outputs[%ld] has no \"name\"", idx);
    if (!str_is(name, name_len, sizeof(name), "score"))
        return ctr__dec_sem(d, CTR_EINVAL, "unknown_output", -1, NULL, 0,
                            "outputs[%ld]: unknown output \"%.*s\" (the model has \"score\")", idx,
                            (int)(name_len < sizeof(name) ? name_len : sizeof(name)), name);
    return p;
}

/* "inputs" or "outputs": an array of objects. */
static const uchar *v2_array(ctr__dec_t *d, v2_state_t *st, const uchar *p, int inputs)
{
    const uchar *end = d->sc.end;
    const char *what = inputs ? "inputs" : "outputs";
    if (*p != '[')
        return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", -1, NULL, 0,
                            "\"%s\" must be an array of objects", what);
    p = ctr__json_ws(p + 1, end);
    if (p < end && *p == ']')
        return p + 1;
    for (long i = 0;; i++) {
        if (p >= end || *p != '{')
            return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", -1, NULL, 0,
                                "%s[%ld] must be an object", what, i);
        p = inputs ? v2_input(d, st, p, i) : v2_output(d, p, i);
        if (!p)
            return NULL;
        p = ctr__json_ws(p, end);
        if (p < end && *p == ',') {
            p = ctr__json_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == ']')
            return p + 1;
        return SYN(d, p, "expected ',' or ']' after an array element");
    }
}

static const char *const V2_KEYS[] = {"inputs", "id", "outputs", "parameters"};
enum { V2_INPUTS, V2_ID, V2_OUTPUTS, V2_PARAMETERS };

int ctr__dec_v2_parse(ctr__dec_t *d)
{
    const uchar *end = d->sc.end, *p = ctr__json_ws(d->sc.beg, end);
    unsigned seen = 0;
    v2_state_t st = {{0, 0}, 0};

    if (!(p = ctr__dec_body_open(d, p)))
        return -1;
    int more = 1;
    if (p < end && *p == '}') {
        p++;
        more = 0;
    }
    while (more) {
        int which = 0;
        p = ctr__dec_top_member(d, p, V2_KEYS, 4, "id, inputs, outputs, parameters", &seen, &which);
        if (!p)
            return -1;
        if (which == V2_INPUTS || which == V2_OUTPUTS) {
            p = v2_array(d, &st, p, which == V2_INPUTS);
        } else if (which == V2_ID) {
            p = ctr__dec_request_id(d, p, "id");
        } else {
            if (*p != '{')
                return ctr__dec_sem(d, CTR_EINVAL, "wrong_type", -1, NULL, 0,
                                    "\"parameters\" must be an object"), -1;
            p = ctr__json_skip_value(&d->sc, p, 1, NULL);
        }
        if (!p || (more = ctr__dec_top_next(d, &p)) < 0)
            return -1;
    }
    if (ctr__dec_body_end(d, p))
        return -1;
    for (int w = 0; w < 2; w++) {
        size_t n = w == IN_DENSE ? d->nd : d->nc;
        if (n && !st.done[w])
            return ctr__dec_sem(d, CTR_EINVAL, "missing_input", -1, NULL, 0,
                                "input \"%s\" is missing", w == IN_DENSE ? "dense" : "sparse"), -1;
    }
    if (!st.b)
        return ctr__dec_sem(d, CTR_EINVAL, "missing_input", -1, NULL, 0, "no inputs"), -1;
    return 0;
}
