/* replay_drive.h - what --replay changes in a run: the logged requests as
 * the message set, and their pacing.
 *
 * replay.c reads the logs; this module decides how they are sent:
 *   - each logged request once (unless --replay-loop), so a run counts at
 *     most as many requests as the logs hold;
 *   - without --rate / --concurrency, at the logged pace: the t_ns offsets
 *     from the first record, scaled by 1 / --replay-speed, with no warmup,
 *     and a run as long as the log (unless --duration);
 *   - with --rate and no --duration, a run just long enough to send every
 *     record once. */
#ifndef CTR_LOADTEST_REPLAY_DRIVE_H
#define CTR_LOADTEST_REPLAY_DRIVE_H

#include <stddef.h>
#include <stdint.h>

#include "bodies.h"
#include "loop.h"
#include "options.h"
#include "report.h"

/* Loads the logs of o->replay into a new set, *out (the caller's), and
 * describes it in source[source_len] for the report. *all_timed: 1 when
 * every record has a logged time. Returns 0 or a CTR_E* code with a
 * sentence in err. */
int ctr__replay_drive_load(const ctr__load_opts_t *o, int *all_timed, char *source,
                           size_t source_len, ctr__msgset_t **out, char *err, size_t errlen);

/* Sets the replay's mode, request limit, pacing, warmup and duration in
 * ro and d (already set up for a --rate or --concurrency run). The logged
 * pace needs offsets that outlive the runs: *trace is then a new array,
 * the caller's to free (else NULL). Returns 0 or a CTR_E* code with a
 * sentence in err. */
int ctr__replay_drive_pace(const ctr__load_opts_t *o, const ctr__msgset_t *msgs, int all_timed,
                           ctr__run_opts_t *ro, ctr__run_desc_t *d, uint64_t **trace,
                           char *err, size_t errlen);

#endif
