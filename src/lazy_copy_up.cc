#include "src/lazy_copy_up.h"

#include "src/image_fuse.h"
#include "src/migration.h"
#include "union/union_fs.h"

namespace overtier {

void InstallLazyCopyUp(UnionFs* fs, const ImageFs* images, MigrationService* mig) {
  fs->SetLazyCopyUpHook(
      [images, mig](int upper_fd, int lower_fd, const std::string& what, bool* adopted) {
        *adopted = false;
        Bfid bfid;
        bool found = false;
        OVT_RETURN_IF_ERROR(images->ContentOf(lower_fd, &bfid, &found));
        if (!found) return Status::OK();  // not image content: copied as usual
        OVT_RETURN_IF_ERROR(mig->Adopt(upper_fd, bfid, what));
        *adopted = true;
        return Status::OK();
      },
      [mig] { mig->OpenAhead(); }, [mig](int upper_fd) { mig->MarkAdopted(upper_fd); });
}

}  // namespace overtier
