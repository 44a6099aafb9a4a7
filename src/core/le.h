/* le.h — little-endian loads and stores of unaligned 16/32/64-bit integers,
 * shared by every binary encoder and decoder (repository objects, WAL). */
#ifndef TW_CORE_LE_H
#define TW_CORE_LE_H

#include <stdint.h>

static inline void tw_le16_put(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline uint16_t tw_le16_get(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}
static inline void tw_le32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}
static inline uint32_t tw_le32_get(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void tw_le64_put(uint8_t *p, uint64_t v)
{
	tw_le32_put(p, (uint32_t)v);
	tw_le32_put(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t tw_le64_get(const uint8_t *p)
{
	return (uint64_t)tw_le32_get(p) | (uint64_t)tw_le32_get(p + 4) << 32;
}

#endif
