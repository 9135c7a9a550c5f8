/* A minimal blocking RESP client (see portguard-redis.h). Used only by
   doveadm, never in a login process. */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "strescape.h"
#include "portguard-redis.h"

#include <errno.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define PORTGUARD_REDIS_MAX_BULK (1024 * 1024)

struct portguard_redis {
	int fd;
	buffer_t *buf;
	size_t pos;
	const char *prefix;
	const char *error;
};

/* "key=value" with key: the value, else NULL (str_begins() differs
   between Dovecot 2.3 and 2.4). */
static const char *portguard_redis_param(const char *arg, const char *key)
{
	size_t len = strlen(key);

	return strncmp(arg, key, len) == 0 && arg[len] == '=' ?
		arg + len + 1 : NULL;
}

void portguard_redis_params_parse_uri(const char *uri,
				      struct portguard_redis_params *params_r)
{
	const char *const *args = t_strsplit(uri, ":");
	const char *value;

	i_zero(params_r);
	for (; *args != NULL; args++) {
		if ((value = portguard_redis_param(*args, "host")) != NULL)
			params_r->host = value;
		else if ((value = portguard_redis_param(*args, "port")) != NULL)
			params_r->port = value;
		else if ((value = portguard_redis_param(*args, "db")) != NULL)
			params_r->db = value;
		else if ((value = portguard_redis_param(*args,
							"password")) != NULL)
			params_r->password = value;
		else if ((value = portguard_redis_param(*args,
							"prefix")) != NULL)
			params_r->prefix = value;
	}
}

static int portguard_redis_fill(struct portguard_redis *r)
{
	unsigned char tmp[4096];
	ssize_t ret;

	ret = recv(r->fd, tmp, sizeof(tmp), 0);
	if (ret > 0) {
		buffer_append(r->buf, tmp, ret);
		return 0;
	}
	r->error = ret == 0 ? "connection closed by Redis" :
		(errno == EAGAIN || errno == EWOULDBLOCK ? "timed out" :
		 t_strdup_printf("recv() failed: %m"));
	return -1;
}

/* Read one line (without CRLF). */
static int portguard_redis_line(struct portguard_redis *r,
				const char **line_r)
{
	const unsigned char *data, *p;

	for (;;) {
		data = r->buf->data;
		p = memchr(data + r->pos, '\n', r->buf->used - r->pos);
		if (p != NULL && p > data + r->pos && p[-1] == '\r') {
			*line_r = t_strndup(data + r->pos,
					    p - 1 - (data + r->pos));
			r->pos = p + 1 - data;
			return 0;
		}
		if (portguard_redis_fill(r) < 0)
			return -1;
	}
}

static int portguard_redis_bulk(struct portguard_redis *r, size_t len,
				const char **value_r)
{
	while (r->buf->used - r->pos < len + 2) {
		if (portguard_redis_fill(r) < 0)
			return -1;
	}
	*value_r = t_strndup(CONST_PTR_OFFSET(r->buf->data, r->pos), len);
	r->pos += len + 2;
	return 0;
}

/* Read one reply. Strings and numbers come back in *value_r (NULL for a
   nil bulk), arrays as their element count in *count_r (elements are read
   with further calls). */
static int portguard_redis_reply(struct portguard_redis *r,
				 const char **value_r, unsigned int *count_r)
{
	const char *line;
	unsigned int len;

	*value_r = NULL;
	*count_r = 0;
	if (portguard_redis_line(r, &line) < 0)
		return -1;
	switch (line[0]) {
	case '+':
	case ':':
		*value_r = line + 1;
		return 0;
	case '-':
		r->error = t_strdup_printf("Redis: %s", line + 1);
		return -1;
	case '$':
		if (strcmp(line + 1, "-1") == 0)
			return 0;
		if (str_to_uint(line + 1, &len) < 0 ||
		    len > PORTGUARD_REDIS_MAX_BULK)
			break;
		return portguard_redis_bulk(r, len, value_r);
	case '*':
		if (strcmp(line + 1, "-1") == 0)
			return 0;
		if (str_to_uint(line + 1, count_r) < 0)
			break;
		return 1;
	}
	r->error = "invalid reply from Redis";
	return -1;
}

static int portguard_redis_cmd(struct portguard_redis *r,
			       const char *const *args)
{
	string_t *cmd = t_str_new(128);
	unsigned int i, count = str_array_length(args);
	size_t pos = 0;
	ssize_t ret;

	str_printfa(cmd, "*%u\r\n", count);
	for (i = 0; i < count; i++) {
		str_printfa(cmd, "$%zu\r\n%s\r\n", strlen(args[i]), args[i]);
	}
	while (pos < str_len(cmd)) {
		ret = send(r->fd, str_data(cmd) + pos, str_len(cmd) - pos,
			   MSG_NOSIGNAL);
		if (ret <= 0) {
			r->error = t_strdup_printf("send() failed: %m");
			return -1;
		}
		pos += ret;
	}
	return 0;
}

static int portguard_redis_simple(struct portguard_redis *r,
				  const char *const *args)
{
	const char *value;
	unsigned int count;

	if (portguard_redis_cmd(r, args) < 0 ||
	    portguard_redis_reply(r, &value, &count) < 0)
		return -1;
	return 0;
}

/* Open a socket to params' address (UNIX socket or TCP). */
static int
portguard_redis_open_socket(const struct portguard_redis_params *params,
			    unsigned int timeout_msecs,
			    struct portguard_redis *r)
{
	const char *host = params->host != NULL ? params->host : "127.0.0.1";
	const char *port = params->port != NULL ? params->port : "6379";
	struct addrinfo hints, *ai;
	union {
		struct sockaddr sa;
		struct sockaddr_un sun;
	} addr;
	struct timeval tv;
	int ret;

	tv.tv_sec = timeout_msecs / 1000;
	tv.tv_usec = (timeout_msecs % 1000) * 1000;
	if (params->socket_path != NULL) {
		i_zero(&addr);
		addr.sun.sun_family = AF_UNIX;
		if (i_strocpy(addr.sun.sun_path, params->socket_path,
			      sizeof(addr.sun.sun_path)) < 0) {
			r->error = t_strdup_printf("socket path too long: %s",
						   params->socket_path);
			return -1;
		}
		r->fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (r->fd == -1) {
			r->error = t_strdup_printf("socket() failed: %m");
			return -1;
		}
		(void)setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO,
				 &tv, sizeof(tv));
		(void)setsockopt(r->fd, SOL_SOCKET, SO_SNDTIMEO,
				 &tv, sizeof(tv));
		if (connect(r->fd, &addr.sa, sizeof(addr.sun)) < 0) {
			r->error = t_strdup_printf("connect(%s) failed: %m",
						   params->socket_path);
			return -1;
		}
		return 0;
	}

	i_zero(&hints);
	hints.ai_socktype = SOCK_STREAM;
	ret = getaddrinfo(host, port, &hints, &ai);
	if (ret != 0) {
		r->error = t_strdup_printf("%s:%s: %s", host, port,
					   gai_strerror(ret));
		return -1;
	}
	r->fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
	if (r->fd == -1) {
		freeaddrinfo(ai);
		r->error = t_strdup_printf("socket() failed: %m");
		return -1;
	}
	(void)setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(r->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	ret = connect(r->fd, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (ret < 0) {
		r->error = t_strdup_printf("connect(%s:%s) failed: %m",
					   host, port);
		return -1;
	}
	return 0;
}

static int portguard_redis_connect(const struct portguard_redis_params *params,
				   unsigned int timeout_msecs,
				   struct portguard_redis *r)
{
	i_zero(r);
	r->fd = -1;
	r->buf = t_buffer_create(8192);
	r->prefix = params->prefix != NULL ? params->prefix : "";

	if (portguard_redis_open_socket(params, timeout_msecs, r) < 0)
		return -1;
	if (params->password != NULL && params->password[0] != '\0') {
		const char *args[] = { "AUTH", params->password, NULL };
		if (portguard_redis_simple(r, args) < 0)
			return -1;
	}
	if (params->db != NULL && params->db[0] != '\0' &&
	    strcmp(params->db, "0") != 0) {
		const char *args[] = { "SELECT", params->db, NULL };
		if (portguard_redis_simple(r, args) < 0)
			return -1;
	}
	return 0;
}

static void portguard_redis_close(struct portguard_redis *r)
{
	i_close_fd(&r->fd);
}

typedef bool portguard_redis_key_func_t(struct portguard_redis *r,
					const char *key, void *context);

/* SCAN through <prefix><match_prefix>*, calling func for each key. */
static int portguard_redis_scan_keys(struct portguard_redis *r,
				     const char *match_prefix,
				     portguard_redis_key_func_t *func,
				     void *context)
{
	const char *cursor = "0", *value, *pattern;
	unsigned int count, nkeys, i;
	ARRAY_TYPE(const_string) keys;
	const char *const *keyp;
	bool stop = FALSE;

	pattern = t_strdup_printf("%s%s*", r->prefix, match_prefix);
	t_array_init(&keys, 64);
	do {
		const char *args[] = { "SCAN", cursor, "MATCH", pattern,
				       "COUNT", "1000", NULL };
		if (portguard_redis_cmd(r, args) < 0 ||
		    portguard_redis_reply(r, &value, &count) < 0)
			return -1;
		if (count != 2 ||
		    portguard_redis_reply(r, &cursor, &count) < 0 ||
		    cursor == NULL ||
		    portguard_redis_reply(r, &value, &nkeys) < 0) {
			if (r->error == NULL)
				r->error = "unexpected SCAN reply";
			return -1;
		}
		array_clear(&keys);
		for (i = 0; i < nkeys; i++) {
			if (portguard_redis_reply(r, &value, &count) < 0)
				return -1;
			if (value != NULL)
				array_push_back(&keys, &value);
		}
		array_foreach(&keys, keyp) {
			if (!func(r, *keyp, context)) {
				stop = TRUE;
				break;
			}
		}
		if (r->error != NULL)
			return -1;
	} while (!stop && strcmp(cursor, "0") != 0);
	return 0;
}

struct portguard_redis_scan_ctx {
	const char *match_prefix;
	portguard_redis_scan_func_t *func;
	void *context;
};

static bool portguard_redis_scan_one(struct portguard_redis *r,
				     const char *key, void *context)
{
	struct portguard_redis_scan_ctx *ctx = context;
	const char *args[] = { "GET", key, NULL };
	const char *value;
	unsigned int count;
	size_t skip = strlen(r->prefix) + strlen(ctx->match_prefix);

	if (portguard_redis_cmd(r, args) < 0 ||
	    portguard_redis_reply(r, &value, &count) < 0)
		return FALSE;
	if (value == NULL || strlen(key) < skip)
		return TRUE;
	return ctx->func(key + skip, value, ctx->context);
}

int portguard_redis_scan(const struct portguard_redis_params *params,
			 const char *match_prefix, unsigned int timeout_msecs,
			 portguard_redis_scan_func_t *func, void *context,
			 const char **error_r)
{
	struct portguard_redis r;
	struct portguard_redis_scan_ctx ctx = {
		.match_prefix = match_prefix,
		.func = func,
		.context = context,
	};
	int ret;

	ret = portguard_redis_connect(params, timeout_msecs, &r);
	if (ret == 0) {
		ret = portguard_redis_scan_keys(&r, match_prefix,
						portguard_redis_scan_one,
						&ctx);
	}
	if (ret < 0)
		*error_r = t_strdup_printf("redis: %s", r.error);
	portguard_redis_close(&r);
	return ret;
}

static bool portguard_redis_delete_one(struct portguard_redis *r,
				       const char *key,
				       void *context ATTR_UNUSED)
{
	const char *args[] = { "DEL", key, NULL };

	return portguard_redis_simple(r, args) == 0;
}

int portguard_redis_delete(const struct portguard_redis_params *params,
			   const char *match_prefix,
			   unsigned int timeout_msecs, const char **error_r)
{
	struct portguard_redis r;
	int ret;

	ret = portguard_redis_connect(params, timeout_msecs, &r);
	if (ret == 0) {
		ret = portguard_redis_scan_keys(&r, match_prefix,
						portguard_redis_delete_one,
						NULL);
	}
	if (ret < 0)
		*error_r = t_strdup_printf("redis: %s", r.error);
	portguard_redis_close(&r);
	return ret;
}
