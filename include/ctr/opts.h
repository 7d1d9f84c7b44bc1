/* opts.h - the one flag parser of ctrd, ctrtool and ctrload.
 *
 * A program describes its flags in a table of ctr_opt_t rows (name,
 * environment twin, type, where the value goes in the caller's settings
 * struct, default as text, bounds, metavariable, help), in the manner of
 * nginx's ngx_command_t; ctr_opts_parse() fills the struct from the
 * defaults, then the environment, then argv, so flags win. Every value is
 * parsed once, into its field's type: an enum option lands as its int
 * value and nobody compares the string again. ctr_opts_usage() prints the
 * table as help text and ctr_opts_json() the effective settings.
 *
 * Accepted on the command line: --flag VALUE and --flag=VALUE for every
 * flag that takes a value; a boolean switch is --flag (on) or
 * --flag=true|false|1|0|yes|no|on|off; -h and --help stop parsing and set
 * result->help; "--" ends the flags; anything else is a positional argument,
 * collected by the table's positional row (or refused without one). There
 * is no prefix matching and no short flag but -h.
 *
 * Strings stored in settings point into argv, the environment or the
 * table's default text: they live as long as those do. Nothing is
 * allocated. Errors come back as CTR_EINVAL (a text that does not parse,
 * an unknown flag, a missing value) or CTR_ERANGE (out of bounds, a list
 * too long), with one message in err naming the flag or the environment
 * variable and the text at fault, without the program's name. */
#ifndef CTR_OPTS_H
#define CTR_OPTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    CTR_OPT_HEADING = 0, /* not an option: .help is printed as a line of the usage */
    CTR_OPT_STR,         /* const char * */
    CTR_OPT_UINT,        /* unsigned integer: uint64_t, or .size 1/2/4 bytes */
    CTR_OPT_INT,         /* signed integer: int64_t, or .size 1/2/4 bytes */
    CTR_OPT_DOUBLE,      /* finite number: double, or float with .size 4 */
    CTR_OPT_BYTES,       /* like UINT, with a k/m/g (x1024) suffix: 64k, 2m, 1GiB */
    CTR_OPT_DURATION,    /* nanoseconds as UINT: 10s, 500ms, 250us, 2m, 1h, 1.5 (s) */
    CTR_OPT_BOOL,        /* int switch: --flag sets 1; text true/false/1/0/yes/no/on/off/"" */
    CTR_OPT_ENUM,        /* int (or an int-sized enum): the value of the .enums entry named */
    CTR_OPT_LIST,        /* ctr_opt_list_t: each occurrence appends one string */
    CTR_OPT_CUSTOM,      /* .parse decides */
} ctr_opt_type_t;

/* Row flags. */
enum {
    CTR_OPT_REQUIRED = 1u << 0, /* parse fails unless given (flag or environment; so no
                                 * .def); a LIST or the positional row: at least .min
                                 * values (at least 1 when .min is 0) */
    CTR_OPT_ICASE = 1u << 1,    /* ENUM: names match in any case */
    CTR_OPT_NEGATE = 1u << 2,   /* BOOL: store the opposite (--no-progress into progress) */
    CTR_OPT_GREEDY = 1u << 3,   /* LIST: also take the arguments after the value up to
                                 * the next one starting with "--" (--replay A B C) */
    CTR_OPT_MIN_EXCL = 1u << 4, /* numeric: the lower bound itself is refused (> min) */
    CTR_OPT_SECRET = 1u << 5,   /* ctr_opts_json: "(set)" or null, never the value */
    CTR_OPT_NO_JSON = 1u << 6,  /* ctr_opts_json leaves it out */
    CTR_OPT_HIDDEN = 1u << 7,   /* ctr_opts_usage leaves it out */
};

typedef struct {
    const char *name;   /* NULL ends a table of names */
    int value;
} ctr_opt_enum_t;

/* Storage of a LIST field: the caller points v at room for cap strings
 * before parsing (a fixed array, or argc entries for "as many as given");
 * one more than cap is an error naming the flag. */
typedef struct {
    const char **v;
    size_t n, cap;
} ctr_opt_list_t;

/* A CUSTOM parser: text -> *field. Returns 0, or a negative CTR_E* code with
 * err saying what was expected ("expected FROM:TO:STEP rates"); the parser
 * adds the flag's name and the text. */
typedef int (*ctr_opt_parse_fn)(const char *text, void *field, char *err, size_t errlen);

typedef struct {
    /* Without the leading "--". NULL: the positional row (type LIST, at
     * most one per table), whose metavar names the arguments in the help. */
    const char *name;
    const char *env;        /* environment twin, NULL: none (LIST: never) */
    ctr_opt_type_t type;
    unsigned flags;         /* CTR_OPT_* above */
    size_t off;             /* offset of the field in the settings struct */
    size_t size;            /* sizeof the field; 0: the type's natural one */
    const char *def;        /* default as text (parsed like a flag's), NULL: the
                             * field keeps what the caller put there */
    /* Bounds, inclusive (see CTR_OPT_MIN_EXCL); both 0: none.
     * UINT, BYTES, DURATION (ns): min/max; INT: imin/imax; DOUBLE:
     * dmin/dmax (INFINITY for "no upper bound"); LIST: min = fewest
     * values with CTR_OPT_REQUIRED. */
    uint64_t min, max;
    int64_t imin, imax;
    double dmin, dmax;
    const ctr_opt_enum_t *enums;  /* ENUM: the names, ended by {NULL, 0}; an
                                   * alias repeats an earlier value */
    ctr_opt_parse_fn parse;       /* CUSTOM */
    const char *metavar;    /* "N", "PATH"; NULL: ENUM lists its names, BOOL none */
    const char *help;       /* may hold '\n': continuation lines are indented */
} ctr_opt_t;

/* Offset and size of a settings field, for a row: CTR_OPT_AT(cfg_t, port). */
#define CTR_OPT_AT(type, member) \
    .off = offsetof(type, member), .size = sizeof(((type *)0)->member)

/* A program's (or a subcommand's) flags. */
typedef struct {
    const ctr_opt_t *opts;
    size_t n_opts;          /* at most CTR_OPTS_MAX */
    const char *usage;      /* printed before the flag list: the synopsis first */
    const char *epilog;     /* printed after it, or NULL */
} ctr_opts_t;

#define CTR_OPTS_MAX 128

typedef enum {
    CTR_OPT_UNSET = 0,      /* no default, not given */
    CTR_OPT_FROM_DEFAULT,
    CTR_OPT_FROM_ENV,
    CTR_OPT_FROM_FLAG,
} ctr_opt_from_t;

typedef struct {
    const ctr_opts_t *spec;
    int help;                           /* -h or --help was given: print the usage, exit 0 */
    unsigned char from[CTR_OPTS_MAX];   /* per row: ctr_opt_from_t of its value */
} ctr_opts_result_t;

/* Fills settings from spec's defaults, then the environment twins, then
 * argv[1..argc) (argv[0] is the program or subcommand). The caller
 * initialises settings first: a row without a default leaves its field as
 * found unless given. Stops at -h/--help: result->help = 1 and 0 returned
 * whatever the environment holds (required flags not checked). A bad
 * environment variable is reported before a bad flag. Returns 0,
 * CTR_EINVAL or CTR_ERANGE (see the top). */
int ctr_opts_parse(const ctr_opts_t *spec, void *settings, int argc, char *const *argv,
                   ctr_opts_result_t *result, char *err, size_t errlen);

/* Where the value of the row called name (NULL: the positional row) came
 * from; CTR_OPT_UNSET for a name not in the table. */
ctr_opt_from_t ctr_opts_from(const ctr_opts_result_t *result, const char *name);

/* The usage text, the flag list and the epilog. Each flag shows its
 * environment twin when the table has any, its help and its default: the
 * row's text, else (when defaults is not NULL) the value in the settings
 * struct defaults, for STR, numbers and ENUM; none for a required flag. */
void ctr_opts_usage(FILE *f, const ctr_opts_t *spec, const void *defaults);

/* The effective settings as one JSON object keyed by flag name, in table
 * order: strings (null when unset), numbers, booleans, an ENUM's name, a
 * LIST as an array; DURATION in ns; CUSTOM as null. Written like snprintf:
 * NUL-terminated within cap, returns the full length. */
size_t ctr_opts_json(const ctr_opts_t *spec, const void *settings, char *out, size_t cap);

/* The name of value in an enum table (its first), NULL if none. */
const char *ctr_opts_enum_name(const ctr_opt_enum_t *names, int value);

/* The primitive parsers, for CUSTOM callbacks: 0 or CTR_EINVAL (the whole
 * text must be the number). u64: decimal digits only; double: finite;
 * duration: as CTR_OPT_DURATION. */
int ctr_opts_parse_u64(const char *text, uint64_t *out);
int ctr_opts_parse_double(const char *text, double *out);
int ctr_opts_parse_duration(const char *text, uint64_t *ns);

#endif
