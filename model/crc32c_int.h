/* crc32c_int.h - CRC32C (Castagnoli, reflected polynomial 0x82F63B78, as
 * in iSCSI and ext4), the checksum of the audit log's segment headers and
 * record frames (docs/AUDIT_LOG.md). Internal to libctr: the audit codec
 * and reader use it, nothing outside libctr does (the server's audit
 * writer frames records through ctr_audit_record_encode). */
#ifndef CTR_CRC32C_INT_H
#define CTR_CRC32C_INT_H

#include <stddef.h>
#include <stdint.h>

/* crc = ctr__crc32c(0, buf, len) for a whole buffer; pass the previous
 * value to continue. SSE4.2's crc32 instruction when the CPU has it, a
 * table otherwise, chosen once at first use. */
uint32_t ctr__crc32c(uint32_t crc, const void *buf, size_t len);
const char *ctr__crc32c_impl(void);              /* "sse4.2" or "table" */

/* Both variants, for tests (the hw one requires SSE4.2:
 * ctr__crc32c_hw_available()). */
uint32_t ctr__crc32c_sw(uint32_t crc, const void *buf, size_t len);
uint32_t ctr__crc32c_hw(uint32_t crc, const void *buf, size_t len);
int ctr__crc32c_hw_available(void);

#endif
