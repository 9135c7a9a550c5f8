/* libFuzzer harness: escaped key=value log lines (portguard-logfmt.h).

   Input: 2 bytes buffer size, 2 bytes max_src, then a list of items
   (type byte, then its data) that is escaped on its own, appended to a
   key=value line and used to fill a TLS line. Buffers are malloc()ed to
   their exact size (0 included) so ASan catches any write past them.

   Checked, for each buffer size:
   - the escaped output has only bytes 0x21..0x7e, no '"' or '=', and a
     '\\' only as the start of a whole \xHH escape; it decodes back to the
     source (when nothing was cut); it equals a reference escaper (cut
     before the first unit that does not fit);
   - the return value is strlen(dst) and < dst_size;
   - a kv line equals a reference line built here, is always a prefix of
     the same line built into an unbounded buffer, kv.len == strlen(buf)
     and kv.overflow is set exactly when the line is not complete. */

#include "fuzz-common.h"
#include "portguard-logfmt.h"

/* ---- reference escaper ---- */

struct ref_buf {
	char *s;
	size_t len, cap;
};

static void ref_put(struct ref_buf *b, const char *data, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->s = realloc(b->s, b->cap);
		if (b->s == NULL)
			abort();
	}
	memcpy(b->s + b->len, data, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static bool ref_plain(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != '"' && c != '\\' && c != '=';
}

/* Escape src into room bytes (room includes the NUL, as dst_size does);
   *cut_r tells whether anything was left out. */
static void ref_escape(struct ref_buf *out, size_t room, const char *src,
		       size_t max_src, bool *cut_r)
{
	size_t used = 0, i;
	char unit[5];
	size_t n;

	*cut_r = false;
	if (room == 0) {
		*cut_r = true;
		return;
	}
	if (src == NULL || src[0] == '\0') {
		if (room >= 2)
			ref_put(out, "-", 1);
		else
			*cut_r = true;
		return;
	}
	for (i = 0; i <= max_src && (i < max_src || src[i] != '\0'); i++) {
		if (i == max_src || src[i] == '\0') {
			if (src[i] == '\0')
				break;
			memcpy(unit, "...", 3);
			n = 3;
		} else if (ref_plain((unsigned char)src[i])) {
			unit[0] = src[i];
			n = 1;
		} else {
			(void)snprintf(unit, sizeof(unit), "\\x%02X",
				       (unsigned char)src[i]);
			n = 4;
		}
		if (used + n >= room) {
			*cut_r = true;
			return;
		}
		ref_put(out, unit, n);
		used += n;
		if (i == max_src)
			break;
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Charset check; decodes into dec (at least len + 1 bytes). */
static size_t check_escaped(const char *s, size_t len, char *dec)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		FUZZ_CHECK(c >= 0x21 && c <= 0x7e && c != '"' && c != '=',
			   "raw byte %#x at %zu in '%s'", c, i, s);
		if (c == '\\') {
			FUZZ_CHECK(i + 3 < len && s[i + 1] == 'x' &&
				   hexval(s[i + 2]) >= 0 &&
				   hexval(s[i + 3]) >= 0,
				   "bad escape at %zu in '%s'", i, s);
			c = (unsigned char)(hexval(s[i + 2]) * 16 +
					    hexval(s[i + 3]));
			FUZZ_CHECK(!ref_plain(c), "needless escape of %#x", c);
			i += 3;
		}
		dec[n++] = (char)c;
	}
	dec[n] = '\0';
	return n;
}

static void check_escape_size(const char *src, size_t max_src,
			      size_t dst_size)
{
	struct ref_buf ref = { NULL, 0, 0 };
	char *dst = malloc(dst_size == 0 ? 1 : dst_size);
	char *dec;
	size_t ret, len;
	bool cut;

	if (dst == NULL)
		abort();
	if (dst_size == 0) {
		/* a zero-size buffer: realloc to 0 so ASan flags any byte */
		free(dst);
		dst = malloc(0);
	}
	ref_put(&ref, "", 0);
	ref_escape(&ref, dst_size, src, max_src, &cut);
	ret = portguard_log_escape(dst, dst_size, src, max_src);
	if (dst_size == 0) {
		FUZZ_CHECK(ret == 0, "size 0 returned %zu", ret);
		free(dst);
		free(ref.s);
		return;
	}
	len = strlen(dst);
	FUZZ_CHECK(ret == len, "returned %zu, strlen %zu", ret, len);
	FUZZ_CHECK(len < dst_size, "len %zu >= size %zu", len, dst_size);
	FUZZ_CHECK(strcmp(dst, ref.s) == 0,
		   "size %zu max %zu: got '%s', reference '%s'", dst_size,
		   max_src, dst, ref.s);

	dec = malloc(len + 1);
	if (dec == NULL)
		abort();
	if (src != NULL && src[0] != '\0') {
		size_t n = check_escaped(dst, len, dec);
		size_t srclen = strlen(src);

		if (!cut && srclen <= max_src) {
			FUZZ_CHECK(n == srclen && memcmp(dec, src, n) == 0,
				   "escape does not decode back");
		} else if (!cut) {
			FUZZ_CHECK(n == max_src + 3 &&
				   memcmp(dec, src, max_src) == 0 &&
				   memcmp(dec + max_src, "...", 3) == 0,
				   "bounded escape does not decode back");
		} else {
			FUZZ_CHECK(n <= srclen && memcmp(dec, src, n) == 0,
				   "cut escape is not a prefix of the source");
		}
	} else {
		FUZZ_CHECK(strcmp(dst, dst_size >= 2 ? "-" : "") == 0,
			   "empty source gave '%s'", dst);
	}
	free(dec);
	free(dst);
	free(ref.s);
}

static void check_escape(const char *src, size_t max_src, size_t size_hint)
{
	size_t full, sizes[8], i;
	char *big;

	full = (src == NULL ? 1 : strlen(src) * 4) + 4;
	big = malloc(full + 1);
	if (big == NULL)
		abort();
	sizes[0] = 0;
	sizes[1] = 1;
	sizes[2] = 2;
	sizes[3] = 5;
	sizes[4] = size_hint;
	sizes[5] = size_hint % (full + 1);
	sizes[6] = portguard_log_escape(big, full + 1, src, max_src) + 1;
	sizes[7] = sizes[6] - 1;
	for (i = 0; i < 8; i++)
		check_escape_size(src, max_src, sizes[i]);
	free(big);
}

/* ---- key=value lines ---- */

enum item_type {
	ITEM_WORD, ITEM_STR, ITEM_STR_NULL, ITEM_UINT, ITEM_INT, ITEM_BOOL,
	ITEM_TYPE_COUNT
};

struct item {
	enum item_type type;
	const char *key;
	char *str;
	unsigned long long u;
	long long i;
	bool b;
};

static const char *const keys[] = {
	"port", "mode", "k", "", "user_name", "a.b-c_d", "x123456789"
};

#define MAX_ITEMS 64

/* The reference line: everything that fits (room = size), with the same
   overflow rules. full = true: unbounded. */
static bool ref_line(struct ref_buf *out, const struct item *items,
		     unsigned int count, size_t size, bool full)
{
	bool overflow = false;
	unsigned int n;

	ref_put(out, "", 0);
	for (n = 0; n < count && !overflow; n++) {
		const struct item *it = &items[n];
		char head[64], num[32];
		const char *value;
		size_t hlen;

		(void)snprintf(head, sizeof(head), "%s%s%s",
			       out->len > 0 ? " " : "",
			       it->type == ITEM_WORD ? "" : it->key,
			       it->type == ITEM_WORD ? "" : "=");
		hlen = strlen(head);
		switch (it->type) {
		case ITEM_STR:
		case ITEM_STR_NULL: {
			struct ref_buf val = { NULL, 0, 0 };
			bool cut;

			if (!full && out->len + hlen + 1 >= size) {
				overflow = true;
				break;
			}
			ref_put(&val, "", 0);
			ref_escape(&val, full ? SIZE_MAX :
				   size - out->len - hlen,
				   it->type == ITEM_STR ? it->str : NULL,
				   PORTGUARD_LOG_VALUE_MAX, &cut);
			if (cut)
				overflow = true;
			if (val.len > 0) {
				ref_put(out, head, hlen);
				ref_put(out, val.s, val.len);
			}
			free(val.s);
			break;
		}
		default:
			if (it->type == ITEM_WORD)
				value = it->str;
			else if (it->type == ITEM_UINT) {
				(void)snprintf(num, sizeof(num), "%llu", it->u);
				value = num;
			} else if (it->type == ITEM_INT) {
				if (it->i < 0)
					value = "-";
				else {
					(void)snprintf(num, sizeof(num), "%lld",
						       it->i);
					value = num;
				}
			} else {
				value = it->b ? "yes" : "no";
			}
			if (!full && out->len + hlen + strlen(value) >= size) {
				overflow = true;
				break;
			}
			ref_put(out, head, hlen);
			ref_put(out, value, strlen(value));
			break;
		}
	}
	return overflow;
}

static void kv_apply(struct portguard_kv *kv, const struct item *items,
		     unsigned int count)
{
	unsigned int n;

	for (n = 0; n < count; n++) {
		const struct item *it = &items[n];

		switch (it->type) {
		case ITEM_WORD:
			portguard_kv_word(kv, it->str);
			break;
		case ITEM_STR:
			portguard_kv_str(kv, it->key, it->str);
			break;
		case ITEM_STR_NULL:
			portguard_kv_str(kv, it->key, NULL);
			break;
		case ITEM_UINT:
			portguard_kv_uint(kv, it->key, it->u);
			break;
		case ITEM_INT:
			portguard_kv_int_or_unknown(kv, it->key, it->i);
			break;
		case ITEM_BOOL:
		case ITEM_TYPE_COUNT:
			portguard_kv_bool(kv, it->key, it->b);
			break;
		}
	}
}

static void check_line(const char *buf, size_t size, size_t len,
		       bool overflow, const struct ref_buf *ref,
		       bool ref_overflow, const struct ref_buf *full,
		       const char *what)
{
	size_t i;

	if (size == 0)
		return;
	FUZZ_CHECK(strlen(buf) == len, "%s: len %zu, strlen %zu", what, len,
		   strlen(buf));
	FUZZ_CHECK(len < size, "%s: len %zu >= size %zu", what, len, size);
	FUZZ_CHECK(strcmp(buf, ref->s) == 0,
		   "%s size %zu:\n  got '%s'\n  ref '%s'", what, size, buf,
		   ref->s);
	FUZZ_CHECK(overflow == ref_overflow, "%s: overflow %d, reference %d",
		   what, overflow, ref_overflow);
	FUZZ_CHECK(strncmp(buf, full->s, len) == 0,
		   "%s: '%s' is not a prefix of '%s'", what, buf, full->s);
	FUZZ_CHECK(overflow == (strcmp(buf, full->s) != 0),
		   "%s: overflow %d but line %s", what, overflow,
		   strcmp(buf, full->s) == 0 ? "complete" : "cut");
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];

		FUZZ_CHECK(c >= 0x20 && c <= 0x7e && c != '"',
			   "%s: raw byte %#x at %zu", what, c, i);
	}
}

static void check_kv(const struct item *items, unsigned int count,
		     size_t size)
{
	struct ref_buf ref = { NULL, 0, 0 }, full = { NULL, 0, 0 };
	struct portguard_kv kv;
	char *buf = malloc(size);
	bool ref_overflow;

	if (buf == NULL && size > 0)
		abort();
	ref_overflow = ref_line(&ref, items, count, size, false);
	(void)ref_line(&full, items, count, 0, true);
	portguard_kv_init(&kv, buf, size);
	kv_apply(&kv, items, count);
	FUZZ_CHECK(kv.buf == buf && kv.size == size, "kv moved");
	if (size == 0)
		FUZZ_CHECK(kv.overflow == (count > 0) && kv.len == 0,
			   "size 0: overflow %d len %zu", kv.overflow, kv.len);
	check_line(buf, size, kv.len, kv.overflow, &ref, ref_overflow, &full,
		   "kv");
	free(buf);
	free(ref.s);
	free(full.s);
}

static void check_tls(const struct item *items, unsigned int count,
		      size_t size)
{
	struct portguard_tls_info info;
	struct item line[12];
	struct ref_buf ref = { NULL, 0, 0 }, full = { NULL, 0, 0 };
	const char *strs[7];
	char *buf = malloc(size);
	unsigned int i, n = 0;
	bool ref_overflow;

	if (buf == NULL && size > 0)
		abort();
	for (i = 0; i < 7; i++) {
		const struct item *it = i < count ? &items[i] : NULL;

		strs[i] = it == NULL || it->type == ITEM_STR_NULL ? NULL :
			it->str;
	}
	memset(&info, 0, sizeof(info));
	info.port = count > 0 ? (unsigned int)items[0].u : 465;
	info.mode = strs[0];
	info.proto = strs[1];
	info.cipher = strs[2];
	info.bits = count > 1 ? (int)items[1].i : -1;
	info.group = strs[3];
	info.sni = strs[4];
	info.alpn = strs[5];
	info.resumed = count > 2 && items[2].b;
	info.client_cert = strs[6];
	info.handshake_ms = count > 3 ? items[3].i : -1;

	memset(line, 0, sizeof(line));
#define LINE_STR(k, v) line[n].type = ITEM_STR_NULL; \
	if ((v) != NULL) { line[n].type = ITEM_STR; \
		line[n].str = (char *)(v); } line[n++].key = (k)
	line[n].type = ITEM_WORD;
	line[n++].str = (char *)"tls_established";
	line[n].type = ITEM_UINT;
	line[n].u = info.port;
	line[n++].key = "port";
	LINE_STR("mode", info.mode);
	LINE_STR("proto", info.proto);
	LINE_STR("cipher", info.cipher);
	line[n].type = ITEM_INT;
	line[n].i = info.bits;
	line[n++].key = "bits";
	LINE_STR("group", info.group);
	LINE_STR("sni", info.sni);
	LINE_STR("alpn", info.alpn);
	line[n].type = ITEM_BOOL;
	line[n].b = info.resumed;
	line[n++].key = "resumed";
	LINE_STR("client_cert", info.client_cert);
	line[n].type = ITEM_INT;
	line[n].i = info.handshake_ms;
	line[n++].key = "handshake_ms";
#undef LINE_STR

	ref_overflow = ref_line(&ref, line, n, size, false);
	(void)ref_line(&full, line, n, 0, true);
	FUZZ_CHECK(portguard_logfmt_tls(&info, buf, size) == buf,
		   "logfmt_tls did not return buf");
	if (size > 0) {
		check_line(buf, size, strlen(buf), strcmp(buf, full.s) != 0,
			   &ref, ref_overflow, &full, "tls");
	}
	free(buf);
	free(ref.s);
	free(full.s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct item items[MAX_ITEMS];
	unsigned int count = 0, i;
	size_t kv_size, max_src, full_len;
	char *rest;

	kv_size = fuzz_u16(&in) % 4096;
	max_src = fuzz_u16(&in) % 512;

	/* the remaining input as one string, escaped on its own */
	rest = fuzz_cstr(in.p, in.n);
	check_escape(rest, max_src, kv_size);
	check_escape(rest, PORTGUARD_LOG_VALUE_MAX, kv_size);
	check_escape(NULL, max_src, kv_size % 8);
	free(rest);

	while (fuzz_left(&in) && count < MAX_ITEMS) {
		uint8_t op = fuzz_u8(&in);
		struct item *it = &items[count++];

		memset(it, 0, sizeof(*it));
		it->type = (enum item_type)(op % ITEM_TYPE_COUNT);
		it->key = keys[(op / ITEM_TYPE_COUNT) %
			       (sizeof(keys) / sizeof(keys[0]))];
		switch (it->type) {
		case ITEM_WORD: {
			/* words are not escaped: plain text only */
			static const char *const words[] = {
				"tls_established", "auth_failed", "", "x"
			};
			it->str = strdup(words[fuzz_u8(&in) % 4]);
			break;
		}
		case ITEM_STR:
			it->str = fuzz_str(&in, fuzz_u8(&in));
			break;
		case ITEM_UINT:
			it->u = (unsigned long long)fuzz_u32(&in) << 32 |
				fuzz_u32(&in);
			break;
		case ITEM_INT:
			it->i = (long long)((unsigned long long)fuzz_u32(&in)
					    << 32 | fuzz_u32(&in));
			break;
		default:
			it->b = (op & 0x80) != 0;
			break;
		}
		if (it->str == NULL && (it->type == ITEM_WORD ||
					it->type == ITEM_STR))
			abort();
		/* uint/int/bool fields feed the TLS line too */
		if (it->type == ITEM_STR) {
			it->u = op;
			it->i = (long long)op - 128;
			it->b = (op & 1) != 0;
		}
	}

	/* every size up to the full line for short lines, samples else */
	{
		struct ref_buf full = { NULL, 0, 0 };

		(void)ref_line(&full, items, count, 0, true);
		full_len = full.len;
		free(full.s);
	}
	if (full_len < 100) {
		for (i = 0; i <= full_len + 1; i++)
			check_kv(items, count, i);
	} else {
		check_kv(items, count, kv_size);
		check_kv(items, count, full_len);
		check_kv(items, count, full_len + 1);
		check_kv(items, count, full_len / 2);
	}
	for (i = 0; i < 8; i++)
		check_tls(items, count, i * 37 + kv_size % 37);
	check_tls(items, count, kv_size);
	check_tls(items, count, 8192);

	for (i = 0; i < count; i++)
		free(items[i].str);
	return 0;
}
