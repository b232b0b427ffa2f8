#include "store/publication_format.h"

#include <xxhash.h>

#include <cstring>
#include <set>

namespace overtier {

namespace {

constexpr char kMagic[8] = {'O', 'V', 'T', 'I', 'M', 'P', 'U', 'B'};
// Generous bounds a manifest never reaches honestly; they keep a damaged
// count from asking for absurd allocations.
constexpr uint32_t kMaxLayers = 500;

Status Bad(const std::string& what) {
  return Status::Corruption("published image manifest: " + what);
}

void PutId(std::string* out, std::string_view bytes) { out->append(bytes); }

std::array<uint8_t, 16> BodyHash(std::string_view body) {
  XXH128_hash_t h = XXH3_128bits(body.data(), body.size());
  std::array<uint8_t, 16> out;
  EncodeFixed64(reinterpret_cast<char*>(out.data()), h.low64);
  EncodeFixed64(reinterpret_cast<char*>(out.data()) + 8, h.high64);
  return out;
}

std::string EncodeBody(const Publication& p) {
  std::string b;
  PutId(&b, p.owner.view());
  PutLengthPrefixed(&b, p.origin_set);
  PutFixed64(&b, static_cast<uint64_t>(p.published_ns));
  PutVarint32(&b, static_cast<uint32_t>(p.layers.size()));
  for (const PublishedLayer& l : p.layers) {
    PutLengthPrefixed(&b, l.name);
    PutLengthPrefixed(&b, EncodeRecord(l.image));
    PutVarint64(&b, l.nodes.size());
    for (const auto& [ino, n] : l.nodes) {
      PutFixed64(&b, ino);
      PutLengthPrefixed(&b, EncodeRecord(n));
    }
    PutVarint64(&b, l.dirents.size());
    for (const PublishedDirent& d : l.dirents) {
      PutFixed64(&b, d.parent);
      PutLengthPrefixed(&b, d.name);
      PutLengthPrefixed(&b, EncodeRecord(d.record));
    }
  }
  PutVarint64(&b, p.files.size());
  for (const auto& [bfid, f] : p.files) {
    PutId(&b, bfid.view());
    PutLengthPrefixed(&b, EncodeRecord(f));
  }
  PutVarint64(&b, p.volumes.size());
  for (const auto& [vv, size] : p.volumes) {
    PutFixed64(&b, vv);
    PutFixed64(&b, size);
  }
  return b;
}

// A record stored length-prefixed, decoded and checked as the catalog
// would.
template <typename R>
Status GetRecord(Decoder* d, const std::string& what, R* out) {
  std::string_view v;
  if (!d->GetLengthPrefixed(&v)) return Bad("truncated in " + what);
  Status s = DecodeRecord(v, out);
  if (!s.ok()) return Bad(what + ": " + s.message());
  return Status::OK();
}

Status DecodeBody(std::string_view body, Publication* p) {
  Decoder d(body);
  std::string_view v;
  uint64_t u = 0;
  uint32_t layers = 0;
  if (!d.GetBytes(16, &v) || !StoreId::FromBytes(v, &p->owner) || !d.GetLengthPrefixed(&v))
    return Bad("truncated in the owner");
  p->origin_set.assign(v);
  if (!d.GetFixed64(&u) || !d.GetVarint32(&layers)) return Bad("truncated in the owner");
  p->published_ns = static_cast<int64_t>(u);
  if (p->owner.IsZero()) return Bad("the owner store id is zero");
  if (layers == 0 || layers > kMaxLayers)
    return Bad(std::to_string(layers) + " layers (1 to " + std::to_string(kMaxLayers) + ")");
  p->layers.resize(layers);
  for (uint32_t i = 0; i < layers; i++) {
    PublishedLayer& l = p->layers[i];
    const std::string what = "layer " + std::to_string(i + 1);
    if (!d.GetLengthPrefixed(&v)) return Bad("truncated in " + what);
    l.name.assign(v);
    Status s = CheckImageName(l.name);
    if (!s.ok()) return Bad(what + ": " + s.message());
    OVT_RETURN_IF_ERROR(GetRecord(&d, what + " '" + l.name + "' image row", &l.image));
    uint64_t count = 0;
    if (!d.GetVarint64(&count) || count > d.remaining()) return Bad("truncated in " + what);
    l.nodes.resize(count);
    for (auto& [ino, n] : l.nodes) {
      if (!d.GetFixed64(&ino) || ino == 0) return Bad(what + ": a bad inode number");
      OVT_RETURN_IF_ERROR(GetRecord(&d, what + " inode " + std::to_string(ino), &n));
    }
    if (!d.GetVarint64(&count) || count > d.remaining()) return Bad("truncated in " + what);
    l.dirents.resize(count);
    for (PublishedDirent& e : l.dirents) {
      if (!d.GetFixed64(&e.parent) || e.parent == 0 || !d.GetLengthPrefixed(&v))
        return Bad("truncated in " + what + " entries");
      e.name.assign(v);
      s = CheckDirentName(e.name);
      if (!s.ok()) return Bad(what + ": entry name: " + s.message());
      OVT_RETURN_IF_ERROR(GetRecord(&d, what + " entry '" + e.name + "'", &e.record));
    }
  }
  uint64_t count = 0;
  if (!d.GetVarint64(&count) || count > d.remaining()) return Bad("truncated in the files");
  for (uint64_t i = 0; i < count; i++) {
    Bfid bfid;
    FileRecord f;
    if (!d.GetBytes(16, &v) || !Bfid::FromBytes(v, &bfid) || bfid.IsZero())
      return Bad("a bad file id");
    OVT_RETURN_IF_ERROR(GetRecord(&d, "file " + bfid.ToHex(), &f));
    if (!p->files.emplace(bfid, std::move(f)).second)
      return Bad("file " + bfid.ToHex() + " listed twice");
  }
  if (!d.GetVarint64(&count) || count > d.remaining()) return Bad("truncated in the volumes");
  for (uint64_t i = 0; i < count; i++) {
    uint64_t vv = 0, size = 0;
    if (!d.GetFixed64(&vv) || !d.GetFixed64(&size) || vv == 0) return Bad("a bad volume");
    if (!p->volumes.emplace(vv, size).second)
      return Bad("vv " + std::to_string(vv) + " listed twice");
  }
  if (!d.done()) return Bad(std::to_string(d.remaining()) + " bytes after the last row");
  return Status::OK();
}

// The rows hang together: what a mount of the pulled image will follow
// exists in the manifest.
Status CheckConsistent(const Publication& p) {
  for (size_t i = 0; i < p.layers.size(); i++) {
    const PublishedLayer& l = p.layers[i];
    const std::string what = "layer '" + l.name + "'";
    const uint64_t below = i + 1 < p.layers.size() ? p.layers[i + 1].image.image_id : 0;
    if (l.image.parent_image_id != below)
      return Bad(what + " stacks on image id " + std::to_string(l.image.parent_image_id) +
                 ", not on the next layer's (" + std::to_string(below) + ")");
    std::set<uint64_t> inodes;
    for (const auto& [ino, n] : l.nodes) {
      if (!inodes.insert(ino).second)
        return Bad(what + ": inode " + std::to_string(ino) + " listed twice");
      if (n.has_content && !p.files.count(n.content))
        return Bad(what + ": inode " + std::to_string(ino) + " has content " + n.content.ToHex() +
                   ", which is not among the files");
    }
    if (!inodes.count(l.image.root_inode))
      return Bad(what + ": its root inode " + std::to_string(l.image.root_inode) + " is missing");
    for (const PublishedDirent& e : l.dirents) {
      if (!inodes.count(e.parent) || !inodes.count(e.record.child_inode))
        return Bad(what + ": entry '" + e.name + "' links inodes that are not in the layer");
    }
  }
  for (const auto& [bfid, f] : p.files) {
    if (f.copies.size() != 1)
      return Bad("file " + bfid.ToHex() + " has " + std::to_string(f.copies.size()) +
                 " copies, not the one in the published set");
    for (const Extent& e : f.copies[0].extents) {
      auto it = p.volumes.find(e.vv_id);
      if (it == p.volumes.end())
        return Bad("file " + bfid.ToHex() + " points into vv " + std::to_string(e.vv_id) +
                   ", which is not among the volumes");
      if (e.vv_offset + e.length > it->second)
        return Bad("file " + bfid.ToHex() + " points past the end of vv " +
                   std::to_string(e.vv_id));
    }
  }
  return Status::OK();
}

}  // namespace

Status EncodePublication(const Publication& p, size_t piece_size,
                         std::vector<std::string>* pieces) {
  if (piece_size <= kPublicationHeaderSize)
    return Status::InvalidArgument("publication piece size " + std::to_string(piece_size) +
                                   " is too small");
  OVT_RETURN_IF_ERROR(CheckConsistent(p));
  const std::string body = EncodeBody(p);
  const size_t first = piece_size - kPublicationHeaderSize;
  const size_t more = body.size() > first ? (body.size() - first + piece_size - 1) / piece_size : 0;
  std::string header;
  header.append(kMagic, sizeof kMagic);
  PutFixed32(&header, kPublicationVersion);
  PutFixed32(&header, static_cast<uint32_t>(1 + more));
  PutFixed64(&header, body.size());
  const std::array<uint8_t, 16> h = BodyHash(body);
  header.append(reinterpret_cast<const char*>(h.data()), h.size());
  PutFixed64(&header, XXH3_64bits(header.data(), header.size()));
  pieces->clear();
  pieces->push_back(header + body.substr(0, first));
  for (size_t off = first; off < body.size(); off += piece_size)
    pieces->push_back(body.substr(off, piece_size));
  return Status::OK();
}

Status PublicationPieceCount(std::string_view piece0, uint32_t* count) {
  if (piece0.size() < kPublicationHeaderSize) return Bad("shorter than its header");
  if (std::memcmp(piece0.data(), kMagic, sizeof kMagic) != 0)
    return Bad("no OVTIMPUB magic (not a published image)");
  Decoder d(piece0.substr(8));
  uint32_t version = 0;
  d.GetFixed32(&version);
  if (version != kPublicationVersion) {
    if (version > kPublicationVersion)
      return Status::Errno(ENOTSUP, "published image manifest: version " + std::to_string(version) +
                                        " is newer than this overtier (" +
                                        std::to_string(kPublicationVersion) + ")");
    return Bad("version " + std::to_string(version));
  }
  uint64_t stored = 0;
  Decoder tail(piece0.substr(40));
  tail.GetFixed64(&stored);
  if (stored != XXH3_64bits(piece0.data(), 40)) return Bad("header checksum mismatch");
  d.GetFixed32(count);
  if (*count == 0) return Bad("zero pieces");
  return Status::OK();
}

Status DecodePublication(const std::vector<std::string>& pieces, Publication* out) {
  if (pieces.empty()) return Bad("no pieces");
  uint32_t count = 0;
  OVT_RETURN_IF_ERROR(PublicationPieceCount(pieces[0], &count));
  if (count != pieces.size())
    return Bad("the header says " + std::to_string(count) + " pieces, " +
               std::to_string(pieces.size()) + " were read");
  Decoder d(std::string_view(pieces[0]).substr(16));
  uint64_t length = 0;
  std::string_view hash;
  d.GetFixed64(&length);
  d.GetBytes(16, &hash);
  std::string body = pieces[0].substr(kPublicationHeaderSize);
  for (size_t i = 1; i < pieces.size(); i++) body += pieces[i];
  if (body.size() != length)
    return Bad("the body is " + std::to_string(body.size()) + " bytes, the header says " +
               std::to_string(length) + " (a piece missing or replaced while read?)");
  const std::array<uint8_t, 16> h = BodyHash(body);
  if (std::memcmp(h.data(), hash.data(), 16) != 0)
    return Bad("body checksum mismatch (damaged, or replaced by a new push while read)");
  Publication p;
  OVT_RETURN_IF_ERROR(DecodeBody(body, &p));
  OVT_RETURN_IF_ERROR(CheckConsistent(p));
  *out = std::move(p);
  return Status::OK();
}

std::string PublicationObjectName(std::string_view image_name, uint32_t n) {
  XXH128_hash_t h = XXH3_128bits(image_name.data(), image_name.size());
  char buf[64];
  snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
           static_cast<unsigned long long>(h.low64));
  std::string name = std::string(kPublicationObjectPrefix) + buf;
  if (n > 0) name += "." + std::to_string(n);
  return name;
}

}  // namespace overtier
