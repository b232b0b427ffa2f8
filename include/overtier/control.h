/* The control ABI of the migration tier: ioctls on an open file of an
 * overtier mount, used by the `overtier` command line (archive, release,
 * restore, status). Byte-level description: docs/FORMAT.md, "Migration".
 *
 * They mirror the fcntl commands of DMFS (NAStore 3), through which its
 * user-level agents drive a file's state: set archive in progress, set
 * archived, set non-resident keeping N bytes, set restore in progress, move
 * the byte barrier, finish the restore. overtier's own agents run inside
 * the daemon, so three higher-level commands (ARCHIVE, RELEASE, RESTORE)
 * ask the daemon to do the whole job; the low-level ones remain for
 * external agents and tests.
 *
 * The commands are FUSE "restricted" ioctls: direction and size are encoded
 * in the number (_IOR/_IOW/_IOWR, type 'O'), so the kernel copies exactly
 * that many bytes without the daemon's help. Every struct has a fixed size,
 * 8-byte aligned fields, no implicit padding, and starts with a version
 * (OVERTIER_CTL_VERSION): the daemon refuses (EINVAL) a version it does not
 * know and non-zero reserved fields, so fields can be added later in the
 * reserved space under a new version. Everything except GET_STATE needs
 * a caller with uid 0 (EPERM otherwise: a FUSE request carries the caller's ids,
 * not its capabilities, so uid 0 is what the daemon can check).
 *
 * Open the file with O_NOATIME (as its owner or root; otherwise without):
 * the daemon never makes such an open a FUSE passthrough open. A command
 * on a file that a passthrough descriptor is open on is refused with
 * EBUSY, since the migration tier cannot follow what that descriptor reads
 * and writes (docs/SEMANTICS.md, "Migration tier").
 *
 * Plain C (usable from C tools), no dependency but the kernel headers.
 */
#ifndef OVERTIER_CONTROL_H_
#define OVERTIER_CONTROL_H_

#include <linux/ioctl.h>
#include <stdint.h>

#define OVERTIER_CTL_VERSION 1u
#define OVERTIER_IOC_TYPE 'O'

/* The state of a file (overtier_ctl_state.state); as the xattr
 * user.overtier.state names them. */
#define OVERTIER_STATE_RESIDENT 0u
#define OVERTIER_STATE_ARCHIVED 1u
#define OVERTIER_STATE_RELEASED 2u
#define OVERTIER_STATE_DIRTY 3u
#define OVERTIER_STATE_LOST 4u

/* overtier_ctl_state.mig_flags: the catalog's migration record flags. */
#define OVERTIER_MIG_ARCHIVED (1u << 0)
#define OVERTIER_MIG_RELEASED (1u << 1)
#define OVERTIER_MIG_DIRTY (1u << 2)
#define OVERTIER_MIG_LOST (1u << 3)
#define OVERTIER_MIG_ARCHIVE_IN_PROGRESS (1u << 4)
#define OVERTIER_MIG_RESTORE_IN_PROGRESS (1u << 5)
#define OVERTIER_MIG_ON_DEMAND (1u << 6) /* shared archive (lazy copy-up): restored as read */
/* Not a record flag: the file is only in a lower layer (never copied up),
 * so there is nothing of it to archive or release (GET_STATE only). */
#define OVERTIER_MIG_LOWER (1u << 7)
/* Not a record flag: a release of the file would be refused, as it is
 * pinned: marked user.overtier.norelease, or immutable or append-only
 * (chattr +i, +a). GET_STATE only. */
#define OVERTIER_MIG_PINNED (1u << 8)

/* overtier_ctl_request.flags */
#define OVERTIER_CTL_RELEASE (1u << 0)    /* ARCHIVE: release afterwards, keeping `offset` bytes */
#define OVERTIER_CTL_WAIT (1u << 1)       /* RESTORE: return once the range is resident */
#define OVERTIER_CTL_RANGE_ONLY (1u << 2) /* RESTORE: only the range, not the rest of the file */
#define OVERTIER_CTL_REQUEST_FLAGS \
  (OVERTIER_CTL_RELEASE | OVERTIER_CTL_WAIT | OVERTIER_CTL_RANGE_ONLY)

/* The argument of most commands (64 bytes). */
struct overtier_ctl_request {
  uint32_t version;     /* OVERTIER_CTL_VERSION */
  uint32_t flags;       /* OVERTIER_CTL_*, as the command allows; others must be 0 */
  uint64_t offset;      /* keep bytes (SET_NONRESIDENT, RELEASE, ARCHIVE) or range start */
  uint64_t length;      /* range length (MOVE_BARRIER, RESTORE); RESTORE: 0 = to the end */
  uint64_t generation;  /* expected inode generation of the upper file; 0: do not check */
  uint64_t reserved[4]; /* must be 0 */
};

/* SET_ARCHIVED: what an external agent archived (96 bytes). */
struct overtier_ctl_archived {
  uint32_t version;
  uint32_t copies;       /* complete copies written */
  uint64_t generation;   /* inode generation given by ARCHIVE_BEGIN's state */
  uint64_t archive_size; /* bytes archived */
  uint8_t bfid[16];      /* the catalog's `files` row holding the content */
  int64_t atime_ns;      /* the user's times when the archive started */
  int64_t mtime_ns;
  uint64_t reserved[5]; /* must be 0 */
};

/* GET_STATE: the file's migration state (160 bytes). The caller sets
 * `version`; the daemon fills the rest. */
struct overtier_ctl_state {
  uint32_t version;
  uint32_t state;     /* OVERTIER_STATE_* */
  uint32_t mig_flags; /* OVERTIER_MIG_* */
  uint32_t nranges;   /* number of resident ranges (1 for a barrier > 0, 0 for none) */
  uint64_t size;      /* st_size as users see it */
  uint64_t archive_size;
  uint64_t barrier;        /* bytes [0, barrier) resident; UINT64_MAX if not a barrier */
  uint64_t resident_bytes; /* what st_blocks reflects */
  uint64_t generation;     /* inode generation recorded at archive time */
  uint8_t bfid[16];        /* zero when no archive */
  int64_t atime_ns;        /* preserved user times */
  int64_t mtime_ns;
  int64_t archive_time_ns; /* 0: never */
  int64_t restore_time_ns; /* 0: never */
  uint64_t reserved[7];
};

/* Query. */
#define OVERTIER_IOC_GET_STATE _IOWR(OVERTIER_IOC_TYPE, 1, struct overtier_ctl_state)

/* DMFS-like primitives (external agents). */
#define OVERTIER_IOC_ARCHIVE_BEGIN _IOW(OVERTIER_IOC_TYPE, 2, struct overtier_ctl_request)
#define OVERTIER_IOC_SET_ARCHIVED _IOW(OVERTIER_IOC_TYPE, 3, struct overtier_ctl_archived)
#define OVERTIER_IOC_ARCHIVE_ABORT _IOW(OVERTIER_IOC_TYPE, 4, struct overtier_ctl_request)
/* offset = bytes to keep resident. */
#define OVERTIER_IOC_SET_NONRESIDENT _IOW(OVERTIER_IOC_TYPE, 5, struct overtier_ctl_request)
#define OVERTIER_IOC_RESTORE_BEGIN _IOW(OVERTIER_IOC_TYPE, 6, struct overtier_ctl_request)
/* [offset, offset + length) is resident again. */
#define OVERTIER_IOC_MOVE_BARRIER _IOW(OVERTIER_IOC_TYPE, 7, struct overtier_ctl_request)
#define OVERTIER_IOC_RESTORE_DONE _IOW(OVERTIER_IOC_TYPE, 8, struct overtier_ctl_request)

/* Whole jobs done by the daemon's agents. */
#define OVERTIER_IOC_ARCHIVE _IOW(OVERTIER_IOC_TYPE, 9, struct overtier_ctl_request)
#define OVERTIER_IOC_RELEASE _IOW(OVERTIER_IOC_TYPE, 10, struct overtier_ctl_request)
#define OVERTIER_IOC_RESTORE _IOW(OVERTIER_IOC_TYPE, 11, struct overtier_ctl_request)

#endif /* OVERTIER_CONTROL_H_ */
