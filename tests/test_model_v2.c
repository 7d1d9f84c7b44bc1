/* test_model_v2.c - .ctrm format version 2 (model/model_header*.c,
 * model/model_check.c, model/model_write.c): round trips of every
 * architecture (model_v2_defs.h builds them by hand), bags, mod mapping
 * and shared tables; streamed tables written once per owner; one refusal
 * per graph rule, from the writer (an edited def) and from the reader (an
 * edited header), each with its message; a version-2 MLP written by hand
 * is accepted, a version-1 file with version-2 keys is not; and random
 * damage to version-2 files gives a clean success or a clean refusal.
 * test_model_format.c covers version 1 and everything the two share
 * (preamble, tensor list, checksums). */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctr/common.h"
#include "ctr/model.h"
#include "model_v2_defs.h"
#include "testutil.h"

static uint32_t rd32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t rd64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* ---- comparing a def with what the reader gives back -------------------- */

static bool same_floats(const float *a, const float *b, size_t n)
{
    if (!a || !b)
        return a == b;
    return !memcmp(a, b, n * sizeof(float));
}

static bool aligned(const float *p) { return !p || ((uintptr_t)p & 63) == 0; }

static size_t ldw_of(const ctr_layer_def_t *L)
{
    return L->ldw ? L->ldw : L->out;
}

/* The weights of two layers in out x in, row by row (a loaded layer's rows
 * may be padded: ldw). */
static bool same_weights(const ctr_layer_def_t *a, const ctr_layer_def_t *b)
{
    for (size_t i = 0; i < a->in; i++)
        if (!same_floats(a->weight + i * ldw_of(a), b->weight + i * ldw_of(b), a->out))
            return false;
    return true;
}

static void cmp_layers(const char *what, const ctr_layer_def_t *a, size_t na, const ctr_layer_def_t *b, size_t nb)
{
    CHECKF(na == nb, "%s: %zu layers read back as %zu", what, na, nb);
    for (size_t l = 0; l < na && l < nb; l++) {
        CHECKF(a[l].in == b[l].in && a[l].out == b[l].out, "%s[%zu]: %" PRIu32 "x%" PRIu32 " read back as %"
               PRIu32 "x%" PRIu32, what, l, a[l].in, a[l].out, b[l].in, b[l].out);
        if (a[l].in != b[l].in || a[l].out != b[l].out)
            continue;
        CHECKF(same_weights(&a[l], &b[l]), "%s[%zu].weight", what, l);
        CHECKF(same_floats(a[l].bias, b[l].bias, a[l].out), "%s[%zu].bias", what, l);
        CHECK(aligned(b[l].weight) && aligned(b[l].bias));
    }
}

static void compare_v2(const ctr_model_def_t *w, const ctr_model_def_t *r)
{
    CHECK_EQ_STR(w->name, r->name);
    CHECK_EQ_INT(w->arch, r->arch);
    CHECK_EQ_SIZE(w->n_dense, r->n_dense);
    CHECK_EQ_SIZE(w->n_cat, r->n_cat);
    if (w->n_dense != r->n_dense || w->n_cat != r->n_cat)
        return;
    for (size_t i = 0; i < w->n_dense; i++) {
        CHECK_EQ_STR(w->dense[i].name, r->dense[i].name);
        CHECK_EQ_INT(w->dense[i].transform, r->dense[i].transform);
    }
    for (size_t j = 0; j < w->n_cat; j++) {
        const ctr_cat_def_t *a = &w->cat[j], *b = &r->cat[j];
        CHECK_EQ_STR(a->name, b->name);
        CHECK_EQ_UINT(a->buckets, b->buckets);
        CHECK_EQ_UINT(a->dim, b->dim);
        CHECK_EQ_UINT(a->seed, b->seed);
        CHECK_EQ_INT(a->mapping, b->mapping);
        CHECK_EQ_UINT(a->bag_max, b->bag_max);
        CHECK_EQ_INT(a->pool, b->pool);
        CHECK_EQ_UINT(a->shares, b->shares);
        if (b->shares)
            CHECKF(b->table == r->cat[b->shares - 1].table, "cat %zu: a sharer reads its owner's rows", j);
        else if (a->table)
            CHECKF(same_floats(a->table, b->table, ((size_t)a->buckets + 1) * a->dim), "cat %zu table", j);
        CHECK(b->table && aligned(b->table));
    }
    cmp_layers("mlp.layers", w->layers, w->n_layers, r->layers, r->n_layers);
    CHECK_EQ_INT(w->activation, r->activation);
    CHECK_EQ_FLT(w->beta, r->beta);
    cmp_layers("bottom.layers", w->bottom.layers, w->bottom.n, r->bottom.layers, r->bottom.n);
    CHECK_EQ_INT(w->dot_order, r->dot_order);
    CHECK_EQ_INT(w->dot_self, r->dot_self);
    const ctr_dcn_def_t *da = &w->dcn, *db = &r->dcn;
    CHECK_EQ_INT(da->structure, db->structure);
    CHECK_EQ_SIZE(da->n_cross, db->n_cross);
    for (size_t l = 0; l < da->n_cross && l < db->n_cross; l++) {
        const ctr_cross_def_t *a = &da->cross[l], *b = &db->cross[l];
        size_t D = a->dim, R = a->rank;
        CHECK(a->dim == b->dim && a->rank == b->rank);
        CHECKF(same_floats(a->w, b->w, D * D) && same_floats(a->v, b->v, D * R) && same_floats(a->u, b->u, R * D) &&
               same_floats(a->bias, b->bias, D), "cross[%zu] tensors", l);
        CHECK(aligned(b->w) && aligned(b->v) && aligned(b->u) && aligned(b->bias));
    }
    cmp_layers("interaction.deep", da->deep.layers, da->deep.n, db->deep.layers, db->deep.n);
    const ctr_wukong_def_t *wa = &w->wukong, *wb = &r->wukong;
    CHECK_EQ_SIZE(wa->n_layers, wb->n_layers);
    CHECK_EQ_INT(wa->fmb_ln, wb->fmb_ln);
    CHECK_EQ_INT(wa->fmb_out_act, wb->fmb_out_act);
    CHECK_EQ_BITS(w->ln_eps, r->ln_eps);
    uint32_t d = w->n_cat ? w->cat[0].dim : 0;
    for (size_t i = 0; i < wa->n_layers && i < wb->n_layers; i++) {
        const ctr_wukong_layer_def_t *a = &wa->layers[i], *b = &wb->layers[i];
        size_t flat = (size_t)a->n_in * a->k;
        CHECK(a->n_in == b->n_in && a->n_f == b->n_f && a->n_l == b->n_l && a->k == b->k);
        CHECKF(same_floats(a->y, b->y, flat), "wukong %zu y", i);
        CHECKF(same_floats(a->fmb_ln_gamma, b->fmb_ln_gamma, flat) && same_floats(a->fmb_ln_beta, b->fmb_ln_beta, flat),
               "wukong %zu fmb_ln", i);
        cmp_layers("wukong fmb", a->fmb.layers, a->fmb.n, b->fmb.layers, b->fmb.n);
        CHECKF(same_floats(a->lcb, b->lcb, (size_t)a->n_l * a->n_in), "wukong %zu lcb", i);
        CHECKF(same_floats(a->res, b->res, (size_t)(a->n_f + a->n_l) * a->n_in), "wukong %zu res", i);
        CHECKF(same_floats(a->ln_gamma, b->ln_gamma, d) && same_floats(a->ln_beta, b->ln_beta, d), "wukong %zu ln", i);
        CHECK(aligned(b->y) && aligned(b->lcb) && aligned(b->res) && aligned(b->ln_gamma));
    }
    CHECK_EQ_STR(w->provenance_json, r->provenance_json);
}

/* ---- round trips ------------------------------------------------------------ */

static void test_round_trips(void)
{
    v2_opts_t opt;
    const char *label;
    char err[512];
    for (size_t e = 0; v2_example(e, &opt, &label); e++) {
        v2_model_t o;
        v2_build(&o, &opt, 100 + e);
        const char *path = test_path("rt.ctrm"), *path2 = test_path("rt2.ctrm");
        CHECKF(ctr_model_def_version(&o.def) == 2, "%s: version %u", label, ctr_model_def_version(&o.def));
        int rc = ctr_model_write(path, &o.def, NULL, NULL, err, sizeof(err));
        CHECKF(rc == 0, "%s: write: %s", label, err);
        ctr_model_t *m = NULL;
        rc = rc ? rc : ctr_model_open(path, &m, err, sizeof(err));
        CHECKF(rc == 0, "%s: open: %s", label, err);
        if (m) {
            const ctr_model_def_t *r = ctr_model_def(m);
            compare_v2(&o.def, r);
            CHECKF(ctr_model_input_dim(r) == ctr_model_input_dim(&o.def), "%s: input dim", label);
            CHECKF(ctr_model_slots(r) == ctr_model_slots(&o.def), "%s: slots", label);
            CHECKF(ctr_model_def_version(r) == 2, "%s", label);
            rc = ctr_model_verify(m, err, sizeof(err));
            CHECKF(rc == 0, "%s: verify: %s", label, err);
            size_t hlen;
            const char *h = ctr_model_header_json(m, &hlen);
            char want[64];
            snprintf(want, sizeof(want), "\"version\":2,\"name\":\"v2 test\",\"arch\":\"%s\",",
                     ctr_arch_name(opt.arch));
            CHECKF(strstr(h, want) != NULL, "%s: header %.200s", label, h);
            if (opt.share) {
                char sharer[32];
                snprintf(sharer, sizeof(sharer), "\"name\":\"emb.C%zu\"", opt.n_cat);
                CHECKF(strstr(h, "\"name\":\"emb.C1\"") && !strstr(h, sharer), "%s: a shared table is stored once",
                       label);
            }
            if (getenv("CTR_TEST_VERBOSE"))
                printf("%s (%zu bytes): %s\n", label, hlen, h);
            for (size_t i = 0; i < r->n_dense + r->n_cat; i++) {
                const char *nm = i < r->n_dense ? r->dense[i].name : r->cat[i - r->n_dense].name;
                CHECK(ctr_model_find_feature(m, nm, strlen(nm)) == (long)i);
            }
        }
        ctr_model_close(m);
        /* Same def, same bytes; the preamble says version 2. */
        CHECK(ctr_model_write(path2, &o.def, NULL, NULL, err, sizeof(err)) == 0);
        size_t la, lb;
        unsigned char *a = test_slurp(path, &la), *b = test_slurp(path2, &lb);
        CHECKF(a && b && la == lb && !memcmp(a, b, la), "%s: not byte-identical", label);
        CHECKF(a && la > 32 && rd32(a + 8) == 2, "%s: preamble version", label);
        CHECKF(la < 64 * 1024, "%s: %zu bytes (the fuzz seeds are these files)", label, la);
        free(a);
        free(b);
        unlink(path);
        unlink(path2);
        v2_free(&o);
    }
}

/* The plain MLP of model_v2_defs.h needs nothing new: version 1. */
static void test_version_choice(void)
{
    v2_opts_t opt = {.arch = CTR_ARCH_MLP, .n_dense = 2, .n_cat = 2, .d = 3, .buckets = 4};
    v2_model_t o;
    v2_build(&o, &opt, 1);
    CHECK(ctr_model_def_version(&o.def) == 1);
    char err[512];
    const char *path = test_path("v1.ctrm");
    CHECK(ctr_model_write(path, &o.def, NULL, NULL, err, sizeof(err)) == 0);
    size_t len;
    unsigned char *f = test_slurp(path, &len);
    CHECK(f && rd32(f + 8) == 1 && memmem(f, len, "\"version\":1,\"name\":\"v2 test\",\"schema\"", 37));
    CHECK(f && !memmem(f, len, "mapping", 7) && !memmem(f, len, "arch", 4));
    free(f);
    /* Each version-2 feature alone makes it version 2. */
    o.cat[1].bag_max = 1;
    CHECK(ctr_model_def_version(&o.def) == 2);
    o.cat[1].bag_max = 0;
    o.cat[1].mapping = CTR_MAP_MOD;
    o.cat[1].seed = 0;
    CHECK(ctr_model_def_version(&o.def) == 2);
    CHECK(ctr_model_write(path, &o.def, NULL, NULL, err, sizeof(err)) == 0);
    f = test_slurp(path, &len);
    CHECK(f && rd32(f + 8) == 2 && memmem(f, len, "\"arch\":\"mlp\"", 12) && memmem(f, len, "\"mapping\":\"mod\"", 15));
    free(f);
    unlink(path);
    v2_free(&o);
}

/* ---- streamed tables: the fill callback sees each owned table once -------- */

typedef struct {
    const ctr_cat_def_t *src;
    unsigned calls[V2_MAX_FEAT];
    uint64_t rows[V2_MAX_FEAT];
} fill_t;

static int fill_cb(void *vctx, size_t cat_index, uint64_t first_row, uint64_t n_rows, float *out)
{
    fill_t *f = vctx;
    CTR_ASSERT(cat_index < V2_MAX_FEAT);
    f->calls[cat_index]++;
    f->rows[cat_index] += n_rows;
    const ctr_cat_def_t *c = &f->src[cat_index];
    memcpy(out, c->table + first_row * c->dim, n_rows * c->dim * sizeof(float));
    return 0;
}

static void test_streamed_shared(void)
{
    v2_opts_t opt;
    CHECK(v2_example(3, &opt, NULL) && opt.share); /* dot, C4 shares C1 */
    v2_model_t o;
    v2_build(&o, &opt, 5);
    char err[512];
    const char *a = test_path("mem.ctrm"), *b = test_path("stream.ctrm");
    CHECK(ctr_model_write(a, &o.def, NULL, NULL, err, sizeof(err)) == 0);
    ctr_cat_def_t cat[V2_MAX_FEAT];
    memcpy(cat, o.cat, sizeof(cat));
    for (size_t j = 0; j < opt.n_cat; j++)
        cat[j].table = NULL;
    ctr_model_def_t def = o.def;
    def.cat = cat;
    fill_t f = {.src = o.cat};
    CHECKF(ctr_model_write(b, &def, fill_cb, &f, err, sizeof(err)) == 0, "%s", err);
    for (size_t j = 0; j < opt.n_cat; j++) {
        bool owner = !o.cat[j].shares;
        CHECKF(f.calls[j] == (owner ? 1u : 0u), "table %zu: %u fill calls", j, f.calls[j]);
        CHECKF(f.rows[j] == (owner ? o.cat[j].buckets + 1u : 0u), "table %zu: %" PRIu64 " rows", j, f.rows[j]);
    }
    size_t la, lb;
    unsigned char *fa = test_slurp(a, &la), *fb = test_slurp(b, &lb);
    CHECK(fa && fb && la == lb && !memcmp(fa, fb, la));
    free(fa);
    free(fb);
    /* A sharer without a table needs no callback; an owner does. */
    memcpy(cat, o.cat, sizeof(cat));
    cat[opt.n_cat - 1].table = NULL;
    CHECKF(ctr_model_write(b, &def, NULL, NULL, err, sizeof(err)) == 0, "%s", err);
    cat[0].table = NULL;
    CHECK(ctr_model_write(b, &def, NULL, NULL, err, sizeof(err)) == CTR_EINVAL && strstr(err, "\"C1\""));
    unlink(a);
    unlink(b);
    v2_free(&o);
}

/* ---- the writer refuses what the reader would ------------------------------ */

static void expect_write_fail(const char *label, const ctr_model_def_t *def, const char *substr)
{
    char err[512] = "";
    const char *path = test_path("refused.ctrm");
    int rc = ctr_model_write(path, def, NULL, NULL, err, sizeof(err));
    CHECKF(rc == CTR_EINVAL, "%s: write returned %d (%s)", label, rc, err);
    CHECKF(strstr(err, substr) != NULL, "%s: message \"%s\" does not mention \"%s\"", label, err, substr);
    if (getenv("CTR_TEST_VERBOSE"))
        printf("write %-28s -> %s\n", label, err);
    struct stat st;
    CHECKF(stat(path, &st) != 0, "%s: a file was left behind", label);
}

/* W(example, label, substr, edit): a fresh def of example index, edited
 * by the statement edit (o is the model, d its def), must be refused. */
#define W(ex, label, substr, edit)                                         \
    do {                                                                   \
        v2_opts_t opt_;                                                    \
        v2_model_t o;                                                      \
        CTR_ASSERT(v2_example((ex), &opt_, NULL));                         \
        v2_build(&o, &opt_, 7);                                            \
        ctr_model_def_t *d = &o.def;                                       \
        (void)d;                                                           \
        edit;                                                              \
        expect_write_fail(label, &o.def, substr);                          \
        v2_free(&o);                                                       \
    } while (0)

enum { MLP_BMS = 0, DOT = 2, DOT_SELF = 3, DOT_NODENSE = 4, DCN_RAW = 5, DCN_PAR = 6, WK = 8, WK_FLAT = 9 };

/* 64 bags of 1,024 values take 65,536 row slots, one over what an audit
 * record can hold: refused by the writer (and so by the reader, which runs
 * the same check), naming the schema. */
static void test_slot_limit(void)
{
    enum { NC = 64 };
    static ctr_cat_def_t cat[NC];
    static char names[NC][8];
    static float table[2], w[NC], b[1];
    for (size_t j = 0; j < NC; j++) {
        snprintf(names[j], sizeof names[j], "C%zu", j + 1);
        cat[j] = (ctr_cat_def_t){.name = names[j], .buckets = 1, .dim = 1, .seed = j, .table = table,
                                 .bag_max = CTR_MAX_BAG};
    }
    ctr_layer_def_t top = {NC, 1, w, b, 0};
    ctr_model_def_t def = {.name = "slots", .n_cat = NC, .cat = cat, .n_layers = 1, .layers = &top,
                           .activation = CTR_ACT_RELU, .beta = 1.0f};
    expect_write_fail("65,536 slots", &def, "schema.categorical: the features take 65536 row slots");
    cat[NC - 1].bag_max = CTR_MAX_BAG - 1;   /* 65,535: allowed */
    char err[256];
    CHECK_EQ_INT(ctr_model_write(test_path("slots.ctrm"), &def, NULL, NULL, err, sizeof err), 0);
}

static void test_writer_refusals(void)
{
    static float junk[64];
    W(DOT, "arch 7", "arch: unknown architecture 7", d->arch = (ctr_arch_t)7);
    W(MLP_BMS, "mlp with bottom", "bottom: arch mlp has no bottom MLP", (d->bottom.n = 1, d->bottom.layers = o.top));
    W(DOT, "dot with dcn", "interaction: dcn is set, but arch is dot", d->dcn.structure = CTR_DCN_PARALLEL);
    W(DOT, "dot with ln_eps", "wukong or ln_eps is set, but arch is dot", d->ln_eps = 1e-5f);
    W(DCN_RAW, "dcn with dot_self", "dot_order or dot_self is set, but arch is dcnv2", d->dot_self = 1);
    W(WK, "wukong with dcn", "dcn is set, but arch is wukong", d->dcn.n_cross = 1);
    W(MLP_BMS, "mapping 9", "schema.categorical[1].mapping: unknown mapping 9", o.cat[1].mapping = (ctr_mapping_t)9);
    W(MLP_BMS, "mod with seed", "schema.categorical[0].seed: is 3, but mapping mod has no seed",
      o.cat[0].seed = o.cat[2].seed = 3);
    W(MLP_BMS, "bag 1025", "schema.categorical[1].bag.max: is 1025, over the limit of 1024", o.cat[1].bag_max = 1025);
    W(MLP_BMS, "pool 5", "schema.categorical[1].bag.pool: unknown pool 5", o.cat[1].pool = (ctr_pool_t)5);
    W(DOT, "mean without bag", "schema.categorical[1].bag.pool: is mean on a single-valued feature",
      o.cat[1].pool = CTR_POOL_MEAN);
    W(MLP_BMS, "owner after", "schema.categorical[2].table: shares the table of schema.categorical[2], which does not",
      o.cat[2].shares = 3);
    W(DOT_SELF, "owner shares", "schema.categorical[3].table: shares the table of schema.categorical[2], which itself",
      (o.cat[2].shares = 1, o.cat[2].buckets = o.cat[0].buckets, o.cat[2].seed = o.cat[0].seed, o.cat[3].shares = 3));
    W(MLP_BMS, "sharer buckets", "schema.categorical[2].buckets: is 9 but its table's owner schema.categorical[0] (\"C1\") has 4",
      o.cat[2].buckets = 9);
    W(DOT_SELF, "sharer seed", "schema.categorical[3].seed: is 1 but its table's owner schema.categorical[0] (\"C1\") has 1000",
      o.cat[3].seed = 1);
    W(MLP_BMS, "sharer mapping", "schema.categorical[2].mapping: is hash but its table's owner", o.cat[2].mapping = CTR_MAP_HASH);
    W(MLP_BMS, "sharer pointer", "schema.categorical[2].table: \"C3\" shares the table of \"C1\" but points elsewhere",
      o.cat[2].table = junk);
    W(DOT, "dim != d", "schema.categorical[2].dim: is 5 but arch dot needs every embedding as wide as schema.categorical[0].dim, 4",
      o.cat[2].dim = 5);
    W(DOT, "no bottom", "bottom: arch dot needs a bottom MLP (dense -> d) for its 3 dense features", d->bottom.n = 0);
    W(DOT, "bottom in", "bottom.layers[0].in: is 4 but the number of dense features is 3", o.bottom[0].in = 4);
    W(DOT, "bottom out", "bottom.layers[1].out: is 5 but the embeddings are d = 4 wide", o.bottom[1].out = 5);
    W(DOT_NODENSE, "bottom without dense", "bottom: there are no dense features to feed it",
      (o.bottom[0] = o.top[0], d->bottom.n = 1, d->bottom.layers = o.bottom));
    W(DOT, "dot order 2", "interaction.order: unknown order 2", d->dot_order = (ctr_dot_order_t)2);
    W(DOT, "dot self 2", "interaction.self: expected 0 or 1 (got 2)", d->dot_self = 2);
    W(DCN_RAW, "cross dim", "interaction.cross[1].dim: is 7 but x_0 is 6 wide", o.cross[1].dim = 7);
    W(DCN_RAW, "rank > D", "interaction.cross[1].rank: is 7, more than dim 6", o.cross[1].rank = 7);
    W(DCN_RAW, "rank 0 with v", "interaction.cross[1]: a full-rank layer (rank 0) has a weight and no v or u",
      (o.cross[1].rank = 0, o.cross[1].w = junk));
    W(DCN_RAW, "low rank with w", "interaction.cross[0]: a low-rank layer (rank 2) has v and u and no weight",
      (o.cross[0].rank = 2, o.cross[0].v = o.cross[0].u = junk));
    W(DCN_RAW, "cross bias", "interaction.cross[2].bias: missing", o.cross[2].bias = NULL);
    W(DCN_RAW, "structure 3", "interaction.structure: unknown structure 3", d->dcn.structure = (ctr_dcn_structure_t)3);
    W(DCN_PAR, "parallel no deep", "interaction.deep: a parallel DCNv2 needs at least one deep layer",
      (d->dcn.deep.n = 0, d->dcn.deep.layers = NULL));
    W(DCN_PAR, "stacked with deep", "interaction.deep: 2 layers, but only a parallel DCNv2 has deep layers",
      d->dcn.structure = CTR_DCN_STACKED);
    W(DCN_PAR, "deep in", "interaction.deep[0].in: is 5 but x_0's width is 6", o.deep[0].in = 5);
    W(DCN_PAR, "top in", "mlp.layers[0].in: is 7 but the dcnv2 interaction gives 8", o.top[0].in = 7);
    W(WK, "ln_eps 0", "interaction.ln_eps: expected a finite number > 0 (got 0)", d->ln_eps = 0);
    W(WK, "ln_eps nan", "interaction.ln_eps: expected a finite number > 0", d->ln_eps = NAN);
    W(WK, "ln_eps inf", "interaction.ln_eps: expected a finite number > 0", d->ln_eps = INFINITY);
    W(WK, "fmb_ln 2", "interaction.fmb_ln: unknown fmb_ln 2", d->wukong.fmb_ln = (ctr_fmb_ln_t)2);
    W(WK, "n_in first", "interaction.layers[0].n_in: is 5, the schema gives n = 4 embeddings", o.wk[0].n_in = 5);
    W(WK, "n_in next", "interaction.layers[1].n_in: is 5, the previous layer gives 4 (n_f + n_l)", o.wk[1].n_in = 5);
    W(WK, "n_l 0", "interaction.layers[0]: n_in, n_f, n_l and k must be > 0", o.wk[0].n_l = 0);
    W(WK, "fmb in", "interaction.layers[0].fmb[0].in: is 9 but n_in * k (4 * 2) is 8", o.fmb[0][0].in = 9);
    W(WK, "fmb out", "interaction.layers[1].fmb[1].out: is 8 but n_f * d (3 * 4) is 12", o.fmb[1][1].out = 8);
    W(WK, "fmb empty", "interaction.layers[0].fmb: expected at least one layer", o.wk[0].fmb.n = 0);
    W(WK, "res identity", "interaction.layers[0].res: present, but n_f + n_l == n_in (4): the residual is the identity",
      o.wk[0].res = junk);
    W(WK, "res missing", "interaction.layers[1].res: missing: n_f + n_l (5) != n_in (4)", o.wk[1].res = NULL);
    W(WK, "lcb NULL", "interaction.layers[1].lcb: missing", o.wk[1].lcb = NULL);
    W(WK, "y NULL", "interaction.layers[0].y: missing", o.wk[0].y = NULL);
    W(WK, "ln_beta NULL", "interaction.layers[0].ln_beta: missing", o.wk[0].ln_beta = NULL);
    W(WK, "fmb_ln none + gamma", "interaction.layers[0].fmb_ln_gamma: present, but fmb_ln is none",
      o.wk[0].fmb_ln_gamma = junk);
    W(WK_FLAT, "fmb_ln flat no beta", "interaction.layers[2].fmb_ln_beta: missing, and fmb_ln is flat",
      o.wk[2].fmb_ln_beta = NULL);
    W(WK, "top in", "mlp.layers[0].in: is 21 but the wukong interaction gives 20", o.top[0].in = 21);
    W(WK, "fmb weight NULL", "interaction.layers[0].fmb[1]: in and out must be > 0, weight and bias non-NULL",
      o.fmb[0][1].weight = NULL);
}
#undef W

/* ---- the reader refuses edited headers -------------------------------------- */

typedef struct {
    unsigned char *bytes;
    size_t len, hlen, doff;
    char *header;
} base_t;

static void base_write(base_t *b, const ctr_model_def_t *def)
{
    char err[512];
    const char *path = test_path("base.ctrm");
    CTR_ASSERT(ctr_model_write(path, def, NULL, NULL, err, sizeof(err)) == 0);
    b->bytes = test_slurp(path, &b->len);
    CTR_ASSERT(b->bytes && b->len >= 32);
    b->hlen = rd64(b->bytes + 16);
    b->doff = rd64(b->bytes + 24);
    b->header = strndup((const char *)b->bytes + 32, b->hlen);
    unlink(path);
}

static void base_example(base_t *b, size_t ex)
{
    v2_opts_t opt;
    v2_model_t o;
    CTR_ASSERT(v2_example(ex, &opt, NULL));
    v2_build(&o, &opt, 11);
    base_write(b, &o.def);
    v2_free(&o);
}

static void base_free(base_t *b)
{
    free(b->bytes);
    free(b->header);
}

/* A file with header text h in front of b's data, preamble version ver. */
static unsigned char *with_header(const base_t *b, const char *h, uint32_t ver, size_t *len)
{
    size_t hl = strlen(h), doff = (32 + hl + 63) & ~(size_t)63, data = b->len - b->doff;
    *len = doff + data;
    unsigned char *f = calloc(1, *len);
    CTR_ASSERT(f);
    memcpy(f, b->bytes, 32);
    memcpy(f + 8, &ver, 4);
    uint64_t v = hl;
    memcpy(f + 16, &v, 8);
    v = doff;
    memcpy(f + 24, &v, 8);
    memcpy(f + 32, h, hl);
    memcpy(f + doff, b->bytes + b->doff, data);
    return f;
}

static int open_bytes(const unsigned char *f, size_t len, char *err, size_t errlen, ctr_model_t **keep)
{
    const char *path = test_path("mut.ctrm");
    test_spit(path, f, len);
    ctr_model_t *m = NULL;
    err[0] = '\0';
    int rc = ctr_model_open(path, &m, err, errlen);
    if (rc)
        CHECKF(m == NULL, "a failed open left a model");
    if (keep)
        *keep = m;
    else
        ctr_model_close(m);
    return rc;
}

/* Sets (value non-NULL, stolen) or deletes the member at a dotted path of
 * object keys and array indexes ("interaction.layers.1.n_in"); an index
 * equal to the array's size appends. */
static void json_edit(json_t *root, const char *path, json_t *value)
{
    char buf[160];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *parent = root;
    char *key = buf, *dot;
    while ((dot = strchr(key, '.'))) {
        *dot = '\0';
        parent = json_is_array(parent) ? json_array_get(parent, (size_t)atoi(key)) : json_object_get(parent, key);
        CTR_ASSERT(parent);
        key = dot + 1;
    }
    if (json_is_array(parent)) {
        size_t i = (size_t)atoi(key);
        if (!value)
            json_array_remove(parent, i);
        else if (i == json_array_size(parent))
            json_array_append_new(parent, value);
        else
            json_array_set_new(parent, i, value);
    } else if (!value) {
        CTR_ASSERT(json_object_del(parent, key) == 0);
    } else {
        json_object_set_new(parent, key, value);
    }
}

/* "tensors.<i>" of the tensor named name, into out. */
static char *tensor_path(const base_t *b, const char *name, char *out, size_t outlen)
{
    json_t *root = json_loads(b->header, 0, NULL), *t;
    size_t i;
    out[0] = '\0';
    json_array_foreach(json_object_get(root, "tensors"), i, t)
        if (!strcmp(json_string_value(json_object_get(t, "name")), name))
            snprintf(out, outlen, "tensors.%zu", i);
    json_decref(root);
    CTR_ASSERT(out[0]);
    return out;
}

/* R(base, label, code, substr, path1, value1, path2, value2, ..., NULL):
 * b's header with each edit applied must be refused with code and a
 * message containing substr (code 0: it must open). */
static void R(const base_t *b, const char *label, int code, const char *substr, ...)
{
    json_t *root = json_loads(b->header, 0, NULL);
    CTR_ASSERT(root);
    va_list ap;
    va_start(ap, substr);
    const char *path;
    while ((path = va_arg(ap, const char *))) {
        json_t *value = va_arg(ap, json_t *);
        json_edit(root, path, value);
    }
    va_end(ap);
    char *h = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(root);
    size_t len;
    unsigned char *f = with_header(b, h, rd32(b->bytes + 8), &len);
    char err[512];
    int rc = open_bytes(f, len, err, sizeof(err), NULL);
    CHECKF(rc == code, "%s: open returned %d (%s), want %d", label, rc, err, code);
    CHECKF(!code || strstr(err, substr), "%s: message \"%s\" does not mention \"%s\"", label, err, substr);
    if (getenv("CTR_TEST_VERBOSE"))
        printf("read  %-28s -> %s\n", label, err);
    free(f);
    free(h);
}

#define S(x) json_string(x)
#define I(x) json_integer(x)
#define DEL ((json_t *)NULL)

static void test_reader_refusals(void)
{
    base_t mlp, dot, nodense, dcn, par, wk, flat, dself;
    base_example(&mlp, MLP_BMS);
    base_example(&dot, DOT);
    base_example(&dself, DOT_SELF);
    base_example(&nodense, DOT_NODENSE);
    base_example(&dcn, DCN_RAW);
    base_example(&par, DCN_PAR);
    base_example(&wk, WK);
    base_example(&flat, WK_FLAT);
    char tp[64];
    const int F = CTR_EFORMAT, U = CTR_EUNSUPPORTED;

    /* Unedited files open (so every refusal below is the edit's doing). */
    R(&mlp, "mlp as is", 0, NULL, NULL);
    R(&wk, "wukong as is", 0, NULL, NULL);
    R(&dot, "key order is free", 0, NULL, "arch", DEL, "arch", S("dot"), NULL);

    /* arch */
    R(&dot, "arch unknown", U, "header: arch: unknown arch \"fm\" (this build knows mlp, dot, dcnv2, wukong)",
      "arch", S("fm"), NULL);
    R(&dot, "arch missing", F, "header: arch: missing", "arch", DEL, NULL);
    R(&dot, "arch type", F, "header: arch: expected a string (got 1)", "arch", I(1), NULL);
    R(&dot, "arch switched", F, "header: interaction: unknown key \"order\"", "arch", S("wukong"), NULL);
    R(&mlp, "interaction on mlp", F, "header: interaction: arch mlp has no interaction", "interaction",
      json_pack("{s:s,s:b}", "order", "lower", "self", 0), NULL);
    R(&mlp, "bottom on mlp", F, "header: bottom: arch mlp has no bottom MLP", "bottom",
      json_pack("{s:[]}", "layers"), NULL);
    R(&dot, "interaction missing", F, "header: interaction: missing", "interaction", DEL, NULL);
    R(&dot, "interaction type", F, "header: interaction: expected an object", "interaction", I(3), NULL);
    R(&dot, "top-level unknown", F, "header: top level: unknown key \"cross\"", "cross", json_array(), NULL);
    R(&dot, "json version 1", F, "header: version: 1 does not match the preamble's version 2", "version", I(1), NULL);

    /* categorical: mapping, bag, sharing */
    R(&mlp, "mapping missing", F, "header: schema.categorical[1].mapping: missing", "schema.categorical.1.mapping",
      DEL, NULL);
    R(&mlp, "mapping unknown", U, "schema.categorical[1].mapping: unknown mapping \"identity\" (this build knows hash, mod)",
      "schema.categorical.1.mapping", S("identity"), NULL);
    R(&mlp, "mod with seed", F, "header: schema.categorical[0].seed: belongs to mapping hash only",
      "schema.categorical.0.seed", S("1"), NULL);
    R(&mlp, "mod with hash", F, "header: schema.categorical[0].hash: belongs to mapping hash only",
      "schema.categorical.0.hash", S("xxh3_64"), NULL);
    R(&mlp, "hash without seed", F, "header: schema.categorical[1].seed: missing", "schema.categorical.1.seed", DEL,
      NULL);
    R(&mlp, "bag max 0", F, "header: schema.categorical[0].bag.max: expected an integer in 1..1024 (got 0)",
      "schema.categorical.0.bag.max", I(0), NULL);
    R(&mlp, "bag max 1025", F, "schema.categorical[0].bag.max: expected an integer in 1..1024 (got 1025)",
      "schema.categorical.0.bag.max", I(1025), NULL);
    R(&mlp, "bag max 1024", 0, NULL, "schema.categorical.0.bag.max", I(1024), NULL);
    R(&mlp, "bag pool", U, "schema.categorical[1].bag.pool: unknown pool \"max\" (this build knows sum, mean)",
      "schema.categorical.1.bag.pool", S("max"), NULL);
    R(&mlp, "bag pool missing", F, "schema.categorical[1].bag.pool: missing", "schema.categorical.1.bag.pool", DEL,
      NULL);
    R(&mlp, "bag key", F, "header: schema.categorical[0].bag: unknown key \"min\"", "schema.categorical.0.bag.min",
      I(1), NULL);
    R(&mlp, "bag type", F, "header: schema.categorical[0].bag: expected an object (got 3)", "schema.categorical.0.bag",
      I(3), NULL);
    R(&mlp, "sharer buckets", F,
      "header: schema.categorical[2].buckets: is 7 but its table's owner schema.categorical[0] (\"C1\") has 4",
      "schema.categorical.2.buckets", I(7), NULL);
    R(&mlp, "sharer dim", F, "header: schema.categorical[2].dim: is 3 but its table's owner schema.categorical[0] (\"C1\") has 2",
      "schema.categorical.2.dim", I(3), NULL);
    R(&mlp, "sharer mapping", F, "header: schema.categorical[2].mapping: is hash but its table's owner schema.categorical[0] (\"C1\") has mod",
      "schema.categorical.2.mapping", S("hash"), "schema.categorical.2.seed", S("0"), "schema.categorical.2.hash",
      S("xxh3_64"), NULL);
    R(&dself, "sharer seed", F, "header: schema.categorical[3].seed: is 7 but its table's owner schema.categorical[0] (\"C1\") has 1000",
      "schema.categorical.3.seed", S("7"), NULL);
    R(&mlp, "table names a weight", F, "header: mlp.layers[0].weight: tensor \"mlp.0.weight\" is used twice",
      "schema.categorical.2.table", S("mlp.0.weight"), NULL);
    R(&dot, "weight names a table", F, "header: mlp.layers[1].weight: tensor \"emb.C1\" is used twice",
      "mlp.layers.1.weight", S("emb.C1"), NULL);
    R(&dot, "shared in v2 only if equal", F, "header: schema.categorical[1].buckets: is 6 but its table's owner",
      "schema.categorical.1.table", S("emb.C1"), NULL);

    /* the embeddings and the bottom MLP */
    R(&dot, "dim != d", F, "header: schema.categorical[1].dim: is 5 but arch dot needs every embedding as wide as schema.categorical[0].dim, 4",
      "schema.categorical.1.dim", I(5), NULL);
    R(&dot, "bottom missing", F, "header: bottom: arch dot needs a bottom MLP (dense -> d) for its 3 dense features",
      "bottom", DEL, NULL);
    R(&dot, "bottom empty", F, "header: bottom.layers: expected at least one layer", "bottom.layers", json_array(), NULL);
    R(&dot, "bottom key", F, "header: bottom: unknown key \"act\"", "bottom.act", S("relu"), NULL);
    R(&dot, "bottom in", F, "header: bottom.layers[0].in: is 4 but the number of dense features is 3",
      "bottom.layers.0.in", I(4), NULL);
    R(&dot, "bottom chain", F, "header: bottom.layers[1].in: is 4 but the previous layer's out is 3",
      "bottom.layers.1.in", I(4), NULL);
    R(&dot, "bottom out", F, "header: bottom.layers[1].out: is 5 but the embeddings are d = 4 wide",
      "bottom.layers.1.out", I(5), NULL);
    R(&nodense, "bottom without dense", F, "header: bottom: there are no dense features to feed it", "bottom",
      json_pack("{s:[{s:i,s:i,s:s,s:s}]}", "layers", "in", 1, "out", 3, "weight", "mlp.0.weight", "bias",
                "mlp.0.bias"), NULL);

    /* dot */
    R(&dot, "dot order", U, "header: interaction.order: unknown order \"diag\" (this build knows lower, upper)",
      "interaction.order", S("diag"), NULL);
    R(&dot, "dot self type", F, "header: interaction.self: expected true or false (got 0)", "interaction.self", I(0),
      NULL);
    R(&dot, "dot self missing", F, "header: interaction.self: missing", "interaction.self", DEL, NULL);
    R(&dot, "dot top in", F, "header: mlp.layers[0].in: is 4 but the dot interaction gives 10", "mlp.layers.0.in",
      I(4), NULL);
    R(&dot, "dot self changes the width", F, "the dot interaction gives 14", "interaction.self", json_true(), NULL);

    /* dcnv2 */
    R(&dcn, "cross dim", F, "header: interaction.cross[0].dim: is 7 but x_0 is 6 wide (the dense values, then the embeddings)",
      "interaction.cross.0.dim", I(7), NULL);
    R(&par, "cross dim bottom", F, "header: interaction.cross[1].dim: is 7 but x_0 is 6 wide (flatten(X): n embeddings of d)",
      "interaction.cross.1.dim", I(7), NULL);
    R(&dcn, "rank > D", F, "header: interaction.cross[1].rank: is 7, more than dim 6 (rank 0 is full rank)",
      "interaction.cross.1.rank", I(7), NULL);
    R(&dcn, "rank 0 with v u", F, "header: interaction.cross[1]: a full-rank layer (rank 0) has a weight and no v or u",
      "interaction.cross.1.rank", I(0), NULL);
    R(&dcn, "low rank with weight", F, "header: interaction.cross[0]: a low-rank layer (rank 2) has v and u and no weight",
      "interaction.cross.0.rank", I(2), NULL);
    R(&dcn, "rank negative", F, "header: interaction.cross[0].rank: expected an integer >= 0 and < 2^32 (got -1)",
      "interaction.cross.0.rank", I(-1), NULL);
    R(&dcn, "cross key", F, "header: interaction.cross[0]: unknown key \"w\"", "interaction.cross.0.w", S("x"), NULL);
    R(&dcn, "cross bias missing", F, "header: interaction.cross[2].bias: missing", "interaction.cross.2.bias", DEL,
      NULL);
    R(&dcn, "structure", U, "header: interaction.structure: unknown structure \"serial\" (this build knows stacked, parallel)",
      "interaction.structure", S("serial"), NULL);
    R(&dcn, "deep missing", F, "header: interaction.deep: missing", "interaction.deep", DEL, NULL);
    R(&par, "parallel no deep", F, "header: interaction.deep: a parallel DCNv2 needs at least one deep layer",
      "interaction.deep", json_array(), NULL);
    R(&par, "stacked with deep", F, "header: interaction.deep: 2 layers, but only a parallel DCNv2 has deep layers",
      "interaction.structure", S("stacked"), NULL);
    R(&par, "deep in", F, "header: interaction.deep[0].in: is 5 but x_0's width is 6", "interaction.deep.0.in", I(5),
      NULL);
    R(&par, "dcn top in", F, "header: mlp.layers[0].in: is 9 but the dcnv2 interaction gives 8", "mlp.layers.0.in",
      I(9), NULL);
    R(&dcn, "cross v shape", F, "tensor \"cross.1.v\": shape [2,6] does not match interaction.cross[1].v (expected [6,2])",
      strcat(tensor_path(&dcn, "cross.1.v", tp, sizeof(tp)), ".shape"), json_pack("[i,i]", 2, 6), NULL);

    /* wukong */
    R(&wk, "n_in first", F, "header: interaction.layers[0].n_in: is 5, the schema gives n = 4 embeddings",
      "interaction.layers.0.n_in", I(5), NULL);
    R(&wk, "n_in next", F, "header: interaction.layers[1].n_in: is 5, the previous layer gives 4 (n_f + n_l)",
      "interaction.layers.1.n_in", I(5), NULL);
    R(&wk, "n_f 0", F, "header: interaction.layers[0].n_f: expected an integer > 0 and < 2^32 (got 0)",
      "interaction.layers.0.n_f", I(0), NULL);
    R(&wk, "k missing", F, "header: interaction.layers[0].k: missing", "interaction.layers.0.k", DEL, NULL);
    R(&wk, "fmb in", F, "header: interaction.layers[0].fmb[0].in: is 9 but n_in * k (4 * 2) is 8",
      "interaction.layers.0.fmb.0.in", I(9), NULL);
    R(&wk, "fmb out", F, "header: interaction.layers[0].fmb[1].out: is 9 but n_f * d (2 * 4) is 8",
      "interaction.layers.0.fmb.1.out", I(9), NULL);
    R(&wk, "fmb empty", F, "header: interaction.layers[0].fmb: expected at least one layer",
      "interaction.layers.0.fmb", json_array(), NULL);
    R(&wk, "res identity", F, "header: interaction.layers[0].res: present, but n_f + n_l == n_in (4): the residual is the identity",
      "interaction.layers.0.res", S("wukong.1.res"), NULL);
    R(&wk, "res missing", F, "header: interaction.layers[1].res: missing: n_f + n_l (5) != n_in (4) needs a learned residual",
      "interaction.layers.1.res", DEL, NULL);
    R(&wk, "fmb_ln none + gamma", F, "header: interaction.layers[0].fmb_ln_gamma: present, but fmb_ln is none",
      "interaction.layers.0.fmb_ln_gamma", S("wukong.0.y"), NULL);
    R(&flat, "fmb_ln flat no gamma", F, "header: interaction.layers[1].fmb_ln_gamma: missing, and fmb_ln is flat",
      "interaction.layers.1.fmb_ln_gamma", DEL, NULL);
    R(&flat, "fmb_ln switched", F, "header: interaction.layers[0].fmb_ln_gamma: present, but fmb_ln is none",
      "interaction.fmb_ln", S("none"), NULL);
    R(&wk, "fmb_ln unknown", U, "header: interaction.fmb_ln: unknown fmb_ln \"per_row\" (this build knows none, flat)",
      "interaction.fmb_ln", S("per_row"), NULL);
    R(&wk, "fmb_out_act type", F, "header: interaction.fmb_out_act: expected true or false (got 1)",
      "interaction.fmb_out_act", I(1), NULL);
    R(&wk, "ln_eps 0", F, "header: interaction.ln_eps: expected a number > 0 that fits a float (got 0)",
      "interaction.ln_eps", I(0), NULL);
    R(&wk, "ln_eps negative", F, "interaction.ln_eps: expected a number > 0", "interaction.ln_eps",
      json_real(-1e-5), NULL);
    R(&wk, "ln_eps huge", F, "interaction.ln_eps: expected a number > 0 that fits a float (got 1e+39)",
      "interaction.ln_eps", json_real(1e39), NULL);
    R(&wk, "ln_eps tiny", F, "interaction.ln_eps: expected a number > 0 that fits a float", "interaction.ln_eps",
      json_real(1e-50), NULL);
    R(&wk, "ln_eps string", F, "header: interaction.ln_eps: expected a finite number (got \"1e-5\")",
      "interaction.ln_eps", S("1e-5"), NULL);
    R(&wk, "ln_eps missing", F, "header: interaction.ln_eps: missing", "interaction.ln_eps", DEL, NULL);
    R(&wk, "layer key", F, "header: interaction.layers[1]: unknown key \"gate\"", "interaction.layers.1.gate", S("x"),
      NULL);
    R(&wk, "wukong top in", F, "header: mlp.layers[0].in: is 21 but the wukong interaction gives 20",
      "mlp.layers.0.in", I(21), NULL);
    R(&wk, "tensor used twice", F, "header: interaction.layers[0].lcb: tensor \"wukong.0.y\" is used twice",
      "interaction.layers.0.lcb", S("wukong.0.y"), NULL);
    R(&wk, "tensor not there", F, "header: interaction.layers[1].y: tensor \"nope\" is not in tensors",
      "interaction.layers.1.y", S("nope"), NULL);
    /* Shapes of the tensors themselves, same byte size, other dims. */
    R(&wk, "lcb shape", F, "tensor \"wukong.0.lcb\": shape [4,2] does not match interaction.layers[0].lcb (expected [2,4])",
      strcat(tensor_path(&wk, "wukong.0.lcb", tp, sizeof(tp)), ".shape"), json_pack("[i,i]", 4, 2), NULL);
    R(&wk, "res shape", F, "tensor \"wukong.1.res\": shape [4,5] does not match interaction.layers[1].res (expected [5,4])",
      strcat(tensor_path(&wk, "wukong.1.res", tp, sizeof(tp)), ".shape"), json_pack("[i,i]", 4, 5), NULL);
    R(&wk, "ln_gamma shape", F, "tensor \"wukong.0.ln.gamma\": shape [1,4] does not match interaction.layers[0].ln_gamma (expected [4])",
      strcat(tensor_path(&wk, "wukong.0.ln.gamma", tp, sizeof(tp)), ".shape"), json_pack("[i,i]", 1, 4), NULL);
    R(&wk, "y shape", F, "tensor \"wukong.1.y\": shape [2,4] does not match interaction.layers[1].y (expected [4,2])",
      strcat(tensor_path(&wk, "wukong.1.y", tp, sizeof(tp)), ".shape"), json_pack("[i,i]", 2, 4), NULL);
    R(&flat, "fmb_ln shape", F, "tensor \"wukong.0.fmb_ln.gamma\": shape [1,9] does not match interaction.layers[0].fmb_ln_gamma (expected [9])",
      strcat(tensor_path(&flat, "wukong.0.fmb_ln.gamma", tp, sizeof(tp)), ".shape"), json_pack("[i,i]", 1, 9), NULL);

    base_free(&mlp);
    base_free(&dot);
    base_free(&dself);
    base_free(&nodense);
    base_free(&dcn);
    base_free(&par);
    base_free(&wk);
    base_free(&flat);
}

/* A table that nobody references once its feature shares another. */
static void test_unreferenced_table(void)
{
    v2_opts_t opt;
    v2_model_t o;
    CTR_ASSERT(v2_example(MLP_BMS, &opt, NULL));
    opt.share = false;
    v2_build(&o, &opt, 3);
    o.cat[2].buckets = o.cat[0].buckets; /* could share C1's table: same shape, mapping, seed */
    o.cat[2].mapping = CTR_MAP_MOD;
    o.cat[2].seed = 0;
    base_t b;
    base_write(&b, &o.def);
    R(&b, "own table", 0, NULL, NULL);
    R(&b, "unreferenced", CTR_EFORMAT, "tensor \"emb.C3\": not used by the schema or the graph",
      "schema.categorical.2.table", S("emb.C1"), NULL);
    base_free(&b);
    v2_free(&o);
}

/* Version 1 refuses every version-2 key; a version-2 MLP need not come
 * from this writer: one converted by hand from a version-1 header opens
 * to the same model. */
static void test_v1_and_hand_written_v2(void)
{
    v2_opts_t opt = {.arch = CTR_ARCH_MLP, .n_dense = 3, .n_cat = 3, .d = 2, .buckets = 5};
    v2_model_t o;
    v2_build(&o, &opt, 9);
    base_t b;
    base_write(&b, &o.def);
    CHECK(rd32(b.bytes + 8) == 1);
    R(&b, "v1 as is", 0, NULL, NULL);
    R(&b, "v1 arch", CTR_EFORMAT, "header: top level: unknown key \"arch\"", "arch", S("mlp"), NULL);
    R(&b, "v1 mapping", CTR_EFORMAT, "header: schema.categorical[0]: unknown key \"mapping\"",
      "schema.categorical.0.mapping", S("hash"), NULL);
    R(&b, "v1 bag", CTR_EFORMAT, "header: schema.categorical[1]: unknown key \"bag\"", "schema.categorical.1.bag",
      json_pack("{s:i,s:s}", "max", 2, "pool", "sum"), NULL);
    R(&b, "v1 bottom", CTR_EFORMAT, "header: top level: unknown key \"bottom\"", "bottom", json_object(), NULL);
    R(&b, "v1 shares", CTR_EFORMAT, "tensor \"emb.C1\" is used twice", "schema.categorical.1.table", S("emb.C1"),
      NULL);

    /* By hand: version 2, "mapping" on every categorical, "arch" last. */
    const char *h =
        "{\"format\":\"ctrm\",\"version\":2,\"name\":\"v2 test\",\"schema\":%s,\"mlp\":%s,\"tensors\":%s,"
        "\"data_bytes\":%s,\"provenance\":{\"by\":\"hand\"},\"arch\":\"mlp\"}";
    json_t *root = json_loads(b.header, 0, NULL), *c;
    size_t j;
    json_array_foreach(json_object_get(json_object_get(root, "schema"), "categorical"), j, c)
        json_object_set_new(c, "mapping", json_string("hash"));
    char *schema = json_dumps(json_object_get(root, "schema"), JSON_COMPACT);
    char *mlp = json_dumps(json_object_get(root, "mlp"), JSON_COMPACT);
    char *tensors = json_dumps(json_object_get(root, "tensors"), JSON_COMPACT);
    char *db = json_dumps(json_object_get(root, "data_bytes"), JSON_ENCODE_ANY);
    size_t cap = strlen(h) + strlen(schema) + strlen(mlp) + strlen(tensors) + strlen(db) + 1;
    char *text = malloc(cap);
    snprintf(text, cap, h, schema, mlp, tensors, db);
    size_t len;
    unsigned char *f = with_header(&b, text, 2, &len);
    char err[512];
    ctr_model_t *m = NULL;
    CHECKF(open_bytes(f, len, err, sizeof(err), &m) == 0, "hand-written v2 mlp: %s", err);
    if (m) {
        ctr_model_def_t want = o.def;
        want.provenance_json = "{\"by\":\"hand\"}";
        compare_v2(&want, ctr_model_def(m));
        CHECK(ctr_model_verify(m, err, sizeof(err)) == 0);
        CHECK(ctr_model_def_version(ctr_model_def(m)) == 1); /* and our writer would write it as version 1 */
    }
    ctr_model_close(m);
    /* The same header behind a version-1 preamble is refused. */
    free(f);
    f = with_header(&b, text, 1, &len);
    CHECK(open_bytes(f, len, err, sizeof(err), NULL) == CTR_EFORMAT && strstr(err, "unknown key \"arch\""));
    free(f);
    free(text);
    free(schema);
    free(mlp);
    free(tensors);
    free(db);
    json_decref(root);
    base_free(&b);
    v2_free(&o);
}

/* ---- random damage ------------------------------------------------------- */

static double sum_floats(const float *p, size_t n)
{
    double s = 0;
    for (size_t i = 0; p && i < n; i++)
        s += p[i];
    return s;
}

static double sum_layers(const ctr_layer_def_t *L, size_t n)
{
    double s = 0;
    for (size_t l = 0; l < n; l++)
    {
        for (size_t i = 0; i < L[l].in; i++)
            s += sum_floats(L[l].weight + i * ldw_of(&L[l]), L[l].out);
        s += sum_floats(L[l].bias, L[l].out);
    }
    return s;
}

/* Reads every float a loaded model exposes, so ASan sees any bad pointer. */
static double touch_model(const ctr_model_def_t *d)
{
    double s = sum_layers(d->layers, d->n_layers) + sum_layers(d->bottom.layers, d->bottom.n);
    uint64_t dim = d->n_cat ? d->cat[0].dim : 0;
    for (size_t j = 0; j < d->n_cat; j++)
        s += sum_floats(d->cat[j].table, ((size_t)d->cat[j].buckets + 1) * d->cat[j].dim);
    for (size_t l = 0; l < d->dcn.n_cross; l++) {
        const ctr_cross_def_t *x = &d->dcn.cross[l];
        s += sum_floats(x->w, (size_t)x->dim * x->dim) + sum_floats(x->v, (size_t)x->dim * x->rank) +
             sum_floats(x->u, (size_t)x->rank * x->dim) + sum_floats(x->bias, x->dim);
    }
    s += sum_layers(d->dcn.deep.layers, d->dcn.deep.n);
    for (size_t i = 0; i < d->wukong.n_layers; i++) {
        const ctr_wukong_layer_def_t *L = &d->wukong.layers[i];
        size_t flat = (size_t)L->n_in * L->k;
        s += sum_floats(L->y, flat) + sum_floats(L->fmb_ln_gamma, flat) + sum_floats(L->fmb_ln_beta, flat) +
             sum_layers(L->fmb.layers, L->fmb.n) + sum_floats(L->lcb, (size_t)L->n_l * L->n_in) +
             sum_floats(L->res, (size_t)(L->n_f + L->n_l) * L->n_in) + sum_floats(L->ln_gamma, dim) +
             sum_floats(L->ln_beta, dim);
    }
    return s;
}

static void test_random_mutations(void)
{
    test_rng_t rng = {777};
    size_t n = 400, opened = 0, refused = 0;
    if (getenv("CTR_TEST_MUTATIONS"))
        n = strtoul(getenv("CTR_TEST_MUTATIONS"), NULL, 10);
    double sink = 0;
    char err[512];
    for (size_t e = 0;; e++) {
        v2_opts_t opt;
        if (!v2_example(e, &opt, NULL))
            break;
        base_t b;
        base_example(&b, e);
        unsigned char *f = malloc(b.len);
        CTR_ASSERT(f);
        for (size_t it = 0; it < n; it++) {
            memcpy(f, b.bytes, b.len);
            size_t len = b.len, at;
            int kind = (int)(test_rng_next(&rng) % 3);
            for (int k = 0, flips = 1 + (int)(test_rng_next(&rng) % 3); k < flips; k++) {
                if (kind == 0) { /* a digit for another: the JSON stays valid */
                    do
                        at = 32 + test_rng_next(&rng) % b.hlen;
                    while (f[at] < '0' || f[at] > '9');
                    f[at] = (unsigned char)('0' + test_rng_next(&rng) % 10);
                } else if (kind == 1) { /* any header byte */
                    at = 32 + test_rng_next(&rng) % b.hlen;
                    f[at] = (unsigned char)test_rng_next(&rng);
                } else { /* data bytes, maybe a truncation */
                    at = b.doff + test_rng_next(&rng) % (b.len - b.doff);
                    f[at] ^= (unsigned char)(1 + test_rng_next(&rng) % 255);
                    if (test_rng_next(&rng) % 4 == 0)
                        len = test_rng_next(&rng) % b.len;
                }
            }
            ctr_model_t *m = NULL;
            int rc = open_bytes(f, len, err, sizeof(err), &m);
            if (rc == 0) {
                opened++;
                sink += touch_model(ctr_model_def(m));
                (void)ctr_model_verify(m, err, sizeof(err));
                ctr_model_close(m);
            } else {
                refused++;
                CHECKF(rc == CTR_EFORMAT || rc == CTR_EUNSUPPORTED, "example %zu mutation %zu: code %d (%s)", e, it,
                       rc, err);
                CHECKF(err[0] != '\0', "example %zu mutation %zu: no message", e, it);
            }
        }
        free(f);
        base_free(&b);
    }
    printf("random mutations: %zu opened, %zu refused (sink %g)\n", opened, refused, sink);
}

int main(void)
{
    test_round_trips();
    test_version_choice();
    test_streamed_shared();
    test_writer_refusals();
    test_slot_limit();
    test_reader_refusals();
    test_unreferenced_table();
    test_v1_and_hand_written_v2();
    test_random_mutations();
    unlink(test_path("mut.ctrm"));
    rmdir(test_tmpdir());
    return test_main_end();
}
