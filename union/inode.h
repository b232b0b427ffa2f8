// Union inodes: one Node per object of the merged view, its references to
// the real objects in the layers, and the table that hands them to the
// transport (the FUSE node id is the Node's address).
//
// A Node holds no path. It holds, per real object, the layer, a file handle
// (name_to_handle_at) and a cached fd. The fds live in a bounded LRU: the
// kernel may keep hundreds of thousands of inodes referenced, while the
// process may hold only 20000 fds (see shared/PERF-NOTES.md), so an
// evicted fd is reopened from its handle on next use.
#ifndef OVERTIER_UNION_INODE_H_
#define OVERTIER_UNION_INODE_H_

#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "overtier/status.h"
#include "union/layer.h"

namespace overtier {

struct MigFile;  // src/migration.h: the transport's, held here only

// One real object in one layer.
struct RealRef {
  int layer = -1;      // LayerSet index; -1 = none
  std::string handle;  // file handle; empty when the fs has none (fd pinned)
  FdPtr fd;            // cached fd; null when evicted
  // In a layer with a ServedTree: the object's inode there, through which
  // the tree answers (0: reach the object through its fd).
  uint64_t tree_ino = 0;
  // A lower directory whose opaque xattr is "x": its empty regular files
  // may be whiteouts kept as xattrs (XattrNames::whiteout).
  bool xwhiteouts = false;
  // A lower directory marked impure: its regular files may be
  // metadata-only copies (overlay xattr "metacopy") whose data lies below.
  bool impure = false;
  bool valid() const { return layer >= 0; }
};

class Node {
 public:
  Node(uint64_t key, mode_t type) : key(key), type(type & S_IFMT) {}

  const uint64_t key;  // stable inode number (st_ino) and table key
  const mode_t type;   // S_IFMT bits; never change for a node
  std::atomic<uint64_t> nlookup{0};
  // Bumped whenever the upper file becomes the one holding the data (a
  // copy-up with data): read-only opens of the lower file then move over.
  std::atomic<uint32_t> data_gen{0};
  // dir: a child was looked up since the last listing chunk was sent (the
  // FUSE client's "advise readdirplus" signal, kept by the transport).
  std::atomic<bool> advise_rdplus{false};

  bool is_dir() const { return S_ISDIR(type); }
  bool is_reg() const { return S_ISREG(type); }

  // Everything below is guarded by mu. A thread holding a node's mu may lock
  // its parent's mu only if it did not take them in the other order:
  // copy-up locks child then parent (walking up), so nothing locks parent
  // then child while holding both.
  std::mutex mu;
  RealRef upper;  // the object in the upper layer, if any
  RealRef lower;  // non-dir: the lower object (data source)
  // reg: a metadata-only copy in a lower layer (an upper layer reused as a
  // lower one) whose metadata the file shows; its data is `lower`.
  RealRef lower_meta;
  std::vector<RealRef> lower_dirs;  // dir: merged lower dirs, top-most first
  std::string lower_path;           // dir: absolute path of the lower dirs
  bool opaque = false;              // dir: no fall-through below the upper dir
  bool impure = false;              // dir: upper dir marked impure
  bool metacopy = false;            // reg: upper has metadata only
  bool indexed = false;             // reg: upper linked in the hard-link index
  bool no_caps_xattr = false;       // security.capability known absent
  // The upper object carries an origin (it was copied up): its number is
  // not its upper inode's. Like overlayfs, a directory that gets a name of
  // such an object is marked impure, where lookups read origins.
  bool has_origin = false;
  // Read-only opens of the lower file still open (OpenFile::counts_lower_open).
  // They follow a copy-up's data to the upper file (UnionFs::ReadFd), so an
  // upper file unlinked meanwhile must keep its migration state (its
  // archive holds the ranges a lazy copy-up left released) until they
  // close: the transport puts it in held_mig (src/fuse_ops.cc,
  // LastLinkWatch: an unlink, or a rename over it), and the last such open
  // lets go of it.
  int lower_opens = 0;
  std::shared_ptr<MigFile> held_mig;

  // Where the node was last seen in the tree (guarded by NodeTable::tree_mu).
  // Copy-up needs it to find the parent; it is an alias, like a dentry.
  Node* parent = nullptr;
  std::string name;

  bool has_lower() const { return lower.valid() || !lower_dirs.empty(); }
  // Whether a directory receiving a name of this object must be impure.
  bool keeps_origin() const { return has_lower() || has_origin; }  // mu held

 private:
  friend class NodeTable;
  std::atomic<int> child_refs_{0};  // aliases pointing at this node
  std::list<Node*>::iterator lru_it_;
  bool in_lru_ = false;
};

class NodeTable {
 public:
  NodeTable(const LayerSet* layers, long fd_budget);
  ~NodeTable();

  // Installs the root node (nlookup stays 1 forever).
  void SetRoot(std::unique_ptr<Node> root);
  Node* root() const { return root_; }

  // Returns the live node for fresh->key if it is the same object (same
  // upper handle or, without upper, same lower handle), else inserts fresh.
  // Either way the result's nlookup is incremented and its alias set to
  // (parent, name). Callers must hold no node's mu (cold fds are closed).
  Node* Intern(std::unique_ptr<Node> fresh, Node* parent, const std::string& name);
  // Like Intern for a node the caller knows is new (create, mkdir).
  Node* Insert(std::unique_ptr<Node> fresh, Node* parent, const std::string& name);

  // Drops n lookups; frees the node when nothing refers to it any more.
  void Forget(Node* node, uint64_t n);

  // Moves node's alias to (parent, name).
  void SetAlias(Node* node, Node* parent, const std::string& name);
  // Forgets where the live node with this key was seen if it was at
  // (parent, name): after an unlink its alias must not be used to copy it
  // up again under the old name.
  void Unalias(uint64_t key, Node* parent, const std::string& name);
  // Reads the alias. Returns false for the root.
  bool GetAlias(Node* node, Node** parent, std::string* name);

  // The fd of a real object of node, reopened from its handle if evicted.
  // Requires node->mu held.
  Status FdLocked(Node* node, RealRef* ref, FdPtr* out);
  // Same, taking node->mu.
  Status Fd(Node* node, RealRef Node::*which, FdPtr* out);
  // Installs a fresh fd for ref (node->mu held) and accounts it.
  void SetFdLocked(Node* node, RealRef* ref, int fd);
  // Closes cold cached fds while over budget. Call with no node->mu held.
  void MaybeEvict();

  const LayerSet& layers() const { return *layers_; }

 private:
  void TouchLru(Node* node);
  void ReleaseAliasLocked(Node* node);
  void MaybeDeleteLocked(Node* node);

  const LayerSet* layers_;
  const long fd_budget_;
  Node* root_ = nullptr;

  std::mutex map_mu_;  // guards map_, aliases, child refs
  std::unordered_map<uint64_t, Node*> map_;

  std::mutex lru_mu_;
  std::list<Node*> lru_;  // most recently used first
};

// Reopen flags for a cached fd of an object of this type: directories are
// opened for reading (so *at() and fgetxattr work), everything else O_PATH
// (never opening a fifo or a device).
int CachedFdFlags(mode_t type);

}  // namespace overtier

#endif  // OVERTIER_UNION_INODE_H_
