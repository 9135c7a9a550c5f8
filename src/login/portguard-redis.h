#ifndef PORTGUARD_REDIS_H
#define PORTGUARD_REDIS_H

/* The little Redis that Dovecot's dict API cannot do: listing (SCAN) and
   deleting by prefix, for doveadm portguard list/flush. A blocking client
   speaking RESP over TCP or a UNIX socket. */

/* Where Redis is: from a 2.3 redis: dict URI or the 2.4 dict redis { }
   settings. Unset fields are NULL. */
struct portguard_redis_params {
	/* a UNIX socket (used instead of host/port when set) */
	const char *socket_path;
	const char *host, *port;
	const char *db, *password;
	/* prepended to every key */
	const char *prefix;
};

/* Fill params_r from the part of a redis: dict URI after "redis:"
   (host=, port=, db=, password=, prefix=; the rest is ignored). The
   strings are allocated from the data stack. */
void portguard_redis_params_parse_uri(const char *uri,
				      struct portguard_redis_params *params_r);

typedef bool portguard_redis_scan_func_t(const char *name, const char *value,
					 void *context);

/* Call func for every key <prefix><match_prefix>* with its value; name is
   the key without <prefix><match_prefix>. Returns 0, or -1 with *error_r. */
int portguard_redis_scan(const struct portguard_redis_params *params,
			 const char *match_prefix, unsigned int timeout_msecs,
			 portguard_redis_scan_func_t *func, void *context,
			 const char **error_r);

/* Delete every key <prefix><match_prefix>*. */
int portguard_redis_delete(const struct portguard_redis_params *params,
			   const char *match_prefix,
			   unsigned int timeout_msecs, const char **error_r);

#endif
