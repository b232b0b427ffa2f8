// Image commit: an upper directory in the overlayfs format becomes a new
// image stacked on a parent image — the LiveCD "save my changes" and the
// container commit path.
//
// The upper is taken as it is: whiteouts (character devices 0/0) stay
// whiteouts, opaque directories keep trusted.overlay.opaque, renamed
// directories keep trusted.overlay.redirect, and every other xattr is kept
// except overtier's own trusted.overtier.* / user.overtier.* (the origin
// inode numbers and link counts of one mount, meaningless in an image).
// Sockets are skipped with a warning; nothing else is. Every file gets its
// whole data: a released file's missing bytes come from its archive
// (upper_content below).
//
// The upper should not change during a commit (unmount it, or freeze the
// container); a file replaced while it is read fails the commit.
#ifndef OVERTIER_IMAGE_COMMIT_H_
#define OVERTIER_IMAGE_COMMIT_H_

#include <string>
#include <string_view>

#include "image/import.h"
#include "overtier/status.h"
#include "store/store.h"

namespace overtier {

// options.parent: the image the new one stacks on ("" none);
// options.replace: replace an existing image of that name.
// upper_content: reads the files the migration tier released (the tools
// pass migrate/upper_content.h's WriteUpperContent); without it a file
// carrying an archive mark is refused. A metadata-only copy is always
// refused: its data is in a lower layer.
Status CommitUpper(Store* store, std::string_view name, const std::string& upper,
                   const ImportOptions& options, ImportResult* result,
                   const UpperContentFn& upper_content = {});

}  // namespace overtier

#endif  // OVERTIER_IMAGE_COMMIT_H_
