/*
 * pgroups.c - the process groups of running exec attempts, kept in
 * <store.path>.pgroups so that the next start can kill what a jobd that
 * died (SIGKILL, a crash) left running.  Outside systemd nothing else
 * would: the commands run in sessions of their own and live on, and the
 * restart would run their jobs again beside them.
 *
 * The file holds one fixed-size record per worker thread: the group id of
 * the attempt that thread runs and the start time of the group's leader
 * (field 22 of /proc/<pid>/stat, clock ticks after boot), or zeroes.  A
 * worker writes its record with one pwrite when it has spawned a command
 * and zeroes it once the group is killed and its leader reaped.  No
 * fsync: a crash of jobd leaves the page cache to the next start, and a
 * power cut ends the commands too.  The start time is what makes a kill
 * safe: pids are reused (pid_max may be 32768), and a number recorded
 * before a crash may belong to an unrelated process by the next start;
 * that process never has the recorded start time.
 *
 * A store that is not a file (PostgreSQL) has no place beside it: main
 * passes "$STATE_DIRECTORY/jobd" instead (systemd's StateDirectory=), or
 * "" when there is none, and nothing is recorded then.  The file is locked
 * (flock) for the life of the daemon, so that a second jobd started on
 * the same store by mistake cannot kill the first one's commands.
 *
 * LOCKING: fd and nslots are written by pgroups_reap() before any worker
 * thread starts and only read after.  A record belongs to the thread that
 * claimed it (an atomic exchange on used[i]); the claim is thread-specific
 * data, given back by the key's destructor when the thread ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "pgroups.h"

#define MAX_RECORDS 65536 /* read at start-up; more is not our file */

/* One record, in the machine's byte order (the file never travels). */
struct rec {
	int64_t pgid;        /* 0 = empty */
	int64_t start_ticks; /* the leader's start, /proc/<pid>/stat #22 */
};

static int fd = -1;            /* the open, locked file; -1 = off */
static int nslots;
static atomic_bool *used;      /* used[i]: record i has an owner */
static pthread_key_t slot_key; /* this thread's record index + 1 */

/*
 * Reads the process group and start time of pid from /proc/<pid>/stat.
 * Returns 0, or -1 with errno set (ENOENT: no such process; EINVAL: a
 * line not in the expected form).
 */
static int
proc_stat(pid_t pid, pid_t *pgrp, int64_t *start_ticks)
{
	char path[64], buf[1024], *p, *end;
	long long v;
	ssize_t n;
	int f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return -1;
	do
		n = read(f, buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	close(f);
	if (n <= 0) {
		errno = n < 0 ? errno : EINVAL;
		return -1;
	}
	buf[n] = '\0';
	/* "pid (comm) state ppid pgrp ...": comm may hold spaces and
	 * parentheses, so fields are counted from the last ')'. */
	p = strrchr(buf, ')');
	for (int field = 2; p != NULL && field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (p != NULL && field + 1 == 5) {
			errno = 0;
			v = strtoll(p + 1, &end, 10);
			if (errno != 0 || end == p + 1 || v <= 0 || v > INT_MAX)
				p = NULL;
			else
				*pgrp = (pid_t)v;
		}
	}
	if (p == NULL) {
		errno = EINVAL;
		return -1;
	}
	errno = 0;
	v = strtoll(p + 1, &end, 10);
	if (errno != 0 || end == p + 1 || *end != ' ' || v < 0) {
		errno = EINVAL;
		return -1;
	}
	*start_ticks = v;
	return 0;
}

/* Decides about one record found at start-up, and acts. */
static void
reap_one(const struct rec *r)
{
	pid_t pgid = (pid_t)r->pgid, pgrp = 0;
	int64_t start = -1;

	if (r->pgid == 0)
		return;
	/* Never 0 or 1 (kill(-1) is everyone), never ourselves. */
	if (r->pgid <= 1 || r->pgid > INT_MAX || r->start_ticks < 0 ||
	    pgid == getpid() || pgid == getpgrp()) {
		log_warn("pgroups", "ignoring a record that names process "
		         "group %lld", (long long)r->pgid);
		return;
	}
	if (proc_stat(pgid, &pgrp, &start) != 0) {
		if (errno == ENOENT && kill(-pgid, 0) == 0)
			log_notice("pgroups", "process group %d of an attempt "
			           "of the last jobd outlived its leader, so "
			           "it cannot be told from a reused number: "
			           "left alone", (int)pgid);
		return;
	}
	if (pgrp != pgid || start != r->start_ticks) {
		log_notice("pgroups", "process %d is not the leader of the "
		           "group an attempt of the last jobd ran in (it "
		           "started at tick %lld, that one at %lld): left "
		           "alone", (int)pgid, (long long)start,
		           (long long)r->start_ticks);
		return;
	}
	if (kill(-pgid, SIGKILL) == 0)
		log_notice("pgroups", "killed process group %d left running "
		           "by an attempt of the last jobd", (int)pgid);
	else
		log_warn("pgroups", "cannot kill process group %d left by "
		         "the last jobd: %s", (int)pgid, strerror(errno));
}

/* The key's destructor: the thread ends, its record is free again. */
static void
slot_release(void *v)
{
	size_t i = (size_t)(uintptr_t)v - 1;
	struct rec zero = {0, 0};

	(void)!pwrite(fd, &zero, sizeof(zero), (off_t)(i * sizeof(zero)));
	atomic_store(&used[i], false);
}

int
pgroups_reap(const char *store_path, int slots, char *err, size_t errlen)
{
	char *path = NULL;
	struct rec *recs = NULL;
	struct stat st;
	ssize_t n = 0;
	int f = -1, rc;

	if (store_path[0] == '\0' || strcmp(store_path, ":memory:") == 0 ||
	    strstr(store_path, "://") != NULL) {
		log_info("pgroups", "the store is not a file and there is no "
		         "STATE_DIRECTORY: exec attempts' process groups are "
		         "not recorded");
		return 0;
	}
	if (slots < 1)
		return jobd_seterr(err, errlen, JOBD_EINVAL, "pgroups: %d "
		                   "workers", slots);
	if (slots > MAX_RECORDS)
		slots = MAX_RECORDS;
	if (asprintf(&path, "%s.pgroups", store_path) < 0) {
		path = NULL;
		rc = jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
		goto out;
	}
	f = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (f < 0) {
		rc = jobd_seterr(err, errlen, JOBD_ESYS, "%s: %s", path,
		                 strerror(errno));
		goto out;
	}
	if (flock(f, LOCK_EX | LOCK_NB) != 0) {
		rc = jobd_seterr(err, errlen, JOBD_EBUSY, "%s: %s",
		                 path, errno == EWOULDBLOCK
		                 ? "another jobd runs on this store; its exec "
		                   "attempts are left alone"
		                 : strerror(errno));
		goto out;
	}
	if (fstat(f, &st) != 0 || (recs = calloc(MAX_RECORDS,
	                                         sizeof(*recs))) == NULL) {
		rc = jobd_seterr(err, errlen, JOBD_ESYS, "%s: %s", path,
		                 strerror(errno));
		goto out;
	}
	if (st.st_size > 0) {
		do
			n = pread(f, recs, MAX_RECORDS * sizeof(*recs), 0);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			rc = jobd_seterr(err, errlen, JOBD_ESYS, "%s: %s",
			                 path, strerror(errno));
			goto out;
		}
	}
	for (size_t i = 0; i < (size_t)n / sizeof(*recs); i++)
		reap_one(&recs[i]);

	/* Room for every record now, so that a pwrite later never needs
	 * a block the disk may not have. */
	memset(recs, 0, (size_t)slots * sizeof(*recs));
	used = calloc((size_t)slots, sizeof(*used));
	if (used == NULL || ftruncate(f, 0) != 0 ||
	    pwrite(f, recs, (size_t)slots * sizeof(*recs), 0) !=
	        (ssize_t)((size_t)slots * sizeof(*recs)) ||
	    pthread_key_create(&slot_key, slot_release) != 0) {
		rc = jobd_seterr(err, errlen, JOBD_ESYS, "%s: %s", path,
		                 used == NULL ? "out of memory"
		                              : strerror(errno));
		free(used);
		used = NULL;
		goto out;
	}
	fd = f;
	f = -1;
	nslots = slots;
	rc = 0;
out:
	if (f >= 0)
		close(f);
	free(recs);
	free(path);
	return rc;
}

/* This thread's record index, claimed on first use when claim is true;
 * -1 when none. */
static int
my_slot(bool claim)
{
	uintptr_t v = (uintptr_t)pthread_getspecific(slot_key);

	if (v != 0)
		return (int)(v - 1);
	for (int i = 0; claim && i < nslots; i++) {
		if (!atomic_exchange(&used[i], true)) {
			if (pthread_setspecific(slot_key,
			                        (void *)(uintptr_t)(i + 1)) != 0) {
				atomic_store(&used[i], false);
				return -1;
			}
			return i;
		}
	}
	return -1;
}

void
pgroups_record(pid_t pgid)
{
	struct rec r = {.pgid = pgid};
	pid_t pgrp = 0;
	int i;

	if (fd < 0 || (i = my_slot(true)) < 0 ||
	    proc_stat(pgid, &pgrp, &r.start_ticks) != 0 || pgrp != pgid)
		return;
	(void)!pwrite(fd, &r, sizeof(r), (off_t)i * (off_t)sizeof(r));
}

void
pgroups_clear(void)
{
	struct rec zero = {0, 0};
	int i;

	if (fd < 0 || (i = my_slot(false)) < 0)
		return;
	(void)!pwrite(fd, &zero, sizeof(zero), (off_t)i * (off_t)sizeof(zero));
}
