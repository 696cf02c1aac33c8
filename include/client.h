/*
 * client.h - `jobd COMMAND ...`: the command-line client (DESIGN §9).
 *
 * The same binary is the daemon and the client; main() asks
 * client_selected() which one the command line means and hands the whole
 * command line to client_main() for the client.  The client speaks the
 * HTTP API with libcurl and never touches the store.
 */
#ifndef JOBD_CLIENT_H
#define JOBD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Whether argv means the client: no arguments at all (which is wrong
 * usage, answered by the client's usage text and 64), or a first word
 * that is neither an option nor an option's value (a command word, or an
 * unknown one: the daemon takes no words).  `jobd --config FILE` and the
 * daemon's other options alone mean the daemon.  Borrows argv.
 */
bool client_selected(int argc, char **argv);

/*
 * Runs the client on the whole command line (argv[0] is the program).
 * Returns the exit status of DESIGN §9: 0 done (the job succeeded), 1 the
 * job failed, 2 it was cancelled, 75 not finished within the wait, 65 the
 * daemon refused (4xx, or a payload that is not JSON), 69 unreachable or
 * 5xx, 64 wrong usage.  Main thread only (libcurl global init).
 */
int client_main(int argc, char **argv);

/*
 * Renders a progress bar of width cells for percent (clamped to 0..100;
 * negative means unknown: an empty bar) into out: "[#####     ]  50%".
 * Returns out.  Pure; any thread.
 */
char *client_bar(double percent, int width, char *out, size_t outlen);

/*
 * "3s ago", "5m ago", "2h ago", "4d ago", "in 10s", "just now" for a time
 * at_ms relative to now_ms (both ms since the epoch) into out.  Returns
 * out.  Pure; any thread.
 */
char *client_reltime(long long at_ms, long long now_ms, char *out,
                     size_t outlen);

#endif
