/* kernels.c - the scalar reference dense-layer kernel, CPU feature
 * detection and the table of kernel variants.
 *
 * The scalar kernel is the definition (ctr/kernels.h): one fmaf chain per
 * output, bias first, inputs in ascending order, activation at the end.
 * fmaf is correctly rounded, so any variant that runs the same chain with
 * hardware FMA gives the same bits. This file is compiled without -m flags;
 * the per-ISA files are only called after the checks below said the CPU
 * and the OS support them. */
#include "ctr/kernels.h"

#include <cpuid.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "kernels_int.h"

/* Loops over i outermost and keeps each output's running sum in its y
 * slot: the chain per output is still bias, then i = 0, 1, ..., in-1, and a
 * float stored and reloaded is exact, but w is read in order. y must not
 * overlap x, w or bias (true of every caller: layers ping-pong buffers). */
void ctr__linear_scalar(const float *x, size_t ldx, size_t rows, size_t in,
                        const float *w, size_t ldw, const float *bias, size_t out,
                        float *y, size_t ldy, ctr_activation_t act, float beta)
{
    float c = ctr__smelu_scale(beta);
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        float *yr = y + r * ldy;
        for (size_t o = 0; o < out; o++)
            yr[o] = bias[o];
        for (size_t i = 0; i < in; i++) {
            const float xi = xr[i];
            const float *wi = w + i * ldw;
            for (size_t o = 0; o < out; o++)
                yr[o] = fmaf(xi, wi[o], yr[o]);
        }
        if (act != CTR_ACT_NONE)
            for (size_t o = 0; o < out; o++)
                yr[o] = ctr__act(yr[o], act, beta, c);
    }
}

float ctr_smelu(float x, float beta)
{
    return ctr__act(x, CTR_ACT_SMELU, beta, ctr__smelu_scale(beta));
}

/* 0, (x + beta) / (2 beta), 1 on the regions of ctr_smelu, the middle one
 * computed as (x + beta) * (0.5f / beta). At x = +-beta exactly the outer
 * regions win, as in ctr_smelu: slope 0 at -beta, 1 at +beta, which is
 * also the limit of the middle formula there. */
float ctr_smelu_grad(float x, float beta)
{
    if (x <= -beta)
        return 0.0f;
    if (x >= beta)
        return 1.0f;
    return (x + beta) * (0.5f / beta);
}

/* ---- CPU detection -------------------------------------------------- */

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* Leaf 1: FMA (ecx 12), OSXSAVE (ecx 27), AVX (ecx 28). The OS must also
 * have enabled XMM and YMM state in XCR0 (bits 1, 2), or the first ymm
 * instruction faults. Returns XCR0, or 0 when any of that is missing. */
static uint64_t avx_os_state(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(1, 0, &a, &b, &c, &d))
        return 0;
    const unsigned need = (1u << 12) | (1u << 27) | (1u << 28);
    if ((c & need) != need)
        return 0;
    uint64_t xcr0 = xgetbv0();
    return (xcr0 & 0x6) == 0x6 ? xcr0 : 0;
}

int ctr_cpu_has_avx2_fma(void)
{
    unsigned a, b, c, d;
    if (!avx_os_state())
        return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return (b >> 5) & 1; /* AVX2 */
}

/* kernels_avx512.c uses AVX-512F only (it is compiled with -mavx512f, no
 * BW/DQ/VL), plus AVX2 and FMA. XCR0 must hold opmask (bit 5) and the
 * upper halves of zmm0-15 and zmm16-31 (bits 6, 7). */
int ctr_cpu_has_avx512(void)
{
    unsigned a, b, c, d;
    uint64_t xcr0 = avx_os_state();
    if (!xcr0 || !ctr_cpu_has_avx2_fma())
        return 0;
    if ((xcr0 & 0xe6) != 0xe6)
        return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return (b >> 16) & 1; /* AVX512F */
}

/* ---- the table ------------------------------------------------------- */

#define OPS(sfx) ctr__ln_rows_##sfx, ctr__pool_##sfx, ctr__fma_##sfx, ctr__add_##sfx

/* blas gets the widest bit-exact variant's row-wise ops in kernel_detect. */
static ctr_kernel_t kernel_table[] = {
    [CTR_KERNEL_SCALAR] = {"scalar", CTR_KERNEL_SCALAR, 1, ctr__linear_scalar, OPS(scalar)},
    [CTR_KERNEL_AVX2] = {"avx2", CTR_KERNEL_AVX2, 1, ctr__linear_avx2, OPS(avx2)},
    [CTR_KERNEL_AVX512] = {"avx512", CTR_KERNEL_AVX512, 1, ctr__linear_avx512, OPS(avx512)},
#ifdef CTR_NO_BLAS
    [CTR_KERNEL_BLAS] = {"blas", CTR_KERNEL_BLAS, 0, NULL, OPS(scalar)},  /* built with BLAS=0 */
#else
    [CTR_KERNEL_BLAS] = {"blas", CTR_KERNEL_BLAS, 0, ctr__linear_blas, OPS(scalar)},
#endif
};

/* Which entries this CPU runs, decided once. */
static int kernel_usable[CTR_ARRAY_LEN(kernel_table)];
static pthread_once_t kernel_once = PTHREAD_ONCE_INIT;

static void kernel_detect(void)
{
    kernel_usable[CTR_KERNEL_SCALAR] = 1;
    kernel_usable[CTR_KERNEL_AVX2] = ctr_cpu_has_avx2_fma();
    kernel_usable[CTR_KERNEL_AVX512] = ctr_cpu_has_avx512();
    kernel_usable[CTR_KERNEL_BLAS] = kernel_table[CTR_KERNEL_BLAS].linear != NULL;
    for (int id = CTR_KERNEL_AVX512; id > CTR_KERNEL_SCALAR; id--)
        if (kernel_usable[id]) {
            ctr_kernel_t *b = &kernel_table[CTR_KERNEL_BLAS], *v = &kernel_table[id];
            b->ln_rows = v->ln_rows;
            b->pool = v->pool;
            b->fma = v->fma;
            b->add = v->add;
            break;
        }
}

const ctr_kernel_t *ctr_kernel_get(ctr_kernel_id_t id)
{
    if ((unsigned)id >= CTR_ARRAY_LEN(kernel_table))
        return NULL;
    pthread_once(&kernel_once, kernel_detect);
    return kernel_usable[id] ? &kernel_table[id] : NULL;
}

static const char *kernel_needs(ctr_kernel_id_t id)
{
    return id == CTR_KERNEL_AVX512 ? "AVX-512F with zmm state enabled by the OS"
                                   : "AVX2 and FMA with ymm state enabled by the OS";
}

/* ctr_kernel_select's message for a variant that is not usable. */
static void kernel_unusable(ctr_kernel_id_t id, const char *env, char *err, size_t errlen)
{
    if (!kernel_table[id].linear) {
        ctr_error(err, errlen, CTR_EUNSUPPORTED, "kernel \"%s\" is not built into this "
                  "binary (it was built with BLAS=0, without OpenBLAS)", kernel_table[id].name);
        return;
    }
    ctr_error(err, errlen, CTR_EUNSUPPORTED, "%s%s%skernel \"%s\" needs %s, "
              "which this CPU or OS does not have", env ? "CTR_ISA=" : "",
              env ? env : "", env ? ": " : "", kernel_table[id].name, kernel_needs(id));
}

const ctr_kernel_t *ctr_kernel_select(ctr_kernel_id_t id, char *err, size_t errlen)
{
    const char *env = NULL;
    if (id == CTR_KERNEL_AUTO) {
        env = getenv("CTR_ISA");
        if (!env || !*env) {
            static const ctr_kernel_id_t widest[] = {
                CTR_KERNEL_AVX512, CTR_KERNEL_AVX2, CTR_KERNEL_SCALAR};
            for (size_t k = 0; k < CTR_ARRAY_LEN(widest); k++) {
                const ctr_kernel_t *kt = ctr_kernel_get(widest[k]);
                if (kt)
                    return kt;
            }
            return NULL; /* unreachable: scalar always runs */
        }
        int forced = ctr_kernel_parse(env);
        if (forced < 0 || forced == CTR_KERNEL_AUTO || forced == CTR_KERNEL_BLAS) {
            ctr_error(err, errlen, CTR_EINVAL,
                      "CTR_ISA=\"%s\": expected scalar, avx2 or avx512", env);
            return NULL;
        }
        id = (ctr_kernel_id_t)forced;
    }
    if ((unsigned)id >= CTR_ARRAY_LEN(kernel_table)) {
        ctr_error(err, errlen, CTR_EINVAL, "unknown kernel id %d", (int)id);
        return NULL;
    }
    const ctr_kernel_t *kt = ctr_kernel_get(id);
    if (!kt)
        kernel_unusable(id, env, err, errlen);
    return kt;
}

const ctr_opt_enum_t ctr_kernel_choices[] = {
    {"auto", CTR_KERNEL_AUTO}, {"scalar", CTR_KERNEL_SCALAR}, {"avx2", CTR_KERNEL_AVX2},
    {"avx512", CTR_KERNEL_AVX512}, {"blas", CTR_KERNEL_BLAS}, {NULL, 0}};

int ctr_kernel_parse(const char *name)
{
    if (!name)
        return -1;
    for (const ctr_opt_enum_t *c = ctr_kernel_choices; c->name; c++)
        if (!strcmp(name, c->name))
            return c->value;
    return -1;
}
