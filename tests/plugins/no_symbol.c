/* no_symbol.c - a shared object without "jobd_plugin": not a plugin. */
__attribute__((visibility("default"))) int not_a_plugin = 1;
