#include "store/publication.h"

#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>
#include <set>
#include <utility>

#include "store/rados_volume.h"

namespace overtier {

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Quote(std::string_view name) { return "'" + std::string(name) + "'"; }

// The set a push or withdraw works on: the named one, or the only RADOS
// set (where sharing across machines happens).
Status ChooseSet(Store* store, const std::string& wanted, VolumeSet** out) {
  if (!wanted.empty()) {
    *out = store->volume_set(wanted);
    if (*out == nullptr)
      return Status::NotFound("store '" + store->path() + "' has no volume set " + Quote(wanted));
    return Status::OK();
  }
  std::vector<std::string> rados;
  for (const VolumeSetConfig& s : store->config().sets) {
    if (IsRadosVolumeSpec(s.path)) rados.push_back(s.name);
  }
  if (rados.size() != 1) {
    std::string names;
    for (const VolumeSetConfig& s : store->config().sets)
      names += (names.empty() ? "" : ", ") + s.name;
    return Status::InvalidArgument(
        "store '" + store->path() + "' has " + std::to_string(rados.size()) +
        " RADOS volume sets: name the set to publish in with --set (its sets: " + names + ")");
  }
  *out = store->volume_set(rados[0]);
  return Status::OK();
}

// The layer chain of image `name`, top first, as publication layers
// (rows only; files are gathered by the caller).
Status GatherLayers(Catalog* cat, std::string_view name, std::vector<PublishedLayer>* out) {
  ImageRecord rec;
  Status s = cat->GetImage(name, &rec);
  if (s.err() == ENOENT) return Status::NotFound("no image " + Quote(name));
  OVT_RETURN_IF_ERROR(s);
  std::string layer_name(name);
  std::set<uint64_t> seen;
  for (;;) {
    if (!seen.insert(rec.image_id).second || seen.size() > 500)
      return Status::Corruption("image " + Quote(name) + ": its layer chain loops or is too deep");
    PublishedLayer l;
    l.name = layer_name;
    l.image = rec;
    OVT_RETURN_IF_ERROR(cat->ScanNodes(rec.image_id, 0, [&](uint64_t ino, const NodeRecord& n) {
      l.nodes.emplace_back(ino, n);
      return true;
    }));
    // Every directory's entries: the directories are among the nodes.
    for (const auto& node : l.nodes) {
      const uint64_t ino = node.first;  // captured below: not a binding (clang < 16)
      if (!S_ISDIR(node.second.mode)) continue;
      OVT_RETURN_IF_ERROR(
          cat->ReadDir(rec.image_id, ino, "", [&](std::string_view e, const DirentRecord& d) {
            l.dirents.push_back(PublishedDirent{ino, std::string(e), d});
            return true;
          }));
    }
    const uint64_t parent = rec.parent_image_id;
    out->push_back(std::move(l));
    if (parent == 0) return Status::OK();
    s = cat->FindImageById(parent, &layer_name, &rec);
    if (s.err() == ENOENT)
      return Status::Corruption("image " + Quote(name) + ": layer image id " +
                                std::to_string(parent) + " has no images row");
    OVT_RETURN_IF_ERROR(s);
  }
}

// Reads every piece of the publication whose piece 0 is `head`.
Status ReadPieces(VolumeSet* set, const std::string& head, std::vector<std::string>* pieces) {
  pieces->assign(1, std::string());
  OVT_RETURN_IF_ERROR(set->GetObject(head, &(*pieces)[0]));
  uint32_t count = 0;
  OVT_RETURN_IF_ERROR(PublicationPieceCount((*pieces)[0], &count));
  for (uint32_t n = 1; n < count; n++) {
    pieces->emplace_back();
    Status s = set->GetObject(head + "." + std::to_string(n), &pieces->back());
    if (s.err() == ENOENT)
      return Status::Corruption("published image " + head + ": piece " + std::to_string(n) +
                                " of " + std::to_string(count) +
                                " is missing (being replaced by a push?)");
    OVT_RETURN_IF_ERROR(s);
  }
  return Status::OK();
}

// The name an image of the publication gets in the pulling store: the top
// layer the name asked for, the others an identity of their own.
std::string LayerLocalName(const Publication& p, size_t i, const std::string& top) {
  if (i == 0) return top;
  return p.layers[i].name + "@" + p.owner.ToHex().substr(0, 16) + "." +
         std::to_string(p.layers[i].image.image_id);
}

// Whether the existing image `id` is the layer (the same root and number
// of nodes: a cheap check of an identity the name already gives).
Status SameLayer(Catalog* cat, uint64_t id, const PublishedLayer& l, bool* same) {
  size_t nodes = 0;
  NodeRecord root;
  bool root_same = false;
  OVT_RETURN_IF_ERROR(cat->ScanNodes(id, 0, [&](uint64_t ino, const NodeRecord& n) {
    nodes++;
    if (ino == l.image.root_inode) root = n;
    return true;
  }));
  for (const auto& [ino, n] : l.nodes) {
    if (ino == l.image.root_inode) root_same = n == root;
  }
  *same = root_same && nodes == l.nodes.size();
  return Status::OK();
}

}  // namespace

Status PushImage(Store* store, std::string_view name, std::string set_name, PushReport* report) {
  *report = PushReport();
  const std::string where = "push of image " + Quote(name) + " from store '" + store->path() + "'";
  auto fail = [&](const Status& s) { return Status::Errno(s.err(), where + ": " + s.message()); };
  VolumeSet* set = nullptr;
  Status s = ChooseSet(store, set_name, &set);
  if (!s.ok()) return fail(s);
  Catalog* cat = store->catalog();

  Publication p;
  p.owner = store->config().id;
  p.origin_set = set->name();
  p.published_ns = NowNs();
  s = GatherLayers(cat, name, &p.layers);
  if (!s.ok()) return fail(s);

  // Each content's copy in the set, and the containers those point into.
  std::map<uint64_t, VolumeRecord> volumes;
  for (const PublishedLayer& l : p.layers) {
    for (const auto& [ino, n] : l.nodes) {
      if (!n.has_content || p.files.count(n.content)) continue;
      FileRecord f;
      s = cat->GetFile(n.content, &f);
      if (!s.ok()) return fail(s);
      const FileCopy* chosen = nullptr;
      for (const FileCopy& c : f.copies) {
        bool all_here = true;
        for (const Extent& e : c.extents) {
          auto it = volumes.find(e.vv_id);
          if (it == volumes.end()) {
            VolumeRecord v;
            s = cat->GetVolume(e.vv_id, &v);
            if (!s.ok()) return fail(s);
            it = volumes.emplace(e.vv_id, v).first;
          }
          all_here = all_here && it->second.set == set->name() &&
                     it->second.state != VolumeState::kLost &&
                     it->second.state != VolumeState::kRemote;
        }
        if (all_here) chosen = &c;
        if (chosen) break;
      }
      if (chosen == nullptr) {
        return Status::InvalidArgument(
            where + ": layer " + Quote(l.name) + " inode " + std::to_string(ino) + " (content " +
            n.content.ToHex() + ") has no readable copy in volume set " + Quote(set->name()) +
            " (stored before the set was added, or pulled from another store?)");
      }
      p.files[n.content] = FileRecord{f.size, {*chosen}};
      for (const Extent& e : chosen->extents) p.volumes[e.vv_id] = volumes[e.vv_id].size;
    }
  }

  std::vector<std::string> pieces;
  s = EncodePublication(p, kMaxVolumePiece, &pieces);
  if (!s.ok()) return fail(s);
  // Pieces after the first, then the first: a reader never finds a
  // header without its pieces (a replaced publication's old header may
  // meet new pieces for a moment; the body checksum catches that).
  const std::string head = PublicationObjectName(name);
  for (size_t n = 1; n < pieces.size(); n++) {
    s = set->PutObject(head + "." + std::to_string(n), pieces[n]);
    if (!s.ok()) return fail(s);
  }
  s = set->PutObject(head, pieces[0]);
  if (!s.ok()) return fail(s);
  // Pieces of an older, longer publication of the name.
  std::vector<std::string> names;
  s = set->ListObjects(head + ".", &names);
  if (!s.ok()) return fail(s);
  for (const std::string& n : names) {
    // "<head>.<n>" with n a piece number; any other name is not ours.
    uint64_t index = 0;
    const std::string_view suffix = std::string_view(n).substr(head.size() + 1);
    auto [end, ec] = std::from_chars(suffix.data(), suffix.data() + suffix.size(), index);
    if (suffix.empty() || ec != std::errc() || end != suffix.data() + suffix.size()) continue;
    if (index >= pieces.size()) {
      s = set->RemoveObject(n);
      if (!s.ok() && s.err() != ENOENT) return fail(s);
    }
  }

  report->set = set->name();
  report->object = head;
  report->layers = p.layers.size();
  report->files = p.files.size();
  report->volumes = p.volumes.size();
  report->pieces = pieces.size();
  for (const std::string& piece : pieces) report->manifest_bytes += piece.size();
  return Status::OK();
}

Status WithdrawImage(Store* store, std::string_view name, std::string set_name,
                     std::string* set_used) {
  const std::string where =
      "withdraw of image " + Quote(name) + " from store '" + store->path() + "'";
  VolumeSet* set = nullptr;
  Status s = ChooseSet(store, set_name, &set);
  if (!s.ok()) return Status::Errno(s.err(), where + ": " + s.message());
  *set_used = set->name();
  const std::string head = PublicationObjectName(name);
  // The header first: without it nothing reads the pieces, and gc stops
  // keeping the containers for it.
  s = set->RemoveObject(head);
  if (s.err() == ENOENT)
    return Status::NotFound(where + ": it is not published in volume set " + Quote(set->name()));
  if (!s.ok()) return Status::Errno(s.err(), where + ": " + s.message());
  std::vector<std::string> names;
  s = set->ListObjects(head + ".", &names);
  for (size_t i = 0; s.ok() && i < names.size(); i++) {
    s = set->RemoveObject(names[i]);
    if (s.err() == ENOENT) s = Status::OK();
  }
  if (!s.ok()) return Status::Errno(s.err(), where + ": " + s.message());
  return Status::OK();
}

Status ReadPublication(VolumeSet* set, std::string_view image_name, Publication* out) {
  std::vector<std::string> pieces;
  const std::string head = PublicationObjectName(image_name);
  Status s = ReadPieces(set, head, &pieces);
  if (s.err() == ENOENT)
    return Status::NotFound("image " + Quote(image_name) + " is not published there (no " + head +
                            ")");
  OVT_RETURN_IF_ERROR(s);
  OVT_RETURN_IF_ERROR(DecodePublication(pieces, out));
  if (out->layers[0].name != image_name)
    return Status::Corruption(head + " publishes image " + Quote(out->layers[0].name) + ", not " +
                              Quote(image_name));
  return Status::OK();
}

Status ReadAllPublications(VolumeSet* set, std::vector<Publication>* out,
                           std::vector<std::string>* unreadable) {
  std::vector<std::string> names;
  OVT_RETURN_IF_ERROR(set->ListObjects(kPublicationObjectPrefix, &names));
  for (const std::string& n : names) {
    if (n.find('.') != std::string::npos) continue;  // a piece after the first
    std::vector<std::string> pieces;
    Publication p;
    Status s = ReadPieces(set, n, &pieces);
    if (s.err() == ENOENT) continue;  // withdrawn meanwhile
    if (s.ok()) s = DecodePublication(pieces, &p);
    if (!s.ok()) {
      unreadable->push_back(n + ": " + s.message());
      continue;
    }
    out->push_back(std::move(p));
  }
  return Status::OK();
}

Status PullImage(Store* store, std::string_view name, const std::string& from, std::string as,
                 PullReport* report) {
  *report = PullReport();
  if (as.empty()) as = std::string(name);
  const std::string where = "pull of image " + Quote(name) + " into store '" + store->path() + "'";
  auto fail = [&](const Status& s) { return Status::Errno(s.err(), where + ": " + s.message()); };
  Catalog* cat = store->catalog();
  Status s = CheckImageName(as);
  if (!s.ok()) return fail(s);
  ImageRecord existing;
  s = cat->GetImage(as, &existing);
  if (s.ok())
    return Status::Errno(EEXIST, where + ": the store has an image " + Quote(as) +
                                     " already (pull --as ANOTHER, or image rm it first)");
  if (s.err() != ENOENT) return fail(s);

  std::unique_ptr<VolumeSet> location;
  s = OpenVolumeLocation(from, "publisher", &location);
  Publication p;
  if (s.ok()) s = ReadPublication(location.get(), name, &p);
  if (!s.ok()) return fail(Status::Errno(s.err(), from + ": " + s.message()));
  if (p.owner == store->config().id)
    return Status::InvalidArgument(where + ": " + from +
                                   " is this store's own volume set; the image is here already");

  // Names of the layers below the top must be free or be the same layer.
  std::vector<uint64_t> local_ids(p.layers.size(), 0);
  std::vector<bool> reused(p.layers.size(), false);
  for (size_t i = 1; i < p.layers.size(); i++) {
    const std::string local = LayerLocalName(p, i, as);
    s = CheckImageName(local);
    if (!s.ok()) return fail(s);
    ImageRecord r;
    s = cat->GetImage(local, &r);
    if (s.err() == ENOENT) continue;
    if (!s.ok()) return fail(s);
    bool same = false;
    s = SameLayer(cat, r.image_id, p.layers[i], &same);
    if (!s.ok()) return fail(s);
    if (!same)
      return Status::Errno(EEXIST, where + ": the store has an image " + Quote(local) +
                                       " that is not that layer of the publication");
    local_ids[i] = r.image_id;
    reused[i] = true;
    // A reused layer brings the ones below it (they are its parents).
    for (size_t j = i + 1; j < p.layers.size(); j++) reused[j] = true;
    break;
  }

  std::string remote;
  s = store->AddRemoteSet(p.owner, p.origin_set, from, &remote);
  if (!s.ok()) return fail(s);

  // The publisher's containers as remote volumes of this store: the ones
  // an earlier pull recorded, and new rows for the others.
  std::map<uint64_t, uint64_t> local_vv;  // publisher's vv id -> ours
  std::map<uint64_t, VolumeRecord> known;
  s = cat->ScanVolumesInState(VolumeState::kRemote, [&](uint64_t id, const VolumeRecord& v) {
    if (v.set == remote) {
      local_vv[v.origin_vv_id] = id;
      known[id] = v;
    }
    return true;
  });
  if (!s.ok()) return fail(s);
  std::vector<uint64_t> fresh;
  for (const auto& [vv, size] : p.volumes) {
    if (!local_vv.count(vv)) fresh.push_back(vv);
  }
  Catalog::Batch b(cat);
  if (!fresh.empty()) {
    uint64_t first = 0;
    s = cat->AllocateIds(IdSpace::kVolume, fresh.size(), &first);
    if (!s.ok()) return fail(s);
    for (uint64_t vv : fresh) local_vv[vv] = first++;
  }
  for (const auto& [vv, size] : p.volumes) {
    VolumeRecord v{remote, VolumeState::kRemote, size, 0, vv};
    auto it = known.find(local_vv[vv]);
    if (it != known.end()) v.size = std::max(size, it->second.size);
    if (it == known.end() || !(it->second == v)) b.PutVolume(local_vv[vv], v);
  }
  report->volumes_added = fresh.size();

  // Content rows: the publisher's bfids are random 128-bit ids, so the same
  // bfid here is the same content (an earlier pull): kept as it is.
  for (const auto& [bfid, f] : p.files) {
    FileRecord have;
    s = cat->GetFile(bfid, &have);
    if (s.ok()) {
      if (have.size != f.size)
        return Status::Corruption(where + ": content " + bfid.ToHex() +
                                  " is in this store already, with another size");
      continue;
    }
    if (s.err() != ENOENT) return fail(s);
    FileRecord mine = f;
    for (Extent& e : mine.copies[0].extents) e.vv_id = local_vv[e.vv_id];
    b.PutFile(bfid, mine);
    report->files++;
  }

  // The layers, bottom up so each knows its parent's id here.
  size_t new_layers = 0;
  for (size_t i = 0; i < p.layers.size(); i++) {
    if (!reused[i]) new_layers++;
  }
  uint64_t next_id = 0;
  s = cat->AllocateIds(IdSpace::kImage, new_layers, &next_id);
  if (!s.ok()) return fail(s);
  for (size_t i = p.layers.size(); i-- > 0;) {
    if (reused[i]) {
      report->layers_reused++;
      continue;
    }
    const PublishedLayer& l = p.layers[i];
    const uint64_t id = next_id++;
    local_ids[i] = id;
    ImageRecord r = l.image;
    r.image_id = id;
    r.parent_image_id = i + 1 < p.layers.size() ? local_ids[i + 1] : 0;
    b.PutImage(LayerLocalName(p, i, as), r);
    for (const auto& [ino, n] : l.nodes) b.PutNode(id, ino, n);
    for (const PublishedDirent& d : l.dirents) b.PutDirent(id, d.parent, d.name, d.record);
    report->layers_added++;
  }
  s = b.Commit();
  if (!s.ok()) return fail(s);
  report->name = as;
  report->remote_set = remote;
  return Status::OK();
}

}  // namespace overtier
