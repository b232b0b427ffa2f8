// Named crash points, for the crash tests of the migration tier.
//
// The tests kill the daemon at chosen instants inside an archive, a
// release, a restore or a lazy copy-up, remount, and check that no byte
// was lost and that fsck is clean. Timing a SIGKILL from outside cannot
// hit "after the catalog commit, before the punch" reliably; the process
// kills itself instead: with OVERTIER_CRASH_AT=NAME in its environment, it
// raises SIGKILL the first time it reaches CrashPoint("NAME").
//
// Without the variable a crash point costs one predictable branch.
#ifndef OVERTIER_MIGRATE_CRASH_POINT_H_
#define OVERTIER_MIGRATE_CRASH_POINT_H_

namespace overtier {

// The points, in the order a file meets them (docs/SEMANTICS.md, "Crash
// safety"):
//   archive-written     content in containers, not yet flushed or committed
//   archive-committed   the archive's catalog batch committed
//   release-committed   the released record committed, nothing punched yet
//   release-punched     punched, not yet fsynced, user times not yet back
//   restore-written     a piece written into the upper file, not synced
//   restore-committed   a restore's residency committed
//   adopt-committed     a lazy copy-up's record committed, the metacopy
//                       mark still on the upper file
// and, in `overtier gc`, gc-<point> for each point of store/gc.h
// (gc-job-started ... gc-orphans-removed).
void CrashPoint(const char* name);

}  // namespace overtier

#endif  // OVERTIER_MIGRATE_CRASH_POINT_H_
