/* portguard login plugin entry: reads the settings once and registers the
   client hook. Runs in submission-login (scope it with
   protocol submission { login_plugins = $login_plugins portguard }). */

#include "login-common.h"
#include "module-dir.h"
#include "master-service.h"
#include "master-service-settings.h"
#include "master-interface.h"
#include "strescape.h"
#include "client-common.h"
#include "portguard-compat.h"
#include "portguard-config.h"
#include "portguard-client.h"
#include "portguard-plugin.h"

#include "ioloop.h"
#include "portguard-settings.h"

#include <fcntl.h>

#include <sys/stat.h>
#include <sys/socket.h>
#include <netinet/in.h>

/* checked by module_dir_load() against the running Dovecot */
const char *portguard_plugin_version = DOVECOT_ABI_VERSION;
struct portguard_runtime portguard_runtime;

static const struct login_client_hooks portguard_login_hooks = {
	.client_allocated = portguard_client_allocated,
};

#if PORTGUARD_HAVE_LISTENER_ENV
static bool portguard_listener_has_ssl(unsigned int idx)
{
	const char *value =
		getenv(t_strdup_printf("SOCKET%u_SETTINGS", idx));
	const char *const *args;

	if (value == NULL)
		return FALSE;
	args = t_strsplit_tabescaped(value);
	for (; *args != NULL; args++) {
		if (strcmp(*args, "ssl") == 0)
			return TRUE;
	}
	return FALSE;
}

/* Return TRUE the first time it is called since the Dovecot master started
   (every login process runs this init: with service_count = 1 that is one
   per connection). A marker file in base_dir newer than master.pid says
   that an earlier process already warned. */
static bool portguard_first_since_master_start(const char *name)
{
	const char *base_dir = PORTGUARD_MASTER_SETTINGS()->base_dir;
	const char *marker = t_strdup_printf("%s/%s", base_dir, name);
	struct stat st_master, st_marker;
	int fd;

	if (stat(t_strdup_printf("%s/master.pid", base_dir), &st_master) < 0)
		return TRUE;
	if (stat(marker, &st_marker) == 0 &&
	    (st_marker.st_mtim.tv_sec > st_master.st_mtim.tv_sec ||
	     (st_marker.st_mtim.tv_sec == st_master.st_mtim.tv_sec &&
	      st_marker.st_mtim.tv_nsec >= st_master.st_mtim.tv_nsec)))
		return FALSE;
	fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd != -1)
		i_close_fd(&fd);
	return TRUE;
}

/* Warn about listeners that break the rules before any client does: an
   implicit-TLS port whose inet_listener lacks ssl = yes. */
static void portguard_check_listeners(void)
{
	unsigned int i, count = master_service_get_socket_count(master_service);
	union {
		struct sockaddr sa;
		struct sockaddr_in sin;
		struct sockaddr_in6 sin6;
		struct sockaddr_storage ss;
	} addr;
	socklen_t len;
	unsigned int port;
	int fd;

	for (i = 0; i < count; i++) {
		fd = MASTER_LISTEN_FD_FIRST + i;
		len = sizeof(addr);
		if (getsockname(fd, &addr.sa, &len) < 0)
			continue;
		if (addr.sa.sa_family == AF_INET)
			port = ntohs(addr.sin.sin_port);
		else if (addr.sa.sa_family == AF_INET6)
			port = ntohs(addr.sin6.sin6_port);
		else
			continue;
		if (portguard_policy_port_role(&portguard_runtime.policy,
					       port) !=
		    PORTGUARD_ROLE_IMPLICIT_TLS)
			continue;
		if (!portguard_listener_has_ssl(i) &&
		    portguard_first_since_master_start(
			t_strdup_printf("portguard-warned-%u", port))) {
			i_warning("portguard: inet_listener %s (port %u) is "
				  "in portguard_implicit_tls_ports but has no "
				  "'ssl = yes': every connection to it will "
				  "be refused",
				  master_service_get_socket_name(
					master_service, fd), port);
		}
	}
}

#endif

bool portguard_log_throttle(const char *kind, unsigned int interval_secs)
{
	const char *marker = t_strdup_printf("portguard-throttle-%s", kind);
	struct stat st;

	/* the login process is chrooted by now: work relative to the
	   base_dir descriptor opened in init */
	if (portguard_runtime.base_dir_fd == -1)
		return TRUE;
	if (fstatat(portguard_runtime.base_dir_fd, marker, &st, 0) == 0) {
		if (st.st_mtime + (time_t)interval_secs > ioloop_time)
			return FALSE;
		(void)utimensat(portguard_runtime.base_dir_fd, marker,
				NULL, 0);
		return TRUE;
	}
	return TRUE;
}

/* Create the throttle marker (as root, in init) so that the unprivileged
   login process can later update its time. */
static void portguard_log_throttle_prepare(const char *kind)
{
	const char *marker = t_strdup_printf("portguard-throttle-%s", kind);
	const struct timespec epoch[2] = { { 0, 0 }, { 0, 0 } };
	int fd;

	if (portguard_runtime.base_dir_fd == -1)
		return;
	fd = openat(portguard_runtime.base_dir_fd, marker,
		    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	if (fd == -1)
		return;
	(void)fchmod(fd, 0666);
	/* "last logged" long ago: the first message goes out */
	(void)futimens(fd, epoch);
	i_close_fd(&fd);
}

static void portguard_rl_init(const struct portguard_settings *set)
{
	const struct master_service_settings *mset =
		PORTGUARD_MASTER_SETTINGS();
	const char *warning, *error;

	if (portguard_rl_settings_parse(set, &portguard_runtime.rl,
					&error) < 0)
		i_fatal("portguard: %s", error);
	if (portguard_runtime.rl.mode == PORTGUARD_RL_OFF)
		return;
	portguard_log_throttle_prepare(PORTGUARD_THROTTLE_STATE_ERROR);
	if (portguard_state_open(set, &portguard_runtime.rl, mset->base_dir,
				 &portguard_runtime.state, &warning,
				 &error) < 0) {
		/* never take the login service down with us: run without
		   rate limiting and say so */
		i_error("portguard: %s - rate limiting disabled", error);
		return;
	}
	if (warning != NULL)
		i_warning("portguard: %s", warning);
}

void portguard_plugin_init(struct module *module)
{
	const struct portguard_settings *set;
	pool_t pool;
	const char *error;

	i_zero(&portguard_runtime);
	portguard_runtime.module = module;
	portguard_runtime.base_dir_fd = -1;
	if (strcmp(login_binary->protocol, "submission") != 0) {
		/* loaded by another login process (e.g. login_plugins set
		   globally): stay out of its way */
		return;
	}
	pool = pool_alloconly_create("portguard settings", 1024);
	portguard_runtime.set_pool = pool;
	if (portguard_config_read(pool, &set, NULL, NULL, NULL, NULL,
				  &portguard_runtime.policy,
				  &portguard_runtime.per_client_settings,
				  &error) < 0)
		i_fatal("portguard: %s", error);
	portguard_runtime.base_dir_fd =
		open(PORTGUARD_MASTER_SETTINGS()->base_dir,
		     O_RDONLY | O_DIRECTORY | O_CLOEXEC);
#if PORTGUARD_HAVE_LISTENER_ENV
	portguard_check_listeners();
#else
	portguard_log_throttle_prepare(PORTGUARD_THROTTLE_LISTENER_NO_SSL);
#endif
	portguard_rl_init(set);
	login_client_hooks_add(module, &portguard_login_hooks);
	portguard_runtime.hooks_added = TRUE;
}

void portguard_plugin_deinit(void)
{
	if (portguard_runtime.hooks_added)
		login_client_hooks_remove(&portguard_login_hooks);
	portguard_state_close(&portguard_runtime.state);
	i_close_fd(&portguard_runtime.base_dir_fd);
	pool_unref(&portguard_runtime.set_pool);
	portguard_config_deinit();
}
