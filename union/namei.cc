// Lookup: finding a name in the merged view (overlayfs' namei.c).
//
// The upper layer is asked first. A whiteout there ends the search; an
// upper non-directory hides everything below (unless it is a metadata-only
// copy whose data is still in a lower file); an upper directory merges with
// the lower directories of the same name until one is opaque. A redirect
// xattr on an upper directory (left by a rename) says where its lower
// directories are. In lower layers the AUFS markers of container image
// layers (".wh.NAME", ".wh..wh..opq") count as whiteouts and opaque marks.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string_view>

#include "overtier/printable.h"
#include "union/fs_util.h"
#include "union/union_fs.h"

namespace overtier {

namespace {

bool IsDotName(std::string_view c) { return c == "." || c == ".."; }

// A redirect as the kernel overlayfs takes it (ovl_get_redirect_xattr):
// absolute, "/" and components none of which is empty, or relative, one
// sibling name. A "." or ".." component, which the kernel's lookup_one
// refuses with EACCES, would walk out of the lower layers: the upper layer
// may come from anywhere (a copied tree, another host), so its redirects
// are data to check, not paths to follow.
Status CheckRedirect(const std::string& r) {
  if (r.empty() || r.find('\0') != std::string::npos) return Status::Errno(EINVAL);
  if (r[0] != '/') {
    if (r.find('/') != std::string::npos) return Status::Errno(EINVAL);
    if (IsDotName(r)) return Status::Errno(EACCES);
    return r.size() > NAME_MAX ? Status::Errno(ENAMETOOLONG) : Status::OK();
  }
  Status dots;
  for (size_t i = 1;;) {
    size_t j = r.find('/', i);
    if (j == std::string::npos) j = r.size();
    if (j == i) return Status::Errno(EINVAL);
    const std::string_view c(r.data() + i, j - i);
    if (IsDotName(c) && dots.ok()) dots = Status::Errno(EACCES);
    if (c.size() > NAME_MAX && dots.ok()) dots = Status::Errno(ENAMETOOLONG);
    if (j == r.size()) break;
    i = j + 1;
  }
  return dots;
}

// An upper object carries a redirect the union refuses.
void ReportBadRedirect(const std::string& name, const std::string& redirect, const Status& s) {
  static std::atomic<int64_t> last{0};
  if (!LogNow(&last)) return;
  const std::string shown = MessageSafe(redirect.substr(0, 200));
  std::fprintf(stderr, "overtier: '%s' in the upper layer has an invalid redirect \"%s\": %s\n",
               MessageSafe(name).c_str(), shown.c_str(), s.ToString().c_str());
}

void ReportLostMetacopy(const std::string& name) {
  static std::atomic<int64_t> last{0};
  if (!LogNow(&last)) return;
  std::fprintf(stderr,
               "overtier: '%s' in the upper layer is a metadata-only copy whose data no lower "
               "layer holds: EIO\n",
               MessageSafe(name).c_str());
}

// Opens dirfd/name for the node cache: returns the fd and its stat, or
// ENOENT. Directories get a readable fd; everything else O_PATH.
Status OpenReal(int dirfd, const char* name, int* fd, struct stat* st) {
  int pfd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (pfd < 0) return Status::FromErrno();
  if (fstat(pfd, st) != 0) {
    Status s = Status::FromErrno();
    close(pfd);
    return s;
  }
  if (S_ISDIR(st->st_mode)) {
    int dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    close(pfd);
    if (dfd < 0) return Status::FromErrno();
    pfd = dfd;
  }
  *fd = pfd;
  return Status::OK();
}

bool XattrIsY(int fd, const std::string& name) {
  std::string v;
  bool present = false;
  if (!GetXattrFd(fd, name, &v, &present).ok() || !present) return false;
  return v == "y" || v == "Y";
}

bool HasXattr(int fd, const std::string& name) {
  std::string v;
  bool present = false;
  return GetXattrFd(fd, name, &v, &present).ok() && present;
}

}  // namespace

// A lower directory is opaque by the overlay xattr ("y") or by an AUFS
// marker; the xattr's "x" marks one holding whiteouts kept as xattrs.
DirMarks UnionFs::ReadDirMarks(int dfd, const XattrNames& xn, Status* err) {
  DirMarks m;
  std::string v;
  bool present = false;
  // One listxattr says which marks are there: most lower directories have
  // none (or only a security label), and then no getxattr follows.
  std::string names;
  Status s = ListXattrNamesFd(dfd, &names);
  if (s.ok() && HasXattrName(names, xn.opaque())) {
    s = GetXattrFd(dfd, xn.opaque(), &v, &present);
    if (s.ok() && present) m = OpaqueValueMarks(v);
  }
  if (s.ok() && HasXattrName(names, xn.impure())) {
    s = GetXattrFd(dfd, xn.impure(), &v, &present);
    m.impure = s.ok() && present && v == "y";
  }
  if (err != nullptr) *err = std::move(s);
  struct stat st;
  if (!m.opaque) {
    m.opaque = fstatat(dfd, std::string(kAufsOpaque).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
  }
  return m;
}

DirMarks UnionFs::LowerDirMarks(int layer, int fd, const struct stat& st) {
  if (!layers_->layer(layer).served) return ReadDirMarks(fd, xn_);
  const uint64_t key = layers_->MixIno(layer, st.st_ino);
  {
    std::lock_guard<std::mutex> g(served_opaque_mu_);
    auto it = served_opaque_.find(key);
    if (it != served_opaque_.end()) return it->second;
  }
  const DirMarks marks = ReadDirMarks(fd, xn_);
  std::lock_guard<std::mutex> g(served_opaque_mu_);
  served_opaque_.emplace(key, marks);
  return marks;
}

Status UnionFs::LowerSearchLocked(Node* dir, std::vector<LowerSearch>* out) {
  for (auto& d : dir->lower_dirs) {
    LowerSearch ls;
    ls.layer = d.layer;
    ls.xwhiteouts = d.xwhiteouts;
    ls.impure = d.impure;
    ServedTree* tree = layers_->layer(d.layer).tree;
    if (tree != nullptr && d.tree_ino != 0) {
      ls.tree = tree;
      ls.ino = d.tree_ino;
    } else {
      OVT_RETURN_IF_ERROR(nodes_.FdLocked(dir, &d, &ls.fd));
    }
    out->push_back(std::move(ls));
  }
  return Status::OK();
}

Status UnionFs::ProbeLower(const LowerSearch& d, const std::string& name, int* fd,
                           struct stat* st) {
  if (d.tree == nullptr) return OpenReal(d.fd->get(), name.c_str(), fd, st);
  *fd = -1;
  return d.tree->Lookup(d.ino, name, st);
}

Status UnionFs::LstatLower(const LowerSearch& d, const std::string& name, struct stat* st) {
  if (d.tree != nullptr) return d.tree->Lookup(d.ino, name, st);
  if (fstatat(d.fd->get(), name.c_str(), st, AT_SYMLINK_NOFOLLOW) != 0) return Status::FromErrno();
  return Status::OK();
}

bool UnionFs::LowerAufsWhiteout(const LowerSearch& d, const std::string& name) {
  struct stat st;
  return LstatLower(d, AufsWhiteoutName(name), &st).ok();
}

DirMarks UnionFs::ProbedDirMarks(const LowerSearch& d, int fd, const struct stat& st) {
  if (d.tree == nullptr) return LowerDirMarks(d.layer, fd, st);
  DirMarks m;
  std::vector<std::optional<std::string>> v;  // one read of the node for both marks
  if (d.tree->GetXattrs(st.st_ino, {xn_.opaque(), xn_.impure()}, &v).ok()) {
    if (v[0]) m = OpaqueValueMarks(*v[0]);
    m.impure = v[1] == "y";
  }
  struct stat ost;
  if (!m.opaque) m.opaque = d.tree->Lookup(st.st_ino, std::string(kAufsOpaque), &ost).ok();
  return m;
}

bool UnionFs::LowerXattrWhiteout(const LowerSearch& d, const std::string& name, int fd,
                                 const struct stat& st) {
  if (!d.xwhiteouts || !S_ISREG(st.st_mode) || st.st_size != 0) return false;
  if (d.tree != nullptr) {
    std::string v;
    bool present = false;
    return d.tree->GetXattr(st.st_ino, xn_.whiteout(), &v, &present).ok() && present;
  }
  if (fd >= 0) return HasXattr(fd, xn_.whiteout());
  int own = openat(d.fd->get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (own < 0) return false;
  const bool is = HasXattr(own, xn_.whiteout());
  close(own);
  return is;
}

Status UnionFs::ParentUpperFd(Node* parent, FdPtr* out) {
  std::lock_guard<std::mutex> g(parent->mu);
  if (!parent->upper.valid()) return Status::Errno(ENOENT);
  return nodes_.FdLocked(parent, &parent->upper, out);
}

Status UnionFs::LookupReal(Node* parent, std::string_view name_sv, LookupResult* r) {
  const std::string name(name_sv);
  // Snapshot what we need of the parent.
  FdPtr pupper;
  std::vector<LowerSearch> pdirs;
  bool pimpure;
  std::string ppath;
  {
    std::lock_guard<std::mutex> g(parent->mu);
    if (parent->upper.valid())
      OVT_RETURN_IF_ERROR(nodes_.FdLocked(parent, &parent->upper, &pupper));
    OVT_RETURN_IF_ERROR(LowerSearchLocked(parent, &pdirs));
    pimpure = parent->impure;
    ppath = parent->lower_path;
  }
  // fd -1: an object a tree found (ino: its inode there), reopened from
  // its handle when an fd is wanted.
  auto make_ref = [&](int layer, int fd, RealRef* ref, uint64_t ino = 0) -> Status {
    ref->layer = layer;
    if (fd < 0) {
      ref->tree_ino = ino;
      ref->handle = layers_->layer(layer).tree->Handle(ino);
      return Status::OK();
    }
    ref->fd = std::make_shared<const class Fd>(fd);
    // Upper objects need their handle now: an upper inode number can be
    // reused after an unlink, and the handle (with its generation) is what
    // tells a new object from a stale node. Lower ones get it at eviction.
    if (layers_->layer(layer).upper && layers_->layer(layer).handles)
      OVT_RETURN_IF_ERROR(GetHandle(fd, "", &ref->handle));
    return Status::OK();
  };

  // 1. The upper layer.
  bool search_lowers = true;
  bool want_dirs_only = false;
  std::string sname = name;
  if (pupper) {
    // Where whiteouts are ".wh.NAME" files (LayerSet::whiteout_files),
    // those names are the union's, never shown, and an absent name may be
    // whited out beside it.
    const bool files = layers_->whiteout_files();
    if (files && IsAufsMarker(name)) return Status::OK();  // not found
    int fd;
    Status s = OpenReal(pupper->get(), name.c_str(), &fd, &r->upper_st);
    if (!s.ok() && s.err() != ENOENT) return s;
    struct stat wst;
    if (!s.ok() && files &&
        fstatat(pupper->get(), AufsWhiteoutName(name).c_str(), &wst, AT_SYMLINK_NOFOLLOW) == 0)
      return Status::OK();  // not found
    if (s.ok()) {
      if (IsWhiteoutStat(r->upper_st)) {
        close(fd);
        return Status::OK();  // not found
      }
      OVT_RETURN_IF_ERROR(make_ref(0, fd, &r->upper));
      r->found = true;
      r->type = r->upper_st.st_mode & S_IFMT;
      r->st = r->upper_st;
      std::string v;
      bool present = false;
      if (S_ISDIR(r->type)) {
        r->opaque = XattrIsY(fd, xn_.opaque());
        r->impure = XattrIsY(fd, xn_.impure());
        OVT_RETURN_IF_ERROR(GetXattrFd(fd, xn_.redirect(), &r->redirect, &present));
        if (!present) r->redirect.clear();
        want_dirs_only = true;
        if (r->opaque) search_lowers = false;
      } else {
        search_lowers = false;
      }
      // Only copied-up objects carry an origin, and overlayfs marks their
      // parent impure: other upper files need no xattr reads here.
      if (pimpure || S_ISDIR(r->type)) {
        OVT_RETURN_IF_ERROR(GetXattrFd(fd, xn_.origin(), &v, &present));
        if (present && v.size() == sizeof(uint64_t)) {
          std::memcpy(&r->origin, v.data(), sizeof(uint64_t));
          r->has_origin = true;
        }
        if (S_ISREG(r->type) && r->has_origin) {
          OVT_RETURN_IF_ERROR(GetXattrFd(fd, xn_.nlink(), &v, &present));
          r->indexed = present;
        }
        if (S_ISREG(r->type)) {
          OVT_RETURN_IF_ERROR(GetXattrFd(fd, xn_.metacopy(), &v, &present));
          r->metacopy = present;
          if (r->metacopy) {
            OVT_RETURN_IF_ERROR(GetXattrFd(fd, xn_.redirect(), &r->redirect, &present));
            if (!present) r->redirect.clear();
            search_lowers = true;
          }
        }
      }
    }
  }

  // 2. The lower layers.
  std::vector<LowerSearch> search = std::move(pdirs);
  if (r->upper.valid() && (S_ISDIR(r->type) || r->metacopy) && !r->redirect.empty()) {
    Status s = CheckRedirect(r->redirect);
    if (!s.ok()) {
      ReportBadRedirect(name, r->redirect, s);
      return s;
    }
  }
  if (!r->redirect.empty()) {
    if (r->redirect[0] == '/') {
      // Absolute redirect: the lower objects live at that path of each
      // lower layer, wherever the parent's lower dirs are.
      if (S_ISDIR(r->type)) {
        OVT_RETURN_IF_ERROR(ResolveLowerDirs(r->redirect, /*above=*/0, &r->lower_dirs));
      } else {
        Status s = FindLowerByPath(r->redirect, /*above=*/0, &r->lower, &r->lower_st);
        if (!s.ok() && s.err() != ENOENT) return s;
      }
      // Where the lower part lives, for the redirect a later rename writes
      // (a metadata-only copy renamed twice must still find its data).
      r->lower_path = r->redirect;
      search_lowers = false;
    } else {
      sname = r->redirect;  // relative: a sibling name in the parent
    }
  }
  if (r->lower_path.empty()) r->lower_path = (ppath == "/" ? "" : ppath) + "/" + sname;

  if (search_lowers && !IsAufsMarker(sname)) {
    auto drop = [](int fd) {
      if (fd >= 0) close(fd);
    };
    for (const LowerSearch& d : search) {
      const int layer = d.layer;
      int fd;
      struct stat st;
      Status s = ProbeLower(d, sname, &fd, &st);
      if (!s.ok()) {
        if (s.err() != ENOENT && s.err() != ENOTDIR) return s;
        if (LowerAufsWhiteout(d, sname)) break;  // AUFS whiteout: hidden from here down
        continue;
      }
      if (IsWhiteoutStat(st) || LowerXattrWhiteout(d, sname, fd, st)) {
        drop(fd);
        break;
      }
      // Looking for the data of a metadata-only copy (upper or lower)?
      const bool seeking = r->metacopy || r->lower_meta.valid();
      if (seeking && !S_ISREG(st.st_mode)) {
        drop(fd);
        break;
      }
      if (!S_ISDIR(st.st_mode)) {
        if (want_dirs_only) {  // a non-directory below a directory ends the merge
          drop(fd);
          break;
        }
        // A metadata-only copy in a lower layer (an upper layer reused as
        // a lower one): the first one found gives the file's metadata, and
        // the search goes on below for its data, as the kernel overlayfs
        // does with metacopy=on. Copy-ups mark their directory impure, so
        // only there (and when following one) is the mark read.
        LowerMeta meta;
        if (S_ISREG(st.st_mode) && (seeking || d.impure))
          OVT_RETURN_IF_ERROR(ReadLowerMeta(d, fd, st, &meta));
        if (meta.metacopy) {
          if (!r->found) {
            OVT_RETURN_IF_ERROR(make_ref(layer, fd, &r->lower_meta, st.st_ino));
            r->found = true;
            r->type = S_IFREG;
            r->st = st;
          } else {
            drop(fd);
          }
          if (meta.redirect.empty()) continue;  // the same name, further down
          Status rs = CheckRedirect(meta.redirect);
          if (!rs.ok()) {
            ReportBadRedirect(name, meta.redirect, rs);
            return rs;
          }
          if (meta.redirect[0] != '/') {
            sname = meta.redirect;  // a sibling name, further down
            continue;
          }
          Status fs = FindLowerByPath(meta.redirect, layer, &r->lower, &r->lower_st);
          if (!fs.ok() && fs.err() != ENOENT) return fs;
          break;
        }
        OVT_RETURN_IF_ERROR(make_ref(layer, fd, &r->lower, st.st_ino));
        r->lower_st = st;
        if (!r->found) {
          r->found = true;
          r->type = st.st_mode & S_IFMT;
          r->st = st;
        }
        break;
      }
      // A directory: merge it.
      const DirMarks marks = ProbedDirMarks(d, fd, st);
      // Renamed within its layer (an upper layer reused as a lower one:
      // renames put the directory in an impure parent)? Then the layers
      // below hold it under the path its redirect names.
      std::string redirect;
      if (d.impure && !marks.opaque) {
        bool present = false;
        if (d.tree != nullptr) {
          OVT_RETURN_IF_ERROR(d.tree->GetXattr(st.st_ino, xn_.redirect(), &redirect, &present));
        } else {
          OVT_RETURN_IF_ERROR(GetXattrFd(fd, xn_.redirect(), &redirect, &present));
        }
        if (!present) redirect.clear();
        if (!redirect.empty()) {
          Status rs = CheckRedirect(redirect);
          if (!rs.ok()) {
            drop(fd);
            ReportBadRedirect(name, redirect, rs);
            return rs;
          }
        }
      }
      RealRef ref;
      OVT_RETURN_IF_ERROR(make_ref(layer, fd, &ref, st.st_ino));
      ref.xwhiteouts = marks.xwhiteouts;
      ref.impure = marks.impure;
      if (!r->found) {
        r->found = true;
        r->type = S_IFDIR;
        r->st = st;
        r->lower_st = st;
      }
      r->lower_dirs.push_back(std::move(ref));
      want_dirs_only = true;
      if (marks.opaque) break;
      if (!redirect.empty() && redirect[0] == '/') {
        OVT_RETURN_IF_ERROR(ResolveLowerDirs(redirect, layer, &r->lower_dirs));
        break;
      }
      if (!redirect.empty()) sname = redirect;  // a sibling name, further down
    }
  }
  if (!r->found) return Status::OK();
  if ((r->upper.valid() && r->metacopy && !r->lower.valid()) ||
      (r->lower_meta.valid() && !r->lower.valid())) {
    // A metadata-only copy whose data no lower layer holds any more (a
    // lower layer changed under the upper one): its upper file is a hole
    // of the file's size, which must not be read as the user's data. The
    // kernel fails the lookup the same way.
    ReportLostMetacopy(name);
    return Status::Errno(EIO);
  }

  // Hard links of a lower file: if one of its names was copied up, every
  // name shows that copy (the index entry), so identity and content agree.
  if (!r->upper.valid() && !r->lower_meta.valid() && S_ISREG(r->type) && r->lower_st.st_nlink > 1 &&
      layers_->has_upper()) {
    uint64_t key = layers_->MixIno(r->lower.layer, r->lower_st.st_ino);
    char iname[32];
    std::snprintf(iname, sizeof(iname), "%016llx", static_cast<unsigned long long>(key));
    int fd;
    struct stat st;
    if (OpenReal(layers_->index_fd(), iname, &fd, &st).ok()) {
      OVT_RETURN_IF_ERROR(make_ref(0, fd, &r->upper));
      r->upper_st = st;
      r->st = st;
      r->has_origin = true;
      r->origin = key;
      r->indexed = true;
      std::string v;
      bool present = false;
      OVT_RETURN_IF_ERROR(GetXattrFd(fd, xn_.metacopy(), &v, &present));
      r->metacopy = present;  // the data is then still r->lower's
    }
  }
  return Status::OK();
}

Status UnionFs::ResolveLowerDirs(const std::string& abs_path, int above,
                                 std::vector<RealRef>* dirs) {
  // Walks the path component by component from each lower layer's root
  // (openat + O_NOFOLLOW, no "." or "..": a redirect can never leave a
  // layer).
  std::vector<std::string> comps;
  for (size_t i = 0; i < abs_path.size();) {
    size_t j = abs_path.find('/', i);
    if (j == std::string::npos) j = abs_path.size();
    if (j > i) comps.emplace_back(abs_path.substr(i, j - i));
    i = j + 1;
  }
  for (int l = std::max(layers_->first_lower(), above + 1); l < layers_->size(); ++l) {
    int cur = openat(layers_->layer(l).root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cur < 0) return Status::FromErrno("open lower root");
    bool stop = false, ok = true;
    // Whether cur holds whiteouts kept as xattrs (read only when the path
    // goes on below it).
    bool cur_x = !comps.empty() && ReadDirMarks(cur, xn_).xwhiteouts;
    for (size_t ci = 0; ci < comps.size(); ++ci) {
      const std::string& c = comps[ci];
      int fd;
      struct stat st;
      if (IsDotName(c)) {  // never out of the layer (CheckRedirect refused it already)
        close(cur);
        return Status::Errno(EACCES);
      }
      Status s = OpenReal(cur, c.c_str(), &fd, &st);
      if (!s.ok()) {
        struct stat wst;
        if (fstatat(cur, AufsWhiteoutName(c).c_str(), &wst, AT_SYMLINK_NOFOLLOW) == 0) stop = true;
        ok = false;
        break;
      }
      const bool xwhiteout =
          cur_x && S_ISREG(st.st_mode) && st.st_size == 0 && HasXattr(fd, xn_.whiteout());
      close(cur);
      cur = fd;
      if (IsWhiteoutStat(st) || xwhiteout) stop = true;
      if (!S_ISDIR(st.st_mode)) {
        ok = false;
        break;
      }
      if (ci + 1 < comps.size()) cur_x = ReadDirMarks(cur, xn_).xwhiteouts;
    }
    if (ok) {
      struct stat cst;
      // Only a served layer's answer is remembered (by inode): no fstat
      // for the others.
      const DirMarks marks = layers_->layer(l).served && fstat(cur, &cst) == 0
                                 ? LowerDirMarks(l, cur, cst)
                                 : ReadDirMarks(cur, xn_);
      // A directory renamed within this layer (an upper layer reused as a
      // lower one) is found below under the path its redirect names.
      std::string redirect;
      bool present = false;
      OVT_RETURN_IF_ERROR(GetXattrFd(cur, xn_.redirect(), &redirect, &present));
      RealRef ref;
      ref.layer = l;
      ref.fd = std::make_shared<const class Fd>(cur);
      ref.xwhiteouts = marks.xwhiteouts;
      ref.impure = marks.impure;
      if (layers_->layer(l).tree != nullptr && fstat(cur, &cst) == 0) ref.tree_ino = cst.st_ino;
      dirs->push_back(std::move(ref));
      if (marks.opaque) break;
      if (present && !redirect.empty()) {
        OVT_RETURN_IF_ERROR(CheckRedirect(redirect));
        if (redirect[0] != '/') {
          if (!comps.empty()) comps.back() = redirect;  // a sibling, further down
        } else {
          return ResolveLowerDirs(redirect, l, dirs);
        }
      }
    } else {
      close(cur);
    }
    if (stop) break;
  }
  return Status::OK();
}

Status UnionFs::FindLowerByPath(const std::string& abs_path, int above, RealRef* out,
                                struct stat* st) {
  size_t slash = abs_path.rfind('/');
  std::string dir = abs_path.substr(0, slash), base = abs_path.substr(slash + 1);
  std::vector<RealRef> dirs;
  OVT_RETURN_IF_ERROR(ResolveLowerDirs(dir.empty() ? "/" : dir, above, &dirs));
  for (auto& d : dirs) {
    int fd;
    if (!OpenReal(d.fd->get(), base.c_str(), &fd, st).ok()) continue;
    if (!S_ISREG(st->st_mode)) {
      close(fd);
      break;
    }
    // Another metadata-only copy (a lower layer that was an upper one):
    // its data is further down, where its own redirect or name says.
    LowerSearch ls;
    ls.layer = d.layer;
    ls.fd = d.fd;
    LowerMeta meta;
    Status ms = ReadLowerMeta(ls, fd, *st, &meta);
    if (!ms.ok() || !meta.metacopy) {
      if (!ms.ok()) {
        close(fd);
        return ms;
      }
      out->layer = d.layer;
      out->fd = std::make_shared<const class Fd>(fd);
      return Status::OK();
    }
    close(fd);
    if (meta.redirect.empty()) continue;
    OVT_RETURN_IF_ERROR(CheckRedirect(meta.redirect));
    if (meta.redirect[0] == '/') return FindLowerByPath(meta.redirect, d.layer, out, st);
    base = meta.redirect;
  }
  return Status::Errno(ENOENT);
}

Status UnionFs::ReadLowerMeta(const LowerSearch& d, int fd, const struct stat& st, LowerMeta* out) {
  std::string v;
  bool present = false;
  if (d.tree != nullptr) {
    std::vector<std::optional<std::string>> vals;  // one read of the node
    OVT_RETURN_IF_ERROR(d.tree->GetXattrs(st.st_ino, {xn_.metacopy(), xn_.redirect()}, &vals));
    out->metacopy = vals[0].has_value();
    present = vals[1].has_value();
    if (present) v = std::move(*vals[1]);
  } else {
    OVT_RETURN_IF_ERROR(GetXattrFd(fd, xn_.metacopy(), &v, &present));
    out->metacopy = present;
    if (present) OVT_RETURN_IF_ERROR(GetXattrFd(fd, xn_.redirect(), &v, &present));
  }
  if (out->metacopy && present) out->redirect = std::move(v);
  return Status::OK();
}

Status UnionFs::NodeFromResult(LookupResult* r, std::unique_ptr<Node>* out) {
  uint64_t key;
  if (r->has_origin) {
    key = r->origin;
  } else if (r->upper.valid()) {
    key = layers_->MixIno(0, r->upper_st.st_ino);
  } else if (!r->lower_dirs.empty()) {
    key = layers_->MixIno(r->lower_dirs[0].layer, r->lower_st.st_ino);
  } else if (r->lower_meta.valid()) {
    // The metadata-only copy's number, which readdir shows for its name.
    key = layers_->MixIno(r->lower_meta.layer, r->st.st_ino);
  } else {
    key = layers_->MixIno(r->lower.layer, r->lower_st.st_ino);
  }
  auto n = std::make_unique<Node>(key, r->type);
  n->upper = std::move(r->upper);
  n->lower = std::move(r->lower);
  n->lower_meta = std::move(r->lower_meta);
  n->lower_dirs = std::move(r->lower_dirs);
  n->lower_path = std::move(r->lower_path);
  n->opaque = r->opaque;
  n->impure = r->impure;
  n->metacopy = r->metacopy;
  n->indexed = r->indexed;
  n->has_origin = r->has_origin;
  *out = std::move(n);
  return Status::OK();
}

Status UnionFs::Lookup(const Ctx&, Node* parent, std::string_view name, Entry* out) {
  if (name.size() > NAME_MAX) return Status::Errno(ENAMETOOLONG);
  if (!parent->is_dir()) return Status::Errno(ENOTDIR);
  if (name == "..") {
    Node* p;
    std::string n;
    if (!nodes_.GetAlias(parent, &p, &n)) p = root();
    // The kernel only asks for ".." when reconnecting; answer with the alias.
    p->nlookup.fetch_add(1);
    out->node = p;
    return StatNode(p, &out->attr);
  }
  prefetch_.Noted(parent, [&] { return PrefetchDirs(parent); });
  LookupResult r;
  OVT_RETURN_IF_ERROR(LookupReal(parent, name, &r));
  if (!r.found) return Status::Errno(ENOENT);
  // A plain file, link or special: the stat LookupReal made is the answer
  // (one fstat less per lookup). Directories (merged link counts),
  // metadata-only copies (the lower's blocks) and indexed hard links
  // (their link count) take StatNode's rules.
  bool plain = !S_ISDIR(r.type) && !r.metacopy && !r.indexed;
  const bool found_upper = r.upper.valid();
  const int found_layer = found_upper ? r.upper.layer : r.lower.layer;
  const struct stat found_st = r.st;
  std::unique_ptr<Node> fresh;
  OVT_RETURN_IF_ERROR(NodeFromResult(&r, &fresh));
  Node* node = nodes_.Intern(std::move(fresh), parent, std::string(name));
  out->node = node;
  if (plain && !found_upper) {
    // Copied up since LookupReal looked (Intern returned that node): the
    // stat of the lower object is not the answer any more.
    std::lock_guard<std::mutex> g(node->mu);
    plain = !node->upper.valid();
  }
  Status s = Status::OK();
  if (plain) {
    out->attr = found_st;
    FixupAttr(node, found_layer, &out->attr);
  } else {
    s = StatNode(node, &out->attr);
  }
  if (!s.ok()) {
    nodes_.Forget(node, 1);
    return s;
  }
  nodes_.MaybeEvict();
  return Status::OK();
}

std::vector<int> UnionFs::PrefetchDirs(Node* dir) {
  std::vector<int> fds;
  std::vector<LowerSearch> lowers;
  FdPtr upper;
  {
    std::lock_guard<std::mutex> g(dir->mu);
    if (dir->upper.valid() && !nodes_.FdLocked(dir, &dir->upper, &upper).ok()) upper.reset();
    if (!LowerSearchLocked(dir, &lowers).ok()) lowers.clear();
  }
  // Descriptions of their own: the cached descriptors' offsets stay put.
  auto reopen = [&](const FdPtr& f) {
    if (!f) return;
    int fd = openat(f->get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) fds.push_back(fd);
  };
  reopen(upper);
  for (const LowerSearch& d : lowers) {
    if (d.tree == nullptr) reopen(d.fd);  // an image's tree answers from memory
  }
  return fds;
}

Status UnionFs::LowerHasName(Node* parent, std::string_view name_sv, bool* has) {
  *has = false;
  std::vector<LowerSearch> dirs;
  {
    std::lock_guard<std::mutex> g(parent->mu);
    OVT_RETURN_IF_ERROR(LowerSearchLocked(parent, &dirs));
  }
  const std::string name(name_sv);
  if (IsAufsMarker(name)) return Status::OK();
  for (const LowerSearch& d : dirs) {
    struct stat st;
    Status s = LstatLower(d, name, &st);
    if (s.ok()) {
      *has = !IsWhiteoutStat(st) && !LowerXattrWhiteout(d, name, -1, st);
      return Status::OK();
    }
    if (s.err() != ENOENT) return Status::Errno(s.err(), "lookup in lower layer");
    if (LowerAufsWhiteout(d, name)) return Status::OK();
  }
  return Status::OK();
}

}  // namespace overtier
