#include "store/gc.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "store/publication.h"
#include "store/vv_format.h"
#include "store/vv_reader.h"
#include "store/vv_recovery.h"
#include "store/vv_writer.h"

namespace overtier {

namespace {

// A payload in a container: what extents and chunks rows point at.
struct Loc {
  uint64_t vv = 0;
  uint64_t off = 0;
  auto operator<=>(const Loc&) const = default;
};

struct LiveLoc {
  uint64_t length = 0;
  Digest128 digest;
};

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A compaction target being filled.
struct NewContainer {
  std::string set;
  uint64_t size = 0;
  uint64_t live = 0;
};

class Gc {
 public:
  Gc(Store* store, const GcOptions& options, GcReport* report)
      : store_(store), cat_(store->catalog()), opt_(options), rep_(report) {}

  Status Run() {
    *rep_ = GcReport();
    if (!opt_.dry_run && store_->read_only())
      return Status::Errno(EROFS, "gc: store '" + store_->path() + "' is open read-only");
    if (opt_.threshold < 0 || opt_.threshold > 1)
      return Status::InvalidArgument("gc: threshold " + std::to_string(opt_.threshold) +
                                     " is not between 0 and 1");
    OVT_RETURN_IF_ERROR(StartJob());
    OVT_RETURN_IF_ERROR(SealOpenContainers());
    OVT_RETURN_IF_ERROR(Mark());
    OVT_RETURN_IF_ERROR(Sweep());
    OVT_RETURN_IF_ERROR(Compact());
    OVT_RETURN_IF_ERROR(RemoveRetired());
    OVT_RETURN_IF_ERROR(RemoveOrphans());
    return Finish();
  }

 private:
  Status Hook(std::string_view point) { return opt_.hook ? opt_.hook(point) : Status::OK(); }

  Status SetPhase(Catalog::Batch* b, std::string_view phase) {
    if (opt_.dry_run) return Status::OK();
    job_.params = "phase=" + std::string(phase);
    job_.updated_ns = NowNs();
    b->PutJob(job_id_, job_);
    return Status::OK();
  }

  // ---- 1. the jobs row

  Status StartJob() {
    std::vector<uint64_t> old;
    OVT_RETURN_IF_ERROR(cat_->ScanJobs(0, [&](uint64_t id, const JobRecord& j) {
      if (j.kind == JobKind::kGc) {
        old.push_back(id);
        rep_->resumed = true;
        rep_->resumed_phase =
            j.params.rfind("phase=", 0) == 0 ? j.params.substr(6) : std::string(j.params);
      }
      return true;
    }));
    if (opt_.dry_run) return Status::OK();
    OVT_RETURN_IF_ERROR(cat_->AllocateIds(IdSpace::kJob, 1, &job_id_));
    Catalog::Batch b(cat_);
    for (uint64_t id : old) b.DeleteJob(id);
    job_.kind = JobKind::kGc;
    job_.state = JobState::kRunning;
    job_.attempts = 1;
    job_.created_ns = NowNs();
    job_.target = "store";
    OVT_RETURN_IF_ERROR(SetPhase(&b, "seal"));
    OVT_RETURN_IF_ERROR(b.Commit());
    return Hook(kGcPointJobStarted);
  }

  // ---- 2. containers left unsealed by a killed writer

  Status LoadVolumes() {
    volumes_.clear();
    return cat_->ScanVolumes(0, [&](uint64_t id, const VolumeRecord& v) {
      volumes_[id] = v;
      return true;
    });
  }

  Status SealOpenContainers() {
    OVT_RETURN_IF_ERROR(LoadVolumes());
    Catalog::Batch b(cat_);
    for (auto& [id, v] : volumes_) {
      if (v.state != VolumeState::kOpen) continue;
      VolumeSet* set = store_->volume_set(v.set);
      if (set == nullptr) {
        rep_->warnings.push_back(VvName(id) + ": unknown volume set '" + v.set + "'");
        continue;
      }
      if (opt_.dry_run) {
        rep_->containers_sealed++;
        continue;
      }
      RecordList found;
      Status s = SealAfterCrash(set, store_->config().id.bytes, id, &found);
      if (!s.ok()) {
        rep_->warnings.push_back("cannot seal " + VvName(id) + ": " + s.ToString());
        continue;
      }
      std::unique_ptr<VolumeReader> r;
      s = set->Open(id, &r);
      if (!s.ok()) {
        rep_->warnings.push_back(s.ToString());
        continue;
      }
      v.state = VolumeState::kSealed;
      v.size = r->Size();
      b.PutVolume(id, v);
      rep_->containers_sealed++;
    }
    if (opt_.dry_run) return Status::OK();
    OVT_RETURN_IF_ERROR(SetPhase(&b, "mark"));
    OVT_RETURN_IF_ERROR(b.Commit());
    return Hook(kGcPointSealed);
  }

  // ---- 3. mark

  Status Mark() {
    // Live image ids: named ones, and the parents they stack on.
    std::map<uint64_t, ImageRecord> named;
    OVT_RETURN_IF_ERROR(cat_->ScanImages("", [&](std::string_view, const ImageRecord& r) {
      named[r.image_id] = r;
      return true;
    }));
    for (auto& [id, r] : named) {
      live_images_.insert(id);
      uint64_t p = r.parent_image_id;
      while (p != 0 && live_images_.insert(p).second) {
        auto it = named.find(p);
        p = it == named.end() ? 0 : it->second.parent_image_id;
      }
    }
    // Every id ever handed out: ids past the bound have no rows.
    const uint64_t bound = cat_->NextId(IdSpace::kImage);
    for (uint64_t id = 1; id < bound; id++) {
      if (live_images_.count(id)) continue;
      bool any = false;
      OVT_RETURN_IF_ERROR(cat_->ScanNodes(id, 0, [&](uint64_t, const NodeRecord&) {
        any = true;
        return false;
      }));
      if (!any) {
        Status s = cat_->ReadDir(id, 1, "", [&](std::string_view, const DirentRecord&) {
          any = true;
          return false;
        });
        OVT_RETURN_IF_ERROR(s);
      }
      if (any) dead_images_.push_back(id);
    }
    // Live content.
    std::set<Bfid> live_bfids;
    for (uint64_t id : live_images_) {
      OVT_RETURN_IF_ERROR(cat_->ScanNodes(id, 0, [&](uint64_t, const NodeRecord& n) {
        if (n.has_content) live_bfids.insert(n.content);
        return true;
      }));
    }
    OVT_RETURN_IF_ERROR(cat_->ScanMigration("", [&](std::string_view, const MigrationRecord& m) {
      if (!m.bfid.IsZero()) live_bfids.insert(m.bfid);
      return true;
    }));
    OVT_RETURN_IF_ERROR(cat_->ScanFiles(Bfid(), [&](const Bfid& bfid, const FileRecord& f) {
      if (!live_bfids.count(bfid)) {
        dead_files_.push_back(bfid);
        return true;
      }
      for (const FileCopy& c : f.copies) {
        for (const Extent& e : c.extents) {
          live_locs_[Loc{e.vv_id, e.vv_offset}] = LiveLoc{e.length, e.digest};
          bfids_by_vv_[e.vv_id].insert(bfid);
        }
      }
      return true;
    }));
    OVT_RETURN_IF_ERROR(
        cat_->ScanChunks(Digest128(), [&](const Digest128& d, const ChunkRecord& c) {
          ChunkRecord kept;
          kept.length = c.length;
          for (const ChunkLocation& l : c.copies) {
            if (live_locs_.count(Loc{l.vv_id, l.vv_offset})) {
              kept.copies.push_back(l);
              chunk_at_[Loc{l.vv_id, l.vv_offset}] = d;
            }
          }
          if (kept.copies.empty()) {
            dead_chunks_.push_back(d);
          } else if (kept.copies.size() != c.copies.size()) {
            trimmed_chunks_.emplace_back(d, kept);
          }
          return true;
        }));
    OVT_RETURN_IF_ERROR(PinPublished());
    for (auto& [loc, l] : live_locs_) live_by_vv_[loc.vv] += l.length;
    for (auto& [vv, live] : live_by_vv_) {
      if (!volumes_.count(vv))
        rep_->warnings.push_back("live extents point into " + VvName(vv) +
                                 ", which has no volumes row (run fsck)");
    }
    return Status::OK();
  }

  // Containers that publications (store/publication.h) point into: other
  // stores read them by the offsets in the manifest, so they are kept
  // whole, their bytes live, until the publication is withdrawn. A set
  // whose publications cannot all be read keeps every container.
  Status PinPublished() {
    for (VolumeSet* set : store_->volume_sets()) {
      std::vector<Publication> pubs;
      std::vector<std::string> unreadable;
      Status s = ReadAllPublications(set, &pubs, &unreadable);
      if (s.err() == ENOTSUP) continue;
      if (!s.ok())
        return Status::Errno(
            s.err(), "gc: publications in volume set '" + set->name() + "': " + s.message());
      for (const std::string& u : unreadable) {
        rep_->warnings.push_back("volume set '" + set->name() + "': unreadable publication " + u +
                                 ": every container of the set is kept");
      }
      for (auto& [id, v] : volumes_) {
        if (!unreadable.empty() && v.set == set->name()) pinned_.insert(id);
      }
      for (const Publication& p : pubs) {
        if (p.owner != store_->config().id) continue;  // not ours: nothing of it is here
        for (const auto& [bfid, f] : p.files) {
          for (const FileCopy& c : f.copies) {
            for (const Extent& e : c.extents) {
              live_locs_[Loc{e.vv_id, e.vv_offset}] = LiveLoc{e.length, e.digest};
              pinned_.insert(e.vv_id);
            }
          }
        }
      }
    }
    return Status::OK();
  }

  uint64_t LiveOf(uint64_t vv) const {
    auto it = live_by_vv_.find(vv);
    return it == live_by_vv_.end() ? 0 : it->second;
  }

  // ---- 4. sweep the rows

  Status Sweep() {
    rep_->image_trees_deleted = dead_images_.size();
    rep_->files_deleted = dead_files_.size();
    rep_->chunks_deleted = dead_chunks_.size() + trimmed_chunks_.size();
    Catalog::Batch b(cat_);
    for (uint64_t id : dead_images_) b.DeleteImageTree(id);
    for (const Bfid& f : dead_files_) b.DeleteFile(f);
    for (const Digest128& d : dead_chunks_) b.DeleteChunk(d);
    for (auto& [d, c] : trimmed_chunks_) b.PutChunk(d, c);
    std::vector<uint64_t> gone_remote;
    for (auto& [id, v] : volumes_) {
      const uint64_t live = LiveOf(id);
      if (v.state == VolumeState::kRemote) {
        // Another store's container: only our row of it goes.
        if (live == 0) {
          b.DeleteVolume(id);
          gone_remote.push_back(id);
          rep_->remote_volumes_forgotten++;
        } else if (live != v.live_bytes) {
          v.live_bytes = live;
          b.PutVolume(id, v);
        }
        continue;
      }
      if (live == 0 && v.state != VolumeState::kCompacting && !pinned_.count(id)) {
        // No live byte left: retire (removed below, or by a later gc).
        v.state = VolumeState::kCompacting;
        v.live_bytes = 0;
        b.PutVolume(id, v);
        rep_->containers_retired++;
      } else if (live != v.live_bytes) {
        v.live_bytes = live;
        b.PutVolume(id, v);
      }
    }
    if (opt_.dry_run) return Status::OK();
    OVT_RETURN_IF_ERROR(SetPhase(&b, "compact"));
    OVT_RETURN_IF_ERROR(b.Commit());
    for (uint64_t id : gone_remote) volumes_.erase(id);
    return Hook(kGcPointSwept);
  }

  // ---- 5. compaction

  // Payload bytes recorded in a container (what its live bytes are a
  // fraction of: payloads are 4096-aligned, so the container size would
  // make a container of small files look mostly dead forever).
  Status PayloadBytes(VvReader* r, uint64_t* total) {
    RecordList list;
    OVT_RETURN_IF_ERROR(r->ListRecords(&list));
    *total = 0;
    for (const RecordInfo& i : list.records) *total += i.location.length;
    return Status::OK();
  }

  Status NewTarget(VolumeSet* set, std::unique_ptr<VvWriter>* w) {
    uint64_t id = 0;
    OVT_RETURN_IF_ERROR(cat_->AllocateIds(IdSpace::kVolume, 1, &id));
    VvWriterOptions wo;
    wo.seal_size = store_->config().vv_size;
    OVT_RETURN_IF_ERROR(VvWriter::Create(set, store_->config().id.bytes, id, wo, w));
    created_[id] = NewContainer{set->name(), 0, 0};
    rep_->containers_created++;
    return Status::OK();
  }

  Status SealTarget(std::unique_ptr<VvWriter>* w) {
    if (*w == nullptr) return Status::OK();
    OVT_RETURN_IF_ERROR((*w)->Seal());
    created_[(*w)->vv_id()].size = (*w)->size();
    w->reset();
    return Status::OK();
  }

  // Copies the live records of `src` into *w (a new container of the same
  // set), filling moved_. False in *ok if a record could not be read: the
  // container is then left as it is (its copied records are dead bytes in
  // the new container, reclaimed by a later gc).
  Status CopyLive(VolumeSet* set, uint64_t src, const VvReader& r, std::unique_ptr<VvWriter>* w,
                  bool* ok) {
    *ok = true;
    std::map<Loc, Loc> moved;
    for (auto it = live_locs_.lower_bound(Loc{src, 0});
         it != live_locs_.end() && it->first.vv == src; ++it) {
      const RecordLocation rl{src, it->first.off, it->second.length};
      RecordHeader h;
      std::string payload;
      Status s = r.ReadRecord(rl, &h, &payload);
      if (s.ok() && Hash128Key(h.payload_hash) != it->second.digest.bytes)
        s = Status::Corruption(VvName(src) + " offset " + std::to_string(rl.offset) +
                               ": record digest differs from the catalog's");
      if (!s.ok()) {
        rep_->warnings.push_back("not compacting " + VvName(src) + ": " + s.ToString());
        *ok = false;
        return Status::OK();
      }
      if (*w != nullptr && !(*w)->Fits(payload.size())) OVT_RETURN_IF_ERROR(SealTarget(w));
      if (*w == nullptr) OVT_RETURN_IF_ERROR(NewTarget(set, w));
      RecordLocation nl;
      OVT_RETURN_IF_ERROR((*w)->Append(h.kind, h.key, h.logical_offset, payload, &nl));
      created_[nl.vv_id].live += payload.size();
      rep_->bytes_copied += payload.size();
      moved[it->first] = Loc{nl.vv_id, nl.offset};
    }
    moved_.insert(moved.begin(), moved.end());
    return Status::OK();
  }

  Status Compact() {
    // Candidates, by volume set.
    std::map<std::string, std::vector<uint64_t>> by_set;
    std::map<uint64_t, std::unique_ptr<VvReader>> readers;
    for (auto& [id, v] : volumes_) {
      const uint64_t live = LiveOf(id);
      if (live == 0) continue;
      if (pinned_.count(id)) continue;                         // read by other stores where it is
      const bool stray = v.state == VolumeState::kCompacting;  // live bytes in a retired one
      if (!stray && (v.state != VolumeState::kSealed || opt_.threshold <= 0)) continue;
      VolumeSet* set = store_->volume_set(v.set);
      if (set == nullptr) continue;
      std::unique_ptr<VvReader> r;
      Status s = VvReader::Open(set, store_->config().id.bytes, id, &r);
      uint64_t total = 0;
      if (s.ok()) s = PayloadBytes(r.get(), &total);
      if (!s.ok()) {
        rep_->warnings.push_back("cannot read " + VvName(id) + " to weigh it: " + s.ToString());
        continue;
      }
      if (!stray && (total == 0 || static_cast<double>(live) / total >= opt_.threshold)) continue;
      if (!stray && live == total) continue;  // nothing to gain
      by_set[v.set].push_back(id);
      readers[id] = std::move(r);
    }
    if (by_set.empty()) return Status::OK();
    if (opt_.dry_run) {
      for (auto& [set, ids] : by_set) {
        for (uint64_t id : ids) {
          rep_->containers_compacted++;
          rep_->bytes_copied += LiveOf(id);
        }
      }
      return Status::OK();
    }
    std::vector<uint64_t> done;
    for (auto& [set_name, ids] : by_set) {
      VolumeSet* set = store_->volume_set(set_name);
      std::unique_ptr<VvWriter> w;
      for (uint64_t id : ids) {
        bool ok = false;
        OVT_RETURN_IF_ERROR(CopyLive(set, id, *readers[id], &w, &ok));
        if (ok) done.push_back(id);
      }
      OVT_RETURN_IF_ERROR(SealTarget(&w));  // fsynced before any row names it
    }
    OVT_RETURN_IF_ERROR(Hook(kGcPointCompactWritten));

    // One batch repoints everything.
    Catalog::Batch b(cat_);
    for (auto& [id, c] : created_) {
      VolumeRecord v;
      v.set = c.set;
      v.state = VolumeState::kSealed;
      v.size = c.size;
      v.live_bytes = c.live;
      b.PutVolume(id, v);
    }
    std::set<Bfid> affected;
    for (uint64_t id : done) {
      VolumeRecord v = volumes_[id];
      v.state = VolumeState::kCompacting;
      v.live_bytes = 0;
      b.PutVolume(id, v);
      volumes_[id] = v;
      live_by_vv_[id] = 0;
      auto it = bfids_by_vv_.find(id);
      if (it != bfids_by_vv_.end()) affected.insert(it->second.begin(), it->second.end());
    }
    for (const Bfid& bfid : affected) {
      FileRecord f;
      OVT_RETURN_IF_ERROR(cat_->GetFile(bfid, &f));
      for (FileCopy& c : f.copies) {
        for (Extent& e : c.extents) {
          auto m = moved_.find(Loc{e.vv_id, e.vv_offset});
          if (m == moved_.end()) continue;
          e.vv_id = m->second.vv;
          e.vv_offset = m->second.off;
        }
      }
      b.PutFile(bfid, f);
    }
    std::set<Digest128> chunks;
    for (auto& [from, to] : moved_) {
      auto c = chunk_at_.find(from);
      if (c != chunk_at_.end()) chunks.insert(c->second);
    }
    for (const Digest128& d : chunks) {
      ChunkRecord c;
      OVT_RETURN_IF_ERROR(cat_->GetChunk(d, &c));
      for (ChunkLocation& l : c.copies) {
        auto m = moved_.find(Loc{l.vv_id, l.vv_offset});
        if (m == moved_.end()) continue;
        l.vv_id = m->second.vv;
        l.vv_offset = m->second.off;
      }
      b.PutChunk(d, c);
    }
    OVT_RETURN_IF_ERROR(SetPhase(&b, "retire"));
    OVT_RETURN_IF_ERROR(b.Commit());
    for (auto& [id, c] : created_) {
      volumes_[id] = VolumeRecord{c.set, VolumeState::kSealed, c.size, c.live};
      live_by_vv_[id] = c.live;
    }
    rep_->containers_compacted = done.size();
    return Hook(kGcPointCompactCommitted);
  }

  // ---- 6. retired containers

  Status RemoveRetired() {
    std::vector<uint64_t> retired;
    for (auto& [id, v] : volumes_) {
      if (v.state != VolumeState::kCompacting) continue;
      if (LiveOf(id) != 0) {
        rep_->warnings.push_back(VvName(id) +
                                 " is being compacted but still holds live bytes: kept");
        continue;
      }
      retired.push_back(id);
    }
    if (retired.empty()) return Status::OK();
    if (opt_.dry_run) {
      for (uint64_t id : retired) {
        rep_->containers_removed++;
        rep_->bytes_reclaimed += volumes_[id].size;
      }
      return Status::OK();
    }
    if (!store_->TryExclusiveOfMounts()) {
      // A mount may still read these through its catalog snapshot.
      for (uint64_t id : retired) {
        rep_->containers_deferred++;
        rep_->bytes_deferred += volumes_[id].size;
      }
      return Status::OK();
    }
    Catalog::Batch b(cat_);
    for (uint64_t id : retired) {
      const VolumeRecord& v = volumes_[id];
      VolumeSet* set = store_->volume_set(v.set);
      if (set != nullptr) {
        Status s = set->Remove(id);
        if (!s.ok() && s.err() != ENOENT) return s;
        if (s.ok()) rep_->bytes_reclaimed += v.size;
        OVT_RETURN_IF_ERROR(Hook(kGcPointFileRemoved));
      }
      b.DeleteVolume(id);
      rep_->containers_removed++;
    }
    OVT_RETURN_IF_ERROR(SetPhase(&b, "orphans"));
    OVT_RETURN_IF_ERROR(b.Commit());
    for (uint64_t id : retired) volumes_.erase(id);
    return Hook(kGcPointRetired);
  }

  // ---- 7. containers no row names

  Status RemoveOrphans() {
    for (VolumeSet* set : store_->volume_sets()) {
      std::vector<uint64_t> ids;
      OVT_RETURN_IF_ERROR(set->List(&ids));
      for (uint64_t id : ids) {
        if (volumes_.count(id)) continue;
        uint64_t size = 0;
        std::unique_ptr<VolumeReader> r;
        if (set->Open(id, &r).ok()) size = r->Size();
        r.reset();
        rep_->orphan_containers_removed++;
        rep_->bytes_reclaimed += size;
        if (opt_.dry_run) continue;
        Status s = set->Remove(id);
        if (!s.ok() && s.err() != ENOENT) return s;
      }
    }
    if (opt_.dry_run) return Status::OK();
    return Hook(kGcPointOrphansRemoved);
  }

  Status Finish() {
    for (auto& [id, v] : volumes_) {
      if (v.state == VolumeState::kRemote) continue;  // not our space
      rep_->stored_bytes += v.size;
      rep_->live_bytes += LiveOf(id);
    }
    if (opt_.dry_run) return Status::OK();
    Catalog::Batch b(cat_);
    b.DeleteJob(job_id_);
    return b.Commit();
  }

  Store* store_;
  Catalog* cat_;
  const GcOptions& opt_;
  GcReport* rep_;
  uint64_t job_id_ = 0;
  JobRecord job_;

  std::map<uint64_t, VolumeRecord> volumes_;
  std::set<uint64_t> live_images_;
  std::vector<uint64_t> dead_images_;
  std::vector<Bfid> dead_files_;
  std::vector<Digest128> dead_chunks_;
  std::vector<std::pair<Digest128, ChunkRecord>> trimmed_chunks_;
  std::map<Loc, LiveLoc> live_locs_;
  std::map<uint64_t, std::set<Bfid>> bfids_by_vv_;
  std::map<Loc, Digest128> chunk_at_;
  std::map<uint64_t, uint64_t> live_by_vv_;
  std::set<uint64_t> pinned_;  // kept whole for publications
  std::map<uint64_t, NewContainer> created_;
  std::map<Loc, Loc> moved_;
};

}  // namespace

Status RunGc(Store* store, const GcOptions& options, GcReport* report) {
  Gc gc(store, options, report);
  Status s = gc.Run();
  if (!s.ok() && s.message().rfind("gc", 0) != 0)
    return Status::Errno(s.err(), "gc of store '" + store->path() + "': " + s.message());
  return s;
}

}  // namespace overtier
