#ifndef PORTGUARD_CLIENT_H
#define PORTGUARD_CLIENT_H

struct client;

/* login_client_hooks.client_allocated: decide the connection's verdict and
   set every vfunc override portguard needs (each calls super). */
void portguard_client_allocated(struct client *client);

#endif
