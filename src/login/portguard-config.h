#ifndef PORTGUARD_CONFIG_H
#define PORTGUARD_CONFIG_H

/* Reading portguard's own settings from inside a login process. */

#include "portguard-policy.h"

struct ip_addr;
struct portguard_settings;

/* Read the portguard settings for protocol submission through the config
   service and parse the TLS rules into *policy_r. If set_r is not NULL,
   *set_r gets a copy of all settings allocated from pool. local_ip,
   remote_ip and local_name may be NULL (global settings). *uses_filters_r
   tells whether the configuration has local/remote filters for this
   service, so that a per-client read can give different values. Returns 0,
   or -1 with *error_r. */
int portguard_config_read(pool_t pool,
			  const struct portguard_settings **set_r,
			  const struct ip_addr *local_ip,
			  const struct ip_addr *remote_ip,
			  const char *local_name,
			  struct portguard_policy *policy_r,
			  bool *uses_filters_r, const char **error_r);

/* Free what the reads kept (plugin deinit). */
void portguard_config_deinit(void);

#endif
