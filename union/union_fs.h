// UnionFs: the merged view of the layers, as operations on Nodes.
//
// This is the whole surface the transport (src/fuse_*.cc) sees. It knows
// nothing of FUSE: requests arrive as calls with a caller context, answers
// leave as Status (an errno) plus out-parameters. The implementation is
// split by concern, like Linux fs/overlayfs/:
//   namei.cc    lookup: fall-through, whiteouts, opaque dirs, redirects
//   copy_up.cc  copy-up of a lower object (metadata only or with data)
//   dir.cc      create, mkdir, mknod, symlink, link, unlink, rmdir, rename
//   readdir.cc  merged directory listings
//   attr.cc     getattr, setattr, readlink, statfs
//   file.cc     open, read/write targets, fsync, fallocate, lseek
//   xattrs.cc   extended attributes (internal names hidden and protected)
#ifndef OVERTIER_UNION_UNION_FS_H_
#define OVERTIER_UNION_UNION_FS_H_

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "overtier/status.h"
#include "union/dir_prefetch.h"
#include "union/inode.h"
#include "union/layer.h"
#include "union/overlay_format.h"
#include "union/params.h"

namespace overtier {

// Who is asking (ids as seen through the mount).
struct Ctx {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
  // The caller's umask, for the objects it creates: applied unless the
  // parent directory has a default ACL (with FUSE_POSIX_ACL the kernel
  // leaves that to the file system; without it, it has masked the mode
  // already and masking again changes nothing).
  mode_t umask = 0;
};

struct Entry {
  Node* node = nullptr;  // with one lookup counted for the caller
  struct stat attr {};
};

// The migration tier's per-file state (src/migration.h); the union only
// carries it for the transport.
struct MigFile;

// An open file: the real fd and what it was opened on.
struct OpenFile {
  Node* node = nullptr;
  std::atomic<int> fd{-1};         // owned
  std::atomic<bool> upper{false};  // fd is on the upper layer
  bool writable = false;
  uint32_t data_gen = 0;     // node->data_gen when fd was opened
  std::mutex mu;             // guards moving a lower fd to the upper file
  std::vector<int> retired;  // fds replaced while requests may still use them
  // Set by the transport on upper regular files of a mount with a store
  // (null otherwise): the file's migration state.
  std::shared_ptr<MigFile> mig;
  // A read-only open of a lower file whose data a copy-up moved to the
  // upper layer (ReadFd follows it): the upper file's migration state,
  // attached once (under mu) when the transport first sees the move; a
  // lazy copy-up leaves the upper file released.
  std::atomic<bool> followed{false};
  std::shared_ptr<MigFile> followed_mig;
  // Set by the transport once the open is answered (src/fuse_passthrough.h):
  // whether it is counted there, and as a passthrough open.
  bool io_counted = false;
  bool passthrough = false;
  bool direct_io = false;  // answered with FOPEN_DIRECT_IO
  // A read-only open of the lower file, counted in node->lower_opens.
  bool counts_lower_open = false;
  ~OpenFile();
};

// A merged directory listing, made once per opendir (and again on rewind):
// offsets are indexes into it, so telldir/seekdir stay valid across the
// whole listing however the layers interleave.
struct DirEntry {
  std::string name;
  uint64_t ino;
  mode_t type;  // S_IFMT bits
};
struct OpenDir {
  Node* node = nullptr;
  std::vector<DirEntry> entries;
  bool loaded = false;
  // Every entry can be looked up without a system call: no upper
  // directory, and every lower one is answered by its layer's ServedTree.
  bool lookups_in_process = false;
  // The transport's: this listing's entries go out with attributes.
  bool with_attrs = false;
};

// Attribute changes (FUSE's SETATTR bits, named here).
struct SetAttrRequest {
  bool mode = false, uid = false, gid = false, size = false;
  bool atime = false, mtime = false, atime_now = false, mtime_now = false;
  bool ctime = false;
  // The caller (without CAP_FSETID) truncates: set-user-ID and
  // set-group-ID go as for a write (FATTR_KILL_SUIDGID).
  bool kill_suidgid = false;
  struct stat values {};
};

class UnionFs {
 public:
  static Status Create(const MountOptions& opts, std::unique_ptr<UnionFs>* out);
  ~UnionFs();

  Node* root() const { return nodes_.root(); }
  const MountOptions& options() const { return opts_; }
  bool read_only() const { return read_only_; }
  // Whiteouts in the upper are ".wh.NAME" files (LayerSet::whiteout_files).
  bool whiteout_files() const { return layers_->whiteout_files(); }
  // Whether the upper file system gives file handles (name_to_handle_at),
  // by which the migration tier keys its records.
  bool upper_has_handles() const { return layers_->has_upper() && layers_->upper().handles; }

  // namei.cc
  Status Lookup(const Ctx& ctx, Node* parent, std::string_view name, Entry* out);
  void Forget(Node* node, uint64_t nlookup) { nodes_.Forget(node, nlookup); }

  // attr.cc
  Status GetAttr(Node* node, const OpenFile* of, struct stat* out);
  Status SetAttr(const Ctx& ctx, Node* node, const SetAttrRequest& req, OpenFile* of,
                 struct stat* out);
  // node's upper file's handle as name_to_handle_at(2) gave it (a struct
  // file_handle), taken at lookup or copy-up: false if it has none.
  bool UpperHandle(Node* node, std::string* raw);
  // A write or truncate by the caller: clears the set-user-ID and
  // set-group-ID bits of node's upper file as the kernel would for that
  // caller (union/caller.h). *dropped: whether a bit was cleared.
  Status DropSuidSgid(const Ctx& ctx, Node* node, bool* dropped);
  Status ReadLink(Node* node, std::string* target);
  Status StatFs(struct statvfs* out);
  // chattr(1)'s inode flags: FS_IOC_GETFLAGS or FS_IOC_FSGETXATTR read the
  // real object's (the upper one, else the top-most lower one; 0 for an
  // object of a served image tree, which keeps none), FS_IOC_SETFLAGS or
  // FS_IOC_FSSETXATTR copy the object up (metadata only) and set them on
  // the upper one, whose file system then enforces them (immutable,
  // append-only) on the daemon's writes too. arg: the ioctl's argument
  // (an int, or a struct fsxattr). The VFS has checked ownership and
  // CAP_LINUX_IMMUTABLE before the request arrives.
  Status FileAttrIoctl(Node* node, unsigned cmd, void* arg);

  // dir.cc
  Status Mknod(const Ctx& ctx, Node* parent, std::string_view name, mode_t mode, dev_t rdev,
               Entry* out);
  Status Mkdir(const Ctx& ctx, Node* parent, std::string_view name, mode_t mode, Entry* out);
  Status Symlink(const Ctx& ctx, Node* parent, std::string_view name, const char* target,
                 Entry* out);
  Status Link(const Ctx& ctx, Node* node, Node* newparent, std::string_view newname, Entry* out);
  Status Unlink(const Ctx& ctx, Node* parent, std::string_view name);
  Status Rmdir(const Ctx& ctx, Node* parent, std::string_view name);
  Status Rename(const Ctx& ctx, Node* parent, std::string_view name, Node* newparent,
                std::string_view newname, unsigned flags);

  // file.cc
  Status Open(const Ctx& ctx, Node* node, int flags, std::unique_ptr<OpenFile>* out);
  // True when opening node for writing would copy its data up first (the
  // transport runs such opens off its request loop).
  bool WriteOpenCopiesData(Node* node);
  // The copy-up an open for writing does (data included; lazy for an image
  // file when a LazyCopyUpHook is set).
  Status CopyUpForWrite(Node* node);
  Status CreateFile(const Ctx& ctx, Node* parent, std::string_view name, mode_t mode, int flags,
                    Entry* entry, std::unique_ptr<OpenFile>* out);
  // open(2) with O_TMPFILE in the directory parent: a file without a name
  // (nlink 0) in its upper directory, which linkat can name later unless
  // flags has O_EXCL (dir.cc).
  Status CreateTmpFile(const Ctx& ctx, Node* parent, mode_t mode, int flags, Entry* entry,
                       std::unique_ptr<OpenFile>* out);
  // The fd to read from: a read-only open of a lower file follows the data
  // to the upper file once it has been copied up (as overlayfs does).
  int ReadFd(OpenFile* of);
  Status Fsync(OpenFile* of, bool datasync);
  Status Fallocate(OpenFile* of, int mode, off_t offset, off_t length);
  // Opens node's upper file (with its data: not a metadata-only copy) with
  // `flags`, for the migration tier, which acts on upper files only.
  // EINVAL "not in the upper layer" if it has none; *fd is the caller's.
  Status OpenUpperData(Node* node, int flags, int* fd);

  // readdir.cc
  Status OpenDirectory(Node* node, std::unique_ptr<OpenDir>* out);
  // Fills od->entries if not yet (or again when offset is 0).
  Status LoadDirectory(OpenDir* od, bool reload);
  Status FsyncDir(Node* node, bool datasync);

  // xattrs.cc
  // Names in "trusted." are for privileged callers only (uid 0), as the
  // kernel shows them only to CAP_SYS_ADMIN.
  Status GetXattr(const Ctx& ctx, Node* node, const char* name, std::string* value);
  Status ListXattr(const Ctx& ctx, Node* node, std::string* names);  // NUL-separated
  Status SetXattr(const Ctx& ctx, Node* node, const char* name, const void* value, size_t size,
                  int flags);
  Status RemoveXattr(const Ctx& ctx, Node* node, const char* name);

  // Called when an object's attributes change without the kernel asking
  // for it (a copy-up renames into the parent directory): the transport
  // drops its cached attributes.
  void SetAttrChangedHook(std::function<void(Node*)> hook) { attr_changed_ = std::move(hook); }

  // Lazy copy-up (the migration tier; set before serving). Called instead
  // of copying the data of a regular file of a served lower layer (an
  // image) into its upper file: `upper_fd` (writable) already has the
  // lower's size and no data; the hook makes the lower's content the upper
  // file's archive and sets *adopted, or leaves *adopted false to have the
  // data copied as usual. An error fails the copy-up (nothing changed).
  // `prepare`, if set, is called as such a copy-up starts, before the
  // metadata copy: the tier may start meanwhile what the hook will need.
  // `committed`, if set, is called with the upper file once an adopted
  // copy-up is complete (its metacopy mark removed).
  using LazyCopyUpHook =
      std::function<Status(int upper_fd, int lower_fd, const std::string& what, bool* adopted)>;
  void SetLazyCopyUpHook(LazyCopyUpHook hook, std::function<void()> prepare = {},
                         std::function<void(int upper_fd)> committed = {}) {
    lazy_copy_up_ = std::move(hook);
    lazy_copy_up_prepare_ = std::move(prepare);
    lazy_copy_up_committed_ = std::move(committed);
  }

  // A regular file whose data is a lower file of a layer the daemon serves
  // (an image): its reads may wait for the store's cold tier.
  bool ServedLower(const Node* node) const;

 private:
  UnionFs(const MountOptions& opts, std::unique_ptr<LayerSet> layers, long fd_budget);

  // --- namei.cc ---
  // What a lookup found in the layers for one name.
  struct LookupResult {
    bool found = false;
    mode_t type = 0;
    struct stat st {};  // of the object that gives the attributes
    RealRef upper;
    struct stat upper_st {};
    RealRef lower;
    struct stat lower_st {};
    RealRef lower_meta;  // Node::lower_meta
    std::vector<RealRef> lower_dirs;
    std::string lower_path;
    bool opaque = false, impure = false, metacopy = false, indexed = false;
    bool has_origin = false;
    uint64_t origin = 0;
    std::string redirect;
  };
  Status LookupReal(Node* parent, std::string_view name, LookupResult* r);
  Status NodeFromResult(LookupResult* r, std::unique_ptr<Node>* out);
  // The lower directories at abs_path in the layers below layer `above`,
  // top-most first, following the redirects of those directories.
  Status ResolveLowerDirs(const std::string& abs_path, int above, std::vector<RealRef>* dirs);
  // The regular file at abs_path in the lower layers below layer `above`
  // (the data of a metadata-only copy: metadata-only copies found there
  // are followed to their own data). ENOENT if none.
  Status FindLowerByPath(const std::string& abs_path, int above, RealRef* out, struct stat* st);
  Status StatNode(Node* node, struct stat* out);
  // Does any lower layer show `name` below parent (for whiteout decisions)?
  Status LowerHasName(Node* parent, std::string_view name, bool* has);
  // Is the merged directory empty (no visible entry in any layer)?
  Status IsEmptyDir(Node* dir, bool* empty);
  Status ParentUpperFd(Node* parent, FdPtr* out);
  // The marks of the lower directory fd (layer, stat st). Remembered for
  // served layers (images): they never change, and each answer there is a
  // getxattr request to the image file system (FUSE does not cache xattrs).
  DirMarks LowerDirMarks(int layer, int fd, const struct stat& st);
  // The marks of the lower directory dfd, read from it. A failed getxattr
  // counts as no xattr mark; err (if given) receives its status, for the
  // mount, which refuses a root it cannot read.
  static DirMarks ReadDirMarks(int dfd, const XattrNames& xn, Status* err = nullptr);
  // A lower directory to search: through its layer's ServedTree (tree set,
  // no fd: nothing is opened) or through its fd.
  struct LowerSearch {
    int layer = -1;
    FdPtr fd;
    ServedTree* tree = nullptr;
    uint64_t ino = 0;         // with tree: the directory's inode in the layer
    bool xwhiteouts = false;  // RealRef::xwhiteouts
    bool impure = false;      // RealRef::impure
  };
  // The lower directories of dir, top-most first (dir->mu held).
  Status LowerSearchLocked(Node* dir, std::vector<LowerSearch>* out);
  // `name` in one lower directory: its stat, and an O_PATH fd (a readable
  // one for a directory) or -1 through a tree. ENOENT/ENOTDIR if absent.
  Status ProbeLower(const LowerSearch& d, const std::string& name, int* fd, struct stat* st);
  // lstat of `name` in one lower directory, through its tree or its fd.
  Status LstatLower(const LowerSearch& d, const std::string& name, struct stat* st);
  // Whether d holds an AUFS whiteout of `name` (".wh.NAME").
  bool LowerAufsWhiteout(const LowerSearch& d, const std::string& name);
  // The marks of the lower directory just found in d (its fd, or -1, and
  // stat).
  DirMarks ProbedDirMarks(const LowerSearch& d, int fd, const struct stat& st);
  // Whether a regular file of a lower layer is a metadata-only copy, and
  // where its data is (its redirect: "" for the same name further down).
  struct LowerMeta {
    bool metacopy = false;
    std::string redirect;
  };
  // Reads them from the file found in d (its O_PATH fd, or through d's
  // tree; stat st).
  Status ReadLowerMeta(const LowerSearch& d, int fd, const struct stat& st, LowerMeta* out);
  // Whether the entry of d found with stat `st` (and its O_PATH fd, or -1
  // to open `name`) is a whiteout kept as an xattr: only in a directory
  // marked for them, only a zero-size regular file.
  bool LowerXattrWhiteout(const LowerSearch& d, const std::string& name, int fd,
                          const struct stat& st);

  // --- copy_up.cc ---
 public:
  // Makes sure node exists in the upper layer. with_data: the data too
  // (else a regular file may be copied as metadata only).
  Status CopyUp(Node* node, bool with_data);

 private:
  Status CopyUpLocked(Node* node, Node* parent, const std::string& name, bool with_data);
  Status CopyUpData(Node* node);
  // Whether a data copy-up of node goes through lazy_copy_up_.
  bool LazyCandidate(const Node* node) const;
  Status CopyUpNew(Node* node, Node* parent, const std::string& name, bool with_data);
  Status SetImpure(Node* dir);
  // Gives parent/name an upper link to the indexed copy of a lower hard
  // link (node->mu held); a no-op if the name has one.
  Status LinkFromIndexLocked(Node* node, Node* parent, const std::string& name, bool* linked);
  // The link count the union shows for an indexed file with upper count n.
  Status IndexedNlink(int fd, nlink_t* n);

  // --- xattrs.cc ---
  const char* RealXattrName(const char* shown, bool allowed, std::string* buf) const;

  // --- dir.cc ---
  // Makes dirfd/name, its mode masked with `umask` (what CreateObject
  // decided: the caller's, or 0 where a default ACL is inherited).
  using MakeFn = std::function<Status(int dirfd, const char* name, mode_t umask)>;
  Status CreateObject(const Ctx& ctx, Node* parent, std::string_view name, mode_t type,
                      const MakeFn& make, Entry* out);
  Status MakeWhiteout(Node* parent, const std::string& name, bool upper_exists, bool is_dir);
  Status RemoveObject(const Ctx& ctx, Node* parent, std::string_view name, bool dir);

  // --- attr.cc ---
  // What the mount shows of a stat of node's object in `layer`: the
  // node's inode number, and the ids through uidmapping=/gidmapping=
  // unless the layer shows mount ids already (Layer::idmapped).
  void FixupAttr(Node* node, int layer, struct stat* st);
  void NotifyAttrChanged(Node* node) {
    if (attr_changed_) attr_changed_(node);
  }

  MountOptions opts_;
  std::unique_ptr<LayerSet> layers_;
  NodeTable nodes_;
  // Stats a directory's real entries ahead of a run of lookups in it
  // (dir_prefetch.h); its thread stops before nodes_ and the layers go.
  DirPrefetcher prefetch_;
  // Fresh descriptors of dir's real directories, for prefetch_.
  std::vector<int> PrefetchDirs(Node* dir);
  XattrNames xn_;
  bool read_only_;
  bool sync_;  // fsync copy-ups and honour fsync (off with volatile)
  std::function<void(Node*)> attr_changed_;
  LazyCopyUpHook lazy_copy_up_;
  std::function<void()> lazy_copy_up_prepare_;
  std::function<void(int upper_fd)> lazy_copy_up_committed_;
  std::mutex served_opaque_mu_;
  std::unordered_map<uint64_t, DirMarks> served_opaque_;  // MixIno(layer, ino) -> marks

  friend class CredScope;
};

// Runs the enclosed creation syscalls with the caller's fsuid/fsgid so new
// objects get the right owner and group (including set-group-ID directory
// inheritance) from the file system itself, as overlayfs does.
class CredScope {
 public:
  CredScope(const UnionFs& fs, const Ctx& ctx);
  ~CredScope();

 private:
  bool active_ = false;
};

}  // namespace overtier

#endif  // OVERTIER_UNION_UNION_FS_H_
