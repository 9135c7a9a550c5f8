#ifndef PORTGUARD_PLUGIN_H
#define PORTGUARD_PLUGIN_H

#include "portguard-policy.h"
#include "portguard-state.h"

struct module;

/* What the plugin knows for the whole process, set up once in init. */
struct portguard_runtime {
	struct module *module;
	/* the settings read at init */
	pool_t set_pool;
	/* parsed from the settings read at init (protocol submission, no
	   local/remote filter) */
	struct portguard_policy policy;
	/* the configuration has local/remote filters: re-read the settings
	   for each client with its addresses */
	bool per_client_settings;
	bool hooks_added;

	/* failed-AUTH rate limiting; state is NULL when it is off */
	struct portguard_rl_settings rl;
	struct portguard_state *state;
	/* base_dir, opened before chroot, for cross-process log throttling
	   markers */
	int base_dir_fd;
};

#define PORTGUARD_THROTTLE_STATE_ERROR "state-error"
/* Dovecot 2.4: an implicit-TLS port's listener lacks ssl = yes */
#define PORTGUARD_THROTTLE_LISTENER_NO_SSL "listener-no-ssl"

/* TRUE if a message of this kind may be logged now: at most once per
   interval_secs across all login processes (a marker file's mtime in
   base_dir). */
bool portguard_log_throttle(const char *kind, unsigned int interval_secs);

extern struct portguard_runtime portguard_runtime;

void portguard_plugin_init(struct module *module);
void portguard_plugin_deinit(void);

#endif
