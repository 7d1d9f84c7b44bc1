/* model_mem.h - how much of a model's file is in memory, for /metrics.
 *
 * RSS cannot say it per model, and /proc/self/smaps (which could) costs a
 * walk of every mapping's page table per scrape. Here: the mapping of one
 * file (found by device and inode in /proc/self/maps, a line per mapping)
 * and mincore() over it, a byte per page in fixed chunks, nothing
 * allocated: about a millisecond per GiB mapped. The caller caches the
 * figure (modelstore.h), so a scrape pays it at most once per interval.
 *
 * Two models of one file map it twice and share its pages: both report
 * them (the process's RSS counts them twice, its PSS once). */
#ifndef CTR_SERVER_MODEL_MEM_H
#define CTR_SERVER_MODEL_MEM_H

#include <stdint.h>
#include <sys/types.h>

/* Bytes of the first mapping of the file (dev, ino) in this process that
 * are resident. Returns 0 with *out set, or CTR_ENOTFOUND (no such
 * mapping) / CTR_EIO (/proc unreadable, mincore failed). */
int ctr__mapped_resident_bytes(dev_t dev, ino_t ino, uint64_t *out);

#endif
