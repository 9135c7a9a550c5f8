#ifndef PORTGUARD_PLUGIN_H
#define PORTGUARD_PLUGIN_H

#include "portguard-policy.h"

struct module;

/* What the plugin knows for the whole process, set up once in init. */
struct portguard_runtime {
	struct module *module;
	/* parsed from the settings read at init (protocol submission, no
	   local/remote filter) */
	struct portguard_policy policy;
	/* the configuration has local/remote filters: re-read the settings
	   for each client with its addresses */
	bool per_client_settings;
	bool hooks_added;
};

extern struct portguard_runtime portguard_runtime;

void portguard_plugin_init(struct module *module);
void portguard_plugin_deinit(void);

#endif
