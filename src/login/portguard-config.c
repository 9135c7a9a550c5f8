/* portguard settings in a login process.

   Dovecot 2.3: login processes never see plugin {} and their own settings
   parser ignores unknown keys, so the plugin asks the config service for
   its own settings root, once per process (and per client only when
   local/remote filters exist).

   Dovecot 2.4: every process has the whole (binary) configuration mapped
   and settings_get() evaluates the filters against an event's fields, with
   no config request: the plugin reads its settings with the client's own
   event, so local/remote/local_name filters apply like they do to the
   login's own settings. */

#include "login-common.h"
#include "master-service.h"
#include "master-service-settings.h"
#include "settings-parser.h"
#include "portguard-settings.h"
#include "portguard-config.h"
#include "portguard-config-cache.h"

/* The port roles and TLS rules of set, for policy_r. */
static int
portguard_config_policy(const struct portguard_settings *set,
			struct portguard_policy *policy_r,
			const char **error_r)
{
	const char *error;

	if (portguard_policy_init(policy_r, set->portguard_implicit_tls_ports,
				  set->portguard_starttls_ports,
				  set->portguard_tls_exempt_networks,
				  set->portguard_min_tls_protocol,
				  set->portguard_log_tls, &error) < 0) {
		*error_r = t_strdup(error);
		return -1;
	}
	return 0;
}

#if PORTGUARD_SETTINGS_24
#include "settings.h"

/* the settings read at init, kept until deinit */
static const struct portguard_settings *portguard_config_global_set = NULL;

void portguard_config_deinit(void)
{
	settings_free(portguard_config_global_set);
}

int portguard_config_read(pool_t pool ATTR_UNUSED,
			  const struct portguard_settings **set_r,
			  struct event *event,
			  const struct ip_addr *local_ip ATTR_UNUSED,
			  const struct ip_addr *remote_ip ATTR_UNUSED,
			  const char *local_name ATTR_UNUSED,
			  struct portguard_policy *policy_r,
			  bool *uses_filters_r, const char **error_r)
{
	const struct portguard_settings *set;
	struct event *global_event = NULL;
	const char *error;
	int ret;

	if (event == NULL) {
		/* the process-wide settings: protocol submission, no
		   local/remote filter */
		global_event = event_create(
			master_service_get_event(master_service));
		event_add_str(global_event, "protocol",
			      login_binary->protocol);
		event = global_event;
	}
	ret = settings_get(event, &portguard_setting_parser_info, 0,
			   &set, &error);
	event_unref(&global_event);
	if (ret < 0) {
		*error_r = t_strdup_printf(
			"Couldn't read portguard settings: %s", error);
		return -1;
	}
	/* reading them again per client costs no config request on 2.4:
	   always do it, so that every filter applies */
	*uses_filters_r = TRUE;
	if (portguard_config_policy(set, policy_r, error_r) < 0) {
		settings_free(set);
		return -1;
	}
	if (set_r != NULL) {
		settings_free(portguard_config_global_set);
		portguard_config_global_set = set;
		*set_r = set;
	} else {
		settings_free(set);
	}
	return 0;
}

#else

/* The login process's own settings pool, detached before the first read:
   kept until the plugin is unloaded. */
static pool_t portguard_config_detached_pool = NULL;

void portguard_config_deinit(void)
{
	pool_unref(&portguard_config_detached_pool);
}

int portguard_config_read(pool_t pool,
			  const struct portguard_settings **set_r,
			  struct event *event ATTR_UNUSED,
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
		return portguard_config_policy(*set_r, policy_r, error_r);
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
	if (portguard_config_policy(set, policy_r, error_r) < 0)
		return -1;
	if (set_r != NULL)
		*set_r = settings_dup(&portguard_setting_parser_info, set, pool);
	if (local_ip == NULL && remote_ip == NULL && local_name == NULL)
		portguard_config_cache_write(set, *uses_filters_r);
	return 0;
}
#endif
