/* replay_drive.c - driving a --replay run: its message set and its pacing
 * (see replay_drive.h). */
#include "replay_drive.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ctr/common.h"
#include "replay.h"

int ctr__replay_drive_load(const ctr__load_opts_t *o, int *all_timed, char *source,
                           size_t source_len, ctr__msgset_t **out, char *err, size_t errlen)
{
    int rc = ctr__replay_load(o->replay.v, o->replay.n, o->replay_format, all_timed, out, err, errlen);
    if (rc)
        return rc;
    snprintf(source, source_len, "replay of %s%s (%zu requests)", o->replay.v[0],
             o->replay.n > 1 ? " ..." : "", (*out)->n);
    return 0;
}

int ctr__replay_drive_pace(const ctr__load_opts_t *o, const ctr__msgset_t *msgs, int all_timed,
                           ctr__run_opts_t *ro, ctr__run_desc_t *d, uint64_t **trace,
                           char *err, size_t errlen)
{
    *trace = NULL;
    d->mode = o->concurrency ? "closed" : "replay";
    if (!o->replay_loop)
        ro->max_requests = msgs->n;
    if (!o->rate && !o->concurrency && !o->sweep.on) {
        if (!all_timed)
            return ctr_error(err, errlen, CTR_EINVAL,
                             "the replay log has no \"t_ns\" on every line, so it has no pacing of its "
                             "own: give --rate R or --concurrency C");
        uint64_t *t = malloc(msgs->n * sizeof *t);
        if (!t)
            return ctr_error(err, errlen, CTR_ENOMEM, "out of memory");
        for (size_t i = 0; i < msgs->n; i++)
            t[i] = msgs->v[i].t_ns - msgs->v[0].t_ns;
        ro->trace = t;
        ro->n_trace = msgs->n;
        ro->warmup_ns = 0;
        d->arrival = "trace";
        uint64_t span = (uint64_t)llround((double)t[msgs->n - 1] / o->replay_speed);
        if (!o->duration_set)
            ro->duration_ns = span + 1000000;
        *trace = t;
    } else if (!o->duration_set && !o->replay_loop && o->rate > 0) {
        ro->duration_ns = (uint64_t)llround((double)msgs->n / o->rate * 1e9) + 1000000;
    }
    d->warmup_s = (double)ro->warmup_ns / 1e9;
    return 0;
}
