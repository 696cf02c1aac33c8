/*
 * store_faults.c - a pass-through sqlite3_vfs whose files fail the N-th
 * xWrite or xSync with SQLITE_IOERR_WRITE / SQLITE_IOERR_FSYNC.
 *
 * LOCKING: the counters are atomics; everything else is set once before
 * any connection opens.
 */
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "store_faults.h"

enum fault_kind { FAULT_NONE, FAULT_WRITE, FAULT_FSYNC };

static sqlite3_vfs shim;
static sqlite3_vfs *real;
static int fault_kind;
static long fault_at;
static bool fault_sticky;
static atomic_long writes, syncs;

struct shim_file {
	sqlite3_file base;      /* our methods */
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

static int
x_close(sqlite3_file *f)
{
	int rc = REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f))
	                           : SQLITE_OK;
	return rc;
}

static int
x_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}

static int
x_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
	if (should_fail(&writes, FAULT_WRITE)) {
		log_warn("faults", "injected EIO on write #%ld", atomic_load(&writes));
		return SQLITE_IOERR_WRITE;
	}
	return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}

static int
x_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int
x_sync(sqlite3_file *f, int flags)
{
	if (should_fail(&syncs, FAULT_FSYNC)) {
		log_warn("faults", "injected EIO on fsync #%ld", atomic_load(&syncs));
		return SQLITE_IOERR_FSYNC;
	}
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int
x_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
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
	sf->real = (sqlite3_file *)(sf + 1);
	rc = real->xOpen(real, name, sf->real, flags, out_flags);
	/* Only a successfully opened file gets methods (SQLite then calls
	 * xClose on it); otherwise pMethods stays NULL. */
	sf->base.pMethods = sf->real->pMethods ? &shim_methods : NULL;
	return rc;
}

static int
x_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	(void)vfs;
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
	char kind[16];
	long n = 0;
	int used = 0;

	if (spec == NULL || *spec == '\0' || real != NULL)
		return 0;
	if (sscanf(spec, "%15[a-z]:%ld%n", kind, &n, &used) != 2 || n < 1)
		return jobd_seterr(err, errlen, JOBD_EINVAL, "JOBD_FAULT_INJECT="
		                   "%s: expected write:N or fsync:N", spec);
	if (strcmp(kind, "write") == 0)
		fault_kind = FAULT_WRITE;
	else if (strcmp(kind, "fsync") == 0)
		fault_kind = FAULT_FSYNC;
	else
		return jobd_seterr(err, errlen, JOBD_EINVAL, "JOBD_FAULT_INJECT="
		                   "%s: expected write:N or fsync:N", spec);
	fault_at = n;
	fault_sticky = strcmp(spec + used, ",sticky") == 0;
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
}
