#ifndef PORTGUARD_CONFIG_CACHE_H
#define PORTGUARD_CONFIG_CACHE_H

/* portguard's global settings shared by the login processes of one
   service generation (Dovecot 2.3: saves a config request per process). */

struct portguard_settings;

/* Read the settings that an earlier login process of the same service
   generation cached: *set_r is allocated from pool, *uses_filters_r as
   portguard_config_read() gives it. Returns 0, or -1 if there is no valid
   cache for this generation (then ask the config service). */
int portguard_config_cache_read(pool_t pool,
				const struct portguard_settings **set_r,
				bool *uses_filters_r);
/* Cache the settings read from the config service for the later processes
   of this generation (only as root; failures are ignored). */
void portguard_config_cache_write(const struct portguard_settings *set,
				  bool uses_filters);

#endif
