/* ctrtool - models, data and audits. `ctrtool help` lists the commands;
 * each command lives in its own cmd_*.c file. */
#include <stdio.h>
#include <string.h>

#include "ctrtool_int.h"

static const struct {
    const char *name;
    ctr__tool_cmd_fn fn;
    const char *summary;
} commands[] = {
    {"inspect", ctr__cmd_inspect, "MODEL                      header, schema, sizes, digest"},
    {"verify", ctr__cmd_verify, "MODEL                       recompute tensor checksums"},
    {"synth", ctr__cmd_synth, "--out MODEL --rows-per-table N ...  random model (perf, demos)"},
    {"train", ctr__cmd_train, "--data FILE --out MODEL [...]  train a model (--help for options)"},
    {"quantize", ctr__cmd_quantize, "--in M --out Q --dtype f16|int8 [--tables ..]  f16 / int8 tables"},
    {"eval", ctr__cmd_eval, "--model M --data FILE         AUC, logloss, calibration"},
    {"pd", ctr__cmd_pd, "--model A --model B --data FILE  relative PD, flip rate, AUCs"},
    {"score", ctr__cmd_score, "--model M --data FILE         offline scores, same kernels as ctrd"},
    {"gen-data", ctr__cmd_gen_data, "--rows N --out FILE [--seed S]  synthetic Criteo-like rows"},
    {"audit", ctr__cmd_audit, "dump|verify|pd ... LOG...      read, replay and compare the audit log"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: ctrtool COMMAND [ARGS]   (ctrtool COMMAND --help for details)\n\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "ctrtool: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
