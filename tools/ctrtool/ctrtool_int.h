/* ctrtool_int.h - the ctrtool subcommands, one function each, and what
 * they share (common.c).
 *
 * Each command takes the arguments after the subcommand name (argv[0] is
 * the subcommand), parses them with its own ctr/opts.h table and returns
 * the process exit status: 0 ok, 1 failure, 2 usage. */
#ifndef CTRTOOL_INT_H
#define CTRTOOL_INT_H

#include <stddef.h>

#include "ctr/kernels.h"
#include "ctr/opts.h"

typedef int (*ctr__tool_cmd_fn)(int argc, char **argv);

int ctr__cmd_inspect(int argc, char **argv);   /* cmd_model.c */
int ctr__cmd_verify(int argc, char **argv);    /* cmd_model.c */
int ctr__cmd_synth(int argc, char **argv);     /* cmd_synth.c */
int ctr__cmd_train(int argc, char **argv);     /* cmd_train.c */
int ctr__cmd_quantize(int argc, char **argv);  /* cmd_quantize.c */
int ctr__cmd_eval(int argc, char **argv);      /* cmd_eval.c */
int ctr__cmd_pd(int argc, char **argv);        /* cmd_eval.c */
int ctr__cmd_score(int argc, char **argv);     /* cmd_eval.c */
int ctr__cmd_gen_data(int argc, char **argv);  /* cmd_data.c */
int ctr__cmd_audit(int argc, char **argv);     /* cmd_audit.c: dump, verify, pd */

/* --format criteo|csv (tsv = criteo) -> ctr_data_format_t. */
extern const ctr_opt_enum_t ctr__tool_formats[];

/* Parses a command's flags into settings (size bytes, initialised by the
 * caller with its defaults). Returns -1 to go on, else the exit status:
 * 0 after -h/--help (the usage, with those defaults, on stdout), 2 after a
 * usage error ("ctrtool CMD: message" and the synopsis on stderr), 1 when
 * out of memory. */
int ctr__tool_args(const char *cmd, const ctr_opts_t *spec, void *settings, size_t size, int argc,
                   char **argv, ctr_opts_result_t *res);

/* CTR_OPT_CUSTOM for --delimiter into a char: one character, or "tab" or
 * "\t" for a tab; never '"', CR or LF. */
int ctr__tool_parse_delim(const char *text, void *field, char *err, size_t errlen);

/* The kernel for id (AUTO: the widest bit-exact one), or NULL after
 * "ctrtool CMD: why" on stderr. */
const ctr_kernel_t *ctr__tool_kernel(const char *cmd, ctr_kernel_id_t id);

#endif
