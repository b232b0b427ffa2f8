#include "store/repair.h"

#include <map>
#include <memory>
#include <set>
#include <utility>

#include "store/vv_format.h"
#include "store/vv_writer.h"

namespace overtier {

namespace {

struct Loc {
  uint64_t vv = 0, off = 0;
  auto operator<=>(const Loc&) const = default;
};

// The verified payload of extent e (its record read back and checked
// against e's digest), or why not.
Status ReadVerified(Store* store, const Extent& e, std::string* payload) {
  std::shared_ptr<const VvReader> r;
  OVT_RETURN_IF_ERROR(store->OpenContainer(e.vv_id, &r));
  RecordHeader h;
  OVT_RETURN_IF_ERROR(r->ReadRecord(RecordLocation{e.vv_id, e.vv_offset, e.length}, &h, payload));
  if (Hash128Key(h.payload_hash) != e.digest.bytes)
    return Status::Corruption(VvName(e.vv_id) + " offset " + std::to_string(e.vv_offset) +
                              ": the record's digest differs from the extent's");
  return Status::OK();
}

}  // namespace

Status RepairCopies(Store* store, const Bfid& bfid, const std::vector<Extent>& damaged,
                    std::string_view what, RepairReport* report) {
  *report = RepairReport{};
  if (damaged.empty()) return Status::OK();
  Catalog* cat = store->catalog();
  FileRecord file;
  OVT_RETURN_IF_ERROR(cat->GetFile(bfid, &file));
  const std::string name(what);

  // Each damaged location once, with the copy and extent that name it.
  struct Job {
    size_t copy, index;
    std::string set;
    std::string payload;  // from a verified copy
  };
  std::map<Loc, Job> jobs;
  for (const Extent& d : damaged) {
    const Loc at{d.vv_id, d.vv_offset};
    if (jobs.count(at)) continue;
    bool named = false;
    for (size_t c = 0; c < file.copies.size() && !named; c++) {
      const std::vector<Extent>& ex = file.copies[c].extents;
      for (size_t i = 0; i < ex.size(); i++) {
        if (ex[i] == d) {
          jobs.emplace(at, Job{c, i, "", ""});
          named = true;
          break;
        }
      }
    }
    // Not named any more: repaired already, or the file changed.
  }
  std::map<std::string, std::vector<Loc>> by_set;
  for (auto it = jobs.begin(); it != jobs.end();) {
    const Extent& d = file.copies[it->second.copy].extents[it->second.index];
    auto skip = [&](const std::string& why) {
      report->skipped.push_back(name + ": " + VvName(d.vv_id) + " offset " +
                                std::to_string(d.vv_offset) + ": " + why);
      it = jobs.erase(it);
    };
    std::string unused;
    if (ReadVerified(store, d, &unused).ok()) {
      it = jobs.erase(it);  // reads fine now: nothing to repair
      continue;
    }
    VolumeRecord v;
    Status s = cat->GetVolume(d.vv_id, &v);
    if (!s.ok()) {
      skip("no volumes row to tell its set (" + s.ToString() + ")");
      continue;
    }
    if (v.state == VolumeState::kRemote) {
      skip("another store's container (its owner repairs it)");
      continue;
    }
    if (store->volume_set(v.set) == nullptr) {
      skip("volume set '" + v.set + "' is not in store.conf");
      continue;
    }
    // The same bytes from another copy, verified.
    bool found = false;
    std::string last_error = "no other copy holds this range";
    for (size_t c = 0; c < file.copies.size() && !found; c++) {
      if (c == it->second.copy) continue;
      for (const Extent& o : file.copies[c].extents) {
        if (o.file_offset != d.file_offset || o.length != d.length || !(o.digest == d.digest))
          continue;
        s = ReadVerified(store, o, &it->second.payload);
        if (s.ok()) {
          found = true;
          break;
        }
        last_error = s.ToString();
      }
    }
    if (!found) {
      skip("no verified copy to rewrite it from (" + last_error + ")");
      continue;
    }
    it->second.set = v.set;
    by_set[v.set].push_back(it->first);
    ++it;
  }
  if (jobs.empty()) return Status::OK();

  // Write and seal (fsync) before any row names the new containers.
  std::map<Loc, ChunkLocation> moved;
  std::vector<std::pair<uint64_t, VolumeRecord>> created;
  for (auto& set_locs : by_set) {
    // Named, not bound: the lambdas below capture them (clang < 16 cannot
    // capture structured bindings).
    const std::string& set_name = set_locs.first;
    auto& locs = set_locs.second;
    VolumeSet* set = store->volume_set(set_name);
    std::unique_ptr<VvWriter> w;
    uint64_t live = 0;  // payload bytes in w
    auto seal = [&]() -> Status {
      if (w == nullptr) return Status::OK();
      OVT_RETURN_IF_ERROR(w->Seal());
      VolumeRecord v;
      v.set = set_name;
      v.state = VolumeState::kSealed;
      v.size = w->size();
      v.live_bytes = live;
      created.emplace_back(w->vv_id(), v);
      live = 0;
      w.reset();
      return Status::OK();
    };
    for (const Loc& at : locs) {
      const Job& j = jobs[at];
      const Extent& d = file.copies[j.copy].extents[j.index];
      if (w != nullptr && !w->Fits(j.payload.size())) OVT_RETURN_IF_ERROR(seal());
      if (w == nullptr) {
        uint64_t id = 0;
        OVT_RETURN_IF_ERROR(cat->AllocateIds(IdSpace::kVolume, 1, &id));
        VvWriterOptions wo;
        wo.seal_size = store->config().vv_size;
        OVT_RETURN_IF_ERROR(VvWriter::Create(set, store->config().id.bytes, id, wo, &w));
      }
      RecordLocation nl;
      OVT_RETURN_IF_ERROR(w->Append(RecordKind::kChunk, d.digest.bytes, 0, j.payload, &nl));
      moved[at] = ChunkLocation{nl.vv_id, nl.offset};
      live += j.payload.size();
    }
    OVT_RETURN_IF_ERROR(seal());
  }

  // One synced batch: the new containers, the file's extents, the chunks'
  // copies.
  Catalog::Batch b(cat);
  for (auto& [id, v] : created) b.PutVolume(id, v);
  std::set<Digest128> digests;
  for (auto& [at, to] : moved) {
    Extent& e = file.copies[jobs[at].copy].extents[jobs[at].index];
    digests.insert(e.digest);
    e.vv_id = to.vv_id;
    e.vv_offset = to.vv_offset;
  }
  b.PutFile(bfid, file);
  for (const Digest128& d : digests) {
    ChunkRecord c;
    Status s = cat->GetChunk(d, &c);
    if (s.err() == ENOENT) continue;  // not in the dedup index (gc dropped it)
    OVT_RETURN_IF_ERROR(s);
    bool changed = false;
    for (ChunkLocation& l : c.copies) {
      auto m = moved.find(Loc{l.vv_id, l.vv_offset});
      if (m == moved.end()) continue;
      l = m->second;
      changed = true;
    }
    if (changed) b.PutChunk(d, c);
  }
  OVT_RETURN_IF_ERROR(b.Commit());
  report->rewritten = moved.size();
  return Status::OK();
}

}  // namespace overtier
