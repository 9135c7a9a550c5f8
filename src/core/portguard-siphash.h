#ifndef PORTGUARD_SIPHASH_H
#define PORTGUARD_SIPHASH_H

/* SipHash-2-4 (Aumasson and Bernstein): a keyed 64-bit hash for hash
   tables whose keys an attacker may choose. Pure C. */

#include <stddef.h>
#include <stdint.h>

#define PORTGUARD_SIPHASH_KEY_SIZE 16

/* Hash len bytes of data with the 16-byte key (read as two little-endian
   64-bit words, as in the reference implementation). */
uint64_t portguard_siphash24(const uint8_t key[PORTGUARD_SIPHASH_KEY_SIZE],
			     const void *data, size_t len);

#endif
