/* The login glue: one context per submission client, every vfunc override
   set in portguard_client_allocated(), each calling super. Decisions come
   from the pure policy code; this file only gathers facts and carries the
   verdicts out. */

#include "login-common.h"
#include "ioloop.h"
#include "istream.h"
#include "ostream.h"
#include "str.h"
#include "module-context.h"
#include "time-util.h"
#include "iostream-ssl.h"
#include "client-common.h"
#include "portguard-compat.h"
#if DOVECOT_PREREQ(2, 4, 0)
#  include "ssl-settings.h"
#else
#  include "master-service-ssl-settings.h"
#endif
#include "portguard-plugin.h"
#include "portguard-config.h"
#include "portguard-tls.h"
#include "portguard-tlsver.h"
#include "portguard-logfmt.h"
#include "portguard-hook-istream.h"
#include "portguard-client.h"

#include <sys/socket.h>

#define PORTGUARD_CLIENT_CONTEXT(obj) \
	MODULE_CONTEXT(obj, portguard_client_module)

/* Texts of the 421 replies (RFC 3207 section 4, RFC 8314 section 3.3) */
#define PORTGUARD_TEXT_NOT_TLS \
	"This port requires TLS from the first byte (implicit TLS, RFC 8314)"
#define PORTGUARD_TEXT_TLS_TOO_OLD \
	"TLS protocol version too old"

struct portguard_client {
	union login_client_module_context module_ctx;
	struct client *client;
	struct event *event;

	struct portguard_policy policy;
	enum portguard_port_role role;
	enum portguard_connect_verdict verdict;

	/* when the TLS handshake started (connect or STARTTLS) */
	struct timeval tls_start;
	/* implicit TLS: drives the handshake before the greeting */
	struct io *io_handshake;
	/* STARTTLS (2.3): notices the TLS layer on its first read */
	struct istream *hook_input;
	/* STARTTLS (2.4): the TLS stream given the handshake callback */
	struct ssl_iostream *watched_ssl;
	/* when the handshake callback ran */
	struct timeval tls_end;
	/* STARTTLS: the handshake is over; log once Dovecot marked it done */
	struct timeout *to_tls;
	struct timeout *to_refuse;
	unsigned int refuse_rounds;
	/* output offset when the refusal was decided (see refuse_timeout) */
	uoff_t refuse_offset;
	const char *refuse_reason, *refuse_text, *refuse_detail;

	/* rate limiting: the client's key, when it is counted */
	struct portguard_rl_key rl_key;
	char rl_key_str[64];
	/* the AUTH going on, counted in advance at attempt_started */
	struct portguard_state_result attempt;
	uint32_t attempt_started;
	/* logging once the client's own event is unusable (see
	   portguard_client_event()) */
	struct event *event_detached;

	bool tls_seen:1;
	bool refused:1;
	/* implicit TLS: the 421 goes out once the handshake is done */
	bool refuse_after_handshake:1;
	/* close without any reply (portguard_ban_action = drop) */
	bool refuse_silently:1;
	/* a reply (the 535) is on its way: send the 421 after it */
	bool refuse_after_reply:1;
	bool rl_active:1;
	/* an AUTH counted in advance (portguard_state_attempt) is going on */
	bool attempt_active:1;
	/* the AUTH was refused at its start: Dovecot's reply is dropped,
	   the 421 goes out instead */
	bool attempt_refused:1;
};

static MODULE_CONTEXT_DEFINE_INIT(portguard_client_module,
				  &login_module_register);

static struct portguard_client *portguard_client_get(struct client *client)
{
	return PORTGUARD_CLIENT_CONTEXT(client);
}

/* The event to log with. Once the client is disconnected its TLS stream is
   gone, and Dovecot's log prefix callback of the client event would still
   ask it for TLS state: log on a detached event then, carrying the port,
   remote address and key as fields. */
static struct event *portguard_client_event(struct portguard_client *pc)
{
	struct client *client = pc->client;

	if (!client->disconnected && !client->destroyed)
		return pc->event;
	if (pc->event_detached == NULL) {
		pc->event_detached = event_create(NULL);
		event_set_append_log_prefix(pc->event_detached,
					    "portguard: ");
		event_add_int(pc->event_detached, "port", client->local_port);
		event_add_int(pc->event_detached, "local_port",
			      client->local_port);
		event_add_str(pc->event_detached, "remote_ip",
			      net_ip2addr(&client->ip));
		if (pc->rl_key_str[0] != '\0') {
			event_add_str(pc->event_detached, "key",
				      pc->rl_key_str);
		}
	}
	return pc->event_detached;
}

static void portguard_addr_from_ip(const struct ip_addr *ip,
				   struct portguard_addr *addr_r)
{
	i_zero(addr_r);
	if (ip->family == AF_INET)
		portguard_addr_from_bytes(addr_r, 4, &ip->u.ip4);
#if defined(HAVE_IPV6) || DOVECOT_PREREQ(2, 4, 0)
	/* 2.4 always has IPv6 and no longer defines HAVE_IPV6 */
	else if (ip->family == AF_INET6)
		portguard_addr_from_bytes(addr_r, 6, &ip->u.ip6);
#endif
}

/* ---- refusing ---- */

/* After a failed AUTH the 421 must follow the 535 that the SMTP server is
   about to send (its replies go out from its own output callback, a few
   ioloop rounds later): wait until the output offset moved past where it
   was and the buffer is empty, polling every few milliseconds, for at
   most a second. */
#define PORTGUARD_REFUSE_POLL_MSECS 5
#define PORTGUARD_REFUSE_MAX_ROUNDS 200

static void portguard_client_refuse_now(struct portguard_client *pc);

static void portguard_client_refuse_timeout(struct portguard_client *pc)
{
	struct client *client = pc->client;
	bool reply_out;

	timeout_remove(&pc->to_refuse);
	if (pc->refuse_after_reply && client->output != NULL &&
	    !client->output->closed &&
	    ++pc->refuse_rounds < PORTGUARD_REFUSE_MAX_ROUNDS) {
		reply_out = client->output->offset > pc->refuse_offset &&
			o_stream_get_buffer_used_size(client->output) == 0;
		if (!reply_out) {
			pc->to_refuse = timeout_add_short(
				PORTGUARD_REFUSE_POLL_MSECS,
				portguard_client_refuse_timeout, pc);
			return;
		}
	}
	portguard_client_refuse_now(pc);
}

static void portguard_client_refuse_now(struct portguard_client *pc)
{
	struct client *client = pc->client;
	struct event_passthrough *e;
	const char *reply;

	timeout_remove(&pc->to_refuse);
	io_remove(&pc->io_handshake);

	e = event_create_passthrough(portguard_client_event(pc))->
		set_name("portguard_connection_refused")->
		add_str("reason", pc->refuse_reason);
	e_info(e->event(), "connection_refused port=%u reason=%s%s",
	       client->local_port, pc->refuse_reason, pc->refuse_detail);

	if (pc->refuse_silently) {
		/* closing the TLS stream would otherwise answer a ClientHello
		   that is already waiting: no handshake, no bytes at all */
		(void)shutdown(client->fd, SHUT_RDWR);
	}
	reply = t_strdup_printf("421 4.7.0 %s\r\n", pc->refuse_text);
	if (!pc->refuse_silently &&
	    client->output != NULL && !client->output->closed) {
		o_stream_nsend_str(client->output, reply);
		(void)o_stream_flush(client->output);
	}
	client_destroy(client, NULL);
}

/* Refuse the client with 421 4.7.0 from the ioloop, where destroying it is
   safe (not from inside a vfunc whose caller still uses the client). */
static void portguard_client_refuse(struct portguard_client *pc,
				    const char *reason, const char *text,
				    const char *detail)
{
	if (pc->refused)
		return;
	pc->refused = TRUE;
	pc->refuse_reason = reason;
	pc->refuse_text = text;
	pc->refuse_detail = detail == NULL ? "" :
		p_strconcat(pc->client->pool, " ", detail, NULL);
	if (!pc->refuse_silently && pc->client->ssl_iostream != NULL &&
	    !ssl_iostream_is_handshaked(pc->client->ssl_iostream)) {
		/* implicit TLS: a reply before the handshake would never be
		   read; the handshake loop sends it instead of the
		   greeting */
		pc->refuse_after_handshake = TRUE;
		return;
	}
	pc->to_refuse = timeout_add_short(0, portguard_client_refuse_timeout,
					  pc);
}

/* ---- TLS established ---- */

static void portguard_client_tls_log(struct portguard_client *pc,
				     const struct portguard_tls_facts *facts,
				     long long handshake_ms)
{
	struct client *client = pc->client;
	struct portguard_tls_info info;
	struct event_passthrough *e;
	char line[1024];

	i_zero(&info);
	info.port = client->local_port;
	info.mode = PORTGUARD_CLIENT_USED_STARTTLS(client) ?
		"starttls" : "implicit";
	info.proto = facts->proto;
	info.cipher = facts->cipher;
	info.bits = facts->bits;
	info.group = facts->group;
	info.sni = facts->sni;
	info.alpn = facts->alpn;
	info.resumed = facts->resumed;
	info.client_cert = facts->client_cert;
	info.handshake_ms = handshake_ms;
	portguard_logfmt_tls(&info, line, sizeof(line));

	e = event_create_passthrough(portguard_client_event(pc))->
		set_name("portguard_tls_established")->
		add_str("tls_mode", info.mode)->
		add_str("tls_protocol", facts->proto)->
		add_str("tls_cipher", facts->cipher)->
		add_int("tls_cipher_bits", facts->bits)->
		add_str("tls_group", facts->group)->
		add_str("tls_sni", facts->sni)->
		add_str("tls_alpn", facts->alpn)->
		add_str("tls_resumed", facts->resumed ? "yes" : "no")->
		add_str("tls_client_cert", facts->client_cert);
	if (handshake_ms >= 0)
		e->add_int("tls_handshake_msecs", handshake_ms);
	if (pc->policy.log_tls)
		e_info(e->event(), "%s", line);
	else
		e_debug(e->event(), "%s", line);
}

/* The handshake finished (inside the ssl-iostream handshake callback or
   right after our own handshake call): log it and check the version. */
static void portguard_client_tls_established(struct portguard_client *pc)
{
	struct client *client = pc->client;
	struct portguard_tls_facts facts;
	long long handshake_ms;

	timeout_remove(&pc->to_tls);
	if (pc->tls_seen || client->ssl_iostream == NULL)
		return;
	pc->tls_seen = TRUE;

	handshake_ms = timeval_diff_msecs(&pc->tls_end, &pc->tls_start);
	T_BEGIN {
		portguard_tls_get_facts(client->ssl_iostream, &facts);
		portguard_client_tls_log(pc, &facts, handshake_ms);
		if (pc->verdict != PORTGUARD_CONNECT_EXEMPT &&
		    !portguard_policy_tls_version_ok(&pc->policy,
						     facts.version)) {
			portguard_client_refuse(pc, "tls_protocol_too_old",
				PORTGUARD_TEXT_TLS_TOO_OLD,
				t_strdup_printf("proto=%s min=%s",
					portguard_tls_version_name(
						facts.version),
					portguard_tls_version_name(
						pc->policy.min_tls_version)));
		}
	} T_END;
}

/* Runs inside the handshake, before Dovecot marks the stream handshaked:
   note the time; the facts are read just after (our own handshake loop
   for implicit TLS, a zero timeout after STARTTLS). */
static int portguard_client_handshake_cb(const char **error_r ATTR_UNUSED,
					 void *context)
{
	struct portguard_client *pc = context;

	i_gettimeofday(&pc->tls_end);
	if (pc->io_handshake == NULL && pc->to_tls == NULL) {
		pc->to_tls = timeout_add_short(0,
			portguard_client_tls_established, pc);
	}
	return 0;
}

#if PORTGUARD_HAVE_IOSTREAM_CHANGE
/* Dovecot 2.4: called right after the client's streams changed, among
   them STARTTLS creating the TLS layer (before the ClientHello is read). */
static void portguard_client_iostream_change_post(struct client *client)
{
	struct portguard_client *pc = portguard_client_get(client);

	if (pc->module_ctx.super.iostream_change_post != NULL)
		pc->module_ctx.super.iostream_change_post(client);
	if (pc->role != PORTGUARD_ROLE_STARTTLS ||
	    pc->verdict == PORTGUARD_CONNECT_UNGUARDED ||
	    PORTGUARD_CLIENT_PROXIED_TLS(client) ||
	    client->ssl_iostream == NULL ||
	    client->ssl_iostream == pc->watched_ssl || pc->tls_seen)
		return;
	pc->watched_ssl = client->ssl_iostream;
	i_gettimeofday(&pc->tls_start);
	ssl_iostream_set_handshake_callback(client->ssl_iostream,
					    portguard_client_handshake_cb, pc);
}
#else
/* Hook of the plaintext istream on STARTTLS ports: once STARTTLS created
   the TLS layer, its first read (the ClientHello) passes here. */
static bool portguard_client_starttls_hook(void *context)
{
	struct portguard_client *pc = context;
	struct client *client = pc->client;

	if (client->ssl_iostream == NULL)
		return TRUE;
	i_gettimeofday(&pc->tls_start);
	ssl_iostream_set_handshake_callback(client->ssl_iostream,
					    portguard_client_handshake_cb, pc);
	return FALSE;
}
#endif

/* Implicit TLS: the handshake is driven here, before the greeting, so
   that a refused session gets its 421 instead of the greeting. */
static void portguard_client_handshake_input(struct portguard_client *pc)
{
	struct client *client = pc->client;
	int ret;

	ret = ssl_iostream_handshake(client->ssl_iostream);
	if (ret == 0)
		return;
	io_remove(&pc->io_handshake);
	if (ret < 0) {
		client_destroy(client, t_strdup_printf(
			"TLS handshaking failed: %s",
			ssl_iostream_get_last_error(client->ssl_iostream)));
		return;
	}
	portguard_client_tls_established(pc);
	if (pc->refused) {
		portguard_client_refuse_now(pc);
		return;
	}
	pc->module_ctx.super.notify_auth_ready(client);
}

/* ---- rate limiting ---- */

#define PORTGUARD_TEXT_BANNED \
	"Too many failed authentication attempts, try again later"
#define PORTGUARD_TEXT_STATE_DOWN \
	"Temporary failure, try again later"
#define PORTGUARD_STATE_ERROR_LOG_INTERVAL_SECS 60

static bool portguard_client_rl_enforcing(void)
{
	return portguard_runtime.rl.mode == PORTGUARD_RL_ENFORCE;
}

/* The state backend failed or was too slow: fail open (or closed when so
   configured), with an event each time and an error line at most once a
   minute across all login processes. */
static void portguard_client_state_error(struct portguard_client *pc,
					 const char *op, const char *error)
{
	struct event_passthrough *e;

	/* one wait for a broken backend per connection is enough */
	pc->rl_active = FALSE;
	e = event_create_passthrough(portguard_client_event(pc))->
		set_name("portguard_state_error")->
		add_str("operation", op)->
		add_str("error", error);
	if (portguard_log_throttle(PORTGUARD_THROTTLE_STATE_ERROR,
			PORTGUARD_STATE_ERROR_LOG_INTERVAL_SECS)) {
		e_error(e->event(), "state_error op=%s fail=%s: %s", op,
			portguard_runtime.rl.fail_closed ? "closed" : "open",
			error);
	} else {
		e_debug(e->event(), "state_error op=%s: %s", op, error);
	}
	if (portguard_runtime.rl.fail_closed &&
	    portguard_client_rl_enforcing()) {
		portguard_client_refuse(pc, "state_unavailable",
					PORTGUARD_TEXT_STATE_DOWN, NULL);
	}
}

static const char *
portguard_client_ban_detail(struct portguard_client *pc,
			    const struct portguard_state_result *res)
{
	return t_strdup_printf("key=%s failures=%u ban_remaining=%u "
			       "ban_level=%u", pc->rl_key_str, res->failures,
			       res->remaining_secs, res->ban_level);
}

/* A new connection from a client that is counted: refuse it when it is
   banned. */
static void portguard_client_rl_connect(struct portguard_client *pc,
					const struct portguard_addr *remote)
{
	const struct portguard_rl_settings *rl = &portguard_runtime.rl;
	struct portguard_state_result res;
	struct event_passthrough *e;
	const char *error;

	if (portguard_runtime.state == NULL ||
	    portguard_netlist_match(&rl->exempt_networks, remote))
		return;
	portguard_rl_key_make(&pc->rl_key, remote, rl->ipv4_prefix,
			      rl->ipv6_prefix);
	portguard_rl_key_to_str(&pc->rl_key, pc->rl_key_str,
				sizeof(pc->rl_key_str));
	pc->rl_active = TRUE;
	event_add_str(pc->event, "key", pc->rl_key_str);

	if (portguard_state_check(portguard_runtime.state, &pc->rl_key,
				  ioloop_time, &res, &error) < 0) {
		portguard_client_state_error(pc, "check", error);
		return;
	}
	if (!res.banned)
		return;
	if (!portguard_client_rl_enforcing()) {
		e = event_create_passthrough(portguard_client_event(pc))->
			set_name("portguard_connection_refused")->
			add_str("reason", "banned")->
			add_str("monitor", "yes")->
			add_int("ban_remaining", res.remaining_secs)->
			add_int("ban_level", res.ban_level);
		e_info(e->event(), "monitor: would refuse port=%u "
		       "reason=banned %s", pc->client->local_port,
		       portguard_client_ban_detail(pc, &res));
		return;
	}
	if (rl->ban_drop && pc->role == PORTGUARD_ROLE_IMPLICIT_TLS &&
	    pc->client->ssl_iostream != NULL)
		pc->refuse_silently = TRUE;
	portguard_client_refuse(pc, "banned", PORTGUARD_TEXT_BANNED,
				portguard_client_ban_detail(pc, &res));
}

static void
portguard_client_log_ban(struct portguard_client *pc,
			 const struct portguard_state_result *res)
{
	struct event_passthrough *e;
	bool monitor = !portguard_client_rl_enforcing();

	e = event_create_passthrough(portguard_client_event(pc))->
		set_name("portguard_ban")->
		add_int("failures", res->failures)->
		add_int("ban_secs", res->ban_secs)->
		add_int("ban_level", res->ban_level)->
		add_str("monitor", monitor ? "yes" : "no");
	e_info(e->event(), "%sban key=%s failures=%u ban_secs=%u "
	       "ban_level=%u port=%u", monitor ? "monitor: would " : "",
	       pc->rl_key_str, res->failures, res->ban_secs, res->ban_level,
	       pc->client->local_port);
}

/* An AUTH starts: count it in advance; refuse it (and the connection)
   when the key is banned already. Returns FALSE if the AUTH must not go
   on. */
static bool portguard_client_rl_attempt(struct portguard_client *pc)
{
	struct portguard_state_result *res = &pc->attempt;
	struct event_passthrough *e;
	const char *error;

	if (pc->attempt_active)
		return TRUE;
	pc->attempt_started = ioloop_time;
	if (portguard_state_attempt(portguard_runtime.state, &pc->rl_key,
				    pc->attempt_started, res, &error) < 0) {
		portguard_client_state_error(pc, "attempt", error);
		return !pc->refused;
	}
	if (!res->banned) {
		pc->attempt_active = TRUE;
		return TRUE;
	}
	if (res->new_ban) {
		/* it went past the limit in a race and wrote the ban */
		portguard_client_log_ban(pc, res);
	}
	if (!portguard_client_rl_enforcing()) {
		e = event_create_passthrough(portguard_client_event(pc))->
			set_name("portguard_connection_refused")->
			add_str("reason", "banned")->
			add_str("monitor", "yes");
		e_info(e->event(), "monitor: would refuse port=%u "
		       "reason=banned %s", pc->client->local_port,
		       portguard_client_ban_detail(pc, res));
		return TRUE;
	}
	pc->attempt_refused = TRUE;
	portguard_client_refuse(pc, "banned", PORTGUARD_TEXT_BANNED,
				portguard_client_ban_detail(pc, res));
	return FALSE;
}

static enum portguard_attempt_outcome
portguard_auth_result_outcome(enum client_auth_result result)
{
	switch (result) {
	case CLIENT_AUTH_RESULT_SUCCESS:
	case CLIENT_AUTH_RESULT_REFERRAL_SUCCESS:
		return PORTGUARD_ATTEMPT_SUCCEEDED;
	case CLIENT_AUTH_RESULT_ABORTED:
	case CLIENT_AUTH_RESULT_AUTHFAILED:
	case CLIENT_AUTH_RESULT_AUTHFAILED_REASON:
	case CLIENT_AUTH_RESULT_AUTHZFAILED:
	case CLIENT_AUTH_RESULT_INVALID_BASE64:
		return PORTGUARD_ATTEMPT_FAILED;
	default:
		/* temporary failures, mechanism or TLS problems, disabled
		   or expired accounts: not password guessing */
		return PORTGUARD_ATTEMPT_NOT_COUNTED;
	}
}

/* Lockout traps: a failed AUTH of a user who recently logged in
   successfully from this key counts against that user's own limit
   (portguard_known_user_fail_limit), not against the key. TRUE if it was
   absorbed that way. */
static bool portguard_client_known_absorbs(struct portguard_client *pc)
{
	const char *user = pc->client->virtual_user;
	enum portguard_known_verdict verdict;
	struct event_passthrough *e;
	const char *error, *counted;
	char user_log[PORTGUARD_LOG_VALUE_MAX * 4 + 8];

	if (user == NULL || portguard_runtime.rl.known.period == 0)
		return FALSE;
	if (portguard_state_known_fail(portguard_runtime.state, &pc->rl_key,
				       user, ioloop_time, &verdict,
				       &error) < 0) {
		portguard_client_state_error(pc, "known_fail", error);
		return FALSE;
	}
	if (verdict == PORTGUARD_KNOWN_NO)
		return FALSE;
	counted = verdict == PORTGUARD_KNOWN_ABSORBED ? "user" : "key";
	portguard_log_escape(user_log, sizeof(user_log), user,
			     PORTGUARD_LOG_VALUE_MAX);
	e = event_create_passthrough(portguard_client_event(pc))->
		set_name("portguard_known_user_failure")->
		add_str("auth_user", user_log)->
		add_str("counted_against", counted);
	e_debug(e->event(), "known_user_failure key=%s user=%s "
		"counted_against=%s", pc->rl_key_str, user_log, counted);
	return verdict == PORTGUARD_KNOWN_ABSORBED;
}

/* A successful AUTH: the user becomes known from this key. */
static void portguard_client_known_success(struct portguard_client *pc)
{
	const char *error;

	if (pc->client->virtual_user == NULL ||
	    portguard_runtime.rl.known.period == 0)
		return;
	if (portguard_state_known_success(portguard_runtime.state,
					  &pc->rl_key,
					  pc->client->virtual_user,
					  ioloop_time, &error) < 0)
		portguard_client_state_error(pc, "known_success", error);
}

/* The AUTH counted in advance ended. A failure that reached the limit
   bans the key (logged now) and, enforcing, closes this connection after
   its reply. */
static void portguard_client_rl_attempt_end(struct portguard_client *pc,
					    enum client_auth_result result)
{
	enum portguard_attempt_outcome outcome =
		portguard_auth_result_outcome(result);
	struct portguard_state_result *res = &pc->attempt;
	const char *error;
	bool monitor = !portguard_client_rl_enforcing();

	pc->attempt_active = FALSE;
	if (outcome == PORTGUARD_ATTEMPT_FAILED &&
	    portguard_client_known_absorbs(pc))
		outcome = PORTGUARD_ATTEMPT_NOT_COUNTED;
	if (portguard_state_attempt_end(portguard_runtime.state, &pc->rl_key,
					pc->attempt_started, res, outcome,
					&error) < 0) {
		portguard_client_state_error(pc, "attempt_end", error);
		return;
	}
	if (outcome == PORTGUARD_ATTEMPT_SUCCEEDED)
		portguard_client_known_success(pc);
	if (outcome != PORTGUARD_ATTEMPT_FAILED || !res->new_ban)
		return;

	portguard_client_log_ban(pc, res);
	if (monitor || pc->client->disconnected)
		return;
	if (pc->client->output != NULL) {
		pc->refuse_after_reply = TRUE;
		pc->refuse_offset = pc->client->output->offset;
	}
	portguard_client_refuse(pc, "banned", PORTGUARD_TEXT_BANNED,
				portguard_client_ban_detail(pc, res));
}

/* ---- vfunc overrides ---- */

static void portguard_client_notify_auth_ready(struct client *client)
{
	struct portguard_client *pc = portguard_client_get(client);

	if (pc->refused && !pc->refuse_after_handshake) {
		/* no greeting: the 421 is on its way */
		return;
	}
	if (pc->verdict != PORTGUARD_CONNECT_UNGUARDED &&
	    client->ssl_iostream != NULL) {
		if (!ssl_iostream_is_handshaked(client->ssl_iostream)) {
			pc->io_handshake = io_add(client->fd, IO_READ,
				portguard_client_handshake_input, pc);
			io_set_pending(pc->io_handshake);
			return;
		}
		/* The handshake is over already: Dovecot 2.4 drives it
		   itself until the greeting is due (after the SNI
		   callback), and a slow process can see the client's
		   Finished first. Check the session now, before any
		   greeting; destroying the client must wait for the
		   ioloop. */
		if (pc->to_tls != NULL)
			portguard_client_tls_established(pc);
		if (pc->refuse_after_handshake) {
			pc->refuse_after_handshake = FALSE;
			pc->to_refuse = timeout_add_short(0,
				portguard_client_refuse_timeout, pc);
		}
		if (pc->refused)
			return;
	}
	pc->module_ctx.super.notify_auth_ready(client);
}

static bool
portguard_client_sasl_filter_mech(struct client *client,
				  struct auth_mech_desc *mech)
{
	struct portguard_client *pc = portguard_client_get(client);

	/* belt and braces for a STARTTLS port where Dovecot could not be
	   made to require TLS itself (e.g. ssl = no): no mechanism until the
	   session is TLS */
	if (pc->verdict == PORTGUARD_CONNECT_REQUIRE_STARTTLS &&
	    !PORTGUARD_CLIENT_TLS(client))
		return FALSE;
	if (pc->refused) {
		/* an AUTH after the refusal was decided: the 421 answers */
		if (client->authenticating)
			pc->attempt_refused = TRUE;
		return FALSE;
	}
	if (client->authenticating && pc->rl_active &&
	    !portguard_client_rl_attempt(pc))
		return FALSE;
	if (pc->module_ctx.super.sasl_filter_mech == NULL)
		return TRUE;
	return pc->module_ctx.super.sasl_filter_mech(client, mech);
}

static const char *
portguard_auth_result_name(enum client_auth_result result)
{
	switch (result) {
	case CLIENT_AUTH_RESULT_SUCCESS:
	case CLIENT_AUTH_RESULT_REFERRAL_SUCCESS:
		return "success";
	case CLIENT_AUTH_RESULT_ABORTED:
		return "aborted";
	case CLIENT_AUTH_RESULT_TEMPFAIL:
		return "tempfail";
	case CLIENT_AUTH_RESULT_INVALID_BASE64:
		return "invalid_base64";
	case CLIENT_AUTH_RESULT_SSL_REQUIRED:
	case CLIENT_AUTH_RESULT_MECH_SSL_REQUIRED:
		return "tls_required";
	case CLIENT_AUTH_RESULT_MECH_INVALID:
		return "mech_invalid";
	default:
		return "failed";
	}
}

static void
portguard_client_auth_result(struct client *client,
			     enum client_auth_result result,
			     const struct client_auth_reply *reply,
			     const char *text)
{
	struct portguard_client *pc = portguard_client_get(client);
	struct event_passthrough *e;
	const char *name = portguard_auth_result_name(result);
	char user[PORTGUARD_LOG_VALUE_MAX * 4 + 8];

	portguard_log_escape(user, sizeof(user), client->virtual_user,
			     PORTGUARD_LOG_VALUE_MAX);
	e = event_create_passthrough(portguard_client_event(pc))->
		set_name("portguard_auth_finished")->
		add_str("result", name)->
		add_str("auth_user", user);
	e_debug(e->event(), "auth_finished port=%u result=%s user=%s",
		client->local_port, name, user);

	if (pc->attempt_active)
		portguard_client_rl_attempt_end(pc, result);
	if (pc->attempt_refused) {
		/* refused at its start: the 421 answers it, not Dovecot's
		   "unsupported mechanism" */
		pc->attempt_refused = FALSE;
		return;
	}
	pc->module_ctx.super.auth_result(client, result, reply, text);
}

static void portguard_client_destroy(struct client *client)
{
	struct portguard_client *pc = portguard_client_get(client);

	if (pc->to_tls != NULL) {
		/* disconnected right after the handshake: still log it */
		portguard_client_tls_established(pc);
	}
	if (pc->attempt_active && !client->login_success) {
		/* gave up in the middle of a SASL exchange (Dovecot normally
		   reports it as aborted before this): it stays counted */
		pc->attempt_active = FALSE;
	}
	timeout_remove(&pc->to_refuse);
	io_remove(&pc->io_handshake);
	if (pc->hook_input != NULL) {
		portguard_hook_istream_disable(pc->hook_input);
		i_stream_unref(&pc->hook_input);
	}
	if (pc->module_ctx.super.destroy != NULL)
		pc->module_ctx.super.destroy(client);
	event_unref(&pc->event);
	if (pc->event_detached != NULL)
		event_unref(&pc->event_detached);
}

/* ---- set-up ---- */

/* STARTTLS port, plaintext: make Dovecot itself require TLS for this
   client (EHLO hides AUTH, every command but EHLO/HELO/STARTTLS/NOOP/QUIT
   gets "530 5.7.0 TLS required."), also for localhost and
   login_trusted_networks, which Dovecot's own rule exempts. Runs before
   v.create, where submission-login reads both (tls_required). */
static void portguard_client_require_starttls(struct portguard_client *pc)
{
	struct client *client = pc->client;
#if DOVECOT_PREREQ(2, 4, 0)
	struct ssl_server_settings *ssl_server_set;

	if (strcmp(PORTGUARD_CLIENT_SSL_MODE(client), "yes") == 0) {
		/* A copy in the settings' own pool: client_settings_free()
		   unrefs that pool once through the copy, as it would
		   through the original. */
		ssl_server_set = p_new(client->ssl_server_set->pool,
				       struct ssl_server_settings, 1);
		*ssl_server_set = *client->ssl_server_set;
		ssl_server_set->ssl = "required";
		client->ssl_server_set = ssl_server_set;
	}
#else
	struct master_service_ssl_settings *ssl_set;

	if (strcmp(PORTGUARD_CLIENT_SSL_MODE(client), "yes") == 0) {
		ssl_set = p_new(client->pool,
				struct master_service_ssl_settings, 1);
		*ssl_set = *client->ssl_set;
		ssl_set->ssl = "required";
		client->ssl_set = ssl_set;
	}
#endif
	PORTGUARD_CLIENT_SECURED(client) = FALSE;
}

/* Arrange to see the end of the TLS handshake: now for TLS from the first
   byte, through the plaintext istream for a later STARTTLS. */
static void portguard_client_watch_tls(struct portguard_client *pc)
{
	struct client *client = pc->client;

	if (client->ssl_iostream != NULL) {
		pc->watched_ssl = client->ssl_iostream;
		ssl_iostream_set_handshake_callback(client->ssl_iostream,
			portguard_client_handshake_cb, pc);
		return;
	}
	if (pc->role != PORTGUARD_ROLE_STARTTLS ||
	    PORTGUARD_CLIENT_PROXIED_TLS(client))
		return;
#if !PORTGUARD_HAVE_IOSTREAM_CHANGE
	pc->hook_input = portguard_hook_istream_create(client->input,
		portguard_client_starttls_hook, pc);
	i_stream_unref(&client->input);
	client->input = pc->hook_input;
	i_stream_ref(pc->hook_input);
#endif
}

#if !PORTGUARD_HAVE_LISTENER_ENV
/* Dovecot 2.4: the listener flags are gone from the environment by the
   time the plugin starts. A listener with ssl = yes makes the TLS layer
   before any client exists, so a direct (not proxied) plaintext client
   on an implicit-TLS port means its listener lacks ssl = yes: say so, at
   most once an hour across all login processes. */
#define PORTGUARD_LISTENER_WARN_INTERVAL_SECS 3600
static void portguard_client_check_listener(struct portguard_client *pc)
{
	struct client *client = pc->client;

	if (client->ssl_iostream != NULL ||
	    !net_ip_compare(&client->ip, &client->real_remote_ip) ||
	    !portguard_log_throttle(PORTGUARD_THROTTLE_LISTENER_NO_SSL,
				    PORTGUARD_LISTENER_WARN_INTERVAL_SECS))
		return;
	e_warning(pc->event, "inet_listener %s (port %u) is in "
		  "portguard_implicit_tls_ports but has no 'ssl = yes': "
		  "every connection to it will be refused",
		  client->listener_name, client->local_port);
}
#endif

static bool portguard_client_read_policy(struct client *client,
					 struct portguard_policy *policy_r)
{
	const char *error;
	bool uses_filters;

	if (!portguard_runtime.per_client_settings) {
		*policy_r = portguard_runtime.policy;
		return TRUE;
	}
	if (portguard_config_read(NULL, NULL, client->event,
				  &client->local_ip, &client->ip,
				  client->local_name, policy_r,
				  &uses_filters, &error) < 0) {
		e_error(client->event, "portguard: %s", error);
		return FALSE;
	}
	return TRUE;
}

#if PORTGUARD_HAVE_RELOAD_CONFIG
/* Dovecot 2.4: the TLS SNI gave the client a local_name and Dovecot read
   its settings again: read the TLS rules again too, so that
   local_name { } blocks apply to the minimum version and logging of this
   session. The port's role stays what it was at connect. */
static int portguard_client_reload_config(struct client *client,
					  const char **error_r)
{
	struct portguard_client *pc = portguard_client_get(client);
	struct portguard_policy policy;

	if (pc->module_ctx.super.reload_config != NULL &&
	    pc->module_ctx.super.reload_config(client, error_r) < 0)
		return -1;
	if (portguard_client_read_policy(client, &policy))
		pc->policy = policy;
	return 0;
}
#endif

void portguard_client_allocated(struct client *client)
{
	struct portguard_client *pc;
	struct portguard_policy policy;
	struct portguard_addr remote;
	enum portguard_port_role role;
	struct client_vfuncs *v = client->vlast;
	bool tls_from_start;

	role = portguard_policy_port_role(&portguard_runtime.policy,
					  client->local_port);
	if (role == PORTGUARD_ROLE_NONE &&
	    !portguard_runtime.per_client_settings)
		return;
	if (!portguard_client_read_policy(client, &policy)) {
		/* fall back to the process-wide settings */
		policy = portguard_runtime.policy;
	}
	role = portguard_policy_port_role(&policy, client->local_port);
	if (role == PORTGUARD_ROLE_NONE)
		return;

	pc = p_new(client->pool, struct portguard_client, 1);
	pc->client = client;
	pc->policy = policy;
	pc->role = role;
	pc->module_ctx.super = *v;
	pc->tls_start = client->created;
	client->vlast = &pc->module_ctx.super;

	v->notify_auth_ready = portguard_client_notify_auth_ready;
	v->sasl_filter_mech = portguard_client_sasl_filter_mech;
	v->auth_result = portguard_client_auth_result;
	v->destroy = portguard_client_destroy;
#if PORTGUARD_HAVE_IOSTREAM_CHANGE
	v->iostream_change_post = portguard_client_iostream_change_post;
#endif
#if PORTGUARD_HAVE_RELOAD_CONFIG
	v->reload_config = portguard_client_reload_config;
#endif
	MODULE_CONTEXT_SET(client, portguard_client_module, pc);

	pc->event = event_create(client->event);
	event_set_append_log_prefix(pc->event, "portguard: ");
	event_add_int(pc->event, "port", client->local_port);
	event_add_str(pc->event, "port_role", portguard_port_role_name(role));

	portguard_addr_from_ip(&client->ip, &remote);
	tls_from_start = PORTGUARD_CLIENT_TLS(client) ||
		PORTGUARD_CLIENT_PROXIED_TLS(client);
	pc->verdict = portguard_policy_on_connect(&policy, client->local_port,
						  tls_from_start, &remote);
	switch (pc->verdict) {
	case PORTGUARD_CONNECT_UNGUARDED:
		break;
	case PORTGUARD_CONNECT_REFUSE_PLAINTEXT:
#if !PORTGUARD_HAVE_LISTENER_ENV
		portguard_client_check_listener(pc);
#endif
		portguard_client_refuse(pc, "plaintext_on_implicit_tls_port",
					PORTGUARD_TEXT_NOT_TLS, NULL);
		break;
	case PORTGUARD_CONNECT_REQUIRE_STARTTLS:
		portguard_client_require_starttls(pc);
		/* fall through */
	case PORTGUARD_CONNECT_TLS:
	case PORTGUARD_CONNECT_EXEMPT:
		portguard_client_watch_tls(pc);
		break;
	}
	if (!pc->refused && portguard_runtime.rl.mode != PORTGUARD_RL_OFF)
		portguard_client_rl_connect(pc, &remote);
}
