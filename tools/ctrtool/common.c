/* common.c - what several ctrtool commands share: running a command's flag
 * table (ctr/opts.h) with ctrtool's exit statuses and messages, the enum
 * tables of --kernel and --format, the --delimiter parser, and the kernel
 * choice. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctr/common.h"
#include "ctr/data.h"
#include "ctr/kernels.h"
#include "ctr/opts.h"
#include "ctrtool_int.h"

const ctr_opt_enum_t ctr__tool_formats[] = {
    {"criteo", CTR_DATA_CRITEO}, {"csv", CTR_DATA_CSV}, {"tsv", CTR_DATA_CRITEO}, {NULL, 0}};

int ctr__tool_args(const char *cmd, const ctr_opts_t *spec, void *settings, size_t size, int argc,
                   char **argv, ctr_opts_result_t *res)
{
    char err[512];
    /* The settings as the command initialised them: the defaults --help shows. */
    void *defaults = malloc(size);
    if (!defaults) {
        fprintf(stderr, "ctrtool %s: out of memory\n", cmd);
        return 1;
    }
    memcpy(defaults, settings, size);
    int rc = ctr_opts_parse(spec, settings, argc, argv, res, err, sizeof err);
    if (!rc && res->help)
        ctr_opts_usage(stdout, spec, defaults);
    free(defaults);
    if (!rc)
        return res->help ? 0 : -1;
    const char *u = spec->usage ? spec->usage : "";
    fprintf(stderr, "ctrtool %s: %s\n%.*s\n", cmd, err, (int)strcspn(u, "\n"), u);
    return 2;
}

int ctr__tool_parse_delim(const char *text, void *field, char *err, size_t errlen)
{
    char *c = field;
    if (!strcmp(text, "tab") || !strcmp(text, "\\t")) {
        *c = '\t';
        return 0;
    }
    if (strlen(text) != 1 || text[0] == '"' || text[0] == '\n' || text[0] == '\r')
        return ctr_error(err, errlen, CTR_EINVAL, "expected one character (or 'tab')");
    *c = text[0];
    return 0;
}

const ctr_kernel_t *ctr__tool_kernel(const char *cmd, ctr_kernel_id_t id)
{
    char err[256];
    const ctr_kernel_t *k = ctr_kernel_select(id, err, sizeof err);
    if (!k)
        fprintf(stderr, "ctrtool %s: %s\n", cmd, err);
    return k;
}
