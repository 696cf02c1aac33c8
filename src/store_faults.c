/*
 * store_faults.c - a pass-through sqlite3_vfs whose files fail the N-th
 * xWrite or xSync with SQLITE_IOERR_WRITE / SQLITE_IOERR_FSYNC, or, in
 * power-cut mode, hold back every write to the database and WAL files
 * until that file's next xSync.
 *
 * Power-cut mode models a machine whose page cache is lost with the power:
 * what was written since a file's last fsync is kept in this process's
 * memory (an overlay of whole blocks per file), served to every read, and
 * written through to the real file, then fsynced, only at xSync.  Killing
 * the process (SIGKILL) therefore leaves on disk exactly what had been
 * synced, as SQLite's own crash tests do with their test VFS.  The state is
 * per file name, shared by every connection of the process (the readers
 * must see the writer's unsynced commits, as they would in a page cache),
 * and kept after the last close (closing a file does not persist it).
 * The -shm file is mapped memory and is not modelled: a test deletes it
 * after the cut.
 *
 * LOCKING: the counters are atomics; the mode and the real VFS are set
 * once before any connection opens.  pc_registry_mu guards the list of
 * power-cut files (pc_files) and each one's refs and unlinked flag; a
 * file's mu guards its size, stale_from and blocks.  Lock order:
 * pc_registry_mu, then a file's mu.
 */
#ifdef JOBD_TEST_HOOKS /* the whole file: test build only */

#include <ctype.h>
#include <errno.h>
#include <sqlite3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "store_faults.h"

enum fault_kind { FAULT_NONE, FAULT_WRITE, FAULT_FSYNC, FAULT_POWERCUT,
                  FAULT_SLOWSYNC };

#define PC_BLOCK 4096 /* bytes per overlay block */

static sqlite3_vfs shim;
static sqlite3_vfs *real;
static int fault_kind;
static long fault_at;
static bool fault_sticky;
static atomic_long writes, syncs;

/* A database or WAL file in power-cut mode: its unsynced contents. */
struct pc_block {
	int64_t index;                  /* covers [index, index + 1) blocks */
	unsigned char data[PC_BLOCK];   /* the block as the file now holds it */
};

struct pc_file {
	char *name;                     /* as SQLite opened it */
	int refs;                       /* registry mu: open handles */
	bool unlinked;                  /* registry mu: deleted, not listed */
	struct pc_file *next;           /* registry mu */
	pthread_mutex_t mu;
	int64_t size;                   /* mu: the file's size as SQLite sees it */
	int64_t stale_from;             /* mu: real bytes from here on are not
	                                   the file's (an unsynced truncation);
	                                   INT64_MAX: none */
	struct pc_block **blocks;       /* mu: sorted by index */
	size_t nblocks, capblocks;      /* mu */
};

static pthread_mutex_t pc_registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pc_file *pc_files;

struct shim_file {
	sqlite3_file base;      /* our methods */
	struct pc_file *pc;     /* power-cut state, NULL: pass through */
	sqlite3_file *real;     /* the real file, allocated after us */
};

static bool
should_fail(atomic_long *counter, int kind)
{
	long n = atomic_fetch_add(counter, 1) + 1;

	if (fault_kind != kind)
		return false;
	return fault_sticky ? n >= fault_at : n == fault_at;
}

#define REAL(f) (((struct shim_file *)(f))->real)
#define PC(f) (((struct shim_file *)(f))->pc)

/* ---- power-cut mode ---- */

/* The registered state of a file name (a new one on first open), with a
 * reference taken; NULL when out of memory or the size cannot be read.
 * sizef is the real file's handle, whose size is a new state's size. */
static struct pc_file *
pc_attach(const char *name, sqlite3_file *sizef)
{
	struct pc_file *pc;
	sqlite3_int64 size = 0;

	pthread_mutex_lock(&pc_registry_mu);
	for (pc = pc_files; pc != NULL; pc = pc->next)
		if (strcmp(pc->name, name) == 0)
			break;
	if (pc == NULL && sizef->pMethods->xFileSize(sizef, &size) == SQLITE_OK &&
	    (pc = calloc(1, sizeof(*pc))) != NULL) {
		pc->name = strdup(name);
		if (pc->name == NULL) {
			free(pc);
			pc = NULL;
		} else {
			pthread_mutex_init(&pc->mu, NULL);
			pc->size = size;
			pc->stale_from = INT64_MAX;
			pc->next = pc_files;
			pc_files = pc;
		}
	}
	if (pc != NULL)
		pc->refs++;
	pthread_mutex_unlock(&pc_registry_mu);
	return pc;
}

static void
pc_drop_blocks(struct pc_file *pc, size_t from)
{
	for (size_t i = from; i < pc->nblocks; i++)
		free(pc->blocks[i]);
	pc->nblocks = from;
}

static void
pc_destroy(struct pc_file *pc)
{
	pc_drop_blocks(pc, 0);
	free(pc->blocks);
	pthread_mutex_destroy(&pc->mu);
	free(pc->name);
	free(pc);
}

/* Drops a reference.  A listed file stays, with what it holds: closing a
 * file does not make it durable, and the next open must see it. */
static void
pc_detach(struct pc_file *pc)
{
	bool gone;

	pthread_mutex_lock(&pc_registry_mu);
	gone = --pc->refs == 0 && pc->unlinked;
	pthread_mutex_unlock(&pc_registry_mu);
	if (gone)
		pc_destroy(pc);
}

/* The first block slot whose index >= idx (binary search).  pc->mu held. */
static size_t
pc_find(const struct pc_file *pc, int64_t idx)
{
	size_t lo = 0, hi = pc->nblocks;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (pc->blocks[mid]->index < idx)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Reads [off, off + n) as the real file holds it for this state: real
 * bytes below min(size, stale_from), zeros beyond.  pc->mu held.
 */
static int
pc_read_real(struct pc_file *pc, sqlite3_file *rf, unsigned char *buf,
             int64_t n, int64_t off)
{
	int64_t lim = pc->size < pc->stale_from ? pc->size : pc->stale_from;
	int64_t take = off >= lim ? 0 : (off + n <= lim ? n : lim - off);
	int rc;

	if (take > 0) {
		rc = rf->pMethods->xRead(rf, buf, (int)take, off);
		if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ)
			return rc; /* a short read is zero-filled */
	}
	memset(buf + take, 0, (size_t)(n - take));
	return SQLITE_OK;
}

/* The overlay block of index idx, made from the file's contents when
 * absent; NULL (*rc set) on failure.  pc->mu held. */
static struct pc_block *
pc_block(struct pc_file *pc, sqlite3_file *rf, int64_t idx, int *rc)
{
	size_t at = pc_find(pc, idx);
	struct pc_block *b;

	if (at < pc->nblocks && pc->blocks[at]->index == idx)
		return pc->blocks[at];
	if (pc->nblocks == pc->capblocks) {
		size_t cap = pc->capblocks ? pc->capblocks * 2 : 64;
		struct pc_block **nb = realloc(pc->blocks, cap * sizeof(*nb));
		if (nb == NULL) {
			*rc = SQLITE_IOERR_NOMEM;
			return NULL;
		}
		pc->blocks = nb;
		pc->capblocks = cap;
	}
	b = malloc(sizeof(*b));
	if (b == NULL) {
		*rc = SQLITE_IOERR_NOMEM;
		return NULL;
	}
	b->index = idx;
	*rc = pc_read_real(pc, rf, b->data, PC_BLOCK, idx * PC_BLOCK);
	if (*rc != SQLITE_OK) {
		free(b);
		return NULL;
	}
	memmove(pc->blocks + at + 1, pc->blocks + at,
	        (pc->nblocks - at) * sizeof(*pc->blocks));
	pc->blocks[at] = b;
	pc->nblocks++;
	return b;
}

static int
pc_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
	struct pc_file *pc = PC(f);
	unsigned char *out = buf;
	int64_t pos = off, end = off + n;
	int rc = SQLITE_OK;

	pthread_mutex_lock(&pc->mu);
	while (pos < end && rc == SQLITE_OK) {
		int64_t idx = pos / PC_BLOCK;
		int64_t in = pos - idx * PC_BLOCK;
		int64_t len = PC_BLOCK - in < end - pos ? PC_BLOCK - in : end - pos;
		size_t at = pc_find(pc, idx);

		if (at < pc->nblocks && pc->blocks[at]->index == idx)
			memcpy(out + (pos - off), pc->blocks[at]->data + in,
			       (size_t)len);
		else
			rc = pc_read_real(pc, REAL(f), out + (pos - off), len,
			                  pos);
		pos += len;
	}
	if (rc == SQLITE_OK && end > pc->size) {
		/* As the unix VFS does: zero-fill, say it was short. */
		int64_t from = off > pc->size ? off : pc->size;
		memset(out + (from - off), 0, (size_t)(end - from));
		rc = SQLITE_IOERR_SHORT_READ;
	}
	pthread_mutex_unlock(&pc->mu);
	return rc;
}

static int
pc_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
	struct pc_file *pc = PC(f);
	const unsigned char *in = buf;
	int64_t pos = off, end = off + n;
	int rc = SQLITE_OK;

	pthread_mutex_lock(&pc->mu);
	while (pos < end) {
		int64_t idx = pos / PC_BLOCK;
		int64_t at = pos - idx * PC_BLOCK;
		int64_t len = PC_BLOCK - at < end - pos ? PC_BLOCK - at : end - pos;
		struct pc_block *b = pc_block(pc, REAL(f), idx, &rc);

		if (b == NULL)
			break;
		memcpy(b->data + at, in + (pos - off), (size_t)len);
		pos += len;
		/* Bytes written so far are the file's (a failed write may
		 * leave part of itself, as a real one may). */
		if (pos > pc->size)
			pc->size = pos;
	}
	pthread_mutex_unlock(&pc->mu);
	return rc;
}

static int
pc_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	struct pc_file *pc = PC(f);
	int64_t idx = size / PC_BLOCK;
	size_t at;

	pthread_mutex_lock(&pc->mu);
	if (size < pc->size) {
		/* Blocks wholly beyond go; the one cut keeps its head only. */
		at = pc_find(pc, idx);
		if (at < pc->nblocks && pc->blocks[at]->index == idx) {
			int64_t keep = size - idx * PC_BLOCK;
			memset(pc->blocks[at]->data + keep, 0,
			       (size_t)(PC_BLOCK - keep));
			at++;
		}
		pc_drop_blocks(pc, at);
		if (size < pc->stale_from)
			pc->stale_from = size;
	}
	pc->size = size;
	pthread_mutex_unlock(&pc->mu);
	return SQLITE_OK;
}

static int
pc_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	struct pc_file *pc = PC(f);

	pthread_mutex_lock(&pc->mu);
	*size = pc->size;
	pthread_mutex_unlock(&pc->mu);
	return SQLITE_OK;
}

/*
 * Writes what the overlay holds through to the real file (an unsynced
 * truncation first, then the blocks, then the size), fsyncs it, and
 * forgets the overlay once the fsync succeeded.
 */
static int
pc_sync(sqlite3_file *f, int flags)
{
	struct pc_file *pc = PC(f);
	sqlite3_file *rf = REAL(f);
	int rc = SQLITE_OK;

	pthread_mutex_lock(&pc->mu);
	if (pc->stale_from != INT64_MAX)
		rc = rf->pMethods->xTruncate(rf, pc->stale_from);
	for (size_t i = 0; i < pc->nblocks && rc == SQLITE_OK; i++) {
		struct pc_block *b = pc->blocks[i];
		int64_t off = b->index * PC_BLOCK;
		int64_t len = pc->size - off < PC_BLOCK ? pc->size - off
		                                        : PC_BLOCK;
		if (len > 0)
			rc = rf->pMethods->xWrite(rf, b->data, (int)len, off);
	}
	if (rc == SQLITE_OK)
		rc = rf->pMethods->xTruncate(rf, pc->size);
	if (rc == SQLITE_OK)
		rc = rf->pMethods->xSync(rf, flags);
	if (rc == SQLITE_OK) {
		pc_drop_blocks(pc, 0);
		pc->stale_from = INT64_MAX;
	}
	pthread_mutex_unlock(&pc->mu);
	return rc;
}

/* ---- the shim's methods ---- */

static int
x_close(sqlite3_file *f)
{
	int rc = REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f))
	                           : SQLITE_OK;
	if (PC(f) != NULL) {
		pc_detach(PC(f));
		PC(f) = NULL;
	}
	return rc;
}

static int
x_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
	if (PC(f) != NULL)
		return pc_read(f, buf, n, off);
	return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}

static int
x_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
	if (should_fail(&writes, FAULT_WRITE)) {
		log_warn("faults", "injected EIO on write #%ld", atomic_load(&writes));
		return SQLITE_IOERR_WRITE;
	}
	if (PC(f) != NULL)
		return pc_write(f, buf, n, off);
	return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}

static int
x_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	if (PC(f) != NULL)
		return pc_truncate(f, size);
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int
x_sync(sqlite3_file *f, int flags)
{
	if (should_fail(&syncs, FAULT_FSYNC)) {
		log_warn("faults", "injected EIO on fsync #%ld", atomic_load(&syncs));
		return SQLITE_IOERR_FSYNC;
	}
	if (fault_kind == FAULT_SLOWSYNC) {
		/* A slow disk: tests use the window to race a commit. */
		struct timespec ts = {fault_at / 1000,
		                      (fault_at % 1000) * 1000000L};
		log_notice("faults", "slow fsync #%ld: %ld ms",
		           atomic_load(&syncs), fault_at);
		nanosleep(&ts, NULL);
	}
	if (PC(f) != NULL)
		return pc_sync(f, flags);
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int
x_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	if (PC(f) != NULL)
		return pc_file_size(f, size);
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int
x_lock(sqlite3_file *f, int lock)
{
	return REAL(f)->pMethods->xLock(REAL(f), lock);
}

static int
x_unlock(sqlite3_file *f, int lock)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), lock);
}

static int
x_check_reserved(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int
x_file_control(sqlite3_file *f, int op, void *arg)
{
	/* A size hint would grow the real file behind the overlay's back;
	 * it is only a hint. */
	if (PC(f) != NULL &&
	    (op == SQLITE_FCNTL_SIZE_HINT || op == SQLITE_FCNTL_CHUNK_SIZE))
		return SQLITE_OK;
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int
x_sector_size(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int
x_device_characteristics(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int
x_shm_map(sqlite3_file *f, int page, int size, int extend, void volatile **p)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), page, size, extend, p);
}

static int
x_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void
x_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int
x_shm_unmap(sqlite3_file *f, int delete_flag)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}

static const sqlite3_io_methods shim_methods = {
	.iVersion = 2,
	.xClose = x_close,
	.xRead = x_read,
	.xWrite = x_write,
	.xTruncate = x_truncate,
	.xSync = x_sync,
	.xFileSize = x_file_size,
	.xLock = x_lock,
	.xUnlock = x_unlock,
	.xCheckReservedLock = x_check_reserved,
	.xFileControl = x_file_control,
	.xSectorSize = x_sector_size,
	.xDeviceCharacteristics = x_device_characteristics,
	.xShmMap = x_shm_map,
	.xShmLock = x_shm_lock,
	.xShmBarrier = x_shm_barrier,
	.xShmUnmap = x_shm_unmap,
};

static int
x_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
       int *out_flags)
{
	struct shim_file *sf = (struct shim_file *)f;
	int rc;

	(void)vfs;
	sf->pc = NULL;
	sf->real = (sqlite3_file *)(sf + 1);
	rc = real->xOpen(real, name, sf->real, flags, out_flags);
	if (rc == SQLITE_OK && fault_kind == FAULT_POWERCUT && name != NULL &&
	    (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)) != 0) {
		sf->pc = pc_attach(name, sf->real);
		if (sf->pc == NULL) {
			sf->real->pMethods->xClose(sf->real);
			sf->real->pMethods = NULL;
			rc = SQLITE_NOMEM;
		}
	}
	/* Only a successfully opened file gets methods (SQLite then calls
	 * xClose on it); otherwise pMethods stays NULL. */
	sf->base.pMethods = sf->real->pMethods ? &shim_methods : NULL;
	return rc;
}

static int
x_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	struct pc_file **pp, *gone = NULL;

	(void)vfs;
	/* A deleted file's overlay goes with it (handles still open keep
	 * theirs until closed); the next file of that name starts afresh. */
	pthread_mutex_lock(&pc_registry_mu);
	for (pp = &pc_files; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp((*pp)->name, name) == 0) {
			struct pc_file *pc = *pp;
			*pp = pc->next;
			pc->unlinked = true;
			if (pc->refs == 0)
				gone = pc;
			break;
		}
	}
	pthread_mutex_unlock(&pc_registry_mu);
	if (gone != NULL)
		pc_destroy(gone);
	return real->xDelete(real, name, sync_dir);
}

static int
x_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return real->xAccess(real, name, flags, out);
}

static int
x_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return real->xFullPathname(real, name, n, out);
}

static int
x_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real->xRandomness(real, n, out);
}

static int
x_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return real->xSleep(real, us);
}

static int
x_current_time(sqlite3_vfs *vfs, double *out)
{
	(void)vfs;
	return real->xCurrentTime(real, out);
}

static int
x_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real->xGetLastError ? real->xGetLastError(real, n, out) : 0;
}

static int
x_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	(void)vfs;
	return real->xCurrentTimeInt64(real, out);
}

int
store_faults_init(char *err, size_t errlen)
{
	const char *spec = getenv("JOBD_FAULT_INJECT");

	if (spec == NULL || *spec == '\0' || real != NULL)
		return 0;
	if (strcmp(spec, "powercut") == 0) {
		fault_kind = FAULT_POWERCUT;
	} else {
		const char *colon = strchr(spec, ':');
		char *end = NULL;

		if (colon == NULL || !isdigit((unsigned char)colon[1]))
			goto bad;
		if (colon - spec == 5 && strncmp(spec, "write", 5) == 0)
			fault_kind = FAULT_WRITE;
		else if (colon - spec == 5 && strncmp(spec, "fsync", 5) == 0)
			fault_kind = FAULT_FSYNC;
		else if (colon - spec == 8 && strncmp(spec, "slowsync", 8) == 0)
			fault_kind = FAULT_SLOWSYNC;
		else
			goto bad;
		errno = 0;
		fault_at = strtol(colon + 1, &end, 10);
		if (errno != 0 || fault_at < 1 ||
		    (*end != '\0' && strcmp(end, ",sticky") != 0) ||
		    (fault_kind == FAULT_SLOWSYNC &&
		     (*end != '\0' || fault_at > 60000)))
			goto bad;
		fault_sticky = *end != '\0';
	}
	real = sqlite3_vfs_find(NULL);
	if (real == NULL)
		return jobd_seterr(err, errlen, JOBD_EIO, "no default VFS");
	shim = (sqlite3_vfs){
		.iVersion = 2,
		.szOsFile = (int)sizeof(struct shim_file) + real->szOsFile,
		.mxPathname = real->mxPathname,
		.zName = "jobd-faults",
		.xOpen = x_open,
		.xDelete = x_delete,
		.xAccess = x_access,
		.xFullPathname = x_full_pathname,
		.xRandomness = x_randomness,
		.xSleep = x_sleep,
		.xCurrentTime = x_current_time,
		.xGetLastError = x_get_last_error,
		.xCurrentTimeInt64 = x_current_time_int64,
	};
	if (sqlite3_vfs_register(&shim, 1) != SQLITE_OK)
		return jobd_seterr(err, errlen, JOBD_EIO, "cannot register the "
		                   "fault-injection VFS");
	log_warn("faults", "I/O fault injection on: %s", spec);
	return 0;
bad:
	fault_kind = FAULT_NONE;
	return jobd_seterr(err, errlen, JOBD_EINVAL, "JOBD_FAULT_INJECT=%s: "
	                   "expected write:N, fsync:N (optionally ,sticky), "
	                   "slowsync:MS or powercut", spec);
}

#endif /* JOBD_TEST_HOOKS */
