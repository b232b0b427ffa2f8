// Named test points of the migration tier: crash points and pause points.
//
// Crash points. The tests kill the daemon at chosen instants inside an
// archive, a release, a restore or a lazy copy-up, remount, and check that
// no byte was lost and that fsck is clean. Timing a SIGKILL from outside
// cannot hit "after the catalog commit, before the punch" reliably; the
// process kills itself instead: with OVERTIER_CRASH_AT=NAME in its
// environment, it raises SIGKILL the first time it reaches
// CrashPoint("NAME").
//
// Pause points. The race tests hold one thread of the daemon at a chosen
// instant while they make another thread act: with
// OVERTIER_PAUSE_AT=NAME[,NAME...] and OVERTIER_PAUSE_DIR=DIR, a thread
// reaching PausePoint("NAME") while DIR/NAME.hold exists creates
// DIR/NAME.reached and waits until the hold file is gone (at most a
// minute). A hold file that is not empty holds only the first thread to
// reach NAME (the one that creates DIR/NAME.reached); the others pass.
// Tests in the daemon's own process use SetPauseHook instead.
//
// Without the variables (and hook) a test point costs one predictable
// branch.
#ifndef OVERTIER_MIGRATE_CRASH_POINT_H_
#define OVERTIER_MIGRATE_CRASH_POINT_H_

#include <functional>

namespace overtier {

// The crash points, in the order a file meets them (docs/SEMANTICS.md,
// "Crash safety"):
//   archive-written     content in containers, not yet flushed or committed
//   archive-committed   the archive's catalog batch committed
//   release-marked      the file's archive mark set (migrate/archive_mark.h),
//                       the released record not committed yet
//   release-committed   the released record committed, nothing punched yet
//   release-punched     punched, not yet fsynced, user times not yet back
//   restore-written     a piece written into the upper file, not synced
//   restore-unmarked    a finished restore took the file's archive mark
//                       off, its last commit (not released) still ahead
//   restore-committed   a restore's residency committed
//   adopt-committed     a lazy copy-up's record committed, the metacopy
//                       mark still on the upper file
// and, in `overtier gc`, gc-<point> for each point of store/gc.h
// (gc-job-started ... gc-orphans-removed).
void CrashPoint(const char* name);

// The pause points:
//   archive-copied       an archive copied the file, before it looks
//                        whether the file changed meanwhile
//   release-published    a release published the ranges it will punch (in
//                        the daemon's memory), nothing committed yet
//   restore-loaded       a restore job read the file's record, before it
//                        commits its restore flag
//   slow-read-answered   a read waiting for a restore was told its range is
//                        resident, before it reads the upper file
//   read-answered        a read of a file of a mount with a store
//                        answered from the upper file, the file's gate
//                        not yet let go
//   plain-write          a write to a file without a record, going the
//                        plain way, before it writes
//   plain-write-answered such a write answered, its change not yet ended
//   restore-finishing    a restore job wrote its last byte, before its
//                        last commit
//   record-loaded        the daemon read a file's record to publish it in
//                        memory (MigrationService::Refresh), not yet
//                        published
//   file-attaching       the first open of a file made its in-memory
//                        state, before it publishes the file's record
//   policy-file          a periodic policy run at a file of its walk
void PausePoint(const char* name);

// For tests that run the migration tier in their own process: hook (if
// set) runs at every pause point, on the thread that reaches it. Set it
// before the threads that reach the points start.
void SetPauseHook(std::function<void(const char* name)> hook);

}  // namespace overtier

#endif  // OVERTIER_MIGRATE_CRASH_POINT_H_
