/* The state backends behind one small interface. The shm backend is the
   pure table in src/core/portguard-shm.c; the rate-limit arithmetic is
   src/core/portguard-ratelimit.c for every backend. */

#include "lib.h"
#include "portguard-settings.h"
#include "portguard-shm.h"
#include "portguard-state.h"

struct portguard_state {
	const struct portguard_rl_settings *rl;
	struct portguard_shm *shm;
};

int portguard_rl_settings_parse(const struct portguard_settings *set,
				struct portguard_rl_settings *rl_r,
				const char **error_r)
{
	const char *error;

	i_zero(rl_r);
	if (strcmp(set->portguard_ratelimit, "enforce") == 0)
		rl_r->mode = PORTGUARD_RL_ENFORCE;
	else if (strcmp(set->portguard_ratelimit, "monitor") == 0)
		rl_r->mode = PORTGUARD_RL_MONITOR;
	else if (strcmp(set->portguard_ratelimit, "off") == 0)
		rl_r->mode = PORTGUARD_RL_OFF;
	else {
		*error_r = t_strdup_printf("portguard_ratelimit: "
			"unknown value '%s'", set->portguard_ratelimit);
		return -1;
	}
	rl_r->config.fail_limit = set->portguard_auth_fail_limit;
	rl_r->config.fail_window = set->portguard_auth_fail_window;
	rl_r->config.ban_duration = set->portguard_ban_duration;
	rl_r->config.ban_duration_max = set->portguard_ban_duration_max;
	if (portguard_rl_config_check(&rl_r->config, &error) < 0) {
		*error_r = t_strdup(error);
		return -1;
	}
	rl_r->ipv4_prefix = set->portguard_ipv4_prefix;
	rl_r->ipv6_prefix = set->portguard_ipv6_prefix;
	if (portguard_netlist_parse(set->portguard_ratelimit_exempt_networks,
				    &rl_r->exempt_networks, &error) < 0) {
		*error_r = t_strdup_printf(
			"portguard_ratelimit_exempt_networks: %s", error);
		return -1;
	}
	rl_r->ban_drop = strcmp(set->portguard_ban_action, "drop") == 0;
	rl_r->fail_closed = strcmp(set->portguard_state_failure, "closed") == 0;
	rl_r->timeout_msecs = set->portguard_state_timeout;
	return 0;
}

int portguard_state_open(const struct portguard_settings *set,
			 const struct portguard_rl_settings *rl,
			 const char *state_dir,
			 struct portguard_state **state_r,
			 const char **warning_r, const char **error_r)
{
	struct portguard_state *state;
	const char *path, *error;

	*warning_r = NULL;
	if (strcmp(set->portguard_state, "shm") != 0) {
		*error_r = t_strdup_printf("portguard_state=%s: "
			"the dict backend is not available in this build",
			set->portguard_state);
		return -1;
	}
	path = set->portguard_state_path[0] != '\0' ?
		set->portguard_state_path :
		t_strdup_printf("%s/portguard.state", state_dir);

	state = i_new(struct portguard_state, 1);
	state->rl = rl;
	if (portguard_shm_open(path, set->portguard_state_size, 0600,
			       &state->shm, warning_r, &error) < 0) {
		*error_r = t_strdup_printf("portguard_state=shm (%s): %s",
					   path, error);
		i_free(state);
		return -1;
	}
	if (*warning_r != NULL) {
		*warning_r = t_strdup_printf("portguard_state=shm (%s): %s",
					     path, *warning_r);
	}
	*state_r = state;
	return 0;
}

void portguard_state_close(struct portguard_state **_state)
{
	struct portguard_state *state = *_state;

	if (state == NULL)
		return;
	*_state = NULL;
	portguard_shm_close(&state->shm);
	i_free(state);
}

int portguard_state_check(struct portguard_state *state,
			  const struct portguard_rl_key *key, uint32_t now,
			  struct portguard_state_result *result_r,
			  const char **error_r)
{
	struct portguard_rl_entry entry;
	int ret;

	i_zero(result_r);
	ret = portguard_shm_lookup(state->shm, key, &entry, error_r);
	if (ret <= 0)
		return ret;
	result_r->banned = portguard_rl_is_banned(&entry, now,
						  &result_r->remaining_secs);
	result_r->ban_level = entry.ban_level;
	result_r->failures = portguard_rl_failures(&entry,
						   &state->rl->config, now);
	return 0;
}

struct portguard_state_fail_ctx {
	const struct portguard_rl_config *config;
	uint32_t now;
	struct portguard_state_result *result;
};

static bool
portguard_state_fail_update(struct portguard_rl_entry *entry,
			    bool created ATTR_UNUSED, void *context)
{
	struct portguard_state_fail_ctx *ctx = context;
	struct portguard_state_result *result = ctx->result;
	bool banned_before;

	banned_before = portguard_rl_is_banned(entry, ctx->now, NULL);
	if (portguard_rl_fail(entry, ctx->config, ctx->now,
			      &result->ban_secs) == PORTGUARD_RL_BANNED) {
		result->new_ban = TRUE;
		/* the ban used the failures up: report what caused it */
		result->failures = ctx->config->fail_limit;
	} else {
		result->failures = portguard_rl_failures(entry, ctx->config,
							 ctx->now);
	}
	result->banned = banned_before || result->new_ban;
	(void)portguard_rl_is_banned(entry, ctx->now,
				     &result->remaining_secs);
	result->ban_level = entry->ban_level;
	return TRUE;
}

int portguard_state_fail(struct portguard_state *state,
			 const struct portguard_rl_key *key, uint32_t now,
			 struct portguard_state_result *result_r,
			 const char **error_r)
{
	struct portguard_state_fail_ctx ctx = {
		.config = &state->rl->config,
		.now = now,
		.result = result_r,
	};

	i_zero(result_r);
	if (portguard_shm_update(state->shm, key, now, TRUE,
				 portguard_state_fail_update, &ctx,
				 error_r) < 0)
		return -1;
	return 0;
}

struct portguard_state_success_ctx {
	const struct portguard_rl_config *config;
	uint32_t now;
};

static bool
portguard_state_success_update(struct portguard_rl_entry *entry,
			       bool created ATTR_UNUSED, void *context)
{
	struct portguard_state_success_ctx *ctx = context;

	portguard_rl_success(entry, ctx->now);
	/* nothing left worth keeping: free the slot */
	return !portguard_rl_is_idle(entry, ctx->config, ctx->now);
}

int portguard_state_success(struct portguard_state *state,
			    const struct portguard_rl_key *key, uint32_t now,
			    const char **error_r)
{
	struct portguard_state_success_ctx ctx = {
		.config = &state->rl->config,
		.now = now,
	};

	if (portguard_shm_update(state->shm, key, now, FALSE,
				 portguard_state_success_update, &ctx,
				 error_r) < 0)
		return -1;
	return 0;
}

int portguard_state_iterate(struct portguard_state *state,
			    portguard_state_iter_func_t *func, void *context,
			    const char **error_r)
{
	return portguard_shm_iterate(state->shm, func, context, error_r);
}

struct portguard_state_ban_ctx {
	const struct portguard_rl_config *config;
	uint32_t now;
	unsigned int secs;
};

static bool
portguard_state_ban_update(struct portguard_rl_entry *entry,
			   bool created ATTR_UNUSED, void *context)
{
	struct portguard_state_ban_ctx *ctx = context;

	ctx->secs = portguard_rl_ban(entry, ctx->config, ctx->now, ctx->secs);
	return TRUE;
}

int portguard_state_ban(struct portguard_state *state,
			const struct portguard_rl_key *key, uint32_t now,
			unsigned int secs, unsigned int *secs_r,
			const char **error_r)
{
	struct portguard_state_ban_ctx ctx = {
		.config = &state->rl->config,
		.now = now,
		.secs = secs,
	};

	if (portguard_shm_update(state->shm, key, now, TRUE,
				 portguard_state_ban_update, &ctx,
				 error_r) < 0)
		return -1;
	*secs_r = ctx.secs;
	return 0;
}

static bool
portguard_state_unban_update(struct portguard_rl_entry *entry,
			     bool created ATTR_UNUSED, void *context)
{
	struct portguard_state_success_ctx *ctx = context;

	portguard_rl_unban(entry, ctx->now);
	return !portguard_rl_is_idle(entry, ctx->config, ctx->now);
}

int portguard_state_unban(struct portguard_state *state,
			  const struct portguard_rl_key *key, uint32_t now,
			  bool *found_r, const char **error_r)
{
	struct portguard_state_success_ctx ctx = {
		.config = &state->rl->config,
		.now = now,
	};
	int ret;

	ret = portguard_shm_update(state->shm, key, now, FALSE,
				   portguard_state_unban_update, &ctx,
				   error_r);
	if (ret < 0)
		return -1;
	*found_r = ret > 0;
	return 0;
}

int portguard_state_flush(struct portguard_state *state,
			  const char **error_r)
{
	return portguard_shm_flush(state->shm, error_r);
}
