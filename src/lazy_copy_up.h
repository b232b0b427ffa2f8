// Lazy copy-up: the union's data copy-up of an image file, done by the
// migration tier without copying a byte.
//
// The union (union/copy_up.cc) asks its LazyCopyUpHook before copying the
// data of a file of a served (image) lower. The hook installed here finds
// the file's content in the store (ImageFs::ContentOf) and has the
// migration service adopt it as the archive of the new upper file
// (MigrationService::Adopt): the upper file is released, nothing resident,
// restored on demand only. A write then lands in the upper file and is
// recorded (the rest still comes from the image), a read restores only
// the chunks it reads, and a truncate that shrinks restores nothing.
// Appending one byte to a 1 GiB image file costs one catalog commit (and
// opening the store for writing if it was idle).
//
// Ordering: the upper file already exists with the metacopy mark (a
// metadata copy-up); the adoption is committed (synced) before the union
// removes the mark. A crash in between leaves a metacopy file whose data
// is still read from the image, and a record the next copy-up replaces.
#ifndef OVERTIER_SRC_LAZY_COPY_UP_H_
#define OVERTIER_SRC_LAZY_COPY_UP_H_

namespace overtier {

class ImageFs;
class MigrationService;
class UnionFs;

// All three must outlive the mount's serving.
void InstallLazyCopyUp(UnionFs* fs, const ImageFs* images, MigrationService* mig);

}  // namespace overtier

#endif  // OVERTIER_SRC_LAZY_COPY_UP_H_
