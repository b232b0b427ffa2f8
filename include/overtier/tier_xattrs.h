// The names of the migration tier's xattrs on upper files, one definition
// for every layer that must recognize them without depending on the tier.
#ifndef OVERTIER_TIER_XATTRS_H_
#define OVERTIER_TIER_XATTRS_H_

namespace overtier {

// The archive mark, on an upper file some of whose bytes a mount released
// into its store's archive (migrate/archive_mark.h has the format and the
// rules). The union (a released file reused as a lower one) and image
// import/commit (an upper directory read without a mount) recognize it.
inline constexpr char kArchiveMarkXattr[] = "user.overtier.archive";

// The pin: a file carrying it (any value) is never released
// (docs/POLICY.md). Root sets it through the mount; union/xattrs.cc keeps
// every other user.overtier.* name from users.
inline constexpr char kNoReleaseXattr[] = "user.overtier.norelease";

}  // namespace overtier

#endif  // OVERTIER_TIER_XATTRS_H_
