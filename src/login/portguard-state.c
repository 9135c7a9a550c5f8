/* The state backends behind one small interface: "shm"
   (portguard-state-shm.c) and "dict:<uri>" (portguard-state-dict.c). The
   rate-limit arithmetic is src/core/portguard-ratelimit.c for both. */

#include "lib.h"
#include "portguard-settings.h"
#include "portguard-state-private.h"

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
	rl_r->known.period = set->portguard_known_user_period;
	rl_r->known.fail_limit = set->portguard_known_user_fail_limit;
	rl_r->known.fail_window = set->portguard_auth_fail_window;
	if (portguard_known_config_check(&rl_r->known, &error) < 0) {
		*error_r = t_strdup(error);
		return -1;
	}
	return 0;
}

int portguard_state_open(const struct portguard_settings *set,
			 const struct portguard_rl_settings *rl,
			 const char *base_dir,
			 struct portguard_state **state_r,
			 const char **warning_r, const char **error_r)
{
	*warning_r = NULL;
	if (strcmp(set->portguard_state, "shm") == 0) {
		return portguard_state_shm_open(set, rl, base_dir, state_r,
						warning_r, error_r);
	}
	return portguard_state_dict_open(set, rl, base_dir, state_r, error_r);
}

void portguard_state_close(struct portguard_state **_state)
{
	struct portguard_state *state = *_state;

	if (state == NULL)
		return;
	*_state = NULL;
	state->v->close(state);
}

int portguard_state_check(struct portguard_state *state,
			  const struct portguard_rl_key *key, uint32_t now,
			  struct portguard_state_result *result_r,
			  const char **error_r)
{
	i_zero(result_r);
	return state->v->check(state, key, now, result_r, error_r);
}

int portguard_state_attempt(struct portguard_state *state,
			    const struct portguard_rl_key *key, uint32_t now,
			    struct portguard_state_result *result_r,
			    const char **error_r)
{
	i_zero(result_r);
	return state->v->attempt(state, key, now, result_r, error_r);
}

int portguard_state_attempt_end(struct portguard_state *state,
				const struct portguard_rl_key *key,
				uint32_t started,
				const struct portguard_state_result *attempt,
				enum portguard_attempt_outcome outcome,
				const char **error_r)
{
	return state->v->attempt_end(state, key, started, attempt, outcome,
				     error_r);
}

int portguard_state_known_success(struct portguard_state *state,
				  const struct portguard_rl_key *key,
				  const char *user, uint32_t now,
				  const char **error_r)
{
	struct portguard_rl_key known;

	if (state->rl->known.period == 0 || user == NULL ||
	    state->v->known_success == NULL)
		return 0;
	portguard_known_key_make(&known, key, user, strlen(user));
	return state->v->known_success(state, &known, now, error_r);
}

int portguard_state_known_fail(struct portguard_state *state,
			       const struct portguard_rl_key *key,
			       const char *user, uint32_t now,
			       enum portguard_known_verdict *verdict_r,
			       const char **error_r)
{
	struct portguard_rl_key known;

	*verdict_r = PORTGUARD_KNOWN_NO;
	if (state->rl->known.period == 0 || user == NULL ||
	    state->v->known_fail == NULL)
		return 0;
	portguard_known_key_make(&known, key, user, strlen(user));
	return state->v->known_fail(state, &known, now, verdict_r, error_r);
}

struct portguard_state_iter_ctx {
	portguard_state_iter_func_t *func;
	void *context;
};

static bool
portguard_state_iter_addresses(const struct portguard_rl_key *key,
			       const struct portguard_rl_entry *entry,
			       void *context)
{
	struct portguard_state_iter_ctx *ctx = context;

	/* known-user records are not addresses: not listed */
	if (portguard_known_key_is(key))
		return TRUE;
	return ctx->func(key, entry, ctx->context);
}

int portguard_state_iterate(struct portguard_state *state,
			    portguard_state_iter_func_t *func, void *context,
			    const char **error_r)
{
	struct portguard_state_iter_ctx ctx = {
		.func = func,
		.context = context,
	};

	return state->v->iterate(state, portguard_state_iter_addresses,
				 &ctx, error_r);
}

int portguard_state_ban(struct portguard_state *state,
			const struct portguard_rl_key *key, uint32_t now,
			unsigned int secs, unsigned int *secs_r,
			const char **error_r)
{
	return state->v->ban(state, key, now, secs, secs_r, error_r);
}

int portguard_state_unban(struct portguard_state *state,
			  const struct portguard_rl_key *key, uint32_t now,
			  bool *found_r, const char **error_r)
{
	return state->v->unban(state, key, now, found_r, error_r);
}

int portguard_state_flush(struct portguard_state *state,
			  const char **error_r)
{
	return state->v->flush(state, error_r);
}
