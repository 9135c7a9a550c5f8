/* The "shm" state backend: the shared table of src/core/portguard-shm.c,
   a file (default <base_dir>/portguard.state) mapped by every login process
   on this host. */

#include "lib.h"
#include "portguard-settings.h"
#include "portguard-shm.h"
#include "portguard-state-private.h"

struct portguard_state_shm {
	struct portguard_state state;
	struct portguard_shm *shm;
};

#define SHM_STATE(s) (container_of(s, struct portguard_state_shm, state))

static const struct portguard_state_vfuncs portguard_state_shm_vfuncs;

int portguard_state_shm_open(const struct portguard_settings *set,
			     const struct portguard_rl_settings *rl,
			     const char *base_dir,
			     struct portguard_state **state_r,
			     const char **warning_r, const char **error_r)
{
	struct portguard_state_shm *state;
	const char *path, *error;

	*warning_r = NULL;
	path = set->portguard_state_path[0] != '\0' ?
		set->portguard_state_path :
		t_strdup_printf("%s/portguard.state", base_dir);

	state = i_new(struct portguard_state_shm, 1);
	state->state.v = &portguard_state_shm_vfuncs;
	state->state.rl = rl;
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
	*state_r = &state->state;
	return 0;
}

static void portguard_state_shm_close(struct portguard_state *_state)
{
	struct portguard_state_shm *state = SHM_STATE(_state);

	portguard_shm_close(&state->shm);
	i_free(state);
}

static int
portguard_state_shm_check(struct portguard_state *_state,
			  const struct portguard_rl_key *key, uint32_t now,
			  struct portguard_state_result *result_r,
			  const char **error_r)
{
	struct portguard_rl_entry entry;
	int ret;

	ret = portguard_shm_lookup(SHM_STATE(_state)->shm, key, &entry, error_r);
	if (ret <= 0)
		return ret;
	result_r->banned = portguard_rl_is_banned(&entry, now,
						  &result_r->remaining_secs);
	result_r->ban_level = entry.ban_level;
	result_r->failures = portguard_rl_failures(&entry,
						   &_state->rl->config, now);
	return 0;
}

struct portguard_state_attempt_ctx {
	const struct portguard_rl_config *config;
	uint32_t now;
	struct portguard_state_result *result;
};

static bool
portguard_state_attempt_update(struct portguard_rl_entry *entry,
			       bool created ATTR_UNUSED, void *context)
{
	struct portguard_state_attempt_ctx *ctx = context;
	struct portguard_state_result *result = ctx->result;

	if (portguard_rl_is_banned(entry, ctx->now,
				   &result->remaining_secs)) {
		/* refused unchecked: nothing to count */
		result->banned = TRUE;
		result->ban_level = entry->ban_level;
		return TRUE;
	}
	portguard_rl_snapshot_take(entry, &result->before);
	if (portguard_rl_fail(entry, ctx->config, ctx->now,
			      &result->ban_secs) == PORTGUARD_RL_BANNED) {
		result->new_ban = TRUE;
		/* the ban used the failures up: report what caused it */
		result->failures = ctx->config->fail_limit;
		(void)portguard_rl_is_banned(entry, ctx->now,
					     &result->remaining_secs);
	} else {
		result->failures = portguard_rl_failures(entry, ctx->config,
							 ctx->now);
	}
	result->ban_level = entry->ban_level;
	return TRUE;
}

static int
portguard_state_shm_attempt(struct portguard_state *_state,
			    const struct portguard_rl_key *key, uint32_t now,
			    struct portguard_state_result *result_r,
			    const char **error_r)
{
	struct portguard_state_attempt_ctx ctx = {
		.config = &_state->rl->config,
		.now = now,
		.result = result_r,
	};

	if (portguard_shm_update(SHM_STATE(_state)->shm, key, now, TRUE,
				 portguard_state_attempt_update, &ctx,
				 error_r) < 0)
		return -1;
	return 0;
}

struct portguard_state_end_ctx {
	const struct portguard_rl_config *config;
	uint32_t now, started;
	const struct portguard_state_result *attempt;
	enum portguard_attempt_outcome outcome;
};

static bool
portguard_state_end_update(struct portguard_rl_entry *entry,
			   bool created ATTR_UNUSED, void *context)
{
	struct portguard_state_end_ctx *ctx = context;

	if (ctx->outcome == PORTGUARD_ATTEMPT_FAILED)
		return TRUE;
	if (ctx->attempt->new_ban) {
		portguard_rl_undo_ban(entry, &ctx->attempt->before,
				      ctx->started);
	}
	if (ctx->outcome == PORTGUARD_ATTEMPT_SUCCEEDED)
		portguard_rl_success(entry, ctx->now);
	else
		portguard_rl_refund(entry, ctx->started);
	/* nothing left worth keeping: free the slot */
	return !portguard_rl_is_idle(entry, ctx->config, ctx->now);
}

static int
portguard_state_shm_attempt_end(struct portguard_state *_state,
				const struct portguard_rl_key *key,
				uint32_t started,
				const struct portguard_state_result *attempt,
				enum portguard_attempt_outcome outcome,
				const char **error_r)
{
	struct portguard_state_end_ctx ctx = {
		.config = &_state->rl->config,
		.now = started,
		.started = started,
		.attempt = attempt,
		.outcome = outcome,
	};

	if (outcome == PORTGUARD_ATTEMPT_FAILED)
		return 0;
	if (portguard_shm_update(SHM_STATE(_state)->shm, key, started, FALSE,
				 portguard_state_end_update, &ctx,
				 error_r) < 0)
		return -1;
	return 0;
}

static bool
portguard_state_known_success_update(struct portguard_rl_entry *entry,
				     bool created ATTR_UNUSED, void *context)
{
	const uint32_t *now = context;

	portguard_known_success(entry, *now);
	return TRUE;
}

static int
portguard_state_shm_known_success(struct portguard_state *_state,
				  const struct portguard_rl_key *key,
				  uint32_t now, const char **error_r)
{
	if (portguard_shm_update(SHM_STATE(_state)->shm, key, now, TRUE,
				 portguard_state_known_success_update, &now,
				 error_r) < 0)
		return -1;
	return 0;
}

struct portguard_state_known_fail_ctx {
	const struct portguard_known_config *config;
	uint32_t now;
	enum portguard_known_verdict verdict;
};

static bool
portguard_state_known_fail_update(struct portguard_rl_entry *entry,
				  bool created ATTR_UNUSED, void *context)
{
	struct portguard_state_known_fail_ctx *ctx = context;

	ctx->verdict = portguard_known_fail(entry, ctx->config, ctx->now);
	return !portguard_known_is_idle(entry, ctx->config, ctx->now);
}

static int
portguard_state_shm_known_fail(struct portguard_state *_state,
			       const struct portguard_rl_key *key,
			       uint32_t now,
			       enum portguard_known_verdict *verdict_r,
			       const char **error_r)
{
	struct portguard_state_known_fail_ctx ctx = {
		.config = &_state->rl->known,
		.now = now,
		.verdict = PORTGUARD_KNOWN_NO,
	};

	/* never creates: a user is known only after a success */
	if (portguard_shm_update(SHM_STATE(_state)->shm, key, now, FALSE,
				 portguard_state_known_fail_update, &ctx,
				 error_r) < 0)
		return -1;
	*verdict_r = ctx.verdict;
	return 0;
}

static int
portguard_state_shm_iterate(struct portguard_state *_state,
			    portguard_state_iter_func_t *func, void *context,
			    const char **error_r)
{
	return portguard_shm_iterate(SHM_STATE(_state)->shm, func, context,
				     error_r);
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

static int
portguard_state_shm_ban(struct portguard_state *_state,
			const struct portguard_rl_key *key, uint32_t now,
			unsigned int secs, unsigned int *secs_r,
			const char **error_r)
{
	struct portguard_state_ban_ctx ctx = {
		.config = &_state->rl->config,
		.now = now,
		.secs = secs,
	};

	if (portguard_shm_update(SHM_STATE(_state)->shm, key, now, TRUE,
				 portguard_state_ban_update, &ctx,
				 error_r) < 0)
		return -1;
	*secs_r = ctx.secs;
	return 0;
}

struct portguard_state_unban_ctx {
	const struct portguard_rl_config *config;
	uint32_t now;
};

static bool
portguard_state_unban_update(struct portguard_rl_entry *entry,
			     bool created ATTR_UNUSED, void *context)
{
	struct portguard_state_unban_ctx *ctx = context;

	portguard_rl_unban(entry, ctx->now);
	return !portguard_rl_is_idle(entry, ctx->config, ctx->now);
}

static int
portguard_state_shm_unban(struct portguard_state *_state,
			  const struct portguard_rl_key *key, uint32_t now,
			  bool *found_r, const char **error_r)
{
	struct portguard_state_unban_ctx ctx = {
		.config = &_state->rl->config,
		.now = now,
	};
	int ret;

	ret = portguard_shm_update(SHM_STATE(_state)->shm, key, now, FALSE,
				   portguard_state_unban_update, &ctx,
				   error_r);
	if (ret < 0)
		return -1;
	*found_r = ret > 0;
	return 0;
}

static int
portguard_state_shm_flush(struct portguard_state *_state,
			  const char **error_r)
{
	return portguard_shm_flush(SHM_STATE(_state)->shm, error_r);
}

static const struct portguard_state_vfuncs portguard_state_shm_vfuncs = {
	.close = portguard_state_shm_close,
	.check = portguard_state_shm_check,
	.attempt = portguard_state_shm_attempt,
	.attempt_end = portguard_state_shm_attempt_end,
	.known_success = portguard_state_shm_known_success,
	.known_fail = portguard_state_shm_known_fail,
	.iterate = portguard_state_shm_iterate,
	.ban = portguard_state_shm_ban,
	.unban = portguard_state_shm_unban,
	.flush = portguard_state_shm_flush,
};
