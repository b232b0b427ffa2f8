// The name of the migration tier's archive mark, an xattr on an upper file
// some of whose bytes a mount released into its store's archive
// (migrate/archive_mark.h has the format and the rules). Here, not there,
// because the union (a released file reused as a lower one) and image
// import/commit (an upper directory read without a mount) must recognize
// the mark without depending on the migration tier.
#ifndef OVERTIER_ARCHIVE_MARK_NAME_H_
#define OVERTIER_ARCHIVE_MARK_NAME_H_

namespace overtier {

inline constexpr char kArchiveMarkXattr[] = "user.overtier.archive";

}  // namespace overtier

#endif  // OVERTIER_ARCHIVE_MARK_NAME_H_
