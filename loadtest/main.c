/* main.c - ctrload: parse the flags, prepare the plan, hand it to a
 * driver. The modules:
 *
 *   options       flags, --help, defaults, checks between flags
 *   url           the --url parser
 *   plan          what every run shares, prepared before the clock starts
 *   run, sweep    the drivers: one run, or a run per rate
 *   replay_drive  --replay: the logged requests and their pacing
 *   bodies        request bodies (synthetic, from data files), framing
 *   replay        logged requests as bodies (pluggable log sources)
 *   schedule      open-loop due times
 *   loop          the epoll event loop of one run
 *   http1         response parser
 *   hist          latency histograms
 *   report        text / JSON / CSV, output files and the verdict
 *
 * Exit status: 0 the run happened (read the verdict); 1 with --strict when
 * the verdict was not clean or the p99 target was missed; 2 on bad flags,
 * bad data, or a server that could not be reached at all. */
#include <signal.h>
#include <string.h>

#include "options.h"
#include "plan.h"
#include "run.h"
#include "sweep.h"

/* Ctrl-C (or SIGTERM) ends the current run and the sweep early, and the
 * report shows what was measured; a second one kills as usual. */
static volatile int stop_flag;

static void on_stop(int signo)
{
    stop_flag = 1;
    signal(signo, SIG_DFL);
}

static void install_stop(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int main(int argc, char **argv)
{
    ctr__load_opts_t o;
    ctr__plan_t *p = NULL;
    char err[512] = "";
    signal(SIGPIPE, SIG_IGN);
    int status = ctr__load_opts_parse(argc, argv, &o);
    if (status)
        goto out;
    if (ctr__plan_open(&o, &stop_flag, &p, err, sizeof err)) {
        status = ctr__load_die("%s", err);
        goto out;
    }
    if (o.print_request) {
        ctr__plan_print_request(p, stdout);
    } else {
        install_stop();
        status = o.sweep.on ? ctr__sweep_rates(p, &o) : ctr__run_single(p, &o);
    }
    if (ctr__plan_close(p))
        status = 2;
out:
    ctr__load_opts_free(&o);
    return status;
}
