/* Helpers shared by the libFuzzer harnesses: an input reader that never
   fails (reads past the end give zeros) and a check macro that reports
   and abort()s, so libFuzzer records the input as a crash. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond, ...) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: invariant failed: %s\n  ", \
			__FILE__, __LINE__, #cond); \
		fprintf(stderr, __VA_ARGS__); \
		fprintf(stderr, "\n"); \
		abort(); \
	} \
} while (0)

struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

static inline bool fuzz_left(const struct fuzz_in *in)
{
	return in->n > 0;
}

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
	uint8_t v;

	if (in->n == 0)
		return 0;
	v = *in->p++;
	in->n--;
	return v;
}

static inline uint16_t fuzz_u16(struct fuzz_in *in)
{
	uint16_t v = fuzz_u8(in);

	return (uint16_t)(v | (uint16_t)fuzz_u8(in) << 8);
}

static inline uint32_t fuzz_u32(struct fuzz_in *in)
{
	uint32_t v = fuzz_u16(in);

	return v | (uint32_t)fuzz_u16(in) << 16;
}

static inline void fuzz_bytes(struct fuzz_in *in, void *dst, size_t n)
{
	size_t have = n < in->n ? n : in->n;

	memcpy(dst, in->p, have);
	memset((uint8_t *)dst + have, 0, n - have);
	in->p += have;
	in->n -= have;
}

/* A malloc()ed NUL-terminated string of the next len bytes (fewer if the
   input ends first), allocated to the exact size so that ASan sees any
   read past the NUL. */
static inline char *fuzz_str(struct fuzz_in *in, size_t len)
{
	char *s;

	if (len > in->n)
		len = in->n;
	s = malloc(len + 1);
	if (s == NULL)
		abort();
	memcpy(s, in->p, len);
	s[len] = '\0';
	in->p += len;
	in->n -= len;
	return s;
}

static inline char *fuzz_str_rest(struct fuzz_in *in)
{
	return fuzz_str(in, in->n);
}

/* A copy of data as a NUL-terminated string (embedded NULs cut it). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* Hex dump for failure messages (static buffer). */
static inline const char *fuzz_hex(const void *data, size_t size)
{
	static char buf[1024];
	const uint8_t *d = data;
	size_t i, pos = 0;

	for (i = 0; i < size && pos + 3 < sizeof(buf); i++)
		pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos, "%02x",
					d[i]);
	buf[pos] = '\0';
	return buf;
}

#endif
