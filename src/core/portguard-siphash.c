/* SipHash-2-4, written from the algorithm description in "SipHash: a fast
   short-input PRF" (Aumasson, Bernstein, 2012). Pure C. */

#include "portguard-siphash.h"

#define PORTGUARD_SIP_ROTL(x, b) \
	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define PORTGUARD_SIP_ROUND(v0, v1, v2, v3) do { \
	v0 += v1; v1 = PORTGUARD_SIP_ROTL(v1, 13); v1 ^= v0; \
	v0 = PORTGUARD_SIP_ROTL(v0, 32); \
	v2 += v3; v3 = PORTGUARD_SIP_ROTL(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = PORTGUARD_SIP_ROTL(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = PORTGUARD_SIP_ROTL(v1, 17); v1 ^= v2; \
	v2 = PORTGUARD_SIP_ROTL(v2, 32); \
	} while (0)

/* Read 8 bytes as a little-endian word, whatever the host byte order. */
static uint64_t portguard_sip_le64(const uint8_t *p)
{
	return (uint64_t)p[0] | ((uint64_t)p[1] << 8) |
		((uint64_t)p[2] << 16) | ((uint64_t)p[3] << 24) |
		((uint64_t)p[4] << 32) | ((uint64_t)p[5] << 40) |
		((uint64_t)p[6] << 48) | ((uint64_t)p[7] << 56);
}

uint64_t portguard_siphash24(const uint8_t key[PORTGUARD_SIPHASH_KEY_SIZE],
			     const void *data, size_t len)
{
	const uint8_t *in = data;
	const uint8_t *end = in + (len - len % 8);
	uint64_t k0 = portguard_sip_le64(key);
	uint64_t k1 = portguard_sip_le64(key + 8);
	uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
	uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
	uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
	uint64_t v3 = k1 ^ 0x7465646279746573ULL;
	uint64_t m, b = (uint64_t)len << 56;
	unsigned int i;

	for (; in != end; in += 8) {
		m = portguard_sip_le64(in);
		v3 ^= m;
		PORTGUARD_SIP_ROUND(v0, v1, v2, v3);
		PORTGUARD_SIP_ROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	/* the last 0..7 bytes, with the length in the top byte */
	for (i = 0; i < len % 8; i++)
		b |= (uint64_t)in[i] << (8 * i);
	v3 ^= b;
	PORTGUARD_SIP_ROUND(v0, v1, v2, v3);
	PORTGUARD_SIP_ROUND(v0, v1, v2, v3);
	v0 ^= b;

	v2 ^= 0xff;
	for (i = 0; i < 4; i++)
		PORTGUARD_SIP_ROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}
