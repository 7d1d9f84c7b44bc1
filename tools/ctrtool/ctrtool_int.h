/* ctrtool_int.h - the ctrtool subcommands, one function each.
 *
 * Each takes the arguments after the subcommand name (argv[0] is the
 * subcommand) and returns the process exit status: 0 ok, 1 failure, 2 usage. */
#ifndef CTRTOOL_INT_H
#define CTRTOOL_INT_H

typedef int (*ctr__tool_cmd_fn)(int argc, char **argv);

int ctr__cmd_inspect(int argc, char **argv);
int ctr__cmd_verify(int argc, char **argv);
int ctr__cmd_synth(int argc, char **argv);
int ctr__cmd_train(int argc, char **argv);     /* cmd_train.c */
int ctr__cmd_eval(int argc, char **argv);      /* cmd_train.c */
int ctr__cmd_pd(int argc, char **argv);        /* cmd_train.c */
int ctr__cmd_score(int argc, char **argv);     /* cmd_train.c */
int ctr__cmd_gen_data(int argc, char **argv);  /* cmd_train.c */
int ctr__cmd_audit(int argc, char **argv);     /* cmd_audit.c: dump, verify, pd */

#endif
