#ifndef PORTGUARD_CONFIG_H
#define PORTGUARD_CONFIG_H

/* Reading portguard's own settings from inside a login process. */

#include "portguard-policy.h"

struct event;
struct ip_addr;
struct portguard_settings;

/* Read the portguard settings for protocol submission and parse the TLS
   rules into *policy_r. Dovecot 2.3 asks the config service with local_ip,
   remote_ip and local_name (NULL: global settings); 2.4 evaluates the
   filters against event (a client's event; NULL: global settings) and
   ignores the addresses. If set_r is not NULL, *set_r gets all settings:
   on 2.3 a copy allocated from pool, on 2.4 kept until
   portguard_config_deinit(). *uses_filters_r tells whether a per-client
   read can give different values (2.3: local/remote filters exist for
   this service; 2.4: always, the read is cheap). Returns 0, or -1 with
   *error_r. */
int portguard_config_read(pool_t pool,
			  const struct portguard_settings **set_r,
			  struct event *event,
			  const struct ip_addr *local_ip,
			  const struct ip_addr *remote_ip,
			  const char *local_name,
			  struct portguard_policy *policy_r,
			  bool *uses_filters_r, const char **error_r);

/* Free what the reads kept (plugin deinit). */
void portguard_config_deinit(void);

#endif
