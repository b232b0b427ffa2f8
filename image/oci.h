// OCI image layouts and `docker save` archives: the layers of an image, in
// order, each imported as one image (image/image_format.h, "Layer chains").
//
// Sources:
//  - an OCI image layout directory (`oci-layout`, `index.json`,
//    `blobs/<alg>/<hex>`): index.json -> (nested indexes ->) manifest ->
//    layers. Of several manifests, the one for this machine's platform
//    (linux/amd64, linux/arm64...) is taken, else the first;
//  - the same layout packed in a tar (`skopeo copy ... oci-archive:`);
//  - a `docker save` archive: manifest.json (one image) and its Layers.
//
// Layer blobs may be compressed (gzip, zstd...: libarchive detects it).
// Blob names come from the manifests, which are input like any other: a
// digest is accepted only as <alg>:<hex> of [A-Za-z0-9+._-], and a layer
// path only without '..' components, so nothing outside the layout is ever
// opened. Digests are not verified (no hash of the blob is computed).
#ifndef OVERTIER_IMAGE_OCI_H_
#define OVERTIER_IMAGE_OCI_H_

#include <string>
#include <string_view>
#include <vector>

#include "image/import.h"
#include "overtier/status.h"
#include "store/store.h"

namespace overtier {

// What kind of archive the file at `path` is: kTar (a plain filesystem
// tar), kDockerSave or kOciLayout (an OCI layout in a tar).
Status ProbeArchive(const std::string& path, SourceKind* kind);

// The layer blobs of the image at `source`, bottom first, as paths inside
// the layout or archive.
Status ReadOciLayers(const std::string& source, SourceKind kind, std::vector<std::string>* layers);

// Imports every layer: NAME@1 .. NAME@(N-1) and NAME (LayerImageName), each
// stacked on the one below, the bottom one on options.parent. All images
// rows are published in one batch at the end.
Status ImportOciImage(Store* store, std::string_view name, const std::string& source,
                      SourceKind kind, const ImportOptions& options, ImportResult* result);

}  // namespace overtier

#endif  // OVERTIER_IMAGE_OCI_H_
