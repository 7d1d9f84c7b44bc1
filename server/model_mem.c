/* model_mem.c - resident bytes of a mapped model file (see model_mem.h). */
#include "model_mem.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "ctr/common.h"

/* Pages asked of mincore per call: its vector lives on the stack. */
#define CHUNK_PAGES 4096u

static int resident_in(uintptr_t start, uintptr_t end, uint64_t *out)
{
    unsigned char vec[CHUNK_PAGES];
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uint64_t pages = 0;
    for (uintptr_t at = start; at < end;) {
        size_t n = (size_t)((end - at) / page);
        if (n > CHUNK_PAGES)
            n = CHUNK_PAGES;
        if (n == 0)
            break;
        if (mincore((void *)at, n * page, vec))
            return CTR_EIO;
        for (size_t i = 0; i < n; i++)
            pages += vec[i] & 1u;
        at += n * page;
    }
    *out = pages * page;
    return 0;
}

int ctr__mapped_resident_bytes(dev_t dev, ino_t ino, uint64_t *out)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return CTR_EIO;
    char line[512];
    int rc = 0, whole = 1;
    uint64_t sum = 0, got;
    /* One mmap of the file may show as several lines: madvise() with
     * different advice on parts of it splits the mapping. They follow each
     * other, each starting where the last ended, at the offset that
     * continues it. in: the end and next offset of the run so far. */
    int in = 0;
    unsigned long run_end = 0, run_off = 0;
    while (fgets(line, sizeof line, f)) {
        /* A line longer than the buffer (a long path) continues in the
         * next read: only a line's start holds the fields. */
        int start_of_line = whole;
        whole = strchr(line, '\n') != NULL;
        if (!start_of_line)
            continue;
        unsigned long lo, hi, off, inode;
        unsigned maj, mnr;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &lo, &hi, perms, &off, &maj, &mnr, &inode) != 7)
            continue;
        int ours = inode == (unsigned long)ino && maj == major(dev) && mnr == minor(dev);
        if (in && !(ours && lo == run_end && off == run_off))
            break;                      /* the first mapping ended */
        if (!ours || (!in && off != 0))
            continue;
        if ((rc = resident_in((uintptr_t)lo, (uintptr_t)hi, &got)))
            break;
        sum += got;
        in = 1;
        run_end = hi;
        run_off = off + (hi - lo);
    }
    fclose(f);
    if (!rc && !in)
        rc = CTR_ENOTFOUND;
    if (!rc)
        *out = sum;
    return rc;
}
