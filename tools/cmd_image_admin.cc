// overtier image ls STORE [--json]
// overtier image inspect STORE NAME [--path P] [--json]
// overtier image rm STORE NAME...
// overtier image push STORE NAME [--set SET] [--delete] [--json]
// overtier image pull STORE NAME --from LOCATION [--as NEW] [--json]
// overtier gc STORE [--threshold F] [--dry-run] [--json]
// overtier fsck STORE [--quick] [--json]
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "image/image_format.h"
#include "migrate/crash_point.h"
#include "store/fsck.h"
#include "store/gc.h"
#include "store/publication.h"
#include "store/store.h"
#include "tools/cli.h"
#include "tools/json_out.h"
#include "tools/progress.h"
#include "tools/shown_name.h"

namespace overtier::cli {

namespace {

using nlohmann::json;

// Parses; returns -1 to go on, else the exit status (0 for --help, 2 for
// bad usage).
int Parse(CLI::App* app, int argc, char** argv) {
  try {
    app->parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app->exit(e);
    std::fprintf(stderr, "%s: %s\n", app->get_name().c_str(), MessageSafe(e.what()).c_str());
    return 2;
  }
  return -1;
}

int Fail(const std::string& cmd, const Status& s) {
  std::fprintf(stderr, "overtier: %s: %s\n", cmd.c_str(), MessageSafe(s.ToString()).c_str());
  return 1;
}

Status OpenStore(const std::string& path, bool read_only, std::unique_ptr<Store>* out) {
  StoreOpenOptions o;
  o.read_only = read_only;
  return Store::Open(path, o, out);
}

std::string FormatTime(int64_t ns) {
  time_t t = static_cast<time_t>(ns / 1000000000);
  struct tm tm;
  char buf[64];
  if (localtime_r(&t, &tm) == nullptr || strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm) == 0)
    return std::to_string(ns);
  return buf;
}

std::string Octal(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0%o", v);
  return buf;
}

const char* TypeName(const NodeRecord& n) {
  switch (n.mode & S_IFMT) {
    case S_IFREG:
      return "file";
    case S_IFDIR:
      return "directory";
    case S_IFLNK:
      return "symlink";
    case S_IFCHR:
      return IsWhiteout(n) ? "whiteout" : "char-device";
    case S_IFBLK:
      return "block-device";
    case S_IFIFO:
      return "fifo";
    case S_IFSOCK:
      return "socket";
  }
  return "unknown";
}

// Sizes of one image, from a scan of its nodes and their files rows.
struct ImageStats {
  std::map<std::string, uint64_t> by_type;
  uint64_t files = 0;    // regular files
  uint64_t logical = 0;  // sum of regular file sizes
  uint64_t stored = 0;   // container bytes its content occupies (all copies, shared counted once)
  std::map<uint64_t, uint64_t> containers;  // vv id -> bytes of this image in it
};

Status StatImage(Catalog* cat, uint64_t image_id, ImageStats* st) {
  std::set<std::pair<uint64_t, uint64_t>> seen;
  std::set<Bfid> bfids;
  OVT_RETURN_IF_ERROR(cat->ScanNodes(image_id, 0, [&](uint64_t, const NodeRecord& n) {
    st->by_type[TypeName(n)]++;
    if (S_ISREG(n.mode)) {
      st->files++;
      st->logical += n.size;
      if (n.has_content) bfids.insert(n.content);
    }
    return true;
  }));
  for (const Bfid& b : bfids) {
    FileRecord f;
    Status s = cat->GetFile(b, &f);
    if (s.err() == ENOENT) continue;  // fsck's business
    OVT_RETURN_IF_ERROR(s);
    for (const FileCopy& c : f.copies) {
      for (const Extent& e : c.extents) {
        if (!seen.insert({e.vv_id, e.vv_offset}).second) continue;
        st->stored += e.length;
        st->containers[e.vv_id] += e.length;
      }
    }
  }
  return Status::OK();
}

std::map<uint64_t, std::string> NamesById(Catalog* cat) {
  std::map<uint64_t, std::string> m;
  (void)cat->ScanImages("", [&](std::string_view name, const ImageRecord& r) {
    m[r.image_id] = std::string(name);
    return true;
  });
  return m;
}

std::string ParentName(const std::map<uint64_t, std::string>& names, uint64_t id) {
  if (id == 0) return "";
  auto it = names.find(id);
  return it != names.end() ? it->second : "#" + std::to_string(id);
}

}  // namespace

int ImageLs(int argc, char** argv) {
  CLI::App app{"List the images of a store", "overtier image ls"};
  std::string path;
  bool json_out = false;
  app.add_option("STORE", path, "The store")->required();
  app.add_flag("--json", json_out, "JSON output");
  if (int rc = Parse(&app, argc, argv); rc >= 0) return rc;
  std::unique_ptr<Store> store;
  Status s = OpenStore(path, true, &store);
  if (!s.ok()) return Fail("image ls", s);
  Catalog* cat = store->catalog();
  std::vector<std::pair<std::string, ImageRecord>> images;
  s = cat->ScanImages("", [&](std::string_view name, const ImageRecord& r) {
    images.emplace_back(std::string(name), r);
    return true;
  });
  if (!s.ok()) return Fail("image ls", s);
  std::map<uint64_t, std::string> names;
  for (auto& [n, r] : images) names[r.image_id] = n;
  json out = json::array();
  std::vector<std::vector<std::string>> rows;
  for (auto& [name, r] : images) {
    ImageStats st;
    s = StatImage(cat, r.image_id, &st);
    if (!s.ok()) return Fail("image ls", s);
    if (json_out) {
      out.push_back(
          {{"name", name},
           {"id", r.image_id},
           {"parent",
            r.parent_image_id == 0 ? json(nullptr) : json(ParentName(names, r.parent_image_id))},
           {"created_ns", r.created_ns},
           {"files", st.files},
           {"logical_bytes", st.logical},
           {"stored_bytes", st.stored}});
    } else {
      std::string parent = ParentName(names, r.parent_image_id);
      rows.push_back({name, std::to_string(r.image_id), parent.empty() ? "-" : parent,
                      FormatTime(r.created_ns), std::to_string(st.files), HumanBytes(st.logical),
                      HumanBytes(st.stored)});
    }
  }
  if (json_out) {
    std::printf("%s\n", JsonText(out, 2).c_str());
    return 0;
  }
  std::vector<std::string> head{"NAME", "ID", "PARENT", "CREATED", "FILES", "SIZE", "STORED"};
  std::vector<size_t> w(head.size());
  for (size_t i = 0; i < head.size(); i++) w[i] = head[i].size();
  for (auto& r : rows)
    for (size_t i = 0; i < r.size(); i++) w[i] = std::max(w[i], r[i].size());
  auto print = [&](const std::vector<std::string>& r) {
    for (size_t i = 0; i < r.size(); i++)
      std::printf(i + 1 < r.size() ? "%-*s  " : "%-*s\n", static_cast<int>(w[i]), r[i].c_str());
  };
  print(head);
  for (auto& r : rows) print(r);
  return 0;
}

namespace {

// Resolves /a/b/c in an image.
Status LookupPath(Catalog* cat, const ImageRecord& img, const std::string& path, uint64_t* ino,
                  NodeRecord* node) {
  uint64_t cur = img.root_inode;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string::npos) slash = path.size();
    std::string part = path.substr(pos, slash - pos);
    pos = slash + 1;
    if (part.empty() || part == ".") continue;
    DirentRecord d;
    Status s = cat->GetDirent(img.image_id, cur, part, &d);
    if (s.err() == ENOENT) return Status::NotFound("no '" + path + "' in the image");
    OVT_RETURN_IF_ERROR(s);
    cur = d.child_inode;
  }
  *ino = cur;
  return cat->GetNode(img.image_id, cur, node);
}

json NodeJson(Catalog* cat, uint64_t ino, const NodeRecord& n) {
  json j{{"inode", ino},          {"type", TypeName(n)},    {"mode", Octal(n.mode)},
         {"uid", n.uid},          {"gid", n.gid},           {"nlink", n.nlink},
         {"size", n.size},        {"atime_ns", n.atime_ns}, {"mtime_ns", n.mtime_ns},
         {"ctime_ns", n.ctime_ns}};
  if (S_ISCHR(n.mode) || S_ISBLK(n.mode))
    j["rdev"] = std::to_string(major(n.rdev)) + ":" + std::to_string(minor(n.rdev));
  if (!n.symlink_target.empty()) j["symlink"] = n.symlink_target;
  json x = json::object();
  for (auto& [k, v] : n.xattrs) {
    bool text = true;
    for (unsigned char c : v) text &= c >= 0x20 && c < 0x7f;
    x[k] = text ? v : "hex:" + HexString(v);
  }
  j["xattrs"] = x;
  if (n.has_content) {
    j["content"] = n.content.ToHex();
    FileRecord f;
    Status s = cat->GetFile(n.content, &f);
    if (!s.ok()) {
      j["content_error"] = s.ToString();
    } else {
      json copies = json::array();
      for (const FileCopy& c : f.copies) {
        json ex = json::array();
        for (const Extent& e : c.extents)
          ex.push_back({{"file_offset", e.file_offset},
                        {"vv", VvName(e.vv_id)},
                        {"vv_offset", e.vv_offset},
                        {"length", e.length},
                        {"digest", e.digest.ToHex()}});
        copies.push_back(ex);
      }
      j["copies"] = copies;
    }
  }
  return j;
}

}  // namespace

int ImageInspect(int argc, char** argv) {
  CLI::App app{"Show one image of a store", "overtier image inspect"};
  std::string path, name, node_path;
  bool json_out = false;
  app.add_option("STORE", path, "The store")->required();
  app.add_option("NAME", name, "The image")->required();
  app.add_option("--path", node_path, "Also show this path's node (attributes, xattrs, extents)");
  app.add_flag("--json", json_out, "JSON output");
  if (int rc = Parse(&app, argc, argv); rc >= 0) return rc;
  std::unique_ptr<Store> store;
  Status s = OpenStore(path, true, &store);
  if (!s.ok()) return Fail("image inspect", s);
  Catalog* cat = store->catalog();
  ImageRecord img;
  s = cat->GetImage(name, &img);
  if (s.err() == ENOENT) s = Status::NotFound("no image '" + name + "' in store '" + path + "'");
  if (!s.ok()) return Fail("image inspect", s);
  auto names = NamesById(cat);
  json j{{"name", name},
         {"id", img.image_id},
         {"root_inode", img.root_inode},
         {"created_ns", img.created_ns},
         {"created", FormatTime(img.created_ns)}};
  json chain = json::array();
  std::set<uint64_t> seen{img.image_id};
  for (uint64_t p = img.parent_image_id; p != 0;) {
    chain.push_back(ParentName(names, p));
    if (!seen.insert(p).second) break;
    auto it = names.find(p);
    ImageRecord pr;
    if (it == names.end() || !cat->GetImage(it->second, &pr).ok()) break;
    p = pr.parent_image_id;
  }
  j["parents"] = chain;
  ImageStats st;
  s = StatImage(cat, img.image_id, &st);
  if (!s.ok()) return Fail("image inspect", s);
  j["counts"] = st.by_type;
  j["logical_bytes"] = st.logical;
  j["stored_bytes"] = st.stored;
  json conts = json::array();
  for (auto& [vv, bytes] : st.containers) {
    VolumeRecord v;
    json c{{"vv", VvName(vv)}, {"bytes", bytes}};
    if (cat->GetVolume(vv, &v).ok()) {
      c["set"] = v.set;
      c["state"] = VolumeStateName(v.state);
      c["size"] = v.size;
      c["live_bytes"] = v.live_bytes;
    } else {
      c["state"] = "missing";
    }
    conts.push_back(c);
  }
  j["containers"] = conts;
  if (!node_path.empty()) {
    uint64_t ino = 0;
    NodeRecord n;
    s = LookupPath(cat, img, node_path, &ino, &n);
    if (!s.ok()) return Fail("image inspect " + name, s);
    j["node"] = NodeJson(cat, ino, n);
    SetPath(&j["node"], "path", node_path);
  }
  if (json_out) {
    std::printf("%s\n", JsonText(j, 2).c_str());
    return 0;
  }
  std::printf("image    %s (id %llu)\n", name.c_str(),
              static_cast<unsigned long long>(img.image_id));
  std::printf("created  %s\n", FormatTime(img.created_ns).c_str());
  std::string parents;
  for (auto& p : chain) parents += (parents.empty() ? "" : " <- ") + p.get<std::string>();
  std::printf("parents  %s\n", parents.empty() ? "-" : parents.c_str());
  std::string counts;
  for (auto& [t, n] : st.by_type)
    counts += (counts.empty() ? "" : ", ") + std::to_string(n) + " " + t;
  std::printf("nodes    %s\n", counts.c_str());
  std::printf("size     %s in %llu files, %s stored\n", HumanBytes(st.logical).c_str(),
              static_cast<unsigned long long>(st.files), HumanBytes(st.stored).c_str());
  std::printf("containers (%zu):\n", conts.size());
  for (auto& c : conts) {
    std::printf("  %s  %s of this image", c["vv"].get<std::string>().c_str(),
                HumanBytes(c["bytes"].get<uint64_t>()).c_str());
    if (c.contains("set"))
      std::printf(", set %s, %s, %s live of %s", c["set"].get<std::string>().c_str(),
                  c["state"].get<std::string>().c_str(),
                  HumanBytes(c["live_bytes"].get<uint64_t>()).c_str(),
                  HumanBytes(c["size"].get<uint64_t>()).c_str());
    else
      std::printf(", MISSING from the catalog");
    std::printf("\n");
  }
  if (j.contains("node"))
    std::printf("node %s:\n%s\n", node_path.c_str(), JsonText(j["node"], 2).c_str());
  return 0;
}

int ImageRm(int argc, char** argv) {
  CLI::App app{"Remove images (their space is freed by overtier gc)", "overtier image rm"};
  std::string path;
  std::vector<std::string> names;
  app.add_option("STORE", path, "The store")->required();
  app.add_option("NAME", names, "Images to remove")->required();
  if (int rc = Parse(&app, argc, argv); rc >= 0) return rc;
  std::unique_ptr<Store> store;
  Status s = OpenStore(path, false, &store);
  if (!s.ok()) return Fail("image rm", s);
  Catalog* cat = store->catalog();
  std::map<std::string, ImageRecord> all;
  s = cat->ScanImages("", [&](std::string_view n, const ImageRecord& r) {
    all[std::string(n)] = r;
    return true;
  });
  if (!s.ok()) return Fail("image rm", s);
  std::set<std::string> doomed(names.begin(), names.end());
  for (const std::string& n : doomed) {
    auto it = all.find(n);
    if (it == all.end())
      return Fail("image rm", Status::NotFound("no image '" + n + "' in store '" + path + "'"));
    // An image another one stacks on cannot go (unless that one goes too).
    for (auto& [child, r] : all) {
      if (r.parent_image_id == it->second.image_id && !doomed.count(child)) {
        std::fprintf(
            stderr,
            "overtier: image rm: image '%s' is the parent of image '%s'; remove '%s' first\n",
            MessageSafe(n).c_str(), MessageSafe(child).c_str(), MessageSafe(child).c_str());
        return 1;
      }
    }
  }
  Catalog::Batch b(cat);
  for (const std::string& n : doomed) b.DeleteImage(n);
  s = b.Commit();
  if (!s.ok()) return Fail("image rm", s);
  for (const std::string& n : doomed)
    std::printf("removed image %s (id %llu)\n", n.c_str(),
                static_cast<unsigned long long>(all[n].image_id));
  std::printf("run 'overtier gc %s' to free its space\n", path.c_str());
  return 0;
}

int ImagePush(int argc, char** argv) {
  CLI::App app{"Publish an image beside its containers, for other stores to pull",
               "overtier image push"};
  std::string path, name, set;
  bool withdraw = false, json_out = false;
  app.add_option("STORE", path, "The store")->required();
  app.add_option("NAME", name, "The image")->required();
  app.add_option("--set", set,
                 "Volume set to publish in (default: the store's only RADOS set); every file of "
                 "the image needs a copy there");
  app.add_flag("--delete", withdraw,
               "Withdraw the publication instead (gc may then reclaim its containers)");
  app.add_flag("--json", json_out, "JSON output");
  if (int rc = Parse(&app, argc, argv); rc >= 0) return rc;
  // For writing: gc must not move the content while the manifest is made.
  std::unique_ptr<Store> store;
  Status s = OpenStore(path, false, &store);
  if (!s.ok()) return Fail("image push", s);
  if (withdraw) {
    std::string used;
    s = WithdrawImage(store.get(), name, set, &used);
    if (!s.ok()) return Fail("image push --delete", s);
    if (json_out) {
      std::printf("%s\n", JsonText(json{{"withdrawn", name}, {"set", used}}).c_str());
    } else {
      std::printf(
          "withdrew image %s from volume set %s; run 'overtier gc %s' to reclaim what "
          "only it kept\n",
          name.c_str(), used.c_str(), path.c_str());
    }
    return 0;
  }
  PushReport r;
  s = PushImage(store.get(), name, set, &r);
  if (!s.ok()) return Fail("image push", s);
  if (json_out) {
    const json j{{"image", name},
                 {"set", r.set},
                 {"object", r.object},
                 {"layers", r.layers},
                 {"files", r.files},
                 {"containers", r.volumes},
                 {"manifest_bytes", r.manifest_bytes},
                 {"pieces", r.pieces}};
    std::printf("%s\n", JsonText(j).c_str());
  } else {
    std::printf(
        "published image %s in volume set %s: %zu layer(s), %zu files in %zu "
        "containers, manifest %s\n",
        name.c_str(), r.set.c_str(), r.layers, r.files, r.volumes,
        HumanBytes(r.manifest_bytes).c_str());
  }
  return 0;
}

int ImagePull(int argc, char** argv) {
  CLI::App app{"Pull an image another store published; its content is read where it is",
               "overtier image pull"};
  std::string path, name, from, as;
  bool json_out = false;
  app.add_option("STORE", path, "The store to pull into")->required();
  app.add_option("NAME", name, "The image, as the publisher names it")->required();
  app.add_option("--from", from,
                 "Where it is published: the publisher's RADOS set spec "
                 "('rados:POOL?ns=...&conf=...&id=...') or volume set folder")
      ->required();
  app.add_option("--as", as, "Name it gets in this store (default NAME)");
  app.add_flag("--json", json_out, "JSON output");
  if (int rc = Parse(&app, argc, argv); rc >= 0) return rc;
  std::unique_ptr<Store> store;
  Status s = OpenStore(path, false, &store);
  if (!s.ok()) return Fail("image pull", s);
  PullReport r;
  s = PullImage(store.get(), name, from, as, &r);
  if (!s.ok()) return Fail("image pull", s);
  if (json_out) {
    const json j{{"image", r.name},
                 {"remote_set", r.remote_set},
                 {"layers_added", r.layers_added},
                 {"layers_reused", r.layers_reused},
                 {"files", r.files},
                 {"containers_added", r.volumes_added}};
    std::printf("%s\n", JsonText(j).c_str());
  } else {
    std::printf(
        "pulled image %s: %zu layer(s) added, %zu reused, %zu files; content read from "
        "remote set %s\n",
        r.name.c_str(), r.layers_added, r.layers_reused, r.files, r.remote_set.c_str());
  }
  return 0;
}

int Gc(int argc, char** argv) {
  CLI::App app{"Reclaim the space of removed images and dead container bytes", "overtier gc"};
  std::string path;
  GcOptions o;
  bool json_out = false;
  app.add_option("STORE", path, "The store")->required();
  app.add_option("--threshold", o.threshold,
                 "Compact containers whose live fraction is under this (0..1, default 0.5)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_flag("--dry-run", o.dry_run, "Report what would be reclaimed, change nothing");
  app.add_flag("--json", json_out, "JSON output");
  if (int rc = Parse(&app, argc, argv); rc >= 0) return rc;
  std::unique_ptr<Store> store;
  Status s = OpenStore(path, o.dry_run, &store);
  if (!s.ok()) return Fail("gc", s);
  // The crash tests kill gc at its named points (gc-POINT, store/gc.h).
  o.hook = [](std::string_view point) {
    CrashPoint(("gc-" + std::string(point)).c_str());
    return Status::OK();
  };
  GcReport r;
  s = RunGc(store.get(), o, &r);
  if (!s.ok()) return Fail("gc", s);
  if (json_out) {
    json j{{"dry_run", o.dry_run},
           {"resumed", r.resumed},
           {"image_trees_deleted", r.image_trees_deleted},
           {"files_deleted", r.files_deleted},
           {"chunks_deleted", r.chunks_deleted},
           {"containers_sealed", r.containers_sealed},
           {"containers_retired", r.containers_retired},
           {"containers_compacted", r.containers_compacted},
           {"containers_created", r.containers_created},
           {"containers_removed", r.containers_removed},
           {"containers_deferred", r.containers_deferred},
           {"orphan_containers_removed", r.orphan_containers_removed},
           {"remote_volumes_forgotten", r.remote_volumes_forgotten},
           {"bytes_copied", r.bytes_copied},
           {"bytes_reclaimed", r.bytes_reclaimed},
           {"bytes_deferred", r.bytes_deferred},
           {"live_bytes", r.live_bytes},
           {"stored_bytes", r.stored_bytes},
           {"warnings", r.warnings}};
    if (r.resumed) j["resumed_phase"] = r.resumed_phase;
    std::printf("%s\n", JsonText(j, 2).c_str());
    return 0;
  }
  const char* would = o.dry_run ? " (dry run: nothing changed)" : "";
  if (r.resumed)
    std::printf("an earlier gc was interrupted (in phase %s): finished its work\n",
                r.resumed_phase.c_str());
  std::printf("gc %s%s\n", path.c_str(), would);
  std::printf("  rows deleted: %llu image trees, %llu files, %llu chunks\n",
              static_cast<unsigned long long>(r.image_trees_deleted),
              static_cast<unsigned long long>(r.files_deleted),
              static_cast<unsigned long long>(r.chunks_deleted));
  std::printf(
      "  containers: %llu removed, %llu compacted into %llu, %llu orphans removed, %llu sealed\n",
      static_cast<unsigned long long>(r.containers_removed),
      static_cast<unsigned long long>(r.containers_compacted),
      static_cast<unsigned long long>(r.containers_created),
      static_cast<unsigned long long>(r.orphan_containers_removed),
      static_cast<unsigned long long>(r.containers_sealed));
  if (r.remote_volumes_forgotten > 0)
    std::printf("  %llu rows of other stores' containers no pulled image uses any more\n",
                static_cast<unsigned long long>(r.remote_volumes_forgotten));
  std::printf("  reclaimed %s (copied %s of live data)\n", HumanBytes(r.bytes_reclaimed).c_str(),
              HumanBytes(r.bytes_copied).c_str());
  if (r.containers_deferred > 0)
    std::printf(
        "  %llu containers (%s) kept while the store is mounted: run gc again after "
        "unmounting\n",
        static_cast<unsigned long long>(r.containers_deferred),
        HumanBytes(r.bytes_deferred).c_str());
  std::printf("  store now holds %s live in %s of containers\n", HumanBytes(r.live_bytes).c_str(),
              HumanBytes(r.stored_bytes).c_str());
  for (const std::string& w : r.warnings)
    std::fprintf(stderr, "overtier: gc: warning: %s\n", MessageSafe(w).c_str());
  return 0;
}

int Fsck(int argc, char** argv) {
  CLI::App app{"Check a store and name every damaged file", "overtier fsck"};
  std::string path;
  FsckOptions o;
  bool json_out = false;
  app.add_option("STORE", path, "The store")->required();
  app.add_flag("--quick", o.quick, "Check structure only; do not read and verify content");
  app.add_flag("--json", json_out, "JSON output");
  if (int rc = Parse(&app, argc, argv); rc >= 0) return rc;
  FsckReport r;
  std::unique_ptr<Store> store;
  Status s = OpenStore(path, true, &store);
  if (!s.ok()) {
    // A store that does not open (bad store.conf, catalog refused: newer
    // version, missing families, RocksDB damage) is itself the finding.
    r.issues.push_back(FsckIssue{FsckSeverity::kError, "store", s.ToString(), {}});
  } else {
    s = RunFsck(store.get(), o, &r);
    if (!s.ok()) r.issues.push_back(FsckIssue{FsckSeverity::kError, "fsck", s.ToString(), {}});
  }
  const size_t errors = r.errors();
  if (json_out) {
    json issues = json::array();
    for (const FsckIssue& i : r.issues) {
      json issue{{"severity", i.severity == FsckSeverity::kError ? "error" : "notice"},
                 {"kind", i.kind},
                 {"message", i.message}};
      SetPaths(&issue, "files", i.files);
      issues.push_back(std::move(issue));
    }
    json j{{"store", path},
           {"ok", errors == 0},
           {"errors", errors},
           {"notices", r.notices()},
           {"quick", o.quick},
           {"images", r.images},
           {"nodes", r.nodes},
           {"files", r.files},
           {"containers", r.containers},
           {"extents_verified", r.extents_verified},
           {"bytes_verified", r.bytes_verified},
           {"issues", issues}};
    SetPaths(&j, "damaged_files", r.damaged_files());
    std::printf("%s\n", JsonText(j, 2).c_str());
    return errors == 0 ? 0 : 1;
  }
  for (const FsckIssue& i : r.issues) {
    std::printf("%s: %s: %s\n", i.severity == FsckSeverity::kError ? "error" : "notice",
                i.kind.c_str(), MessageSafe(i.message).c_str());
    for (const std::string& f : i.files)
      std::printf("    affects %s\n", ShownName(f, StdoutIsTerminal()).c_str());
  }
  std::vector<std::string> damaged = r.damaged_files();
  if (!damaged.empty()) {
    std::printf("damaged files (%zu):\n", damaged.size());
    for (const std::string& f : damaged)
      std::printf("  %s\n", ShownName(f, StdoutIsTerminal()).c_str());
  }
  std::printf(
      "fsck %s: %zu error(s), %zu notice(s); %llu images, %llu nodes, %llu files rows, "
      "%llu containers, %s verified%s\n",
      path.c_str(), errors, r.notices(), static_cast<unsigned long long>(r.images),
      static_cast<unsigned long long>(r.nodes), static_cast<unsigned long long>(r.files),
      static_cast<unsigned long long>(r.containers), HumanBytes(r.bytes_verified).c_str(),
      o.quick ? " (quick: content not read)" : "");
  return errors == 0 ? 0 : 1;
}

}  // namespace overtier::cli
