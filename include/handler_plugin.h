/*
 * handler_plugin.h - handlers in shared objects ("plugin = PATH.so" in a
 * [handler.NAME] section), behind the same ops table as exec and builtin
 * (handler_plugin_kind).  The interface a plugin implements is
 * include/jobd/handler.h (struct jobd_plugin).
 *
 * Loaded plugins live in one list that only the main thread changes (at
 * start-up, at SIGHUP and at shutdown).  A loaded plugin is one init of
 * one shared object with one plugin_config: handler sections with the
 * same path and the same plugin_config share it.  Each handler_conf that
 * names a plugin points at its loaded plugin (handler_conf.loaded), which
 * stays valid until handler_plugin_unload_all(): a reload never unloads
 * (an attempt may still run with the previous configuration).
 */
#ifndef JOBD_HANDLER_PLUGIN_H
#define JOBD_HANDLER_PLUGIN_H

#include <stddef.h>

#include "config.h"
#include "handler.h"

extern const struct handler_kind handler_plugin_kind;

/*
 * Points every plugin handler of cfg at its loaded plugin, loading what
 * is not loaded yet: dlopen(path, RTLD_NOW | RTLD_LOCAL), dlsym
 * "jobd_plugin", its abi checked against JOBD_HANDLER_ABI, its init
 * called with plugin_config.  Returns 0, or JOBD_EINVAL with one line per
 * plugin that failed in err ("FILE:LINE: [handler.NAME] plugin: PATH:
 * reason"); then whatever this call loaded is unloaded again, and no
 * handler of cfg points at anything.  Main thread only.
 */
int handler_plugin_attach(struct config *cfg, char *err, size_t errlen);

/*
 * Calls every loaded plugin's fini and unloads it: at shutdown, once no
 * worker runs any more (and after --check-config's attach).  Main thread
 * only.
 */
void handler_plugin_unload_all(void);

#endif
