/* fuzz_audit_reader.c - libFuzzer target for the audit log reader
 * (model/audit_read.c): any bytes as a segment file, read to the end, every
 * value of every record touched; and the same bytes as one record payload
 * handed to the decoder directly (past the CRCs, which a mutator rarely
 * fixes up). Seeds: tests/fuzz/corpus/audit_reader/ (`test_audit
 * --write-corpus` regenerates them, `test_audit_shadow --write-corpus`
 * the shadow records' (type 2)); replayed under ASan+UBSan by
 * test_fuzz_replay.sh in make test. Build and run: make fuzz. */
#include <stddef.h>
#include <stdint.h>

#include "ctr/audit.h"
#include "fuzz.h"

static void touch(const ctr_audit_record_t *r)
{
    volatile double sink = 0;
    const ctr_audit_record_t rec = *r;
    {
        /* A shadow record's trailer: the primary's scores, as many as
         * the candidate's; none on a type-1 record. */
        if (rec.type == 2 ? !rec.primary_scores : rec.type != 1 || rec.primary_scores)
            __builtin_trap();
        for (size_t i = 0; i < rec.n; i++) {
            sink += rec.scores[i];
            if (rec.type == 2)
                sink += rec.primary_scores[i];
            for (size_t j = 0; j < rec.n_dense; j++)
                sink += ctr_audit_record_dense(&rec, i, j);
            for (size_t j = 0; j < rec.n_cat; j++) {
                const char *b;
                size_t l;
                if (ctr_audit_record_cat(&rec, i, j, &b, &l) && l)
                    sink += (unsigned char)b[l - 1];
            }
        }
    }
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ctr_audit_reader_t *r;
    ctr_audit_record_t rec;
    ctr_audit_span_t span;
    ctr_audit_event_t ev;
    if (!ctr_audit_reader_open_mem(data, size, &r, NULL, 0)) {
        while ((ev = ctr_audit_reader_next(r, &rec, &span)) != CTR_AUDIT_END)
            if (ev == CTR_AUDIT_RECORD)
                touch(&rec);
        ctr_audit_reader_close(r);
    }
    /* An empty segment gives a reader whose decoder takes data as a payload. */
    static uint8_t empty[CTR_AUDIT_SEGMENT_HEADER_BYTES];
    static ctr_audit_segment_t h;
    ctr_audit_segment_encode(&h, empty);
    if (!ctr_audit_reader_open_mem(empty, sizeof empty, &r, NULL, 0)) {
        if (!ctr_audit_reader_decode(r, data, size, &rec, NULL, 0))
            touch(&rec);
        ctr_audit_reader_close(r);
    }
    return 0;
}
