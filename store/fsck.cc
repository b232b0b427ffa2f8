#include "store/fsck.h"

#include <sys/stat.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "image/image_format.h"
#include "store/content_reader.h"
#include "store/vv_format.h"
#include "store/vv_reader.h"

namespace overtier {

size_t FsckReport::errors() const {
  return std::count_if(issues.begin(), issues.end(),
                       [](const FsckIssue& i) { return i.severity == FsckSeverity::kError; });
}

size_t FsckReport::notices() const { return issues.size() - errors(); }

std::vector<std::string> FsckReport::damaged_files() const {
  std::set<std::string> all;
  for (const FsckIssue& i : issues) {
    if (i.severity == FsckSeverity::kError) all.insert(i.files.begin(), i.files.end());
  }
  return std::vector<std::string>(all.begin(), all.end());
}

namespace {

struct Loc {
  uint64_t vv = 0;
  uint64_t off = 0;
  auto operator<=>(const Loc&) const = default;
};

// What fsck learnt about one container.
struct Container {
  bool has_row = false;
  VolumeRecord row;
  bool present = false;   // its set holds it
  bool readable = false;  // header read; records listed
  std::string problem;    // why extents in it cannot be trusted (empty: none)
  uint64_t size = 0;
  std::map<uint64_t, uint64_t> records;  // payload offset -> length
};

// Verified extents per ContentReader::VerifyAll call.
constexpr size_t kVerifyGroup = 16;

class Fsck {
 public:
  Fsck(Store* store, const FsckOptions& options, FsckReport* report)
      : store_(store), cat_(store->catalog()), opt_(options), rep_(report) {}

  Status Run() {
    *rep_ = FsckReport();
    Step(CheckImages());
    Step(CheckContainers());
    Step(CheckFiles());
    if (!opt_.quick) Step(VerifyContent());
    for (uint64_t id : live_images_) Step(WalkImage(id));
    Step(CheckChunks());
    Step(CheckJobs());
    ReportContent();
    return Status::OK();
  }

 private:
  void Error(std::string kind, std::string message, std::vector<std::string> files = {}) {
    rep_->issues.push_back(
        FsckIssue{FsckSeverity::kError, std::move(kind), std::move(message), std::move(files)});
  }
  void Notice(std::string kind, std::string message) {
    rep_->issues.push_back(
        FsckIssue{FsckSeverity::kNotice, std::move(kind), std::move(message), {}});
  }
  // A step that could not finish (a scan met a record it cannot decode) is
  // itself damage; the other steps still run.
  void Step(const Status& s) {
    if (!s.ok()) Error("catalog", s.ToString());
  }

  std::string Label(uint64_t image_id) const {
    auto it = names_.find(image_id);
    return it != names_.end() ? it->second : "#" + std::to_string(image_id);
  }

  // ---- images and their chains

  Status CheckImages() {
    std::map<uint64_t, ImageRecord> by_id;
    OVT_RETURN_IF_ERROR(cat_->ScanImages("", [&](std::string_view name, const ImageRecord& r) {
      names_[r.image_id] = std::string(name);
      by_id[r.image_id] = r;
      roots_[r.image_id] = r.root_inode;
      return true;
    }));
    for (auto& [id, r] : by_id) {
      live_images_.insert(id);
      std::set<uint64_t> seen{id};
      uint64_t p = r.parent_image_id;
      while (p != 0) {
        if (!seen.insert(p).second) {
          Error("image", "image '" + names_[id] + "': its parent chain loops back to image #" +
                             std::to_string(p));
          break;
        }
        live_images_.insert(p);
        auto it = by_id.find(p);
        if (it != by_id.end()) {
          p = it->second.parent_image_id;
          continue;
        }
        // A parent without an images row (replaced, kept as a parent): its
        // root must still be there.
        if (!roots_.count(p)) roots_[p] = kImageRootInode;
        break;
      }
    }
    for (uint64_t id : live_images_) {
      NodeRecord root;
      Status s = cat_->GetNode(id, roots_[id], &root);
      std::string who = names_.count(id) ? "image '" + names_[id] + "'"
                                         : "image #" + std::to_string(id) + " (a parent)";
      if (s.err() == ENOENT) {
        Error("image", who + ": root node " + std::to_string(roots_[id]) + " does not exist");
        bad_roots_.insert(id);
      } else if (!s.ok()) {
        Error("image", who + ": " + s.ToString());
        bad_roots_.insert(id);
      } else if (!S_ISDIR(root.mode)) {
        Error("image", who + ": root node " + std::to_string(roots_[id]) + " is not a directory");
        bad_roots_.insert(id);
      }
    }
    // Trees of ids nothing names (a killed import, image rm): garbage.
    const uint64_t bound = cat_->NextId(IdSpace::kImage);
    uint64_t dead = 0;
    for (uint64_t id = 1; id < bound; id++) {
      if (live_images_.count(id)) continue;
      bool any = false;
      OVT_RETURN_IF_ERROR(cat_->ScanNodes(id, 0, [&](uint64_t, const NodeRecord&) {
        any = true;
        return false;
      }));
      if (any) dead++;
    }
    if (dead > 0)
      Notice("garbage", std::to_string(dead) +
                            " image tree(s) without an image (removed or interrupted imports): "
                            "gc reclaims them");
    return Status::OK();
  }

  // ---- containers

  Status CheckContainers() {
    OVT_RETURN_IF_ERROR(cat_->ScanVolumes(0, [&](uint64_t id, const VolumeRecord& v) {
      Container& c = containers_[id];
      c.has_row = true;
      c.row = v;
      return true;
    }));
    rep_->containers = containers_.size();
    std::map<std::string, std::set<uint64_t>> listed;
    for (VolumeSet* set : store_->volume_sets()) {
      std::vector<uint64_t> ids;
      Status s = set->List(&ids);
      if (!s.ok()) {
        Error("container", "volume set '" + set->name() + "': " + s.ToString());
        continue;
      }
      listed[set->name()].insert(ids.begin(), ids.end());
      for (uint64_t id : ids) {
        if (!containers_.count(id) || !containers_[id].has_row)
          Notice("garbage", VvName(id) + " in volume set '" + set->name() +
                                "' has no volumes row (left by an interrupted writer): gc "
                                "removes it");
      }
    }
    const Id128& store_id = store_->config().id.bytes;
    for (auto& [id, c] : containers_) {
      if (!c.has_row) continue;
      const std::string name = VvName(id) + " (set '" + c.row.set + "')";
      if (c.row.state == VolumeState::kRemote) {
        CheckRemote(id, name, &c);
        continue;
      }
      VolumeSet* set = store_->volume_set(c.row.set);
      if (set == nullptr) {
        c.problem = name + ": the store has no volume set '" + c.row.set + "'";
        Error("container", c.problem);
        continue;
      }
      if (!listed[c.row.set].count(id)) {
        c.problem = name + " is missing";
        if (c.row.state == VolumeState::kCompacting) {
          // gc removes the file of a retired container before its row: a
          // gc killed in between leaves this, which the next gc finishes.
          Notice("garbage", name + " is retired and its file already removed: gc deletes the row");
        } else {
          Error("container", c.problem);
        }
        continue;
      }
      c.present = true;
      std::unique_ptr<VvReader> r;
      Status s = VvReader::Open(set, store_id, id, &r);
      if (!s.ok()) {
        c.problem = name + ": " + s.ToString();
        Error("container", c.problem);
        continue;
      }
      c.size = r->size();
      RecordList list;
      const bool should_be_sealed =
          c.row.state == VolumeState::kSealed || c.row.state == VolumeState::kCompacting;
      if (should_be_sealed && !r->sealed()) {
        // The trailer is the last thing in a sealed container: without it the
        // container was cut short (or overwritten at its end).
        Error("container", name + " is " + VolumeStateName(c.row.state) +
                               " in the catalog but has no valid trailer: truncated? (" +
                               std::to_string(c.size) + " bytes, catalog says " +
                               std::to_string(c.row.size) + ")");
        s = r->ScanRecords(&list);
      } else if (r->sealed()) {
        s = r->ListRecords(&list);
        if (!s.ok()) {
          Error("container", name + ": footer: " + s.ToString());
          s = r->ScanRecords(&list);
        } else if (should_be_sealed && c.size != c.row.size) {
          Error("container", name + " is " + std::to_string(c.size) + " bytes, the catalog says " +
                                 std::to_string(c.row.size));
        }
      } else {
        s = r->ScanRecords(&list);  // open (or lost): records up to where they stop
        // The row's size was committed after those bytes were durable: a
        // container shorter than it lost committed data.
        if (c.row.state == VolumeState::kOpen && c.size < c.row.size)
          Error("container", name + " is " + std::to_string(c.size) + " bytes, the catalog says " +
                                 std::to_string(c.row.size) + ": truncated");
      }
      if (!s.ok()) {
        c.problem = name + ": " + s.ToString();
        Error("container", c.problem);
        continue;
      }
      if (!list.stop_reason.empty() && (should_be_sealed || !list.from_footer))
        Notice("container", name + ": record scan stopped: " + list.stop_reason);
      c.readable = true;
      for (const RecordInfo& i : list.records) c.records[i.location.offset] = i.location.length;
      if (c.row.state == VolumeState::kCompacting)
        Notice("garbage", name +
                              " is retired (compacted or without live data): gc removes it "
                              "when no mount uses the store");
      if (c.row.state == VolumeState::kOpen)
        Notice("container", name + " was left open by an interrupted writer: gc seals it");
    }
    return Status::OK();
  }

  // Another store's container (a pulled image's): read where it is,
  // through the store (which checks it is the owner's), never repaired.
  void CheckRemote(uint64_t id, const std::string& name, Container* c) {
    std::shared_ptr<const VvReader> r;
    Status s = store_->OpenContainer(id, &r);
    RecordList list;
    if (s.ok()) s = r->sealed() ? r->ListRecords(&list) : r->ScanRecords(&list);
    if (!s.ok()) {
      c->problem = name + ": " + s.ToString();
      Error("container", c->problem);
      return;
    }
    c->present = true;
    c->readable = true;
    c->size = r->size();
    for (const RecordInfo& i : list.records) c->records[i.location.offset] = i.location.length;
  }

  // Why an extent cannot be read, or "" if its container holds a record
  // exactly there.
  std::string ExtentProblem(const Extent& e) {
    auto it = containers_.find(e.vv_id);
    if (it == containers_.end() || !it->second.has_row)
      return VvName(e.vv_id) + " has no volumes row";
    Container& c = it->second;
    if (!c.problem.empty()) return c.problem;
    auto r = c.records.find(e.vv_offset);
    if (r == c.records.end() || r->second != e.length) {
      if (e.vv_offset + e.length > c.size)
        return VvName(e.vv_id) + " ends at " + std::to_string(c.size) +
               " bytes, before the record at offset " + std::to_string(e.vv_offset) +
               " (truncated)";
      return VvName(e.vv_id) + " has no record of " + std::to_string(e.length) +
             " bytes at offset " + std::to_string(e.vv_offset);
    }
    return "";
  }

  // ---- files rows

  Status CheckFiles() {
    return cat_->ScanFiles(Bfid(), [&](const Bfid& bfid, const FileRecord& f) {
      rep_->files++;
      files_[bfid] = f;
      for (size_t c = 0; c < f.copies.size(); c++) {
        for (const Extent& e : f.copies[c].extents) {
          Loc loc{e.vv_id, e.vv_offset};
          auto [it, fresh] = locs_.emplace(loc, "");
          if (fresh) it->second = ExtentProblem(e);
          if (!it->second.empty()) {
            damage_[bfid].insert("copy " + std::to_string(c + 1) + " of " +
                                 std::to_string(f.copies.size()) + ", file offset " +
                                 std::to_string(e.file_offset) + ": " + it->second);
            copy_bad_[bfid].insert(c);
          }
        }
      }
      return true;
    });
  }

  // Reads every distinct location once (checksum against the catalog's
  // digest), in groups: a group that verifies is fine as a whole; a failing
  // one is verified extent by extent to say which.
  Status VerifyContent() {
    ContentReaderOptions ro;
    ro.cache_bytes = 0;
    ro.readahead_chunks = 0;
    ContentReader reader(store_, ro);
    std::map<Loc, Extent> todo;
    for (auto& [bfid, f] : files_) {
      for (const FileCopy& c : f.copies) {
        for (const Extent& e : c.extents) {
          Loc loc{e.vv_id, e.vv_offset};
          if (locs_[loc].empty()) todo.emplace(loc, e);
        }
      }
    }
    std::vector<Extent> group;
    auto check = [&](const std::vector<Extent>& g) {
      FileRecord fake;
      fake.copies.resize(1);
      uint64_t off = 0;
      for (Extent e : g) {
        e.file_offset = off;
        off += e.length;
        fake.copies[0].extents.push_back(e);
      }
      fake.size = off;
      int damaged = 0;
      return reader.VerifyAll(fake, "fsck", &damaged);
    };
    auto flush = [&]() {
      if (group.empty()) return;
      if (!check(group).ok()) {
        for (const Extent& e : group) {
          Status s = check({e});
          if (!s.ok()) {
            std::string msg = s.message();
            const std::string prefix = "fsck: copy 1 of 1: ";
            if (msg.rfind(prefix, 0) == 0) msg = msg.substr(prefix.size());
            locs_[Loc{e.vv_id, e.vv_offset}] = msg;
          }
        }
      }
      for (const Extent& e : group) {
        rep_->extents_verified++;
        rep_->bytes_verified += e.length;
      }
      group.clear();
    };
    for (auto& [loc, e] : todo) {
      group.push_back(e);
      if (group.size() == kVerifyGroup) flush();
    }
    flush();
    // Files using a damaged location.
    for (auto& [bfid, f] : files_) {
      for (size_t c = 0; c < f.copies.size(); c++) {
        for (const Extent& e : f.copies[c].extents) {
          const std::string& p = locs_[Loc{e.vv_id, e.vv_offset}];
          if (p.empty() || !todo.count(Loc{e.vv_id, e.vv_offset})) continue;
          damage_[bfid].insert("copy " + std::to_string(c + 1) + " of " +
                               std::to_string(f.copies.size()) + ", file offset " +
                               std::to_string(e.file_offset) + ": " + p);
          copy_bad_[bfid].insert(c);
        }
      }
    }
    return Status::OK();
  }

  // ---- trees

  struct NodeLite {
    uint32_t mode = 0;
    uint32_t nlink = 0;
    uint64_t size = 0;
    bool has_content = false;
    Bfid content;
  };

  Status WalkImage(uint64_t id) {
    if (bad_roots_.count(id)) return Status::OK();
    rep_->images++;
    const std::string label = Label(id);
    std::map<uint64_t, NodeLite> nodes;
    OVT_RETURN_IF_ERROR(cat_->ScanNodes(id, 0, [&](uint64_t ino, const NodeRecord& n) {
      nodes[ino] = NodeLite{n.mode, n.nlink, n.size, n.has_content, n.content};
      return true;
    }));
    rep_->nodes += nodes.size();
    const uint64_t root = roots_[id];
    std::map<uint64_t, uint32_t> refs, subdirs;
    std::map<uint64_t, std::string> path_of;
    path_of[root] = "/";
    std::deque<std::pair<uint64_t, std::string>> queue{{root, ""}};
    std::set<uint64_t> dirs_seen{root};
    while (!queue.empty()) {
      // Not a structured binding: the lambda below captures both, which
      // clang before 16 refuses for bindings.
      const uint64_t dir = queue.front().first;
      const std::string path = std::move(queue.front().second);
      queue.pop_front();
      Status s = cat_->ReadDir(id, dir, "", [&](std::string_view name, const DirentRecord& d) {
        const std::string child = path + "/" + std::string(name);
        const std::string where = label + ":" + child;
        auto it = nodes.find(d.child_inode);
        if (it == nodes.end()) {
          Error("tree",
                where + ": dirent points at inode " + std::to_string(d.child_inode) +
                    ", which does not exist",
                {where});
          return true;
        }
        const NodeLite& n = it->second;
        refs[d.child_inode]++;
        if (!path_of.count(d.child_inode)) path_of[d.child_inode] = child;
        if (d.type != DirentTypeOf(n.mode))
          Error("tree",
                where + ": dirent type " + std::to_string(d.type) +
                    " does not match the node's mode 0" + ToOctal(n.mode),
                {where});
        if (S_ISDIR(n.mode)) {
          subdirs[dir]++;
          if (!dirs_seen.insert(d.child_inode).second) {
            Error("tree",
                  where + ": directory inode " + std::to_string(d.child_inode) +
                      " has another name (" + label + ":" + path_of[d.child_inode] + ")",
                  {where});
          } else {
            queue.emplace_back(d.child_inode, child);
          }
        } else if (S_ISREG(n.mode) && n.has_content) {
          users_[n.content].push_back(where);
          auto f = files_.find(n.content);
          if (f == files_.end()) {
            Error("tree", where + ": content row " + n.content.ToHex() + " does not exist",
                  {where});
          } else if (f->second.size != n.size) {
            Error("tree",
                  where + ": size " + std::to_string(n.size) + " but its content row " +
                      n.content.ToHex() + " holds " + std::to_string(f->second.size) + " bytes",
                  {where});
          }
        }
        return true;
      });
      if (!s.ok()) Error("tree", label + ":" + (path.empty() ? "/" : path) + ": " + s.ToString());
    }
    for (auto& [ino, n] : nodes) {
      if (ino == root) continue;
      if (!refs.count(ino)) {
        Error("tree", label + ": inode " + std::to_string(ino) + " is not reachable from the root");
        continue;
      }
      const std::string where = label + ":" + path_of[ino];
      const uint32_t want = S_ISDIR(n.mode) ? 2 + subdirs[ino] : refs[ino];
      if (n.nlink != want)
        Error("tree",
              where + ": nlink " + std::to_string(n.nlink) + ", but " + std::to_string(want) +
                  (S_ISDIR(n.mode) ? " expected (2 + subdirectories)" : " dirents name it"),
              {where});
    }
    auto r = nodes.find(root);
    if (r != nodes.end() && r->second.nlink != 2 + subdirs[root])
      Error("tree", label + ":/: nlink " + std::to_string(r->second.nlink) + ", but " +
                        std::to_string(2 + subdirs[root]) + " expected (2 + subdirectories)");
    return Status::OK();
  }

  static std::string ToOctal(uint32_t v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%o", v);
    return buf;
  }

  // ---- chunks rows and jobs

  Status CheckChunks() {
    return cat_->ScanChunks(Digest128(), [&](const Digest128& d, const ChunkRecord& c) {
      for (const ChunkLocation& l : c.copies) {
        auto it = containers_.find(l.vv_id);
        if (it == containers_.end() || !it->second.has_row) {
          Error("chunk-row", "chunks row " + d.ToHex() + " points into " + VvName(l.vv_id) +
                                 ", which has no volumes row");
        } else if (!it->second.present) {
          Error("chunk-row", "chunks row " + d.ToHex() + " points into missing " + VvName(l.vv_id));
        }
      }
      return true;
    });
  }

  Status CheckJobs() {
    return cat_->ScanJobs(0, [&](uint64_t id, const JobRecord& j) {
      if (j.kind == JobKind::kGc)
        Notice("job", "gc job " + std::to_string(id) + " was interrupted (" + j.params +
                          "): run overtier gc");
      if (j.kind == JobKind::kRestore)
        Notice("job", "restore job " + std::to_string(id) + " (" + j.params + ", " +
                          std::to_string(j.progress) + " of " + std::to_string(j.total) +
                          " bytes back) was stopped with its mount: the next mount of the "
                          "upper layer resumes it");
      return true;
    });
  }

  // ---- damaged content, per files row

  void ReportContent() {
    std::set<Bfid> migration;
    uint64_t lost = 0, stale = 0;
    std::string first_lost;
    Status s = cat_->ScanMigration("", [&](std::string_view key, const MigrationRecord& m) {
      migration.insert(m.bfid);
      // A record whose archive has no files row: a released file's
      // non-resident bytes are gone (its reads fail with EIO); an archived
      // one is whole but cannot be released until archived again.
      if (!m.bfid.IsZero() && !files_.count(m.bfid)) {
        if (m.flags & kMigReleased) {
          if (lost++ == 0)
            first_lost =
                "the upper file with handle " + HexString(key) + " names archive " + m.bfid.ToHex();
        } else {
          stale++;
        }
      }
      return true;
    });
    Step(s);
    if (lost > 0)
      Error("migration",
            std::to_string(lost) +
                " released upper file(s) name an archive with no files row: their released "
                "bytes are lost, and read as EIO (first: " +
                first_lost + ")");
    if (stale > 0)
      Notice("migration", std::to_string(stale) +
                              " archived upper file(s) name an archive with no files row: they "
                              "are whole, but must be archived again before a release");
    uint64_t unused = 0;
    for (auto& [bfid, f] : files_) {
      if (!users_.count(bfid) && !migration.count(bfid)) unused++;
    }
    if (unused > 0)
      Notice("garbage",
             std::to_string(unused) + " files row(s) no image file uses: gc reclaims them");
    for (auto& [bfid, reasons] : damage_) {
      const FileRecord& f = files_[bfid];
      std::vector<std::string> files =
          users_.count(bfid) ? users_[bfid] : std::vector<std::string>();
      const bool readable = copy_bad_[bfid].size() < f.copies.size();
      std::string msg = "content " + bfid.ToHex() +
                        (readable ? " (degraded: readable from another copy)" : " is unreadable");
      for (const std::string& r : reasons) msg += "; " + r;
      if (files.empty() && !migration.count(bfid)) {
        rep_->issues.push_back(FsckIssue{FsckSeverity::kNotice,
                                         "garbage",
                                         msg + " (no image file uses it: gc reclaims it)",
                                         {}});
        continue;
      }
      if (migration.count(bfid)) msg += " (archived content of a migrated file)";
      Error("content", msg, files);
    }
  }

  Store* store_;
  Catalog* cat_;
  const FsckOptions& opt_;
  FsckReport* rep_;

  std::map<uint64_t, std::string> names_;
  std::map<uint64_t, uint64_t> roots_;
  std::set<uint64_t> live_images_;
  std::set<uint64_t> bad_roots_;
  std::map<uint64_t, Container> containers_;
  std::map<Bfid, FileRecord> files_;
  std::map<Loc, std::string> locs_;  // "" or why that location is bad
  std::map<Bfid, std::set<std::string>> damage_;
  std::map<Bfid, std::set<size_t>> copy_bad_;
  std::map<Bfid, std::vector<std::string>> users_;
};

}  // namespace

Status RunFsck(Store* store, const FsckOptions& options, FsckReport* report) {
  Fsck f(store, options, report);
  return f.Run();
}

}  // namespace overtier
