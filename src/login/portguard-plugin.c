/* portguard login plugin entry: reads the settings once and registers the
   client hook. Runs in submission-login (scope it with
   protocol submission { login_plugins = $login_plugins portguard }). */

#include "login-common.h"
#include "module-dir.h"
#include "master-service.h"
#include "master-interface.h"
#include "strescape.h"
#include "client-common.h"
#include "portguard-compat.h"
#include "portguard-config.h"
#include "portguard-client.h"
#include "portguard-plugin.h"

#include <sys/socket.h>
#include <netinet/in.h>

/* checked by module_dir_load() against the running Dovecot */
const char *portguard_plugin_version = DOVECOT_ABI_VERSION;
struct portguard_runtime portguard_runtime;

static const struct login_client_hooks portguard_login_hooks = {
	.client_allocated = portguard_client_allocated,
};

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
		if (!portguard_listener_has_ssl(i)) {
			i_warning("portguard: inet_listener %s (port %u) is "
				  "in portguard_implicit_tls_ports but has no "
				  "'ssl = yes': every connection to it will "
				  "be refused",
				  master_service_get_socket_name(
					master_service, fd), port);
		}
	}
}

void portguard_plugin_init(struct module *module)
{
	const char *error;

	i_zero(&portguard_runtime);
	portguard_runtime.module = module;
	if (strcmp(login_binary->protocol, "submission") != 0) {
		/* loaded by another login process (e.g. login_plugins set
		   globally): stay out of its way */
		return;
	}
	if (portguard_config_read(NULL, NULL, NULL, &portguard_runtime.policy,
				  &portguard_runtime.per_client_settings,
				  &error) < 0)
		i_fatal("portguard: %s", error);
	portguard_check_listeners();
	login_client_hooks_add(module, &portguard_login_hooks);
	portguard_runtime.hooks_added = TRUE;
}

void portguard_plugin_deinit(void)
{
	if (portguard_runtime.hooks_added)
		login_client_hooks_remove(&portguard_login_hooks);
}
