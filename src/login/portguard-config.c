/* portguard settings in a login process: login processes never see
   plugin {} and their own settings parser ignores unknown keys, so the
   plugin asks the config service for its own settings root, once per
   process (and per client only when local/remote filters exist). */

#include "login-common.h"
#include "master-service.h"
#include "master-service-settings.h"
#include "settings-parser.h"
#include "portguard-settings.h"
#include "portguard-config.h"
#include "portguard-config-cache.h"

/* The login process's own settings pool, detached before the first read:
   kept until the plugin is unloaded. */
static pool_t portguard_config_detached_pool = NULL;

void portguard_config_deinit(void)
{
	pool_unref(&portguard_config_detached_pool);
}

int portguard_config_read(pool_t pool,
			  const struct portguard_settings **set_r,
			  const struct ip_addr *local_ip,
			  const struct ip_addr *remote_ip,
			  const char *local_name,
			  struct portguard_policy *policy_r,
			  bool *uses_filters_r, const char **error_r)
{
	static const struct setting_parser_info *roots[] = {
		&portguard_setting_parser_info,
		NULL
	};
	static bool detached = FALSE;
	struct master_service_settings_input input;
	struct master_service_settings_output output;
	const struct portguard_settings *set;
	void **sets;
	const char *error;

	/* the global settings: from this service generation's cache if an
	   earlier login process left one (saves a config request) */
	if (local_ip == NULL && remote_ip == NULL && local_name == NULL &&
	    set_r != NULL &&
	    portguard_config_cache_read(pool, set_r, uses_filters_r) == 0) {
		set = *set_r;
		if (portguard_policy_init(policy_r,
					  set->portguard_implicit_tls_ports,
					  set->portguard_starttls_ports,
					  set->portguard_tls_exempt_networks,
					  set->portguard_min_tls_protocol,
					  set->portguard_log_tls, &error) < 0) {
			*error_r = t_strdup(error);
			return -1;
		}
		return 0;
	}

	i_zero(&input);
	input.roots = roots;
	input.module = "portguard";
	input.service = login_binary->protocol;
	if (local_ip != NULL)
		input.local_ip = *local_ip;
	if (remote_ip != NULL)
		input.remote_ip = *remote_ip;
	input.local_name = local_name;

	/* Keep the settings the login process already uses valid: the read
	   would otherwise clear the pool they live in. That pool stays
	   referenced for the life of the process. Later reads reuse (clear)
	   the pool of our own previous read: everything needed from it is
	   copied into *policy_r below. */
	if (!detached) {
		portguard_config_detached_pool =
			master_service_settings_detach(master_service);
		detached = TRUE;
	}
	if (master_service_settings_read(master_service, &input, &output,
					 &error) < 0) {
		*error_r = t_strdup_printf(
			"Couldn't read portguard settings: %s", error);
		return -1;
	}
	sets = master_service_settings_get_others(master_service);
	set = sets[0];
	*uses_filters_r = output.service_uses_local ||
		output.service_uses_remote;
	if (portguard_policy_init(policy_r, set->portguard_implicit_tls_ports,
				  set->portguard_starttls_ports,
				  set->portguard_tls_exempt_networks,
				  set->portguard_min_tls_protocol,
				  set->portguard_log_tls, &error) < 0) {
		*error_r = t_strdup(error);
		return -1;
	}
	if (set_r != NULL)
		*set_r = settings_dup(&portguard_setting_parser_info, set, pool);
	if (local_ip == NULL && remote_ip == NULL && local_name == NULL)
		portguard_config_cache_write(set, *uses_filters_r);
	return 0;
}
