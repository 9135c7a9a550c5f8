#ifndef PORTGUARD_REDIS_H
#define PORTGUARD_REDIS_H

/* The little Redis that Dovecot's dict API cannot do: listing (SCAN) and
   deleting by prefix, for doveadm portguard list/flush. A blocking client
   over TCP speaking RESP; params is the part of a redis: dict URI after
   "redis:" (host=, port=, db=, password=, prefix=). */

typedef bool portguard_redis_scan_func_t(const char *name, const char *value,
					 void *context);

/* Call func for every key <prefix><match_prefix>* with its value; name is
   the key without <prefix><match_prefix>. Returns 0, or -1 with *error_r. */
int portguard_redis_scan(const char *params, const char *match_prefix,
			 unsigned int timeout_msecs,
			 portguard_redis_scan_func_t *func, void *context,
			 const char **error_r);

/* Delete every key <prefix><match_prefix>*. */
int portguard_redis_delete(const char *params, const char *match_prefix,
			   unsigned int timeout_msecs, const char **error_r);

#endif
