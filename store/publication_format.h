// The manifest of a published image: everything another store needs to
// mount the image and read its content where it is, without copying it
// (`overtier image push` / `pull`, store/publication.h).
//
// A manifest holds the catalog rows of the image and of every layer it
// stacks on (images, nodes, dirents, in the catalog's own value encodings,
// catalog_records.h), the files rows of their content reduced to the one
// copy in the published volume set, and the size of each container those
// point into. The layout (docs/FORMAT.md, "Published images"):
//
//   header (48 bytes)   magic "OVTIMPUB", u32 version 1, u32 piece count,
//                       u64 body length, 16-byte XXH3-128 of the body,
//                       u64 XXH3-64 of the 40 bytes before it
//   body                the rows below, split over the pieces
//
// Everything is checked when decoded: both checksums, the version, every
// record as the catalog checks it, and that the rows hang together (a
// node's content is among the files, an extent's container among the
// volumes, each layer's parent the next layer). A manifest that fails is
// refused whole, naming what is wrong.
#ifndef OVERTIER_STORE_PUBLICATION_FORMAT_H_
#define OVERTIER_STORE_PUBLICATION_FORMAT_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "overtier/status.h"
#include "store/catalog_records.h"
#include "store/coding.h"

namespace overtier {

inline constexpr uint32_t kPublicationVersion = 1;
inline constexpr size_t kPublicationHeaderSize = 48;

struct PublishedDirent {
  uint64_t parent = 0;
  std::string name;
  DirentRecord record;
  bool operator==(const PublishedDirent&) const = default;
};

// One layer: an image of the publishing store.
struct PublishedLayer {
  std::string name;  // its name in the publishing store
  // Its images row there: image id (the layer's identity, never reused by
  // that store), root inode, parent image id (the next layer's id, 0 for
  // the last), created.
  ImageRecord image;
  std::vector<std::pair<uint64_t, NodeRecord>> nodes;  // by inode
  std::vector<PublishedDirent> dirents;
  bool operator==(const PublishedLayer&) const = default;
};

struct Publication {
  StoreId owner;           // the publishing store
  std::string origin_set;  // its volume set holding the containers
  int64_t published_ns = 0;
  // The published image first, then the layers it stacks on, in order.
  std::vector<PublishedLayer> layers;
  // The content of every node with content: one copy each, all of its
  // extents in origin_set.
  std::map<Bfid, FileRecord> files;
  // Every container an extent points into: vv id -> its size when
  // published (the container may grow later if it was still open).
  std::map<uint64_t, uint64_t> volumes;
  bool operator==(const Publication&) const = default;
};

// The manifest as the objects to write: piece 0 (header and the start of
// the body), then the rest of the body in pieces of at most `piece_size`
// bytes (piece 0 included).
Status EncodePublication(const Publication& p, size_t piece_size, std::vector<std::string>* pieces);

// Piece 0 alone: the header's piece count (>= 1), validating the header.
Status PublicationPieceCount(std::string_view piece0, uint32_t* count);

// Decodes and checks a manifest from all of its pieces, in order.
// Corruption naming what is wrong; ENOTSUP for a newer version.
Status DecodePublication(const std::vector<std::string>& pieces, Publication* out);

// The object name of piece n of the publication of image `name`:
// "img-<32 hex digits of XXH3-128(name)>" for piece 0, then ".<n>".
std::string PublicationObjectName(std::string_view image_name, uint32_t n = 0);
inline constexpr std::string_view kPublicationObjectPrefix = "img-";

}  // namespace overtier

#endif  // OVERTIER_STORE_PUBLICATION_FORMAT_H_
