/* fuzz_model.c - libFuzzer target for the .ctrm model reader
 * (model/model_read.c, model/model_header.c): any bytes as a model file.
 * The bytes go into a memfd opened by path (/proc/self/fd/N), so
 * ctr_model_open maps them exactly as it maps a file on disk; then
 * ctr_model_verify. A model that opens is used the way the server uses it:
 * every name looked up, the first and last element of every tensor read,
 * version 2's graph included (a bad extent faults here, not in
 * production), the graph's widths checked once more against each other,
 * and one forward pass (scalar kernels, every architecture) over the
 * missing row (empty bags) and the last row of every table in every slot.
 *
 * A custom mutator keeps the preamble consistent half of the time: it
 * mutates the JSON header alone and then rewrites header_len, data_offset
 * and the padding around it, so the fuzzer explores the header parser
 * instead of being stopped at the length check by almost every mutation.
 * Seeds: tests/fuzz/corpus/model/ (fuzz_replay_model --write-seeds DIR
 * regenerates the valid ones: version-1 MLPs, and a version-2 model of
 * every architecture from tests/model_v2_defs.h). Build and run: make fuzz. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../model_v2_defs.h"
#include "../testutil.h"
#include "ctr/common.h"
#include "ctr/features.h"
#include "ctr/forward.h"
#include "ctr/kernels.h"
#include "ctr/model.h"
#include "fuzz.h"

static volatile float g_sink;

/* libFuzzer's own mutator; weak so the replay build links without it (the
 * custom mutator below only runs under libFuzzer). */
__attribute__((weak)) size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
    if (!LLVMFuzzerMutate)
        return size;
    uint64_t hl = size >= 32 ? get_u64(data + 16) : 0, dof = size >= 32 ? get_u64(data + 24) : 0;
    if ((seed & 1) || size < 32 || memcmp(data, "CTRMODEL", 8) || hl == 0 || hl > size - 32 ||
        dof < 32 + hl || dof > size)
        return LLVMFuzzerMutate(data, size, max_size);
    size_t tail = size - (size_t)dof;   /* the tensor bytes */
    if (max_size < 32 + 64 + tail + 1)
        return LLVMFuzzerMutate(data, size, max_size);
    size_t room = max_size - 32 - 64 - tail;
    uint8_t *hdr = malloc(room), *ten = malloc(tail ? tail : 1);
    if (!hdr || !ten) {
        free(hdr);
        free(ten);
        return size;
    }
    memcpy(ten, data + dof, tail);
    size_t n = hl < room ? (size_t)hl : room;
    memcpy(hdr, data + 32, n);
    n = LLVMFuzzerMutate(hdr, n, room);
    if ((seed >> 1) % 4 == 0 && tail)   /* now and then the tensors too */
        tail = LLVMFuzzerMutate(ten, tail, tail);
    uint64_t nhl = n, ndof = (32 + nhl + 63) & ~(uint64_t)63;
    memcpy(data + 16, &nhl, 8);
    memcpy(data + 24, &ndof, 8);
    memcpy(data + 32, hdr, n);
    memset(data + 32 + n, 0, (size_t)(ndof - 32 - nhl));
    memcpy(data + ndof, ten, tail);
    free(hdr);
    free(ten);
    return (size_t)ndof + tail;
}

/* p NULL: a tensor the model does not have (a full-rank cross layer's v). */
static void touch_floats(const float *p, size_t n)
{
    if (p && n) {
        g_sink += p[0];
        g_sink += p[n - 1];
    }
}

static void touch_layers(const ctr_layer_def_t *L, size_t n)
{
    for (size_t l = 0; l < n; l++) {
        if (l && L[l].in != L[l - 1].out)
            abort();
        for (size_t i = 0; i < L[l].in; i++) /* rows may be padded (ldw) */
            touch_floats(L[l].weight + i * (L[l].ldw ? L[l].ldw : L[l].out), L[l].out);
        touch_floats(L[l].bias, L[l].out);
    }
}

/* Version 2: every tensor of the interaction, and the widths the engine
 * will size its scratch from. */
static void touch_graph(const ctr_model_def_t *d)
{
    size_t dim = d->n_cat ? d->cat[0].dim : d->bottom.n ? d->bottom.layers[d->bottom.n - 1].out : 0;
    size_t n = (d->n_dense > 0) + d->n_cat;
    if (d->arch == CTR_ARCH_WUKONG && !(d->ln_eps > 0))
        abort();
    if (d->arch != CTR_ARCH_MLP)
        for (size_t j = 0; j < d->n_cat; j++)
            if (d->cat[j].dim != dim)
                abort();
    for (size_t j = 0; j < d->n_cat; j++)
        if (d->cat[j].shares && (d->cat[j].shares > j || d->cat[j].table != d->cat[d->cat[j].shares - 1].table))
            abort();
    if (ctr_model_slots(d) < d->n_cat || ctr_model_slot_of(d, d->n_cat) != ctr_model_slots(d))
        abort();
    for (size_t l = 0; l < d->dcn.n_cross; l++) {
        const ctr_cross_def_t *x = &d->dcn.cross[l];
        if (x->rank > x->dim || !x->bias || !(x->rank ? x->v && x->u && !x->w : x->w && !x->v && !x->u))
            abort();
        touch_floats(x->w, (size_t)x->dim * x->dim);
        touch_floats(x->v, (size_t)x->dim * x->rank);
        touch_floats(x->u, (size_t)x->rank * x->dim);
        touch_floats(x->bias, x->dim);
    }
    touch_layers(d->dcn.deep.layers, d->dcn.deep.n);
    for (size_t i = 0; i < d->wukong.n_layers; i++) {
        const ctr_wukong_layer_def_t *L = &d->wukong.layers[i];
        size_t flat = (size_t)L->n_in * L->k;
        if (L->n_in != n || !L->fmb.n || L->fmb.layers[0].in != flat ||
            L->fmb.layers[L->fmb.n - 1].out != (size_t)L->n_f * dim || !L->ln_gamma || !L->ln_beta)
            abort();
        touch_floats(L->y, flat);
        touch_floats(L->fmb_ln_gamma, flat);
        touch_floats(L->fmb_ln_beta, flat);
        touch_layers(L->fmb.layers, L->fmb.n);
        touch_floats(L->lcb, (size_t)L->n_l * L->n_in);
        touch_floats(L->res, (size_t)(L->n_f + L->n_l) * L->n_in);
        touch_floats(L->ln_gamma, dim);
        touch_floats(L->ln_beta, dim);
        n = (size_t)L->n_f + L->n_l;
    }
}

static void use_model(const ctr_model_t *m)
{
    const ctr_model_def_t *d = ctr_model_def(m);
    size_t len;
    const char *hdr = ctr_model_header_json(m, &len);
    if (len)
        g_sink += (float)(unsigned char)hdr[len - 1];
    if (strncmp(ctr_model_digest(m), "sha256:", 7) || strlen(ctr_model_digest(m)) != 71)
        abort();
    g_sink += (float)strlen(d->name);
    for (size_t k = 0; k < d->n_dense; k++) {
        const char *nm = d->dense[k].name;
        if (ctr_model_find_feature(m, nm, strlen(nm)) != (long)k)
            abort();
        g_sink += ctr_features_dense(&d->dense[k], 3.0) + ctr_features_dense_missing(&d->dense[k]);
    }
    for (size_t j = 0; j < d->n_cat; j++) {
        const ctr_cat_def_t *c = &d->cat[j];
        if (ctr_model_find_feature(m, c->name, strlen(c->name)) != (long)(d->n_dense + j))
            abort();
        /* A table is f32 rows or stored rows of its dtype, never both; a
         * sharer reads its owner's. */
        const ctr_cat_def_t *o = c->shares ? &d->cat[c->shares - 1] : c;
        if ((c->dtype == CTR_TABLE_F32) != (c->table != NULL) || (c->dtype == CTR_TABLE_F32) == (c->qrows != NULL) ||
            c->dtype != o->dtype || c->qrows != o->qrows)
            abort();
        touch_floats(c->table, ((size_t)c->buckets + 1) * c->dim);
        if (c->qrows) {
            const unsigned char *q = c->qrows;
            g_sink += q[0] + q[((size_t)c->buckets + 1) * ctr_table_row_bytes(c->dtype, c->dim) - 1];
        }
        /* "x" is a value only the hash mapping takes (mod wants digits). */
        if (c->mapping == CTR_MAP_HASH && ctr_features_cat_row(c, "x", 1) > c->buckets)
            abort();
    }
    size_t in = ctr_model_input_dim(d);
    if (d->n_layers < 1 || d->layers[0].in != in || d->layers[d->n_layers - 1].out != 1)
        abort();
    touch_layers(d->layers, d->n_layers);
    touch_layers(d->bottom.layers, d->bottom.n);
    touch_graph(d);
    if (d->provenance_json)
        g_sink += (float)strlen(d->provenance_json);
    /* Two examples: everything missing (bags empty), and the last row of
     * every table in every slot. A model the reader accepts must be one
     * the engine accepts: a shape refusal here (CTR_EINVAL) is a bug. */
    ctr_scratch_t *s = NULL;
    if (ctr_scratch_new(d, 2, &s, NULL, 0) == CTR_EINVAL)
        abort();
    size_t slots = ctr_model_slots(d);
    float *dense = calloc(2 * d->n_dense + 1, sizeof(float));
    uint32_t *rows = calloc(2 * slots + 1, sizeof(uint32_t));
    if (s && dense && rows) {
        float scores[2];
        for (size_t j = 0; j < d->n_cat; j++) {
            const ctr_cat_def_t *c = &d->cat[j];
            size_t first = ctr_model_slot_of(d, j), width = c->bag_max ? c->bag_max : 1;
            for (size_t k = 0; k < width; k++) {
                rows[first + k] = c->bag_max ? CTR_EMPTY_SLOT : CTR_MISSING_ROW;
                rows[slots + first + k] = c->buckets;
            }
        }
        if (ctr_forward(d, ctr_kernel_get(CTR_KERNEL_SCALAR), 2, dense, rows, scores, NULL, s))
            abort();
        g_sink += scores[0] + scores[1];
    }
    free(rows);
    free(dense);
    ctr_scratch_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz.ctrm", MFD_CLOEXEC);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0))
        abort();
    for (size_t off = 0; off < size;) {
        ssize_t w = pwrite(fd, data + off, size - off, (off_t)off);
        if (w <= 0)
            abort();
        off += (size_t)w;
    }
    ctr_model_t *m;
    char err[512];
    err[0] = '\0';
    if (ctr_model_open(path, &m, err, sizeof(err)) == 0) {
        use_model(m);
        (void)ctr_model_verify(m, err, sizeof(err));
        ctr_model_close(m);
    } else if (!err[0]) {
        fprintf(stderr, "ctr_model_open refused a file without saying why\n");
        abort();
    }
    return 0;
}

/* Valid seeds: small models of every shape the format allows (no dense or
 * no categorical features, no hidden layer, relu, every transform; each
 * version-2 architecture with bags, mod mapping and shared tables), so the
 * fuzzer starts from files that parse to the end. */
int fuzz_write_seeds(const char *dir)
{
    static const struct {
        size_t nd, nc;
        uint32_t buckets, dim;
        uint32_t hidden[2];
        size_t n_hidden;
        ctr_activation_t act;
    } shapes[] = {
        {3, 2, 3, 2, {4, 0}, 1, CTR_ACT_SMELU},
        {0, 3, 2, 2, {0, 0}, 0, CTR_ACT_SMELU},
        {2, 0, 1, 1, {3, 2}, 2, CTR_ACT_RELU},
        {1, 1, 1, 1, {1, 0}, 1, CTR_ACT_SMELU},
        {13, 26, 2, 1, {2, 0}, 1, CTR_ACT_SMELU},
    };
    int n = 0;
    for (size_t i = 0; i < CTR_ARRAY_LEN(shapes); i++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/seed-%02zu-ok.ctrm", dir, i);
        if (test_make_model(path, 100 + i, shapes[i].nd, shapes[i].nc, shapes[i].buckets,
                            shapes[i].dim, shapes[i].hidden, shapes[i].n_hidden, shapes[i].act,
                            0.5f + (float)i)) {
            fprintf(stderr, "%s: cannot write\n", path);
            return -1;
        }
        n++;
    }
    v2_opts_t opt;
    const char *label;
    for (size_t i = 0; v2_example(i, &opt, &label); i++) {
        char path[1024], err[512];
        v2_model_t o;
        v2_build(&o, &opt, 200 + i);
        snprintf(path, sizeof(path), "%s/seed-v2-%02zu-%s.ctrm", dir, i, label);
        int rc = ctr_model_write(path, &o.def, NULL, NULL, err, sizeof(err));
        v2_free(&o);
        if (rc) {
            fprintf(stderr, "%s: %s\n", path, err);
            return -1;
        }
        n++;
    }
    /* Quantized tables: f16 and int8_rowwise, alternating, in three of them. */
    static const size_t quantized[] = {0, 3, 8};
    for (size_t k = 0; k < CTR_ARRAY_LEN(quantized); k++) {
        char path[1024], err[512];
        v2_model_t o;
        if (!v2_example(quantized[k], &opt, &label))
            return -1;
        v2_build(&o, &opt, 300 + k);
        for (size_t j = 0; j < o.def.n_cat; j++)
            o.cat[j].dtype = (j + k) % 2 ? CTR_TABLE_INT8_ROWWISE : CTR_TABLE_F16;
        for (size_t j = 0; j < o.def.n_cat; j++)
            if (o.cat[j].shares)
                o.cat[j].dtype = o.cat[o.cat[j].shares - 1].dtype;
        snprintf(path, sizeof(path), "%s/seed-q-%02zu-%s.ctrm", dir, k, label);
        int rc = ctr_model_write(path, &o.def, NULL, NULL, err, sizeof(err));
        v2_free(&o);
        if (rc) {
            fprintf(stderr, "%s: %s\n", path, err);
            return -1;
        }
        n++;
    }
    return n;
}
