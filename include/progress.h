/*
 * progress.h - the progress of the attempts running on this node
 * (DESIGN §4): what handlers report (exec: JSON lines on fd 3; builtins
 * and plugins: jobd_ctx_progress), checked, shown at once, and written to
 * the store at most once a second per job.
 *
 * A report is one JSON object of at most PROGRESS_MAX bytes (strict JSON,
 * strict UTF-8); it becomes the job's "progress" (the last one wins).
 * The table keeps the last report of each attempt running here, keyed by
 * job id and claim token, so that GET shows it at once (progress_apply)
 * while the store lags by up to a second: a report goes to the writer
 * (WOP_PROGRESS, fenced by the claim) when the job's last write (or its
 * first report) is a second old, else the table's thread sends it when
 * that second is up; so an attempt shorter than that writes its progress
 * with its completion only.
 * The attempt's last report rides with its completion (progress_end), and
 * the entry is dropped once that completion is written or discarded
 * (progress_forget).  Each change is told to events_progress() (the
 * /events streams).
 *
 * Life of an entry:  report -> [running: shown, written <= 1/s]
 *   -> progress_end -> [ended: shown, nothing more written; the completion
 *   carries the last report] -> progress_forget -> gone.
 *
 * A NULL table is allowed everywhere (reports are checked, then dropped).
 */
#ifndef JOBD_PROGRESS_H
#define JOBD_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events.h"
#include "job.h"
#include "writer.h"

/* Longest report, in bytes (a line on fd 3 without its newline). */
#define PROGRESS_MAX 4096
/* Least time between two store writes of one job's progress. */
#define PROGRESS_STORE_INTERVAL_MS 1000

typedef struct progress progress;

/*
 * Checks a report, text[0..len): one JSON object (after optional
 * whitespace and a trailing "\r"), at most PROGRESS_MAX bytes, strict
 * JSON nested at most 32 deep, well-formed UTF-8, no NUL byte.  Returns 0
 * and its compact text in *out (a new string the caller frees), or
 * JOBD_EINVAL (not acceptable: ignored) or JOBD_ENOMEM.  Pure; any thread.
 */
int progress_parse(const char *text, size_t len, char **out);

/*
 * Splits a byte stream (fd 3 of an exec handler) into lines for
 * progress_parse: fn(arg, line, len) for each line without its "\n".  A
 * line longer than PROGRESS_MAX + 1 bytes is dropped whole, up to its
 * newline (fn never sees it).  Zero-initialise before the first feed.
 */
struct progress_lines {
	char buf[PROGRESS_MAX + 1];
	size_t len;
	bool skipping;           /* inside an over-long line */
};
typedef void (*progress_line_fn)(void *arg, const char *line, size_t len);
void progress_lines_feed(struct progress_lines *l, const char *p, size_t n,
                         progress_line_fn fn, void *arg);
/* At EOF: a last line without a newline is a line too. */
void progress_lines_end(struct progress_lines *l, progress_line_fn fn,
                        void *arg);

/*
 * A table that writes through w and tells ev (both borrowed, must outlive
 * it; NULL: nothing is written or told, for unit tests).  NULL when out
 * of memory.  progress_start() starts its thread
 * (0 or JOBD_ESYS); progress_stop() stops it (what is not written yet
 * goes with the attempts' completions); progress_free() frees the table.
 */
progress *progress_new(writer *w, events *ev);
int progress_start(progress *p);
void progress_stop(progress *p);
void progress_free(progress *p);

/*
 * A report of the attempt (id, type, claim; borrowed) of a job running
 * here: text is a checked, compact report (progress_parse), which the
 * table takes.  The same text as the last one changes nothing.  Returns 0
 * or JOBD_ENOMEM.  Any thread.
 */
int progress_report(progress *p, const char *id, const char *type,
                    const char *claim, char *text);

/*
 * The attempt (id, claim) ended: its last report (a new string the caller
 * frees, for the completion) or NULL; nothing more of it is written by the
 * table.  It is still shown until progress_forget().
 */
char *progress_end(progress *p, const char *id, const char *claim);

/* The attempt's completion is written (or discarded): forget it. */
void progress_forget(progress *p, const char *id, const char *claim);

/*
 * GET: when this node runs the job's current attempt (status running and
 * the same claim as the table's), its last report replaces job->progress
 * (the store's may be up to a second old).  Any thread.
 */
void progress_apply(progress *p, struct job *jobs, size_t n);

#endif
